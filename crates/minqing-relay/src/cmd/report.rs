//! `minqing-relay report monthly|ledger`: the supervisors' reports over every
//! village in the relay's store (the whole county), with the same definitions
//! and output options as the laptop's `minqing report`.
//!
//! The store is sled, which admits one process per directory: while `serve`
//! runs, the report reads the exports serve keeps of every village instead
//! (`export/`, see `export.rs`) and says on stderr how fresh they are. A serve
//! that writes no exports (an older one) still gets the clear refusal.

use std::path::Path;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use minqing_model::{Month, Table, Village, local_date, parse_date};
use minqing_store::{SledStorage, StoreError};
use minqing_sync::{DocId, Storage};
use serde::Serialize;

use crate::args::{ReportCmd, ReportOut};
use crate::export;
use crate::registry::{Home, usage};

fn date_arg(flag: &str, raw: Option<&str>) -> Result<Option<NaiveDate>> {
    match raw.map(parse_date) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => usage!("{flag}: {e}"),
    }
}

/// Runs a report.
pub fn run(home: &Home, cmd: ReportCmd) -> Result<()> {
    home.config()?;
    match cmd {
        ReportCmd::Monthly {
            month,
            village,
            out,
        } => {
            let month = match Month::parse(&month) {
                Ok(m) => m,
                Err(e) => usage!("--month: {e}"),
            };
            let villages = load(home, village.as_deref())?;
            let report = minqing_model::monthly_report(&villages, month);
            emit(&report, &report.tables(), &out)
        }
        ReportCmd::Ledger {
            from,
            to,
            village,
            today,
            out,
        } => {
            let from = date_arg("--from", from.as_deref())?;
            let to = date_arg("--to", to.as_deref())?;
            let today = date_arg("--today", today.as_deref())?
                .unwrap_or_else(|| local_date(chrono::Utc::now().timestamp_millis()));
            let villages = load(home, village.as_deref())?;
            let report = minqing_model::ledger_report(&villages, from, to, today);
            emit(&report, &report.tables(), &out)
        }
    }
}

/// Loads every village of the store (or one); a village that does not load
/// is reported on stderr and left out.
fn load(home: &Home, only: Option<&str>) -> Result<Vec<Village>> {
    let only = match only.map(|v| DocId::new(v.trim())) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => usage!("--village: {e}"),
    };
    if store_in_use(&home.store()) {
        return load_exports(home, only.as_ref(), &home.store());
    }
    let store = match SledStorage::open(&home.store()) {
        Ok(s) => s,
        Err(StoreError::Locked { path }) => return load_exports(home, only.as_ref(), &path),
        Err(e) => return Err(e).context("cannot open the relay's store"),
    };
    let ids = match only {
        Some(id) => {
            if store.load(&id)?.is_none() {
                anyhow::bail!(
                    "no village {id} in the relay's store (`minqing-relay village list` shows them)"
                );
            }
            vec![id]
        }
        None => store.docs().context("cannot list the relay's villages")?,
    };
    let mut out = Vec::with_capacity(ids.len());
    let mut broken = Vec::new();
    for id in ids {
        let loaded = store
            .load(&id)
            .with_context(|| format!("cannot read village {id}"))
            .and_then(|b| {
                let b = b.with_context(|| format!("village {id} vanished"))?;
                Village::load(id.clone(), &b).with_context(|| format!("village {id} does not load"))
            });
        match loaded {
            Ok(v) => out.push(v),
            Err(e) => broken.push((id.to_string(), format!("{e:#}"))),
        }
    }
    warn_broken(&broken);
    Ok(out)
}

/// Names the villages left out of a report because they do not load
/// (quarantined): the report of the others still runs.
fn warn_broken(broken: &[(String, String)]) {
    for (id, why) in broken {
        eprintln!(
            "warning: village {id} is quarantined (it does not load) and left out of the report: {why}"
        );
    }
    if !broken.is_empty() {
        let ids: Vec<&str> = broken.iter().map(|(id, _)| id.as_str()).collect();
        eprintln!(
            "warning: {} village(s) left out of this report: {} — restore them from a backup (docs/relay.md, Backups)",
            broken.len(),
            ids.join(", ")
        );
    }
}

/// Whether another process (serve) holds sled's lock on the store: checked
/// without sled, which would wait [`minqing_store::OPEN_LOCK_WAIT`] first.
pub(crate) fn store_in_use(store: &Path) -> bool {
    let Ok(db) = std::fs::File::open(store.join("db")) else {
        return false;
    };
    // Dropping `db` releases the lock if we got it, before sled opens the store.
    matches!(db.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Loads the villages from `serve`'s exports (the store is in use), saying on
/// stderr how fresh they are.
fn load_exports(home: &Home, only: Option<&DocId>, store: &Path) -> Result<Vec<Village>> {
    let registry = home.villages()?;
    let Some(read) = export::read_exports(home, &registry, only)? else {
        anyhow::bail!(
            "the relay's store {} is in use by `minqing-relay serve` (sled allows one process), and that serve writes no exports for reports (it is older than this minqing-relay): stop serve (SIGTERM), run the report, and start serve again — or restart serve with this version, which exports every village for reports as it runs",
            store.display()
        );
    };
    match &read.as_of {
        Some(at) => eprintln!("serve is running: report built from its exports as of {at}"),
        None => eprintln!("serve is running: report built from its exports (none written yet)"),
    }
    warn_broken(&read.broken);
    for id in &read.missing {
        eprintln!(
            "note: village {id} has no export yet (serve creates its document at the next sync and exports it then): reported as empty"
        );
    }
    Ok(read.villages)
}

/// Writes the report where asked (`minqing_sheet::write_report`,
/// the same as the laptop's) and prints what it says to print.
fn emit<T: Serialize>(report: &T, tables: &[Table], out: &ReportOut) -> Result<()> {
    let targets = minqing_sheet::ReportTargets {
        json: out.json,
        csv: out.csv.as_deref(),
        xlsx: out.xlsx.as_deref(),
    };
    let printed = minqing_sheet::write_report(report, tables, &targets)?;
    for note in &printed.stderr {
        eprintln!("{note}");
    }
    // Text in reports arrived by sync from laptops: never let it drive the
    // operator's terminal (control, bidi and zero-width characters escaped).
    let shown = if targets.json {
        minqing_model::text::escape_json_for_terminal(&printed.stdout)
    } else {
        minqing_model::text::escape_for_terminal(&printed.stdout)
    };
    println!("{shown}");
    Ok(())
}
