//! Sans-IO sync protocol for minqing: frames, handshake and per-document automerge sync.
//!
//! This crate performs no I/O: no sockets, no files, no clock, no global RNG.
//! Drivers (QUIC in `minqing-net`, the deterministic simulator in the tests)
//! feed it bytes and time and carry out what it returns.

mod doc_id;
pub mod frame;
mod storage;

pub use doc_id::{DocId, DocIdError};
pub use frame::{Frame, FrameDecoder, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
pub use storage::{MemStorage, Storage, StorageError, load_doc};
