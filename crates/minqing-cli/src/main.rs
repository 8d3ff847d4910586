//! The `minqing` binary used by cadres: glue between the command line, the
//! domain model and the store. `main` only maps `run`'s result to an exit code.

mod cli;
mod cmd;
mod error;
mod home;
mod idle_store;
mod lookup;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match run() {
        // The command ran, but a village on this laptop does not load: it was
        // named on stderr with what to do, and the exit code says so.
        Ok(code) if code == ExitCode::SUCCESS && home::some_village_unloadable() => {
            ExitCode::from(1)
        }
        Ok(code) => code,
        Err(err) => {
            // One line: the error and its causes, joined by ": ".
            eprintln!(
                "error: {}",
                minqing_model::text::escape_for_terminal(&format!("{err:#}"))
            );
            ExitCode::from(error::exit_code(&err))
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to
            // stderr (exit 2).
            let _ = e.print();
            return Ok(ExitCode::from(if e.use_stderr() {
                error::EXIT_USAGE
            } else {
                0
            }));
        }
    };
    init_tracing();
    cmd::dispatch(cli)
}

/// Logs to stderr, filtered by `MINQING_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINQING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
