//! Coverage-guided fuzz targets for what minqing reads from the outside: the
//! frame decoder, the relay's session input, automerge sync messages as the
//! relay receives them, enrolment bundles and the first-contact enrolment
//! messages.
//!
//! Each target is a plain function of a byte slice. It panics only when an
//! invariant breaks (a round trip that does not hold, a session left open after
//! an error, stored bytes that no longer load): a panic is what libFuzzer and
//! the replay test report as a crash. Errors returned by the code under test
//! are expected and ignored. The same functions serve the libFuzzer binaries
//! (`fuzz_targets/`, built by `cargo xtask fuzz` with the `libfuzzer` feature)
//! and `tests/it/replay.rs`, which runs every file of `corpus/` and `crashers/`
//! through them in a normal `cargo test`. See docs/testing.md, "Fuzzing".

pub mod bundle;
pub mod enrol;
pub mod fixup;
pub mod frame;
pub mod relay;
pub mod seeds;

/// Called by the libFuzzer binaries before each input (does its work once).
///
/// libfuzzer-sys installs a panic hook that aborts at once, even for a panic
/// the code under test catches. minqing-sync catches panics raised inside
/// automerge on a peer's bytes (`receive_guarded`, an upstream bug it
/// contains), so this hook lets a panic whose location is in the automerge or
/// hexane crates unwind to that guard; if nothing catches it, libfuzzer-sys's
/// own `catch_unwind` still aborts and the input is reported as a crash. Every
/// other panic (an invariant of these targets) aborts as before.
pub fn in_libfuzzer() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_automerge = info.location().is_some_and(|l| {
                let f = l.file();
                f.contains("/automerge-") || f.contains("/hexane-")
            });
            if in_automerge {
                // Said a few times, not for every input that hits it.
                static SAID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                if SAID.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 5 {
                    eprintln!("panic inside automerge (left to minqing-sync's guard): {info}");
                }
            } else {
                abort_hook(info);
            }
        }));
    });
}

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
    /// The first-contact enrolment messages: a request as the relay reads it
    /// (from an unauthenticated peer), the answer as a laptop reads it.
    Enrol,
}

impl Target {
    /// Every target, in the order `cargo xtask fuzz` runs them.
    pub const ALL: [Target; 5] = [
        Target::Frame,
        Target::RelaySession,
        Target::SyncMessage,
        Target::Bundle,
        Target::Enrol,
    ];

    /// The target's name: its libFuzzer binary is `fuzz_<name>`, its corpus
    /// `corpus/<name>/` and its crashers `crashers/<name>/`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Frame => "frame",
            Target::RelaySession => "relay_session",
            Target::SyncMessage => "sync_message",
            Target::Bundle => "bundle",
            Target::Enrol => "enrol",
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
            Target::Enrol => enrol::run(data),
        }
    }
}
