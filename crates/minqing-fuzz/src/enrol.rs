//! The enrolment target: the first-contact messages of one-time enrolment
//! (`minqing-enroll/1`), as each side parses them. Byte 0 even: the relay's
//! side — an `EnrolRequest` (JSON) from an unauthenticated peer, its device
//! id and secret checked, its certificate request signed by the relay's CA.
//! Byte 0 odd: the laptop's side — an `EnrolResponse` from the relay, its
//! certificate checked against the laptop's key and the CA.
//!
//! Invariants: a request the CA signs yields a certificate that matches the
//! request's key (`request_matches_cert`) and passes the laptop's own check
//! when the request was made with the laptop's key.

use std::sync::OnceLock;

use minqing_net::{
    DEVICE_CERT_VALIDITY, EnrolRequest, EnrolResponse, RelayCa, Validity, certificate_request,
    check_device_cert, check_device_id, new_device_key, request_matches_cert, secret_digest,
};

use crate::relay::DEVICE;

/// A relay CA and a laptop key, made once per process.
pub struct Keys {
    /// The relay's CA.
    pub ca: RelayCa,
    /// The laptop's private key, PEM.
    pub key_pem: String,
    /// A certificate request made with it for [`DEVICE`], PEM.
    pub csr_pem: String,
}

/// The shared keys (generating keys costs milliseconds: once, not per input).
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ca = RelayCa::create("county-relay").expect("a CA is made from fixed parameters");
        let key_pem = new_device_key().expect("a key is generated");
        let csr_pem = certificate_request(&key_pem, DEVICE).expect("a request is made");
        Keys {
            ca,
            key_pem,
            csr_pem,
        }
    })
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let k = keys();
    if mode & 1 == 0 {
        // As the relay's decide_enrolment reads a request.
        let Ok(req) = serde_json::from_slice::<EnrolRequest>(body) else {
            return;
        };
        if check_device_id(&req.device_id).is_err() {
            return;
        }
        let _ = secret_digest(&req.secret);
        let validity = Validity::from_now(DEVICE_CERT_VALIDITY);
        if let Ok(issued) = k.ca.sign_request(&req.csr_pem, &req.device_id, validity) {
            assert!(
                request_matches_cert(&req.csr_pem, &issued.cert_pem),
                "a signed certificate does not match its request"
            );
            if req.csr_pem == k.csr_pem
                && let Err(e) = check_device_cert(
                    &issued.cert_pem,
                    &k.key_pem,
                    k.ca.cert_pem(),
                    &req.device_id,
                )
            {
                panic!("the laptop refuses the certificate the relay signed for it: {e}");
            }
        }
    } else {
        // As a laptop reads the relay's answer.
        let Ok(resp) = serde_json::from_slice::<EnrolResponse>(body) else {
            return;
        };
        if let Some(cert) = resp.cert_pem.as_deref() {
            let _ = request_matches_cert(&k.csr_pem, cert);
            let _ = check_device_cert(cert, &k.key_pem, k.ca.cert_pem(), DEVICE);
        }
    }
}

/// Seed inputs: a request as a laptop sends it, and the relay's answers.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let k = keys();
    let req = EnrolRequest {
        format: minqing_net::ENROL_FORMAT.into(),
        device_id: DEVICE.into(),
        secret: minqing_net::new_secret(),
        csr_pem: k.csr_pem.clone(),
    };
    let issued =
        k.ca.sign_request(&k.csr_pem, DEVICE, Validity::from_now(DEVICE_CERT_VALIDITY))
            .expect("the seed request is signed");
    let with_mode = |mode: u8, json: Vec<u8>| {
        let mut v = vec![mode];
        v.extend(json);
        v
    };
    vec![
        ("request".into(), with_mode(0, json(&req))),
        (
            "response-enrolled".into(),
            with_mode(1, json(&EnrolResponse::enrolled(issued.cert_pem))),
        ),
        (
            "response-used".into(),
            with_mode(
                1,
                json(&EnrolResponse::refused(
                    minqing_net::EnrolRefusal::Used,
                    minqing_net::USED_MESSAGE,
                )),
            ),
        ),
    ]
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("enrolment messages serialize")
}
