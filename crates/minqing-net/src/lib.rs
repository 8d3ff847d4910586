//! QUIC transport for minqing: quinn endpoints with rustls mutual TLS, the relay's
//! certificate authority (rcgen), enrolment bundles, and the driver that runs a
//! sans-IO `minqing-sync` session over one QUIC stream.
//!
//! Ring is the only crypto provider, always passed explicitly to the builders,
//! never installed as a process default.

mod bundle;
mod ca;
mod drive;
mod endpoint;
mod error;
mod tls;

pub use bundle::{BUNDLE_FORMAT, Bundle, MAX_BUNDLE_LEN, write_private_file};
pub use ca::{
    CA_VALIDITY, DEFAULT_SERVER_NAME, DEVICE_CERT_VALIDITY, IssuedCert, RelayCa, Validity,
    fingerprint, fingerprint_pem, parse_cert_pem,
};
pub use drive::{
    HeldDoc, apply_device_event, device_docs, has_local_changes, run_device_session,
    run_relay_session,
};
pub use endpoint::{
    CLOSE_DONE, CLOSE_ERROR, CLOSE_REFUSED, CLOSE_SHUTDOWN, CLOSE_WIPED, ConnectOptions,
    DEFAULT_TIMEOUT, DeviceConnection, connect, map_connection_error, map_read_error,
    map_write_error, peer_fingerprint, server_endpoint,
};
pub use error::{NetError, REFUSED_MESSAGE};
pub use tls::{ALPN, DeviceGate, ServerTls, client_crypto, server_crypto};

/// Re-exported so that users of this crate name the same quinn.
pub use quinn;
