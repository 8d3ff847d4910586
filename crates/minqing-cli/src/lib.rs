//! The `minqing` package used by cadres: the command line (glue between the
//! arguments, the domain model and the store) as a library, so that the thin
//! `main.rs`, the end-to-end tests and the local service all run the same code.
//! [`run`] is the whole program: it parses `args`, runs the command and maps
//! the result to an exit code.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
mod cache;
mod cli;
mod cmd;
mod error;
mod home;
mod idle_store;
mod index;
mod lookup;
mod output;
mod views;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

/// Runs `minqing` with `args` (the first one is the program name, as in
/// `std::env::args_os()`): everything the binary does, returning its exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    // Everything this process creates is private to the cadre's account.
    minqing_store::files::private_umask();
    match run_inner(args) {
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

fn run_inner(args: impl IntoIterator<Item = OsString>) -> anyhow::Result<ExitCode> {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.len() <= 1 {
        // `minqing` alone: the help, as `minqing --help` prints it.
        use clap::CommandFactory;
        output::line(&cli::Cli::command().render_long_help().to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout (exit 0), usage errors to stderr
            // (exit 2), led by a line in Chinese.
            let text = error::render_clap(&e);
            if e.use_stderr() {
                eprint!("{text}");
                return Ok(ExitCode::from(error::EXIT_USAGE));
            }
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    init_tracing();
    // While `minqing app` runs for this home, it carries the command out.
    if let Some(code) = app::client::forward(&cli, &args)? {
        return Ok(code);
    }
    cmd::dispatch(cli)
}

/// Logs to stderr, filtered by `MINQING_LOG` (default `warn`). Installed once
/// per process: a second call (a second [`run`] in the same process) keeps the
/// first subscriber.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MINQING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
