//! The `minqing-relay` binary: everything is in the library ([`minqing_relay::run`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    minqing_relay::run(std::env::args_os())
}
