//! `NetError`: what can go wrong in the transport, worded for the person at the laptop.

use std::time::Duration;

// The variants that wrap a typed error (`ConnectionLost`, `Tls`,
// `Certificate`, `Enrol`, `Session`,
// `Protocol`, `Storage`, `Worker`) carry it for matching and say it in their
// message; they do not also expose it as `source()`, which would print it
// twice under `{:#}`.

/// The message a device shows when the relay refuses its certificate.
pub const REFUSED_MESSAGE: &str = "the relay refused this laptop's certificate: it is revoked or not enrolled with this relay; ask the operator to enrol it again";

/// Errors of the QUIC / TLS transport and of the relay's certificate authority.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The relay could not be reached within the timeout (no route, nothing listening, timeout).
    #[error(
        "the relay at {addr} is unreachable ({detail}); nothing local was lost, try again when the network is back"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// What happened (timeout after N s, connection error).
        detail: String,
    },
    /// The relay refused this device during or right after the TLS handshake.
    #[error("{0}")]
    Refused(String),
    /// The relay ordered this revoked laptop to destroy its keys (remote wipe).
    /// The connection is left open so that the laptop can confirm
    /// ([`crate::DeviceConnection::close_wiped`]) after it did.
    #[error("the relay ordered this laptop to be wiped: {0}")]
    WipeOrdered(String),
    /// The relay did not prove it is the relay of this laptop's bundle (its
    /// certificate is not signed by the bundle's CA, or names another server).
    /// Nothing was sent to it.
    #[error(
        "the relay at {addr} is not the relay this laptop was enrolled with ({detail}); nothing was sent to it: check the relay address, or ask the operator for a new enrolment bundle"
    )]
    WrongRelay {
        /// The address tried.
        addr: String,
        /// What the TLS check said.
        detail: String,
    },
    /// The connection broke after it was established.
    #[error("the connection to the relay broke: {0}")]
    ConnectionLost(Lost),
    /// A certificate, key or bundle could not be made or parsed.
    #[error("certificate error: {0}")]
    Certificate(CertFailure),
    /// A bundle file is malformed or of an unknown format.
    #[error("enrolment bundle {path}: {detail}")]
    Bundle {
        /// The bundle's path.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration error: {0}")]
    Tls(TlsFailure),
    /// A local I/O error (binding a socket, reading or writing a file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The sync session failed: the relay broke the protocol, ended the
    /// session with an error, or a limit of this side was reached.
    #[error("sync session failed: {0}")]
    Session(minqing_sync::SessionError),
    /// This side's storage failed during a sync session (a full disk, a
    /// damaged store): nothing the session produced after it was acknowledged.
    #[error("sync session failed: {0}")]
    Storage(minqing_sync::StorageError),
    /// The blocking task that ran a session's step failed (it panicked or the
    /// runtime is shutting down).
    #[error("sync session failed: the session's worker failed: {0}")]
    Worker(tokio::task::JoinError),
    /// The device broke the sync protocol (a malformed or oversized frame, a
    /// `Hello` naming another device, …): the relay audits it.
    #[error("sync session failed: {0}")]
    Protocol(minqing_sync::SessionError),
    /// A limit of the relay ended the session (deadline, silence, buffer budget).
    #[error(transparent)]
    Limit(#[from] SessionLimit),
    /// The enrolment exchange failed (malformed or missing messages).
    #[error("enrolment failed: {0}")]
    Enrol(EnrolFailure),
    /// The relay refused the enrolment; `message` is its words for the cadre.
    #[error("{message}")]
    EnrolRefused {
        /// Why.
        code: crate::EnrolRefusal,
        /// The relay's words.
        message: String,
    },
}

/// Why an established connection ended ([`NetError::ConnectionLost`]): QUIC's
/// own error where there is one, this side's words where the peer broke off.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    /// The connection ended (closed by the peer, a transport error, …).
    #[error("{0}")]
    Connection(quinn::ConnectionError),
    /// A stream read failed without the connection ending (the peer reset it).
    #[error("{0}")]
    Read(quinn::ReadError),
    /// A read to the end of a stream failed (too long, or [`Lost::Read`]).
    #[error("{0}")]
    ReadToEnd(quinn::ReadToEndError),
    /// A stream write failed without the connection ending (the peer stopped it).
    #[error("{0}")]
    Write(quinn::WriteError),
    /// A new stream could not be opened.
    #[error("{0}")]
    Open(quinn::ConnectionError),
    /// The relay closed the connection with a code that is neither a refusal
    /// nor its shutdown.
    #[error("closed by the relay: {reason}")]
    ClosedByRelay {
        /// The application close code.
        code: u64,
        /// The relay's words.
        reason: String,
    },
    /// The other side ended its stream before the session finished.
    #[error("the {0} ended the stream before the session finished")]
    EndedEarly(Peer),
    /// The relay sent nothing for `secs` in the middle of a sync.
    #[error(
        "the relay at {addr} sent nothing for {secs} s in the middle of the sync (the relay may be stuck): gave up"
    )]
    Stalled {
        /// The relay's address.
        addr: String,
        /// The silence bound.
        secs: f32,
    },
}

/// Which side of a session ([`Lost::EndedEarly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The laptop.
    Device,
    /// The relay.
    Relay,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peer::Device => "device",
            Peer::Relay => "relay",
        })
    }
}

/// Why a TLS or QUIC configuration could not be built ([`NetError::Tls`]).
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    /// rustls refused a certificate, key or setting.
    #[error("{0}")]
    Rustls(rustls::Error),
    /// The verifier of laptops' certificates could not be built from the CA.
    #[error("{0}")]
    ClientVerifier(rustls::server::VerifierBuilderError),
    /// The TLS configuration offers no cipher suite QUIC can start with.
    #[error("{0}")]
    NoInitialCipherSuite(quinn::crypto::rustls::NoInitialCipherSuite),
    /// The QUIC endpoint was built outside an async runtime.
    #[error("no async runtime for the QUIC endpoint")]
    NoRuntime,
}

/// Why a certificate, key or bundle could not be made or read
/// ([`NetError::Certificate`]).
#[derive(Debug, thiserror::Error)]
pub enum CertFailure {
    /// rcgen failed while doing `what` (generating or reading a key, signing).
    #[error("{what}: {err}")]
    Rcgen {
        /// What was being done.
        what: &'static str,
        /// rcgen's error.
        err: rcgen::Error,
    },
    /// A certificate request that does not parse.
    #[error("the certificate request: {0}")]
    Request(rcgen::Error),
    /// Text that is not a PEM certificate.
    #[error("not a PEM certificate: {0}")]
    PemCertificate(rustls_pki_types::pem::Error),
    /// Text that is not a PEM private key.
    #[error("not a PEM private key: {0}")]
    PemKey(rustls_pki_types::pem::Error),
    /// A certificate whose DER does not parse.
    #[error("the certificate does not parse: {0}")]
    X509(x509_parser::nom::Err<x509_parser::error::X509Error>),
    /// A device id that is not one (the words say which rule it breaks).
    #[error("{0}")]
    DeviceId(String),
    /// A validity period starting before 1970.
    #[error("validity before 1970")]
    BeforeEpoch,
    /// The bundle could not be encoded.
    #[error("encoding the bundle: {0}")]
    Encode(serde_json::Error),
    /// The certificate the relay signed at enrolment is not the one asked for.
    #[error("the relay's answer: {0}")]
    Answer(&'static str),
}

/// Why the enrolment exchange failed ([`NetError::Enrol`]).
#[derive(Debug, thiserror::Error)]
pub enum EnrolFailure {
    /// A message's stream ended before its length said.
    #[error("the message ended early")]
    EndedEarly,
    /// A message longer than the exchange allows.
    #[error("a message of {len} bytes is larger than {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A message that is not the JSON the exchange expects.
    #[error("a malformed message: {0}")]
    Malformed(serde_json::Error),
    /// A message that could not be encoded.
    #[error("encoding: {0}")]
    Encode(serde_json::Error),
    /// The relay accepted but sent no certificate.
    #[error("the relay's answer has no certificate")]
    NoCertificate,
    /// The laptop sent no request in time.
    #[error("no enrolment request within {secs} s")]
    NoRequest {
        /// The wait.
        secs: u64,
    },
    /// The blocking task that decided the request failed.
    #[error("the enrolment worker failed: {0}")]
    Worker(tokio::task::JoinError),
}

/// Which limit of the relay ended a session ([`NetError::Limit`]; docs/relay.md, "Limits").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionLimit {
    /// The laptop sent nothing for this many seconds.
    #[error("the laptop sent nothing for {secs} s")]
    Silence {
        /// The silence bound.
        secs: u64,
    },
    /// The shared receive budget stayed full for this many seconds.
    #[error("the relay is busy (its receive buffers are full for {secs} s); try again later")]
    Busy {
        /// How long the session waited.
        secs: u64,
    },
    /// The relay's answer did not fit in the shared budget.
    #[error("the relay is busy (its buffers are full); try again later")]
    Full,
    /// The laptop took none of the relay's answer for this many seconds.
    #[error("the laptop read nothing of the relay's answer for {secs} s")]
    Unread {
        /// The silence bound.
        secs: u64,
    },
    /// The session outlived the relay's deadline.
    #[error("the session took longer than {secs} s")]
    Deadline {
        /// The deadline.
        secs: u64,
    },
    /// One chunk read was larger than the budget can count.
    #[error("a chunk too large")]
    Chunk,
    /// The relay is shutting down (its budget is closed).
    #[error("the relay is shutting down")]
    ShuttingDown,
}

impl From<minqing_sync::StorageError> for NetError {
    fn from(e: minqing_sync::StorageError) -> Self {
        NetError::Storage(e)
    }
}

impl NetError {
    /// An [`NetError::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        NetError::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`NetError::Unreachable`] for a connect that did not finish in `timeout`.
    pub fn timed_out(addr: impl Into<String>, timeout: Duration) -> Self {
        NetError::Unreachable {
            addr: addr.into(),
            detail: format!("no answer within {} s", timeout.as_secs_f32()),
        }
    }

    /// Whether this error is the relay refusing the device (as opposed to the network failing).
    pub fn is_refused(&self) -> bool {
        matches!(self, NetError::Refused(_))
    }

    /// Whether trust failed in either direction: the relay refused this device
    /// ([`NetError::Refused`]) or the device does not trust the relay
    /// ([`NetError::WrongRelay`]). Retrying does not help; the operator must act.
    pub fn is_trust_failure(&self) -> bool {
        matches!(
            self,
            NetError::Refused(_) | NetError::WrongRelay { .. } | NetError::EnrolRefused { .. }
        )
    }
}
