//! The `minqing-relay` binary as the end-to-end package builds it, so that
//! plain `cargo test` finds it (`minqing_e2e::bin("minqing-relay")`): the same
//! library call as `crates/minqing-relay/src/main.rs`, under another file name
//! (a second `minqing-relay` would collide with the real one in the target
//! directory). The program name is passed as `minqing-relay`, so usage and
//! messages read the same.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    minqing_relay::run(
        std::iter::once(OsString::from("minqing-relay")).chain(std::env::args_os().skip(1)),
    )
}
