//! `minqing-relay department add|list`: the departments demands are
//! transferred to, with their aliases (docs/console.md).

use anyhow::Result;
use serde::Serialize;

use crate::args::DepartmentCmd;
use crate::cmd::esc;
use crate::console::departments::{self, DepartmentEntry, check_name};
use crate::registry::{Home, now_rfc3339, usage};

/// One department as `department list --json` prints it.
#[derive(Serialize)]
struct DepartmentView<'a> {
    name: &'a str,
    aliases: &'a [String],
    created_at: &'a str,
}

/// Runs a `department` subcommand.
pub fn run(home: &Home, cmd: DepartmentCmd) -> Result<()> {
    home.config()?;
    match cmd {
        DepartmentCmd::Add {
            name,
            aliases,
            json,
        } => add(home, &name, &aliases, json),
        DepartmentCmd::List { json } => list(home, json),
    }
}

fn add(home: &Home, raw: &str, raw_aliases: &[String], json: bool) -> Result<()> {
    let name = match check_name(raw) {
        Ok(n) => n,
        Err(e) => usage!("{e}"),
    };
    let mut aliases = Vec::new();
    for a in raw_aliases {
        match check_name(a) {
            Ok(a) if a != name && !aliases.contains(&a) => aliases.push(a),
            Ok(_) => {}
            Err(e) => usage!("--alias: {e}"),
        }
    }
    let _lock = home.lock()?;
    let mut list = departments::load(home)?;
    for n in std::iter::once(&name).chain(&aliases) {
        if let Some(other) = list.owner_of(n, &name) {
            usage!(
                "{n:?} already names department {other:?}: one name maps to one department (see `department list`)"
            );
        }
    }
    let entry = list
        .0
        .entry(name.clone())
        .or_insert_with(|| DepartmentEntry {
            aliases: Vec::new(),
            created_at: now_rfc3339(),
        });
    for a in aliases {
        if !entry.aliases.contains(&a) {
            entry.aliases.push(a);
        }
    }
    let entry = entry.clone();
    departments::save(home, &list)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&DepartmentView {
                name: &name,
                aliases: &entry.aliases,
                created_at: &entry.created_at,
            })?
        );
    } else {
        println!(
            "department {}{}",
            esc(&name),
            if entry.aliases.is_empty() {
                String::new()
            } else {
                format!(" (also: {})", esc(&entry.aliases.join(", ")))
            }
        );
    }
    Ok(())
}

fn list(home: &Home, json: bool) -> Result<()> {
    let list = departments::load(home)?;
    if json {
        let views: Vec<DepartmentView<'_>> = list
            .0
            .iter()
            .map(|(name, e)| DepartmentView {
                name,
                aliases: &e.aliases,
                created_at: &e.created_at,
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(());
    }
    if list.0.is_empty() {
        println!(
            "no departments: add one with `minqing-relay department add 县水务局 --alias 水务局`"
        );
    }
    for (name, e) in &list.0 {
        println!("{}  {}", esc(name), esc(&e.aliases.join(", ")));
    }
    Ok(())
}
