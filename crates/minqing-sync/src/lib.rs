//! Sans-IO sync protocol for minqing: frames, handshake and per-document automerge sync.
//!
//! This crate performs no I/O: no sockets, no files, no clock, no global RNG.
//! Drivers (QUIC in `minqing-net`, the deterministic simulator in the tests)
//! feed it bytes and carry out what it returns. See docs/sync.md, "Driving the
//! state machine".
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod apply;
mod device;
mod doc_id;
pub mod frame;
mod host;
mod relay;
mod session;
mod storage;
pub mod trust;

pub use apply::{
    DeviceStep, HeldDoc, RelayStep, apply_device_event, device_docs, device_step,
    has_local_changes, local_change_count, relay_step,
};
pub use device::{DeviceEvent, DeviceSession};
pub use doc_id::{DocId, DocIdError, MAX_DOC_ID_LEN, RESERVED_NAMES, check_id};
pub use frame::{Frame, FrameDecoder, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
pub use host::{DocHost, StorageDocHost};
pub use relay::{RelayEvent, RelayOutcome, RelaySession, unauthorized_frame, wipe_frame};
pub use session::{
    DocOutcome, LimitExceeded, SessionConfig, SessionError, SessionOutcome, Side, Violation,
};
pub use storage::{
    DocVersion, INCARNATION_KEY, MemStorage, Storage, StorageError, Store, load_doc,
};
pub use trust::{
    ContentLimits, ContentPolicy, INCARNATION_LEN, Incarnation, Rejection, SchemaCheck,
    actor_belongs_to, device_actor,
};
