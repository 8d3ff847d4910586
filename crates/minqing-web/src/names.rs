//! Names for ids: pages show a resident's name, a household's address and a
//! village's name where the views carry ids.

use std::collections::BTreeMap;

use minqing_model::{ReadVillage, ResidentView};

/// Names of the villages, households and residents held on the laptop.
#[derive(Clone, Debug, Default)]
pub struct Names {
    villages: BTreeMap<String, String>,
    households: BTreeMap<String, String>,
    residents: BTreeMap<String, String>,
}

impl Names {
    /// Collects the names from `villages` (one pass over each village's
    /// households and residents).
    pub fn new<V: ReadVillage + ?Sized>(villages: &[&V]) -> Names {
        let mut names = Names::default();
        for v in villages {
            names.add_village(v);
        }
        names
    }

    /// Collects the names of one village.
    pub fn of(village: &(impl ReadVillage + ?Sized)) -> Names {
        Names::new(&[village])
    }

    fn add_village(&mut self, v: &(impl ReadVillage + ?Sized)) {
        self.villages.insert(v.id().to_string(), village_name(v));
        for h in v.households().iter() {
            self.households.insert(h.id.clone(), h.address.clone());
        }
        for r in v.residents().iter() {
            self.residents.insert(r.id.clone(), r.name.clone());
        }
    }

    /// The village's name, or its id if it has none.
    pub fn village<'a>(&'a self, id: &'a str) -> &'a str {
        self.villages.get(id).map_or(id, String::as_str)
    }

    /// The household's address, or `未知住户` if it is not held.
    pub fn household<'a>(&'a self, id: &'a str) -> &'a str {
        self.households.get(id).map_or("未知住户", String::as_str)
    }

    /// The resident's name, or `未知居民` if they are not held.
    pub fn resident<'a>(&'a self, id: &'a str) -> &'a str {
        self.residents.get(id).map_or("未知居民", String::as_str)
    }
}

/// A village's name, or its id if it has none.
pub fn village_name(v: &(impl ReadVillage + ?Sized)) -> String {
    let view = v.view();
    if view.name.is_empty() {
        view.id
    } else {
        view.name
    }
}

/// `李秀英（小河村三组12号）`: a resident as a person reads them in a list.
pub fn resident_label(r: &ResidentView) -> String {
    if r.address.is_empty() {
        r.name.clone()
    } else {
        format!("{}（{}）", r.name, r.address)
    }
}
