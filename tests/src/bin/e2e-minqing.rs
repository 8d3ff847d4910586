//! The `minqing` binary as the end-to-end package builds it, so that plain
//! `cargo test` finds it (`minqing_e2e::bin("minqing")`): the same library
//! call as `crates/minqing-cli/src/main.rs`, under another file name (a second
//! `minqing` would collide with the real one in the target directory). The
//! program name is passed as `minqing`, so usage and messages read the same.

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    minqing::run(std::iter::once(OsString::from("minqing")).chain(std::env::args_os().skip(1)))
}
