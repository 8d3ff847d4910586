//! `minqing household add|list`.

use anyhow::Context;
use minqing_model::{Address, HouseholdNumber, NewHousehold};

use crate::cli::HouseholdCmd;
use crate::home::Home;
use crate::output;

pub fn run(home: &Home, cmd: HouseholdCmd) -> anyhow::Result<()> {
    match cmd {
        HouseholdCmd::Add {
            village,
            address,
            number,
        } => {
            let new = NewHousehold {
                address: Address::parse(&address).context("--address")?,
                number: number
                    .map(|n| HouseholdNumber::parse(&n).context("--number"))
                    .transpose()?,
            };
            let mut v = home.require_village(village.trim())?;
            let id = v.add_household(&mut *crate::home::rng(), &home.author(), &new)?;
            home.save(&mut v, "household")?;
            output::line(&format!("added household {} in {}", new.address, v.id()))?;
            output::line(id.as_str())?;
            home.compact_later(v.id());
            Ok(())
        }
        HouseholdCmd::List { village, json } => {
            let villages = match village {
                Some(id) => vec![home.require_village(id.trim())?],
                None => home.villages()?,
            };
            let all: Vec<_> = villages.iter().flat_map(|v| v.households()).collect();
            if json.json {
                return output::json(&all);
            }
            let rows: Vec<Vec<String>> = all
                .into_iter()
                .map(|h| vec![h.id, h.village_id, output::opt(&h.number), h.address])
                .collect();
            output::table(&["户 id", "村", "户号", "地址"], &rows, "no households")
        }
    }
}
