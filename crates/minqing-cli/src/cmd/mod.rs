//! One module per command group; `dispatch` routes a parsed command line.
//! A new group (e.g. `sync`) is one module here plus a variant in `cli::Command`.

mod debug;
mod demand;
mod household;
mod import;
mod init;
mod keys;
mod leave;
mod report;
mod resident;
pub(crate) mod sync;
mod village;
mod visit;
mod workflow;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::home::{Home, Secrets, home_dir};

/// Runs a parsed command line in this process, on the store itself.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = home_dir(cli.home)?;
    let sec = Secrets {
        passphrase_file: cli.passphrase_file,
    };
    match cli.command {
        Command::App(a) => crate::app::serve(&dir, &sec, &a),
        Command::Sync(a) => sync::sync(Home::open(&dir, &sec)?, &a),
        Command::Init(args) if args.bundle.is_some() => sync::init_bundle(
            &dir,
            &sync::BundleFrom::File(args.bundle.as_deref().unwrap_or(std::path::Path::new(""))),
            args.timeout,
            &sync::PassFrom::Secrets(&sec),
        ),
        Command::Enroll(args) => sync::enroll(&dir, &args.bundle, args.timeout, &sec),
        Command::Init(args) => {
            init::init(&dir, args, &sec)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Passwd(a) => {
            keys::passwd(&dir, &sec, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Lock => {
            keys::lock(&dir)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(a) => {
            keys::backup(&dir, &sec, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(a) => {
            keys::restore(&dir, &sec, &a)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Recovery(c) => {
            keys::recovery(&dir, &sec, c)?;
            Ok(ExitCode::SUCCESS)
        }
        other => run_on(&Home::open(&dir, &sec)?, &sec, other),
    }
}

/// Runs a command that works on an open home: the everyday commands. The
/// local service calls this with its own open home; the CLI after opening it.
pub fn run_on(home: &Home, sec: &Secrets, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Status(j) => sync::status(home, j.json),
        Command::Whoami(j) => init::whoami(home, j.json),
        Command::Village(c) => village::run(home, c),
        Command::Household(c) => household::run(home, c),
        Command::Resident(c) => resident::run(home, c),
        Command::Visit(c) => visit::run(home, c),
        Command::Demand(c) => demand::run(home, c),
        Command::Leave(c) => leave::run(home, c),
        Command::Report(c) => report::run(home, c),
        Command::Import(c) => import::run(home, c),
        Command::Debug(c) => debug::run(home, sec, c),
        // Never forwarded to the service (app::client), but harmless in it.
        Command::Lock => keys::lock(&home.dir),
        Command::App(_)
        | Command::Sync(_)
        | Command::Init(_)
        | Command::Enroll(_)
        | Command::Passwd(_)
        | Command::Backup(_)
        | Command::Restore(_)
        | Command::Recovery(_) => {
            anyhow::bail!("this command does not run on an open home (a minqing bug)")
        }
    }?;
    Ok(ExitCode::SUCCESS)
}
