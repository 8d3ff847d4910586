//! One module per command group; `dispatch` routes a parsed command line.
//! A new group (e.g. `sync`) is one module here plus a variant in `cli::Command`.

mod debug;
mod demand;
mod household;
mod import;
mod init;
mod leave;
mod report;
mod resident;
mod sync;
mod village;
mod visit;
mod workflow;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::home::{Home, home_dir};

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = home_dir(cli.home)?;
    match cli.command {
        Command::Sync(a) => return sync::sync(Home::open(&dir)?, &a),
        Command::Status(j) => sync::status(&Home::open(&dir)?, j.json),
        Command::Init(args) if args.bundle.is_some() => {
            return sync::init_bundle(
                &dir,
                args.bundle.as_deref().unwrap_or(std::path::Path::new("")),
                args.timeout,
            );
        }
        Command::Enroll(args) => return sync::enroll(&dir, &args.bundle, args.timeout),
        Command::Init(args) => init::init(&dir, args),
        Command::Whoami(j) => init::whoami(&Home::open(&dir)?, j.json),
        Command::Village(c) => village::run(&Home::open(&dir)?, c),
        Command::Household(c) => household::run(&Home::open(&dir)?, c),
        Command::Resident(c) => resident::run(&Home::open(&dir)?, c),
        Command::Visit(c) => visit::run(&Home::open(&dir)?, c),
        Command::Demand(c) => demand::run(&Home::open(&dir)?, c),
        Command::Leave(c) => leave::run(&Home::open(&dir)?, c),
        Command::Report(c) => report::run(&Home::open(&dir)?, c),
        Command::Import(c) => import::run(&Home::open(&dir)?, c),
        Command::Debug(c) => debug::run(&Home::open(&dir)?, c),
    }?;
    Ok(ExitCode::SUCCESS)
}
