//! `audit`: shows the audit log.

use anyhow::Result;

use crate::cmd::esc;
use crate::registry::Home;

/// `audit`.
pub fn audit(home: &Home, json: bool) -> Result<()> {
    home.config()?;
    let entries = home.audit_entries()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    for e in entries {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            e.at,
            e.kind,
            e.device_id.as_deref().unwrap_or("-"),
            esc(e.village.as_deref().unwrap_or("-")),
            esc(&e.detail)
        );
    }
    Ok(())
}
