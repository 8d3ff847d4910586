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
use crate::{Bundle, NetError};

/// The ALPN protocol both ends require.
pub const ALPN: &[u8] = b"minqing/1";

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

fn tls(e: impl std::fmt::Display) -> NetError {
    NetError::Tls(e.to_string())
}

fn roots(ca_cert_pem: &str) -> Result<Arc<RootCertStore>, NetError> {
    let mut roots = RootCertStore::empty();
    roots.add(parse_cert_pem(ca_cert_pem)?).map_err(tls)?;
    Ok(Arc::new(roots))
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| NetError::Certificate(format!("not a PEM private key: {e}")))
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

/// The relay's rustls server config: TLS 1.3, ALPN `minqing/1`, client
/// certificates mandatory, checked against the CA and then `gate`.
pub fn server_crypto(
    server: &ServerTls,
    gate: Arc<dyn DeviceGate>,
) -> Result<rustls::ServerConfig, NetError> {
    let inner =
        WebPkiClientVerifier::builder_with_provider(roots(&server.ca_cert_pem)?, provider())
            .build()
            .map_err(tls)?;
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
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    // No session tickets: `minqing sync` is one process per pass and rustls
    // cannot persist a ticket across processes, so every ticket would be ≈ 100
    // bytes sent to a laptop for nothing (see docs/sync.md, "Transport").
    cfg.send_tls13_tickets = 0;
    Ok(cfg)
}

/// The device's rustls client config from its bundle: trusts only the relay's CA,
/// presents the bundle's certificate.
pub fn client_crypto(bundle: &Bundle) -> Result<rustls::ClientConfig, NetError> {
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_root_certificates(roots(&bundle.ca_cert_pem)?)
        .with_client_auth_cert(
            vec![parse_cert_pem(&bundle.cert_pem)?],
            private_key(&bundle.key_pem)?,
        )
        .map_err(tls)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    // Nothing to resume (the relay issues no tickets; see `server_crypto`).
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(cfg)
}
