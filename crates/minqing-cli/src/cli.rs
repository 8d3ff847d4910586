//! The command line as clap sees it: raw strings, checked later by minqing-model
//! so that a bad value gets a one-line message saying what to fix (exit 2).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// minqing (民情): offline-first visit logging for village cadres.
#[derive(Debug, Parser)]
#[command(name = "minqing", version, about, propagate_version = true)]
pub struct Cli {
    /// Where this laptop keeps its data (default: the platform data directory).
    #[arg(long, global = true, env = "MINQING_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Read the passphrase from this file's first line instead of asking on
    /// the terminal (for scripts and tests; keep the file private).
    #[arg(
        long,
        global = true,
        env = "MINQING_PASSPHRASE_FILE",
        value_name = "FILE"
    )]
    pub passphrase_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set up this laptop for a cadre (a standalone device).
    Init(InitArgs),
    /// Show this laptop's device id, cadre and team.
    Whoami(JsonArg),
    /// Villages (村/社区) held on this laptop.
    #[command(subcommand)]
    Village(VillageCmd),
    /// Households (户).
    #[command(subcommand)]
    Household(HouseholdCmd),
    /// Residents (居民档案).
    #[command(subcommand)]
    Resident(ResidentCmd),
    /// Visit notes (民情日记).
    #[command(subcommand)]
    Visit(VisitCmd),
    /// The demand ledger (问题台账).
    #[command(subcommand)]
    Demand(DemandCmd),
    /// Leave (请假) from a monthly visit round.
    #[command(subcommand)]
    Leave(LeaveCmd),
    /// Supervisors' reports: monthly duty per cadre, the demand ledger.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Import a household register (户籍登记表) from .csv or .xlsx.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Join a relay with a home set up on its own (its villages are kept).
    Enroll(EnrollArgs),
    /// Sync assigned villages with the relay (one pass, or --watch).
    Sync(SyncArgs),
    /// Relay address, last successful sync, villages with local changes.
    Status(JsonArg),
    /// The cadre's app: a local service that owns this home, syncs in the
    /// background and serves the web interface on 127.0.0.1.
    App(AppArgs),
    /// Change the passphrase that unlocks this laptop's data.
    Passwd(PasswdArgs),
    /// Forget the unlocked data key kept for this login: the next command
    /// asks for the passphrase (leaving the laptop).
    Lock,
    /// Write one encrypted backup file of everything on this laptop.
    Backup(BackupArgs),
    /// Make a working laptop home from a backup file (a new actor incarnation).
    Restore(RestoreArgs),
    /// Forgotten passphrase: recover the data key through the relay operator.
    #[command(subcommand)]
    Recovery(RecoveryCmd),
    /// Developer tools (not for daily use).
    #[command(subcommand, hide = true)]
    Debug(DebugCmd),
}

/// `--json` for list and show commands.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON (UTF-8, snake_case keys) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `minqing init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cadre's name, e.g. 张伟.
    #[arg(long, value_name = "NAME")]
    pub cadre: Option<String>,
    /// The service team (服务队).
    #[arg(long, value_name = "TEAM")]
    pub team: Option<String>,
    /// Set up from an enrolment bundle made by `minqing-relay enroll` (contacts the relay once).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cadre", "team"])]
    pub bundle: Option<PathBuf>,
    /// With --bundle: give up on an unreachable relay after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS", requires = "bundle")]
    pub timeout: u64,
}

/// `minqing enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The enrolment bundle made by `minqing-relay enroll --device-id <this laptop's id>`.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Give up on an unreachable relay after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
}

/// `minqing passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// Read the new passphrase from this file's first line (default: ask twice).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
}

/// `minqing backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (never overwritten).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Protect the backup with a separate passphrase read from this file
    /// (default: the laptop's passphrase).
    #[arg(long, value_name = "FILE")]
    pub backup_passphrase_file: Option<PathBuf>,
}

/// `minqing restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file made by `minqing backup`.
    pub file: PathBuf,
    /// The backup's own passphrase, if it was made with a separate one.
    #[arg(long, value_name = "FILE")]
    pub backup_passphrase_file: Option<PathBuf>,
}

/// `minqing recovery ...`.
#[derive(Debug, Subcommand)]
pub enum RecoveryCmd {
    /// Write a recovery request for the relay operator (no passphrase needed).
    Request {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Use the operator's answer: set a new passphrase.
    Finish {
        /// The answer made by `minqing-relay recover`.
        answer: PathBuf,
        /// Read the new passphrase from this file's first line (default: ask twice).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

/// `minqing sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Give up on an unreachable relay after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// Stay up: sync after local writes and whenever the relay is reachable again.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: also sync at least this often, to bring other laptops' writes.
    #[arg(long, default_value_t = 30, value_name = "SECS", requires = "watch")]
    pub interval: u64,
}

/// `minqing app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    /// Listen on this port of 127.0.0.1 (default: a free port).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Do not open the browser (the address is printed either way).
    #[arg(long)]
    pub no_browser: bool,
    /// Give up on an unreachable relay after this many seconds (each pass).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub timeout: u64,
    /// Sync at least this often, to bring other laptops' writes.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub interval: u64,
    /// Keep loaded villages in memory up to this many MiB of stored size
    /// (least recently used dropped first).
    #[arg(long, default_value_t = crate::cache::DEFAULT_BUDGET_MIB, value_name = "MIB")]
    pub memory_budget: u64,
}

/// `minqing village ...`.
#[derive(Debug, Subcommand)]
pub enum VillageCmd {
    /// Create a village on this laptop.
    Add {
        /// Village id: letters, digits, '-', '_' or '.', e.g. V001.
        #[arg(long)]
        id: String,
        /// Village name, e.g. 小河村.
        #[arg(long)]
        name: String,
        /// Township, e.g. 城关镇.
        #[arg(long)]
        township: Option<String>,
    },
    /// List the villages held.
    List(JsonArg),
}

/// `minqing household ...`.
#[derive(Debug, Subcommand)]
pub enum HouseholdCmd {
    /// Add a household; prints its id on the last line.
    Add {
        /// Village id.
        #[arg(long)]
        village: String,
        /// Address, e.g. 小河村三组12号.
        #[arg(long)]
        address: String,
        /// Household number (户号).
        #[arg(long)]
        number: Option<String>,
    },
    /// List households.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

/// `minqing resident ...`.
#[derive(Debug, Subcommand)]
pub enum ResidentCmd {
    /// Add a resident to a household; prints the resident id on the last line.
    Add(ResidentAddArgs),
    /// Change a resident's fields or tags.
    Edit(ResidentEditArgs),
    /// List residents.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        /// Only residents with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only residents whose name, 身份证号, phone or address contains this text.
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one resident with their visits and demands.
    Show {
        /// Resident id or a unique prefix of at least 6 characters.
        id: String,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List residents that share a 身份证号 (the same person entered twice).
    Duplicates {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Fold resident OTHER into KEEP: OTHER's visits and demands show under
    /// KEEP, KEEP's empty fields are filled from OTHER; prints KEEP's id.
    Merge {
        /// The resident kept (id or unique prefix).
        keep: String,
        /// The duplicate folded into it (id or unique prefix).
        other: String,
    },
}

/// `minqing resident add`.
#[derive(Debug, Args)]
pub struct ResidentAddArgs {
    /// Household id (or unique prefix).
    #[arg(long)]
    pub household: String,
    /// Name.
    #[arg(long)]
    pub name: String,
    /// 身份证号, phone, gender, birth date, relation.
    #[command(flatten)]
    pub fields: ResidentFieldArgs,
    /// A tag (repeatable): 老党员 困难户 留守儿童 独居老人 残疾人 低保户 退役军人, or any short text.
    #[arg(long = "tag")]
    pub tags: Vec<String>,
}

/// A resident's fields as flags, shared by `resident add` and `resident
/// edit`: one per entry of `minqing_model::RESIDENT_FIELDS` (the flag is the
/// key with `-` for `_`), read by [`ResidentFieldArgs::given`].
#[derive(Debug, Args)]
pub struct ResidentFieldArgs {
    /// 身份证号 (18 characters; a 15-digit one is converted).
    #[arg(long = "id-card")]
    pub id_card: Option<String>,
    /// Phone: mobile or landline with area code.
    #[arg(long)]
    pub phone: Option<String>,
    /// 男 or 女 (male/female).
    #[arg(long)]
    pub gender: Option<String>,
    /// Birth date, YYYY-MM-DD.
    #[arg(long)]
    pub birth: Option<String>,
    /// Relation to the householder (户主, 配偶, 子女...).
    #[arg(long)]
    pub relation: Option<String>,
}

impl ResidentFieldArgs {
    /// The flags given, each with its field's key, in the order above.
    pub fn given(&self) -> Vec<(&'static str, &str)> {
        [
            ("id_card", &self.id_card),
            ("phone", &self.phone),
            ("gender", &self.gender),
            ("birth", &self.birth),
            ("relation", &self.relation),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value.as_deref()?)))
        .collect()
    }
}

/// `minqing resident edit`.
#[derive(Debug, Args)]
pub struct ResidentEditArgs {
    /// Resident id or a unique prefix of at least 6 characters.
    pub id: String,
    /// New name.
    #[arg(long)]
    pub name: Option<String>,
    /// New 身份证号, phone, gender, birth date, relation.
    #[command(flatten)]
    pub fields: ResidentFieldArgs,
    /// Add a tag (repeatable).
    #[arg(long = "add-tag")]
    pub add_tags: Vec<String>,
    /// Remove a tag (repeatable).
    #[arg(long = "remove-tag")]
    pub remove_tags: Vec<String>,
}

/// `minqing visit ...`.
#[derive(Debug, Subcommand)]
pub enum VisitCmd {
    /// Log a visit; prints the visit id on the last line.
    Log {
        /// Household visited (id or unique prefix).
        #[arg(long)]
        household: String,
        /// Resident met: id, unique prefix, or name within the household (李秀英).
        #[arg(long)]
        resident: Option<String>,
        /// 普遍走访 (regular), 重点走访 (key) or 补访 (makeup).
        #[arg(long)]
        kind: String,
        /// What was seen and heard.
        #[arg(long)]
        note: String,
        /// Date of the visit, YYYY-MM-DD (default: today).
        #[arg(long)]
        date: Option<String>,
    },
    /// List visits.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        /// Only visits by this cadre.
        #[arg(long)]
        cadre: Option<String>,
        /// Only visits in this month, YYYY-MM.
        #[arg(long)]
        month: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

/// `minqing demand ...`.
#[derive(Debug, Subcommand)]
pub enum DemandCmd {
    /// Open a demand (受理); prints its id on the last line.
    Open {
        /// Resident raising it: id, unique prefix, or a name held by one resident only.
        #[arg(long)]
        resident: String,
        /// Category, e.g. 医疗, 供水, 道路.
        #[arg(long)]
        category: String,
        /// What the resident asks for.
        #[arg(long)]
        text: String,
    },
    /// List demands.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        /// Only demands in this status: 受理 办理中 已反馈 已回访 已销号 (accepted,
        /// in-progress, answered, revisited, closed).
        #[arg(long)]
        status: Option<String>,
        /// Only overdue demands: past their due date and not 已销号.
        #[arg(long)]
        overdue: bool,
        #[command(flatten)]
        today: TodayArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one demand with its timeline.
    Show {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        #[command(flatten)]
        today: TodayArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// 直办: the cadre handles the demand directly; prints the event id.
    Handle {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
    },
    /// 转办: transfer the demand to a department; prints the event id.
    Transfer {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        /// The department, e.g. 镇卫生院, 县住建局.
        #[arg(long)]
        to: String,
        /// When it must be done, YYYY-MM-DD.
        #[arg(long)]
        due: Option<String>,
    },
    /// 督办: record supervision of the demand; prints the event id.
    Supervise {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        /// What was urged.
        #[arg(long)]
        note: String,
    },
    /// 反馈: record the answer given to the resident; prints the event id.
    Feedback {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        /// The answer.
        #[arg(long)]
        text: String,
    },
    /// 回访: record the return visit and the resident's satisfaction; prints the event id.
    Revisit {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        /// 满意 / 基本满意 / 不满意 (satisfied / basically / dissatisfied).
        #[arg(long)]
        satisfaction: String,
        /// A note on the visit.
        #[arg(long)]
        note: Option<String>,
    },
    /// 销号: close the demand (after 回访); prints the event id.
    Close {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
    },
    /// 重开: reopen an answered, revisited or closed demand; prints the event id.
    Reopen {
        /// Demand id or a unique prefix of at least 6 characters.
        id: String,
        /// Why it is reopened.
        #[arg(long)]
        reason: String,
    },
}

/// `--today`: the day overdue is judged on.
#[derive(Debug, Args)]
pub struct TodayArg {
    /// Judge overdue as of this day, YYYY-MM-DD (default: today, China time).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub today: Option<String>,
}

/// `minqing leave ...`.
#[derive(Debug, Subcommand)]
pub enum LeaveCmd {
    /// Record this cadre's leave from a month's visit round; prints the leave id.
    Add {
        /// The month of the missed round, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// The village to record it in (needed when more than one is held).
        #[arg(long)]
        village: Option<String>,
    },
    /// List leaves and the 补访 visits that settled them.
    List {
        /// Only this village.
        #[arg(long)]
        village: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

/// Output options of a report.
#[derive(Debug, Args)]
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

impl ReportOut {
    /// The model's view of these options.
    pub fn targets(&self) -> minqing_sheet::ReportTargets<'_> {
        minqing_sheet::ReportTargets {
            json: self.json,
            csv: self.csv.as_deref(),
            xlsx: self.xlsx.as_deref(),
        }
    }
}

/// `minqing report ...`.
#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// Monthly duty per cadre: visits, coverage, key residents, leave, make-ups, demands.
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
    /// The demand ledger (问题台账): collected, closed, resolution rate, overdue...
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
        #[command(flatten)]
        today: TodayArg,
        #[command(flatten)]
        out: ReportOut,
    },
}

/// `minqing import ...`.
#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Import residents and households from a register (.csv or .xlsx).
    Residents {
        /// The register file.
        file: PathBuf,
        /// The village to import into.
        #[arg(long)]
        village: String,
        /// Check the file and say what would be imported; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: JsonArg,
    },
}

/// `minqing debug ...`: developer tools.
#[derive(Debug, Subcommand)]
pub enum DebugCmd {
    /// Merge every village of another (not running) home into this one, as a
    /// sync would, through the store.
    MergeFrom {
        /// The other home directory.
        other: PathBuf,
    },
    /// Print each village's automerge heads.
    Heads(JsonArg),
}
