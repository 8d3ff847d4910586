//! The relay's certificate authority (rcgen): the CA itself, the relay's server
//! certificate, and device certificates, plus SHA-256 certificate fingerprints.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::{CertFailure, NetError};

/// How long a device certificate is valid by default: two years.
pub const DEVICE_CERT_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 3600);
/// How long the CA and server certificates are valid: twenty years.
pub const CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// The DNS name every relay server certificate carries and devices verify.
pub const DEFAULT_SERVER_NAME: &str = "localhost";

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM. Secret.
    pub key_pem: String,
    /// SHA-256 fingerprint of the certificate's DER, lowercase hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Validity window of an issued certificate.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// Start of validity (a day before issuing, to tolerate clock skew).
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl Validity {
    /// Valid from a day ago for `duration` from now.
    pub fn from_now(duration: Duration) -> Self {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(24 * 3600),
            not_after: now + duration,
        }
    }
}

/// The relay's certificate authority: its certificate and signing key.
pub struct RelayCa {
    /// The relay name the CA was made for (in its common name).
    name: String,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for RelayCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn unix_secs(t: SystemTime) -> Result<Duration, NetError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| NetError::Certificate(CertFailure::BeforeEpoch))?;
    Ok(Duration::from_secs(secs.as_secs()))
}

/// Sets a certificate's validity window (`rcgen` does not re-export its date type,
/// so the dates are built from the epoch by adding durations).
fn set_validity(params: &mut CertificateParams, v: Validity) -> Result<(), NetError> {
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + unix_secs(v.not_before)?;
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + unix_secs(v.not_after)?;
    Ok(())
}

fn cert_err(what: &'static str) -> impl Fn(rcgen::Error) -> NetError {
    move |err| NetError::Certificate(CertFailure::Rcgen { what, err })
}

fn ca_params(name: &str, validity: Validity) -> Result<CertificateParams, NetError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("minqing relay CA {name}"));
    dn.push(DnType::OrganizationName, "minqing");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, validity)?;
    Ok(params)
}

impl RelayCa {
    /// Makes a new CA for the relay named `name`.
    pub fn create(name: &str) -> Result<Self, NetError> {
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let key_pem = key.serialize_pem();
        let params = ca_params(name, Validity::from_now(CA_VALIDITY))?;
        let issuer =
            CertifiedIssuer::self_signed(params, key).map_err(cert_err("signing the CA"))?;
        Ok(RelayCa {
            name: name.to_owned(),
            cert_pem: issuer.pem(),
            key_pem,
        })
    }

    /// Loads a CA saved with [`RelayCa::cert_pem`] / [`RelayCa::key_pem`] for relay `name`.
    pub fn load(name: &str, cert_pem: &str, key_pem: &str) -> Result<Self, NetError> {
        KeyPair::from_pem(key_pem).map_err(cert_err("reading the CA key"))?;
        parse_cert_pem(cert_pem)?;
        Ok(RelayCa {
            name: name.to_owned(),
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM (goes into every bundle).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM. Secret: keep it mode 0600.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, NetError> {
        let key = KeyPair::from_pem(&self.key_pem).map_err(cert_err("reading the CA key"))?;
        // Only the distinguished name, key usages and key id method of the params
        // reach the issuer; they are rebuilt identically from the relay name.
        let params = ca_params(&self.name, Validity::from_now(CA_VALIDITY))?;
        Ok(Issuer::new(params, key))
    }

    /// Issues the relay's server certificate for `localhost`, `127.0.0.1` and `hosts`.
    pub fn issue_server(&self, hosts: &[String]) -> Result<IssuedCert, NetError> {
        let mut names = vec![DEFAULT_SERVER_NAME.to_owned(), "127.0.0.1".to_owned()];
        for h in hosts {
            if !names.contains(h) && !h.is_empty() {
                names.push(h.clone());
            }
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(cert_err("server name")),
            })
            .collect::<Result<_, _>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("minqing relay {}", self.name));
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, Validity::from_now(CA_VALIDITY))?;
        self.sign(params)
    }

    fn device_params(
        &self,
        device_id: &str,
        validity: Validity,
    ) -> Result<CertificateParams, NetError> {
        crate::bundle::check_device_id(device_id)
            .map_err(|e| NetError::Certificate(CertFailure::DeviceId(e)))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device_id);
        dn.push(
            DnType::OrganizationName,
            format!("minqing relay {}", self.name),
        );
        params.distinguished_name = dn;
        let san = format!("{device_id}.device.minqing");
        params.subject_alt_names = vec![SanType::DnsName(
            san.try_into().map_err(cert_err("device id"))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, validity)?;
        Ok(params)
    }

    /// Issues a device certificate whose common name and DNS name carry
    /// `device_id`, with a key made here. For tests and the benchmark's bulk
    /// enrolment only: real laptops make their own key and send a request
    /// ([`RelayCa::sign_request`]).
    pub fn issue_device(
        &self,
        device_id: &str,
        validity: Validity,
    ) -> Result<IssuedCert, NetError> {
        let params = self.device_params(device_id, validity)?;
        self.sign(params)
    }

    /// Signs a device certificate for the public key of a PKCS#10 request
    /// (whose signature, the proof that the laptop holds the key, is checked).
    /// Only the key is taken from the request: subject, names, usages and
    /// validity are the relay's, for `device_id`. Returns the certificate PEM
    /// and its fingerprint (the key stays on the laptop: `key_pem` is empty).
    pub fn sign_request(
        &self,
        csr_pem: &str,
        device_id: &str,
        validity: Validity,
    ) -> Result<IssuedCert, NetError> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| NetError::Certificate(CertFailure::Request(e)))?;
        let params = self.device_params(device_id, validity)?;
        let issuer = self.issuer()?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(cert_err("signing a certificate"))?;
        Ok(IssuedCert {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: String::new(),
        })
    }

    fn sign(&self, params: CertificateParams) -> Result<IssuedCert, NetError> {
        let issuer = self.issuer()?;
        let key = KeyPair::generate().map_err(cert_err("generating a key"))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(cert_err("signing a certificate"))?;
        Ok(IssuedCert {
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// SHA-256 of a certificate's DER, lowercase hex (64 characters).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses the first certificate of a PEM string.
pub fn parse_cert_pem(pem: &str) -> Result<CertificateDer<'static>, NetError> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| NetError::Certificate(CertFailure::PemCertificate(e)))
}

/// The SHA-256 fingerprint of the first certificate of a PEM string.
pub fn fingerprint_pem(pem: &str) -> Result<String, NetError> {
    Ok(fingerprint(parse_cert_pem(pem)?.as_ref()))
}

/// A new private key for a laptop (ECDSA P-256, PKCS#8 PEM). Made on the
/// laptop; it never leaves it.
pub fn new_device_key() -> Result<String, NetError> {
    Ok(KeyPair::generate()
        .map_err(cert_err("generating the laptop's key"))?
        .serialize_pem())
}

/// A PKCS#10 certificate request for `device_id`, signed with `key_pem`.
pub fn certificate_request(key_pem: &str, device_id: &str) -> Result<String, NetError> {
    let key = KeyPair::from_pem(key_pem).map_err(cert_err("reading the laptop's key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, device_id);
    params.distinguished_name = dn;
    params
        .serialize_request(&key)
        .map_err(cert_err("making the certificate request"))?
        .pem()
        .map_err(cert_err("encoding the certificate request"))
}

/// SubjectPublicKeyInfo (DER) of a PEM certificate.
fn cert_spki(cert_pem: &str) -> Result<Vec<u8>, NetError> {
    let der = parse_cert_pem(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| NetError::Certificate(CertFailure::X509(e)))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// Whether the certificate `cert_pem` is for the public key of a certificate
/// request `csr_pem` (the relay answers a repeated request with the same
/// certificate only then).
pub fn request_matches_cert(csr_pem: &str, cert_pem: &str) -> bool {
    use rcgen::PublicKeyData;
    let Ok(csr) = rcgen::CertificateSigningRequestParams::from_pem(csr_pem) else {
        return false;
    };
    cert_spki(cert_pem).is_ok_and(|spki| spki == csr.public_key.subject_public_key_info())
}

/// Checks a certificate the relay returned at enrolment: it is signed by the
/// CA `ca_pem`, names `device_id`, and carries the public key of `key_pem`.
pub fn check_device_cert(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
    device_id: &str,
) -> Result<(), NetError> {
    use rcgen::PublicKeyData;
    let bad = |what: &'static str| NetError::Certificate(CertFailure::Answer(what));
    let key = KeyPair::from_pem(key_pem).map_err(cert_err("reading the laptop's key"))?;
    if cert_spki(cert_pem)? != key.subject_public_key_info() {
        return Err(bad("the certificate is not for this laptop's key"));
    }
    let der = parse_cert_pem(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| bad("the certificate does not parse"))?;
    let ca_der = parse_cert_pem(ca_pem)?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der.as_ref())
        .map_err(|_| bad("the CA certificate does not parse"))?;
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| bad("the certificate is not signed by the relay's CA"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok());
    if cn != Some(device_id) {
        return Err(bad("the certificate names another device"));
    }
    Ok(())
}
