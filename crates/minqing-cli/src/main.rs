//! The `minqing` binary: everything is in the library ([`minqing::run`]).

fn main() -> std::process::ExitCode {
    minqing::run(std::env::args_os())
}
