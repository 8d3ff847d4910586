//! The county relay: `init`, villages, enrolment, assignment, revocation, the
//! audit log, reports, and `serve` (QUIC with mutual TLS). The `minqing-relay`
//! binary is [`run`]; everything else lives here, laid out like the laptop's
//! CLI: `args` (clap, raw strings), `cmd/<group>.rs` per command group, and the
//! relay's own modules (registry, serve, audit, exports, the guarded store).

mod args;
mod audit;
mod cache;
mod cmd;
mod console;
mod docs;
mod export;
mod guard;
mod keys;
mod lock;
mod registry;
mod serve;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use registry::UsageError;

/// Exit code of a usage error (a bad argument, a wrong home).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// Runs `minqing-relay` with `args` (the program name first, as
/// `std::env::args_os()` gives it) and returns its exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // Everything the relay creates is private to the operator's account.
    minqing_store::files::private_umask();
    let cli = match args::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors
            // to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    init_tracing();
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{msg}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The exit code for a failed command, chosen from its cause.
fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Logs to stderr, filtered by `MINQING_LOG` (default `warn`); colour only on
/// a terminal, so logs sent to a file or journal stay plain text. A second
/// call in the same process (tests calling [`run`] twice) keeps the first.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINQING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
