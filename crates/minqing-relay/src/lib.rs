//! The county relay: `init`, villages, enrolment, assignment, revocation, the
//! audit log, reports, and `serve` (QUIC with mutual TLS). The `minqing-relay`
//! binary is [`run`]; everything else lives here, laid out like the laptop's
//! CLI: `args` (clap, raw strings), `cmd/<group>.rs` per command group, and the
//! relay's own modules (registry, serve, audit, exports, the guarded store).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

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

pub use cache::{
    CALL_BASE, CALL_PER_SAVED_BYTE, DOC_WORKERS, MEMORY_PER_SAVED_BYTE, VILLAGE_BASE, call_cost,
    village_cost,
};
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
    if matches!(cli.cmd, args::Cmd::Serve { .. }) {
        limit_malloc_arenas();
    }
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

/// The malloc arenas `serve` runs with: as many as the relay's machine has
/// cores (2), instead of glibc's 8 per core.
pub const MALLOC_ARENAS: usize = 2;

/// Restarts `minqing-relay serve` in place (same process id, arguments and
/// descriptors; before anything is read or opened) with glibc's malloc
/// limited to [`MALLOC_ARENAS`] arenas, unless the operator set
/// `GLIBC_TUNABLES` themselves. Sessions run their steps on tokio's blocking
/// pool, one thread each; with glibc's default of up to 8 arenas per core,
/// each of those threads keeps the memory its step freed in an arena of its
/// own, and the relay's RSS grew by 2× what its budgets count under an
/// orphan flood on full-size villages (L1 in docs/benchmarks.md: +250 MiB
/// against 127 MiB counted; +122 MiB with two arenas). Only for the
/// `minqing-relay` binary itself (never a test binary calling [`run`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    const MARK: &str = "MINQING_RELAY_ARENAS";
    if std::env::var_os("GLIBC_TUNABLES").is_some() || std::env::var_os(MARK).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    if exe.file_name() != Some(std::ffi::OsStr::new("minqing-relay")) {
        return;
    }
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .env(
            "GLIBC_TUNABLES",
            format!("glibc.malloc.arena_max={MALLOC_ARENAS}"),
        )
        .env(MARK, "1")
        .exec();
    // Only returns on failure: serve on with the default arenas.
    eprintln!("warning: could not limit the relay's malloc arenas ({err}); serving anyway");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

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
