//! `minqing import residents FILE --village ID [--dry-run]`: a household
//! register (.csv or .xlsx) into a village. Good rows are imported, bad rows
//! reported with their row number and reason; a re-import changes nothing.

use std::path::Path;

use anyhow::Context;
use minqing_model::{ImportSummary, plan_import};
use minqing_sheet::read_rows;
use serde::Serialize;

use crate::cli::ImportCmd;
use crate::home::{Home, today};
use crate::output;

/// What `--json` prints: the model's summary plus what was done.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a ImportSummary,
    village: String,
    dry_run: bool,
    /// Whether anything was written (false on a dry run or a no-op).
    written: bool,
}

/// Runs an import command.
pub fn run(home: &Home, cmd: ImportCmd) -> anyhow::Result<()> {
    let ImportCmd::Residents {
        file,
        village,
        dry_run,
        json,
    } = cmd;
    import_residents(home, &file, village.trim(), dry_run, json.json)
}

fn import_residents(
    home: &Home,
    file: &Path,
    village: &str,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut v = home.require_village(village)?;
    let rows = read_rows(file).with_context(|| format!("cannot import {}", file.display()))?;
    let plan = plan_import(&v, &rows, today())
        .with_context(|| format!("cannot import {}", file.display()))?;
    let summary = plan.summary();
    for c in &summary.converted {
        crate::output::err(&format!(
            "note: 第{}行: 15-digit 身份证号 {} converted to its 18-digit form {}",
            c.row, c.from, c.to
        ));
    }
    let written = !dry_run && !plan.is_noop();
    if written {
        plan.apply(&mut v, &mut *crate::home::rng(), &home.author())
            .context("the import failed; nothing was saved")?;
        home.save(&mut v, "import")?;
    }
    if json {
        output::json(&Report {
            summary: &summary,
            village: v.id().to_string(),
            dry_run,
            written,
        })?;
    } else {
        let verb = if dry_run { "would import" } else { "imported" };
        output::line(&format!(
            "{}: {} data rows ({} blank skipped), {} households in the file",
            file.display(),
            summary.data_rows,
            summary.blank_rows,
            summary.households_in_file
        ))?;
        output::line(&format!(
            "{verb} into {}: {} residents new, {} already there (unchanged); {} households ({} new)",
            v.id(),
            summary.residents_new,
            summary.unchanged,
            summary.households,
            summary.households_new
        ))?;
        if !summary.rejected.is_empty() {
            output::line(&format!(
                "rejected {} rows (not imported; fix them and import again — rows already imported are left unchanged):",
                summary.rejected.len()
            ))?;
            for r in &summary.rejected {
                output::line(&format!("  第{}行: {}", r.row, r.reason))?;
            }
        }
        if dry_run {
            output::line("dry run: nothing was written")?;
        } else if !written {
            output::line("nothing new: nothing was written")?;
        }
    }
    if summary.imported == 0 && !summary.rejected.is_empty() {
        anyhow::bail!(
            "every row of {} was rejected ({} rows); nothing was imported",
            file.display(),
            summary.rejected.len()
        );
    }
    if written {
        home.compact_later(v.id());
    }
    Ok(())
}
