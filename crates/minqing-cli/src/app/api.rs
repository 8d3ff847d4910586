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
        .route("/api/v1/sync", get(sync_state).post(sync_now))
}

/// `GET /api/v1/sync`: the background sync's state and, per village, the
/// changes not yet at the county (what the 同步 page shows).
async fn sync_state(State(app): State<App>) -> Response {
    match app.sync_view().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e:#}"),
        )
            .into_response(),
    }
}

/// `POST /api/v1/sync`: a pass now; answers when it ended, as `minqing sync`
/// would print it.
async fn sync_now(State(app): State<App>) -> Json<RunReply> {
    Json(sync_through_loop(&app).await)
}

/// A pass of the background sync, asked for now (`minqing sync` through the
/// service, the 同步 page's button).
async fn sync_through_loop(app: &App) -> RunReply {
    match app.sync() {
        Some(s) => match s.sync_now().await {
            Some(r) => RunReply {
                stdout: r.stdout,
                stderr: r.stderr,
                code: r.code,
            },
            None => RunReply {
                stdout: String::new(),
                stderr: "error: minqing app's background sync has stopped; stop the app (Ctrl-C) and run `minqing sync`\n".into(),
                code: 1,
            },
        },
        None => RunReply {
            stdout: String::new(),
            stderr: "error: this laptop is not enrolled with a relay: join one with `minqing enroll --bundle FILE` from the operator\n".into(),
            code: error::EXIT_USAGE,
        },
    }
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
            let text = error::render_clap(&e);
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
    match &command {
        // The loop owns the relay link: `sync` asks it for a pass now.
        crate::cli::Command::Sync(a) if a.watch => {
            return Json(RunReply {
                stdout: "minqing app already syncs this home in the background (after every write, and at least every --interval seconds); nothing to start\n".into(),
                stderr: String::new(),
                code: 0,
            })
            .into_response();
        }
        crate::cli::Command::Sync(_) => return Json(sync_through_loop(&app).await).into_response(),
        _ => {}
    }
    absolutize(&mut command, Path::new(&req.cwd));
    let seed = req.rng_seed;
    let background = app.sync().map(|s| s.state());
    let out = app
        .with_home(move |home, secrets| {
            crate::home::set_thread_rng_seed(seed);
            let (result, captured) =
                output::capture(|| run_in_service(home, secrets, command, background));
            crate::home::set_thread_rng_seed(None);
            (result, captured)
        })
        .await;
    app.wake_sync();
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
    background: Option<super::sync_loop::SyncState>,
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
        Command::Status(j) => {
            crate::cmd::sync::status_with(home, j.json, background)?;
            Ok(ExitCode::SUCCESS)
        }
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
