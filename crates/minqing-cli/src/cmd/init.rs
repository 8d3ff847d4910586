//! `minqing init` and `minqing whoami`: this laptop's identity.

use std::path::Path;

use anyhow::Context;
use minqing_model::{PersonName, TeamName};
use serde::Serialize;

use crate::cli::InitArgs;
use crate::error::usage;
use crate::home::{self, Home};
use crate::output;

/// `whoami --json` shape.
#[derive(Serialize)]
struct Whoami<'a> {
    device_id: &'a str,
    cadre: &'a str,
    team: Option<&'a str>,
    home: String,
}

pub fn init(dir: &Path, args: InitArgs, secrets: &home::Secrets) -> anyhow::Result<()> {
    let cadre = args.cadre.ok_or_else(|| {
        usage("give the cadre's name: `minqing init --cadre 姓名 [--team 服务队]`")
    })?;
    let cadre = PersonName::parse(&cadre).context("--cadre")?;
    let team = args
        .team
        .map(|t| TeamName::parse(&t).context("--team"))
        .transpose()?;
    let device = home::init(dir, cadre, team.map(|t| t.to_string()), secrets)?;
    output::line(&format!(
        "set up {} for {}{} in {}",
        device.device_id,
        device.cadre,
        device
            .team
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default(),
        dir.display()
    ))?;
    output::line(&device.device_id)
}

pub fn whoami(home: &Home, json: bool) -> anyhow::Result<()> {
    let d = &home.device;
    if json {
        return output::json(&Whoami {
            device_id: &d.device_id,
            cadre: &d.cadre,
            team: d.team.as_deref(),
            home: home.dir.display().to_string(),
        });
    }
    output::line(&format!("cadre   {}", d.cadre))?;
    output::line(&format!("team    {}", d.team.as_deref().unwrap_or("-")))?;
    output::line(&format!("device  {}", d.device_id))?;
    output::line(&format!("home    {}", home.dir.display()))
}
