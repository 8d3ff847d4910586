//! minqing's domain model: checked values (身份证号, phone, tags, dates), record
//! ids, the village document's automerge layout, typed views for `--json`, and
//! the demand event log with its status fold.
//!
//! This crate knows nothing of the network, of disks or of file formats: it
//! reads and writes `automerge::AutoCommit` values handed to it, takes import
//! rows as text and gives reports as [`Table`]s (`minqing-sheet` reads and
//! writes the files).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bulletin;
pub mod dedupe;
pub mod duty;
pub mod error;
pub mod id;
pub mod ids;
pub mod import;
pub mod ledger;
pub mod report;
pub mod resident;
pub mod table;
pub mod text;
pub mod validate;
pub mod view;
pub mod village;

// Helpers shared by unit tests; not every test module uses every helper.
#[cfg(test)]
#[allow(dead_code)]
mod testkit;

pub use bulletin::{
    Bulletin, Coverage, Missed, MissedVisits, OnLeave, bulletin, leave_statuses, missed_visits,
    month_range, revisits_in,
};
pub use dedupe::{DedupeError, DuplicateGroup};
pub use duty::{DutyError, LeaveReason, LeaveStatus, LeaveView, month_of, settle_leaves};
pub use error::ModelError;
pub use id::{Id, IdError, IdPrefix};
pub use ids::{DeviceIdError, IdRuleError, VillageId, parse_device_id, parse_village_id};
pub use import::{
    ConvertedCard, ImportError, ImportOutcome, ImportPlan, ImportSummary, RawRow, RejectedRow,
    plan_import,
};
pub use ledger::{
    CountyRole, CountyStep, DemandEvent, DemandStatus, Department, EventKind, Fold, Refusal,
    Satisfaction, Step, Transition, WorkflowError, WorkflowView, demand_status, fold,
};
pub use report::{
    CadreMonth, GroupCount, LedgerReport, MonthlyReport, OverdueDemand, ledger_report, local_date,
    monthly_report,
};
pub use resident::{RESIDENT_FIELDS, ResidentField, ResidentFields, resident_field};
pub use table::{Cell, Table};
pub use validate::{
    Address, Category, DemandText, Gender, HouseholdNumber, IdCardNumber, Month, Note, PersonName,
    Phone, PlaceName, Relation, Tag, TeamName, ValidationError, VisitKind, is_area_code,
    parse_date, parse_past_date,
};
pub use view::{
    DemandView, EventView, HouseholdView, ResidentDetail, ResidentView, VillageView, VisitView,
};
pub use village::{
    Author, CountyAuthor, NewDemand, NewHousehold, NewResident, NewVisit, ReadVillage, RecordKind,
    ResidentEdit, SchemaError, ViewsDelta, Village, VillageRecords, check_schema, new_village,
    skeleton, skeleton_hash,
};
