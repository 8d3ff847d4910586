//! Typed, serialisable views of village records: what `--json` prints. Keys are
//! snake_case, ids strings, dates `YYYY-MM-DD`, times RFC 3339 in UTC. Keys may
//! be added; the ones here are never renamed (docs/cli.md is the contract).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::resident::ResidentView;

/// A village: its id, names and record counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VillageView {
    /// The village id (the document id), e.g. `V001`.
    pub id: String,
    /// The village's name.
    pub name: String,
    /// Its township, if given.
    pub township: Option<String>,
    /// Number of households.
    pub households: usize,
    /// Number of residents.
    pub residents: usize,
    /// Number of visits.
    pub visits: usize,
    /// Number of demands.
    pub demands: usize,
}

/// A household (户).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdView {
    /// Household id.
    pub id: String,
    /// Village id.
    pub village_id: String,
    /// Address.
    pub address: String,
    /// Household number (户号), if given.
    pub number: Option<String>,
    /// Cadre who added it.
    pub cadre: String,
    /// When it was added (RFC 3339, UTC).
    pub created_at: String,
}

/// A resident with their visits and demands (`resident show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResidentDetail {
    /// The resident's fields.
    #[serde(flatten)]
    pub resident: ResidentView,
    /// Visits naming this resident, oldest first.
    pub visits: Vec<VisitView>,
    /// Demands of this resident, oldest first.
    pub demands: Vec<DemandView>,
}

/// A visit (民情日记 entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitView {
    /// Visit id.
    pub id: String,
    /// Date of the visit, `YYYY-MM-DD`.
    pub date: String,
    /// 普遍走访 / 重点走访 / 补访.
    pub kind: String,
    /// The note.
    pub note: String,
    /// The cadre who visited.
    pub cadre: String,
    /// Household visited.
    pub household_id: String,
    /// Resident met, if named.
    pub resident_id: Option<String>,
    /// Village id.
    pub village_id: String,
    /// Device that recorded the visit.
    pub device_id: String,
    /// When it was recorded (RFC 3339, UTC).
    pub created_at: String,
}

/// A demand (诉求) with its event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemandView {
    /// Demand id.
    pub id: String,
    /// Resident who raised it.
    pub resident_id: String,
    /// The resident's household.
    pub household_id: String,
    /// Village id.
    pub village_id: String,
    /// Category (医疗, 就业, ...).
    pub category: String,
    /// What the resident asked for.
    pub text: String,
    /// Status derived from the events, in Chinese (受理, ...).
    pub status: String,
    /// Department of the latest valid 转办, if any.
    pub department: Option<String>,
    /// Due date (`YYYY-MM-DD`) of the latest valid 转办, if it had one.
    pub due: Option<String>,
    /// Satisfaction of the latest valid 回访 (满意 / 基本满意 / 不满意).
    pub satisfaction: Option<String>,
    /// When it was closed (RFC 3339, UTC), if it is 已销号.
    pub closed_at: Option<String>,
    /// How many events are flagged (kept but not applied by the fold).
    pub flagged: usize,
    /// When it was opened (RFC 3339, UTC).
    pub opened_at: String,
    /// The cadre who opened it.
    pub cadre: String,
    /// Device that opened it.
    pub device_id: String,
    /// The event log in fold order (受理 first, then by time).
    pub events: Vec<EventView>,
}

/// One demand event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// Event id.
    pub id: String,
    /// Stored kind (`opened`, ...).
    pub kind: String,
    /// Chinese name of the kind (受理, ...).
    pub kind_name: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Cadre who recorded it.
    pub cadre: String,
    /// Device that recorded it.
    pub device_id: String,
    /// Payload fields, if any.
    pub fields: BTreeMap<String, String>,
    /// Why the fold did not apply this event (a concurrent step made it
    /// invalid), or `null` if it was applied.
    pub flag: Option<String>,
}

/// Formats unix milliseconds as RFC 3339 in UTC with milliseconds
/// (`2026-03-01T08:00:00.000Z`); out-of-range values print as the epoch.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
