//! The county relay binary: `init`, villages, enrolment, assignment, revocation,
//! the audit log, and `serve` (QUIC with mutual TLS).

mod admin;
mod audit;
mod export;
mod guard;
mod registry;
mod report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::registry::{DEFAULT_LISTEN, Home, UsageError, usage};

/// minqing-relay: the county relay that enrols laptops and syncs villages.
#[derive(Debug, Parser)]
#[command(name = "minqing-relay", version, about)]
struct Cli {
    /// The relay's home directory (also MINQING_RELAY_HOME).
    #[arg(long, global = true, env = "MINQING_RELAY_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a relay home: the CA, the server certificate and the configuration.
    Init {
        /// The relay's name, shown to laptops.
        #[arg(long)]
        name: String,
        /// Address to listen on. Binding anything but loopback is your explicit choice.
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: String,
    },
    /// Add or list villages.
    Village {
        #[command(subcommand)]
        cmd: VillageCmd,
    },
    /// Enrol a laptop: write its one-time bundle (CA, relay address, villages, secret; no key).
    Enroll {
        /// The cadre who uses the laptop.
        #[arg(long)]
        cadre: String,
        /// The service team.
        #[arg(long)]
        team: Option<String>,
        /// Villages to assign, comma separated.
        #[arg(long, value_delimiter = ',')]
        villages: Vec<String>,
        /// Where to write the bundle (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// Address laptops use to reach the relay (default: the listen address).
        #[arg(long)]
        addr: Option<String>,
        /// Days the laptop's certificate stays valid.
        #[arg(long, default_value_t = 730)]
        valid_days: u32,
        /// Enrol a laptop set up on its own under the id it has (`minqing whoami`).
        #[arg(long, value_name = "ID")]
        device_id: Option<String>,
    },
    /// Replace the villages assigned to a laptop.
    Assign {
        /// Device id (or a unique prefix of at least 6 characters).
        device: String,
        /// Villages, comma separated (empty to unassign all).
        #[arg(long, value_delimiter = ',', required = true, num_args = 0..)]
        villages: Vec<String>,
    },
    /// Revoke a laptop: its next connection is refused.
    Revoke {
        /// Device id (or a unique prefix of at least 6 characters).
        device: String,
    },
    /// List enrolled laptops with their last sync.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve laptops until SIGINT or SIGTERM.
    Serve,
    /// County reports over every village: `report monthly --month YYYY-MM`,
    /// `report ledger [--from] [--to]` (table, --json, --csv FILE, --xlsx FILE).
    Report {
        #[command(subcommand)]
        cmd: report::ReportCmd,
    },
    /// Show the audit log.
    Audit {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum VillageCmd {
    /// Add a village (creates its document on the relay).
    Add {
        /// Village id: letters, digits, '-', '_' or '.'.
        #[arg(long)]
        id: String,
        /// Village name.
        #[arg(long)]
        name: String,
        /// Township (乡镇).
        #[arg(long)]
        township: Option<String>,
    },
    /// List villages.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINQING_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: logs sent to a file or journal stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run() {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{msg}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let Some(root) = cli.home else {
        usage!("no relay home: pass --home DIR or set MINQING_RELAY_HOME");
    };
    let home = Home::new(root);
    match cli.cmd {
        Cmd::Init { name, listen } => admin::init(&home, &name, &listen)?,
        Cmd::Village { cmd } => match cmd {
            VillageCmd::Add { id, name, township } => {
                admin::village_add(&home, &id, &name, township.as_deref())?
            }
            VillageCmd::List { json } => admin::village_list(&home, json)?,
        },
        Cmd::Enroll {
            cadre,
            team,
            villages,
            out,
            addr,
            valid_days,
            device_id,
        } => admin::enroll(
            &home,
            admin::EnrollArgs {
                cadre,
                team,
                villages,
                out,
                addr,
                valid_days,
                device_id,
            },
        )?,
        Cmd::Assign { device, villages } => admin::assign(&home, &device, &villages)?,
        Cmd::Revoke { device } => admin::revoke(&home, &device)?,
        Cmd::Devices { json } => admin::devices(&home, json)?,
        Cmd::Audit { json } => admin::audit(&home, json)?,
        Cmd::Serve => serve::serve(&home)?,
        Cmd::Report { cmd } => report::run(&home, cmd)?,
    }
    Ok(ExitCode::SUCCESS)
}
