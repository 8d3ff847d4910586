//! The service's side of the local API (docs/app.md, "Local API"): the CLI
//! sends its arguments, the service runs the same command code on its open
//! home under the store lock and answers with what it printed and its exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;

use super::App;
use super::client::{Ping, RunReply, RunRequest};
use crate::cli::{
    BackupArgs, Cli, Command, DebugCmd, ImportCmd, PasswdArgs, RecoveryCmd, ReportCmd,
};
use crate::{error, output};

/// Most arguments one command may carry.
const MAX_ARGS: usize = 256;

/// `/api/v1/*`.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/v1/ping", get(ping))
        .route("/api/v1/run", post(run))
}

async fn ping(State(app): State<App>) -> Json<Ping> {
    Json(Ping {
        home: app.dir().to_path_buf(),
        pid: std::process::id(),
    })
}

/// The numeric value of an exit code.
fn code_of(c: ExitCode) -> u8 {
    (0..=255u8).find(|n| ExitCode::from(*n) == c).unwrap_or(1)
}

async fn run(State(app): State<App>, Json(req): Json<RunRequest>) -> Response {
    if req.argv.len() > MAX_ARGS {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            format!("at most {MAX_ARGS} arguments"),
        )
            .into_response();
    }
    let cli = match Cli::try_parse_from(&req.argv) {
        Ok(cli) => cli,
        Err(e) => {
            // As the CLI prints it: help and version on stdout (0), usage errors on stderr (2).
            let text = e.render().to_string();
            let reply = if e.use_stderr() {
                RunReply {
                    stdout: String::new(),
                    stderr: text,
                    code: error::EXIT_USAGE,
                }
            } else {
                RunReply {
                    stdout: text,
                    stderr: String::new(),
                    code: 0,
                }
            };
            return Json(reply).into_response();
        }
    };
    let mut command = cli.command;
    absolutize(&mut command, Path::new(&req.cwd));
    let seed = req.rng_seed;
    let out = app
        .with_home(move |home, secrets| {
            crate::home::set_thread_rng_seed(seed);
            let (result, captured) = output::capture(|| run_in_service(home, secrets, command));
            crate::home::set_thread_rng_seed(None);
            (result, captured)
        })
        .await;
    let (result, mut captured) = match out {
        Ok(r) => r,
        Err(e) => (Err(e), output::Captured::default()),
    };
    let code = match result {
        Ok(code) if code == ExitCode::SUCCESS && captured.unloadable => 1,
        Ok(code) => code_of(code),
        Err(err) => {
            captured.stderr.push_str(&format!(
                "error: {}\n",
                minqing_model::text::escape_for_terminal(&format!("{err:#}"))
            ));
            error::exit_code(&err)
        }
    };
    Json(RunReply {
        stdout: captured.stdout,
        stderr: captured.stderr,
        code,
    })
    .into_response()
}

/// Runs one command on the service's open home (the store lock is held).
fn run_in_service(
    home: &crate::home::Home,
    secrets: &crate::home::Secrets,
    command: Command,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::App(_) => anyhow::bail!(
            "minqing app is already running for {} (pid {})",
            home.dir.display(),
            std::process::id()
        ),
        Command::Init(_) => anyhow::bail!(
            "{} is already set up for {} (device {}); nothing was changed (use another --home for a second identity)",
            home.dir.display(),
            home.device.cadre,
            home.device.device_id
        ),
        Command::Sync(_)
        | Command::Enroll(_)
        | Command::Passwd(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Recovery(_) => anyhow::bail!(
            "minqing app (pid {}) holds this home: this command cannot go through it yet — stop the app (Ctrl-C) and run it again",
            std::process::id()
        ),
        other => crate::cmd::run_on(home, secrets, other),
    }
}

/// Resolves relative paths in a command's arguments against the CLI's
/// working directory (the service's is not the CLI's).
fn absolutize(command: &mut Command, cwd: &Path) {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = cwd.join(&*p);
        }
    };
    let fix_opt = |p: &mut Option<PathBuf>| {
        if let Some(p) = p
            && p.is_relative()
        {
            *p = cwd.join(&*p);
        }
    };
    match command {
        Command::Init(a) => fix_opt(&mut a.bundle),
        Command::Enroll(a) => fix(&mut a.bundle),
        Command::Passwd(PasswdArgs {
            new_passphrase_file,
            ..
        }) => fix_opt(new_passphrase_file),
        Command::Backup(BackupArgs {
            to,
            backup_passphrase_file,
            ..
        }) => {
            fix(to);
            fix_opt(backup_passphrase_file);
        }
        Command::Report(ReportCmd::Monthly { out, .. } | ReportCmd::Ledger { out, .. }) => {
            fix_opt(&mut out.csv);
            fix_opt(&mut out.xlsx);
        }
        Command::Import(ImportCmd::Residents { file, .. }) => fix(file),
        Command::Debug(DebugCmd::MergeFrom { other }) => fix(other),
        Command::Recovery(RecoveryCmd::Request { to, .. }) => fix(to),
        Command::Recovery(RecoveryCmd::Finish {
            answer,
            new_passphrase_file,
            ..
        }) => {
            fix(answer);
            fix_opt(new_passphrase_file);
        }
        _ => {}
    }
}
