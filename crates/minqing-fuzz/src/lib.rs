//! Coverage-guided fuzz targets for what minqing reads from the outside: the
//! frame decoder, the relay's session input, automerge sync messages as the
//! relay receives them, and enrolment bundles.
//!
//! Each target is a plain function of a byte slice. It panics only when an
//! invariant breaks (a round trip that does not hold, a session left open after
//! an error, stored bytes that no longer load): a panic is what libFuzzer and
//! the replay test report as a crash. Errors returned by the code under test
//! are expected and ignored. The same functions serve the libFuzzer binaries
//! (`fuzz_targets/`, built by `cargo xtask fuzz` with the `libfuzzer` feature)
//! and `tests/replay.rs`, which runs every file of `corpus/` and `crashers/`
//! through them in a normal `cargo test`. See docs/testing.md, "Fuzzing".

pub mod bundle;
pub mod fixup;
pub mod frame;
pub mod relay;
pub mod seeds;

/// One fuzz target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The streaming frame decoder of `minqing-sync`, with the byte-exact
    /// round trip `encode(decode(x)) == x`.
    Frame,
    /// A relay session (sans-IO, in-memory storage holding a village) fed
    /// arbitrary bytes, after a valid `Hello` or from the first byte.
    RelaySession,
    /// One automerge sync message, decoded and applied through the relay path.
    SyncMessage,
    /// Enrolment bundle parsing, with a serialize/parse round trip.
    Bundle,
}

impl Target {
    /// Every target, in the order `cargo xtask fuzz` runs them.
    pub const ALL: [Target; 4] = [
        Target::Frame,
        Target::RelaySession,
        Target::SyncMessage,
        Target::Bundle,
    ];

    /// The target's name: its libFuzzer binary is `fuzz_<name>`, its corpus
    /// `corpus/<name>/` and its crashers `crashers/<name>/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Frame => "frame",
            Target::RelaySession => "relay_session",
            Target::SyncMessage => "sync_message",
            Target::Bundle => "bundle",
        }
    }

    /// The target called `name`, if any.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input through the target; panics if an invariant breaks.
    pub fn run(self, data: &[u8]) {
        match self {
            Target::Frame => frame::run(data),
            Target::RelaySession => relay::run_session(data),
            Target::SyncMessage => relay::run_sync_message(data),
            Target::Bundle => bundle::run(data),
        }
    }
}
