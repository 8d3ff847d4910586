//! One module per command group; [`dispatch`] runs the parsed command line.
//!
//! Adding an admin command: a variant in `args.rs`, its arm in [`dispatch`],
//! and its function in the group's module here (docs/ARCHITECTURE.md,
//! "Where to change X").

pub mod audit;
pub mod department;
pub mod device;
pub mod init;
pub mod keys;
pub mod report;
pub mod serve;
pub mod user;
pub mod village;

use std::process::ExitCode;

use anyhow::Result;

use crate::args::{Cli, Cmd, VillageCmd};
use crate::keys::OperatorSecret;
use crate::registry::{Home, usage};

/// Runs one command line.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let Some(root) = cli.home else {
        usage!("no relay home: pass --home DIR or set MINQING_RELAY_HOME");
    };
    let home = Home::new(root);
    let secret = OperatorSecret {
        file: cli.passphrase_file,
    };
    if home.root().is_dir() {
        match minqing_store::files::tighten(home.root()) {
            Ok(0) => {}
            Ok(n) => eprintln!(
                "notice: made {n} files and folders in {} private (0600/0700)",
                home.root().display()
            ),
            Err(e) => eprintln!(
                "warning: cannot make {} private: {e}",
                home.root().display()
            ),
        }
    }
    match cli.cmd {
        Cmd::Init { name, listen } => init::init(&home, &name, &listen, &secret)?,
        Cmd::Village { cmd } => match cmd {
            VillageCmd::Add { id, name, township } => {
                village::village_add(&home, &id, &name, township.as_deref())?
            }
            VillageCmd::List { json } => village::village_list(&home, json)?,
        },
        Cmd::Enroll {
            cadre,
            team,
            villages,
            out,
            addr,
            valid_days,
            device_id,
        } => device::enroll(
            &home,
            &secret,
            device::EnrollArgs {
                cadre,
                team,
                villages,
                out,
                addr,
                valid_days,
                device_id,
            },
        )?,
        Cmd::Assign { device, villages } => device::assign(&home, &device, &villages)?,
        Cmd::Revoke { device, wipe } => device::revoke(&home, &device, wipe)?,
        Cmd::Recover { request, out } => keys::recover(&home, &secret, &request, &out)?,
        Cmd::Unseal { file, out } => keys::unseal(&home, &secret, &file, &out)?,
        Cmd::Devices { json } => device::devices(&home, json)?,
        Cmd::Audit { json } => audit::audit(&home, json)?,
        Cmd::Serve { console } => serve::serve(&home, &secret, console.as_deref())?,
        Cmd::User { cmd } => user::run(&home, cmd)?,
        Cmd::Department { cmd } => department::run(&home, cmd)?,
        Cmd::Report { cmd } => report::run(&home, cmd)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Text as printed to the operator's terminal: control, bidi and zero-width
/// characters shown as visible escapes.
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    minqing_model::text::escape_for_terminal(s)
}
