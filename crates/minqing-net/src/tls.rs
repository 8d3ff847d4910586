//! rustls configuration for both ends: the relay's mutual-TLS server config with a
//! client verifier that also consults the relay's device registry, and the device's
//! client config from its bundle. Ring is the only crypto provider, passed explicitly.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::ca::{fingerprint, parse_cert_pem};
use crate::{Bundle, Identity, NetError};

/// The ALPN protocol of sync sessions (a device certificate is required).
pub const ALPN: &[u8] = b"minqing/1";
/// The ALPN protocol of first-contact enrolment (no device certificate yet).
pub const ENROL_ALPN: &[u8] = b"minqing-enroll/1";

/// The relay's decision, per handshake, on a certificate its CA signed.
///
/// Implemented by the relay over its device registry, which `minqing-relay revoke`
/// may change while `serve` runs: `admit` is called on every handshake.
pub trait DeviceGate: Send + Sync + 'static {
    /// `Ok` if the device whose certificate has this SHA-256 `fingerprint` may
    /// connect; `Err(reason)` if it is unknown or revoked.
    fn admit(&self, fingerprint: &str) -> Result<(), String>;
    /// A handshake was refused (`reason` says why); for the audit log.
    fn refused(&self, fingerprint: &str, reason: &str);
}

/// A client verifier: webpki chain validation against the relay's CA (which
/// also enforces expiry), then the [`DeviceGate`].
struct GatedVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    gate: Arc<dyn DeviceGate>,
}

impl std::fmt::Debug for GatedVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatedVerifier").finish_non_exhaustive()
    }
}

impl ClientCertVerifier for GatedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    /// A laptop enrolling for the first time has no certificate yet: the
    /// handshake lets it through, and the relay closes any connection without
    /// a certificate that is not on [`ENROL_ALPN`] (docs/sync.md, Enrolment).
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity.as_ref());
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            self.gate
                .refused(&fp, &format!("certificate rejected: {e}"));
            return Err(e);
        }
        if let Err(reason) = self.gate.admit(&fp) {
            self.gate.refused(&fp, &reason);
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls(e: rustls::Error) -> NetError {
    NetError::Tls(crate::TlsFailure::Rustls(e))
}

fn roots(ca_cert_pem: &str) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    roots.add(parse_cert_pem(ca_cert_pem)?).map_err(tls)?;
    Ok(Arc::new(roots))
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| NetError::Certificate(crate::CertFailure::PemKey(e)))
}

/// What the relay's server needs to speak mutual TLS.
#[derive(Clone)]
pub struct ServerTls {
    /// The relay CA certificate, PEM: the only root device certificates may chain to.
    pub ca_cert_pem: String,
    /// The relay's server certificate, PEM.
    pub cert_pem: String,
    /// The server certificate's key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// The relay's rustls server config: TLS 1.3, ALPN `minqing/1` or
/// `minqing-enroll/1`; a client certificate, when presented, is checked against
/// the CA and then `gate` (the relay refuses sync sessions without one).
pub fn server_crypto(
    server: &ServerTls,
    gate: Arc<dyn DeviceGate>,
) -> Result<rustls::ServerConfig, NetError> {
    let inner =
        WebPkiClientVerifier::builder_with_provider(roots(&server.ca_cert_pem)?, provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| NetError::Tls(crate::TlsFailure::ClientVerifier(e)))?;
    let verifier = Arc::new(GatedVerifier { inner, gate });
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![parse_cert_pem(&server.cert_pem)?],
            private_key(&server.key_pem)?,
        )
        .map_err(tls)?;
    cfg.alpn_protocols = vec![ALPN.to_vec(), ENROL_ALPN.to_vec()];
    // Session tickets only for a laptop that asks for one (RFC 9149
    // `ticket_request`): a long-running process resumes its next pass with
    // 0-RTT data ([`resuming_client_crypto`]); a one-shot `minqing sync`
    // cannot keep a ticket past its exit, so it asks for none and gets none
    // (docs/sync.md, "Resumption and 0-RTT"). Tickets are stateful: each is
    // an entry of a bounded cache, taken out on use, so a ticket resumes at
    // most once (the anti-replay defence for 0-RTT), and a restart of the
    // relay forgets them all.
    cfg.send_tls13_tickets = 0;
    cfg.max_tls13_tickets = 1;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(RESUMPTION_CACHE);
    // QUIC requires all or nothing; what early data may carry is bounded by
    // the relay's stream and connection windows like any other data.
    cfg.max_early_data_size = u32::MAX;
    Ok(cfg)
}

/// Tickets the relay keeps for resumption (stateful; ≈ 1.5 KB each with the
/// laptop's certificate: ≈ 6 MB at most). Past it the cache forgets entries,
/// and a laptop whose ticket was forgotten makes a full handshake.
pub const RESUMPTION_CACHE: usize = 4096;

/// The device's rustls client config: trusts only the relay's CA of its
/// bundle, presents its own certificate.
pub fn client_crypto(
    bundle: &Bundle,
    identity: &Identity,
) -> Result<rustls::ClientConfig, NetError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_root_certificates(roots(&bundle.ca_cert_pem)?)
        .with_client_auth_cert(
            vec![parse_cert_pem(&identity.cert_pem)?],
            private_key(&identity.key_pem)?,
        )
        .map_err(tls)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    // One connection per process: nothing to resume, and the relay sends
    // tickets only to a laptop that asks (see `server_crypto`).
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}

/// [`client_crypto`] for a process that connects again and again on one
/// endpoint (`minqing app`'s background sync): it asks the relay for one
/// ticket per connection, keeps it in memory, and sends its next pass's
/// first flight as 0-RTT data on the resumed connection.
pub fn resuming_client_crypto(
    bundle: &Bundle,
    identity: &Identity,
) -> Result<rustls::ClientConfig, NetError> {
    let mut cfg = client_crypto(bundle, identity)?;
    cfg.resumption = rustls::client::Resumption::in_memory_sessions(RESUMING_TICKETS);
    cfg.send_ticket_request = Some(rustls::client::TicketRequest {
        new_session_count: 1,
        resumption_count: 1,
    });
    cfg.enable_early_data = true;
    Ok(cfg)
}

/// Tickets a laptop keeps (one relay; a few spare).
const RESUMING_TICKETS: usize = 4;

/// The client config of a first contact: trusts only the bundle's CA,
/// presents no certificate, speaks [`ENROL_ALPN`].
pub fn enrol_client_crypto(bundle: &Bundle) -> Result<rustls::ClientConfig, NetError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_root_certificates(roots(&bundle.ca_cert_pem)?)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ENROL_ALPN.to_vec()];
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}
