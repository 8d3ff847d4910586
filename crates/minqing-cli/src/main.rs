//! The `minqing` binary: everything is in the library ([`minqing::run`]).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

fn main() -> std::process::ExitCode {
    minqing::run(std::env::args_os())
}
