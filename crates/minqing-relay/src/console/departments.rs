//! The operator's department list (`registry/departments.json`): each county
//! department (职能部门) with the other names cadres type for it (县水务局 ←
//! 水务局, 县水利局). A demand's 转办 names a department as the cadre typed
//! it; [`Departments::resolve`] maps that name to one department, by exact
//! match after trimming, or to none (docs/console.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::registry::{Home, read_json, write_json};

/// One department.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepartmentEntry {
    /// Other names for it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

/// Every department by canonical name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Departments(pub BTreeMap<String, DepartmentEntry>);

impl Departments {
    /// The department a typed name means: its canonical name, if the name
    /// is one department's name or alias.
    pub fn resolve(&self, typed: &str) -> Option<&str> {
        let t = typed.trim();
        self.0
            .iter()
            .find(|(name, e)| name.as_str() == t || e.aliases.iter().any(|a| a == t))
            .map(|(name, _)| name.as_str())
    }

    /// The department that already uses `name` as its name or alias, other
    /// than `except`.
    pub fn owner_of(&self, name: &str, except: &str) -> Option<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n.as_str() != except)
            .find(|(n, e)| n.as_str() == name || e.aliases.iter().any(|a| a == name))
            .map(|(n, _)| n.as_str())
    }
}

/// The department file.
pub fn departments_path(home: &Home) -> PathBuf {
    home.root().join("registry").join("departments.json")
}

/// The department list (empty if none was added).
pub fn load(home: &Home) -> Result<Departments> {
    Ok(read_json(&departments_path(home))?.unwrap_or_default())
}

/// Replaces the department list (hold [`Home::lock`]): atomic and durable.
pub fn save(home: &Home, departments: &Departments) -> Result<()> {
    write_json(&departments_path(home), departments)
}

/// Checks a department name or alias: what a 转办 accepts (1-50 characters,
/// no control characters), trimmed.
pub fn check_name(raw: &str) -> Result<String, String> {
    minqing_model::Department::parse(raw)
        .map(|d| d.as_str().to_owned())
        .map_err(|e| format!("department name {raw:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve_to_one_department() {
        let mut d = Departments::default();
        d.0.insert(
            "县水务局".into(),
            DepartmentEntry {
                aliases: vec!["水务局".into(), "县水利局".into()],
                created_at: String::new(),
            },
        );
        d.0.insert("县住建局".into(), DepartmentEntry::default());
        assert_eq!(d.resolve("县水务局"), Some("县水务局"));
        assert_eq!(d.resolve(" 水务局 "), Some("县水务局"));
        assert_eq!(d.resolve("县水利局"), Some("县水务局"));
        assert_eq!(d.resolve("住建局"), None, "only names the operator listed");
        assert_eq!(d.owner_of("水务局", "县住建局"), Some("县水务局"));
        assert_eq!(d.owner_of("水务局", "县水务局"), None);
    }
}
