//! QUIC transport for minqing: quinn endpoints with rustls mutual TLS, the relay's
//! certificate authority (rcgen), enrolment bundles, and the driver that runs a
//! sans-IO `minqing-sync` session over one QUIC stream.
//!
//! Ring is the only crypto provider, always passed explicitly to the builders,
//! never installed as a process default.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod bundle;
mod ca;
mod drive;
mod endpoint;
mod enrol;
mod error;
mod tls;

pub use bundle::{
    BUNDLE_FORMAT, Bundle, Identity, MAX_BUNDLE_LEN, SECRET_LEN, check_addr, check_device_id,
    new_secret, secret_digest, write_private_file,
};
pub use ca::{
    CA_VALIDITY, DEFAULT_SERVER_NAME, DEVICE_CERT_VALIDITY, IssuedCert, RelayCa, Validity,
    certificate_request, check_device_cert, fingerprint, fingerprint_pem, new_device_key,
    parse_cert_pem, request_matches_cert,
};
pub use drive::{SessionLimits, run_device_session, run_relay_session};
pub use endpoint::{
    CLOSE_DONE, CLOSE_ERROR, CLOSE_REFUSED, CLOSE_SHUTDOWN, CLOSE_WIPED, ClientEndpoint,
    ConnectOptions, DEFAULT_TIMEOUT, DeviceConnection, RELAY_INITIAL_WINDOW, RELAY_RECEIVE_WINDOW,
    client_endpoint, connect, connect_enrol, connect_on, connect_within, map_connection_error,
    map_read_error, map_write_error, negotiated_alpn, peer_fingerprint, server_endpoint,
};
pub use enrol::{
    ENROL_FORMAT, EnrolRefusal, EnrolRequest, EnrolResponse, MAX_ENROL_MESSAGE, USED_MESSAGE,
    enrol, read_message, serve_enrolment, write_message,
};
pub use error::{
    CertFailure, EnrolFailure, Lost, NetError, Peer, REFUSED_MESSAGE, SessionLimit, TlsFailure,
};
pub use tls::{
    ALPN, DeviceGate, ENROL_ALPN, ServerTls, client_crypto, enrol_client_crypto, server_crypto,
};

/// Re-exported so that users of this crate name the same quinn.
pub use quinn;
