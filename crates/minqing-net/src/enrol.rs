//! First-contact enrolment (docs/sync.md, "Enrolment"): over a connection on
//! ALPN `minqing-enroll/1` without a client certificate, the laptop sends one
//! [`EnrolRequest`] (device id, the bundle's one-time secret, a certificate
//! request signed with the key it made) and the relay answers one
//! [`EnrolResponse`]. Each message is JSON prefixed by its length (4 bytes, big
//! endian), at most [`MAX_ENROL_MESSAGE`] bytes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::endpoint::{map_read_error, map_write_error};
use crate::{Bundle, ConnectOptions, EnrolFailure, Identity, NetError};

/// Largest enrolment message, either way.
pub const MAX_ENROL_MESSAGE: usize = 64 * 1024;
/// `format` of an enrolment request.
pub const ENROL_FORMAT: &str = "minqing-enrol/1";
/// What a laptop shows when its bundle was already used by another laptop.
pub const USED_MESSAGE: &str =
    "this enrolment file was already used on another laptop; ask the operator for a new one";

/// The laptop's request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// Always [`ENROL_FORMAT`].
    pub format: String,
    /// The device id of the bundle.
    pub device_id: String,
    /// The bundle's one-time secret, hex.
    pub secret: String,
    /// A PKCS#10 certificate request signed with the laptop's new key, PEM.
    pub csr_pem: String,
}

impl std::fmt::Debug for EnrolRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolRequest")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Why the relay refused an enrolment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrolRefusal {
    /// The secret was already used by another key.
    Used,
    /// No pending enrolment has this device id and secret.
    Unknown,
    /// The device was revoked.
    Revoked,
    /// The request is malformed.
    BadRequest,
    /// The relay failed to record or sign (its disk, its CA).
    Failed,
}

/// The relay's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// Whether the laptop is enrolled.
    pub ok: bool,
    /// The signed device certificate, PEM (when `ok`).
    #[serde(default)]
    pub cert_pem: Option<String>,
    /// Why not (when not `ok`).
    #[serde(default)]
    pub code: Option<EnrolRefusal>,
    /// Words for the cadre (when not `ok`).
    #[serde(default)]
    pub message: Option<String>,
}

impl EnrolResponse {
    /// An enrolment that succeeded.
    pub fn enrolled(cert_pem: String) -> Self {
        EnrolResponse {
            ok: true,
            cert_pem: Some(cert_pem),
            code: None,
            message: None,
        }
    }

    /// A refusal, with the words the laptop shows.
    pub fn refused(code: EnrolRefusal, message: impl Into<String>) -> Self {
        EnrolResponse {
            ok: false,
            cert_pem: None,
            code: Some(code),
            message: Some(message.into()),
        }
    }
}

/// Reads one length-prefixed JSON message of at most [`MAX_ENROL_MESSAGE`] bytes.
pub async fn read_message<T: serde::de::DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    peer: &str,
) -> Result<T, NetError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| match e {
        quinn::ReadExactError::ReadError(e) => map_read_error(&e, peer),
        quinn::ReadExactError::FinishedEarly(_) => NetError::Enrol(EnrolFailure::EndedEarly),
    })?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_ENROL_MESSAGE {
        return Err(NetError::Enrol(EnrolFailure::TooLarge {
            len,
            max: MAX_ENROL_MESSAGE,
        }));
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf).await.map_err(|e| match e {
        quinn::ReadExactError::ReadError(e) => map_read_error(&e, peer),
        quinn::ReadExactError::FinishedEarly(_) => NetError::Enrol(EnrolFailure::EndedEarly),
    })?;
    serde_json::from_slice(&buf).map_err(|e| NetError::Enrol(EnrolFailure::Malformed(e)))
}

/// Writes one length-prefixed JSON message.
pub async fn write_message<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
    peer: &str,
) -> Result<(), NetError> {
    let body = serde_json::to_vec(msg).map_err(|e| NetError::Enrol(EnrolFailure::Encode(e)))?;
    let too_large = || {
        NetError::Enrol(EnrolFailure::TooLarge {
            len: body.len(),
            max: MAX_ENROL_MESSAGE,
        })
    };
    if body.len() > MAX_ENROL_MESSAGE {
        return Err(too_large());
    }
    let len = u32::try_from(body.len()).map_err(|_| too_large())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    send.write_all(&framed)
        .await
        .map_err(|e| map_write_error(&e, peer))
}

/// The laptop's first contact: proves the bundle's secret, sends a certificate
/// request for `key_pem` (made with [`crate::new_device_key`]) and returns the
/// identity once the relay's certificate passed [`crate::check_device_cert`].
///
/// Errors: [`NetError::EnrolRefused`] when the relay refuses (its words;
/// [`USED_MESSAGE`] for a used bundle), [`NetError::Unreachable`] /
/// [`NetError::WrongRelay`] as for a sync.
pub async fn enrol(
    bundle: &Bundle,
    key_pem: &str,
    opts: ConnectOptions,
) -> Result<Identity, NetError> {
    let csr_pem = crate::ca::certificate_request(key_pem, &bundle.device_id)?;
    let request = EnrolRequest {
        format: ENROL_FORMAT.into(),
        device_id: bundle.device_id.clone(),
        secret: bundle.enrol_secret.clone(),
        csr_pem,
    };
    let conn = crate::endpoint::connect_enrol(bundle, opts).await?;
    let addr = conn.addr.clone();
    let exchange = async {
        let (mut send, mut recv) = conn
            .connection
            .open_bi()
            .await
            .map_err(|e| crate::map_connection_error(&e, &addr))?;
        write_message(&mut send, &request, &addr).await?;
        let _ = send.finish();
        read_message::<EnrolResponse>(&mut recv, &addr).await
    };
    let response = match tokio::time::timeout(opts.timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(NetError::timed_out(&addr, opts.timeout)),
    };
    conn.close().await;
    let response = response?;
    if !response.ok {
        return Err(NetError::EnrolRefused {
            code: response.code.unwrap_or(EnrolRefusal::Failed),
            message: response
                .message
                .unwrap_or_else(|| "the relay refused the enrolment".into())
                .chars()
                .filter(|c| !c.is_control())
                .take(500)
                .collect(),
        });
    }
    let cert_pem = response
        .cert_pem
        .ok_or(NetError::Enrol(EnrolFailure::NoCertificate))?;
    crate::ca::check_device_cert(&cert_pem, key_pem, &bundle.ca_cert_pem, &bundle.device_id)?;
    Ok(Identity {
        cert_pem,
        key_pem: key_pem.to_owned(),
    })
}

/// The relay's side of one enrolment connection: reads the request (within
/// `wait`), lets `decide` answer it (it runs on tokio's blocking pool: it
/// writes the registry durably before answering), sends the answer and
/// returns it.
pub async fn serve_enrolment(
    conn: &quinn::Connection,
    wait: Duration,
    decide: impl FnOnce(Result<EnrolRequest, String>) -> EnrolResponse + Send + 'static,
) -> Result<EnrolResponse, NetError> {
    let peer = conn.remote_address().to_string();
    let received = tokio::time::timeout(wait, async {
        let (send, mut recv) = conn
            .accept_bi()
            .await
            .map_err(|e| crate::map_connection_error(&e, &peer))?;
        let req = read_message::<EnrolRequest>(&mut recv, &peer).await;
        Ok::<_, NetError>((send, recv, req))
    })
    .await;
    let (mut send, recv, req) = match received {
        Ok(r) => r?,
        Err(_) => {
            return Err(NetError::Enrol(EnrolFailure::NoRequest {
                secs: wait.as_secs(),
            }));
        }
    };
    let req = match req {
        Ok(r) if r.format == ENROL_FORMAT => Ok(r),
        Ok(r) => Err(format!(
            "unknown request format {:?}",
            r.format.chars().take(40).collect::<String>()
        )),
        Err(e) => Err(e.to_string()),
    };
    let response = tokio::task::spawn_blocking(move || decide(req))
        .await
        .map_err(|e| NetError::Enrol(EnrolFailure::Worker(e)))?;
    write_message(&mut send, &response, &peer).await?;
    let _ = send.finish();
    // Let the laptop read the answer; it closes the connection.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    drop(recv);
    Ok(response)
}
