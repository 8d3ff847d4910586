//! The `minqing-relay` binary: everything is in the library ([`minqing_relay::run`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::process::ExitCode;

fn main() -> ExitCode {
    minqing_relay::run(std::env::args_os())
}
