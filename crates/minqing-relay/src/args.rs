//! The relay's command line as clap sees it: raw strings, checked by the
//! command that uses them (a bad value is a usage error, exit 2).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::registry::DEFAULT_LISTEN;

/// minqing-relay: the county relay that enrols laptops and syncs villages.
#[derive(Debug, Parser)]
#[command(name = "minqing-relay", version, about)]
pub struct Cli {
    /// The relay's home directory (also MINQING_RELAY_HOME).
    #[arg(long, global = true, env = "MINQING_RELAY_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Read the operator passphrase (which seals the CA and escrow keys) from
    /// this file's first line instead of asking on the terminal.
    #[arg(
        long,
        global = true,
        env = "MINQING_RELAY_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    /// What to do.
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
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
        /// Also wipe it: if the laptop connects again, it is told to destroy
        /// its keys (its data becomes unreadable) before it is refused.
        #[arg(long)]
        wipe: bool,
    },
    /// Answer a laptop's recovery request (forgotten passphrase) with the
    /// escrow key: writes a one-time answer for that laptop.
    Recover {
        /// The request made by `minqing recovery request`.
        request: PathBuf,
        /// Where to write the answer.
        #[arg(long)]
        out: PathBuf,
    },
    /// Open a laptop's sealed `removed/` copy or backup with the escrow key.
    Unseal {
        /// The sealed file.
        file: PathBuf,
        /// Where to write what it holds (an automerge document, or a backup payload).
        #[arg(long)]
        out: PathBuf,
    },
    /// List enrolled laptops with their last sync.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve laptops until SIGINT or SIGTERM (and the county console, with
    /// --console or `console.listen` in config.json: docs/console.md).
    Serve {
        /// Also serve the county console over HTTPS on this address (e.g.
        /// 127.0.0.1:8443); overrides `console.listen` in config.json.
        #[arg(long, value_name = "ADDR")]
        console: Option<String>,
    },
    /// The county console's accounts (docs/console.md).
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// The departments demands are transferred to, with their aliases.
    Department {
        #[command(subcommand)]
        cmd: DepartmentCmd,
    },
    /// County reports over every village: `report monthly --month YYYY-MM`,
    /// `report ledger [--from] [--to]` (table, --json, --csv FILE, --xlsx FILE).
    Report {
        #[command(subcommand)]
        cmd: ReportCmd,
    },
    /// Show the audit log.
    Audit {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum VillageCmd {
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

/// Output options of a report.
#[derive(Debug, clap::Args)]
pub struct ReportOut {
    /// Print the report as JSON (and nothing else on stdout).
    #[arg(long)]
    pub json: bool,
    /// Also write the report as CSV (UTF-8 with BOM) to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also write the report as an .xlsx workbook to FILE.
    #[arg(long, value_name = "FILE")]
    pub xlsx: Option<PathBuf>,
}

/// `report ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCmd {
    /// Monthly duty per cadre over every village: visits, coverage, key
    /// residents, leave, make-ups, demands.
    Monthly {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        #[command(flatten)]
        out: ReportOut,
    },
    /// The demand ledger (问题台账) over every village.
    Ledger {
        /// Demands opened on or after this day, YYYY-MM-DD.
        #[arg(long)]
        from: Option<String>,
        /// Demands opened on or before this day, YYYY-MM-DD.
        #[arg(long)]
        to: Option<String>,
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        /// Judge overdue as of this day, YYYY-MM-DD (default: today, China time).
        #[arg(long, value_name = "YYYY-MM-DD")]
        today: Option<String>,
        #[command(flatten)]
        out: ReportOut,
    },
}

/// `user ...`: console accounts.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add an account; its password is asked on the terminal (or read with --password-stdin).
    Add {
        /// Login name: a-z, 0-9, '.', '_', '-'.
        name: String,
        /// operator, supervisor, department or viewer.
        #[arg(long)]
        role: String,
        /// Name shown on pages and in the demand events it writes (default: the login name).
        #[arg(long)]
        display: Option<String>,
        /// Supervisors: `county` or `township:NAME`.
        #[arg(long)]
        scope: Option<String>,
        /// Department accounts: the department (a name of `department list`).
        #[arg(long)]
        department: Option<String>,
        /// Read the password from standard input's first line.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List accounts (never their password hashes).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: refused at login, its sessions end at their next request.
    Disable {
        /// Login name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account again.
    Enable {
        /// Login name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set an account's password (asked on the terminal, or --password-stdin).
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from standard input's first line.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `department ...`: the department list.
#[derive(Debug, Subcommand)]
pub enum DepartmentCmd {
    /// Add a department, or more aliases to one.
    Add {
        /// Its name (县水务局).
        name: String,
        /// Other names cadres type for it, comma separated (水务局,县水利局).
        #[arg(long = "alias", value_delimiter = ',')]
        aliases: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List departments and their aliases.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
