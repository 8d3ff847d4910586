//! The demand ledger, pure: event kinds, demand events, the status and its
//! parsing, the workflow's transitions and the deterministic fold of a
//! demand's merged event log (受理 → 直办 / 转办 → 督办 → 反馈 → 回访 → 销号, and
//! 重开). No automerge here: the village module reads and writes the events
//! (`Village::demand_events`, `Village::record_step`), this module decides.
//!
//! A demand (诉求) is an append-only log of events kept in an automerge map keyed
//! by event id, so that events appended offline on several laptops are all kept
//! after a merge. Its status is never stored: [`fold`] derives it from the
//! merged events, deterministically.
//!
//! # The fold
//!
//! Events are read in one order, the same on every replica: the `opened`
//! (受理) event first, then by time, then by event id ([`sort_events`]). A state
//! machine replays them:
//!
//! | step | valid when the status is | status after |
//! |---|---|---|
//! | 直办 `handled` | 受理, 办理中 | 办理中 |
//! | 转办 `transferred` (department, due) | 受理, 办理中 | 办理中 |
//! | 督办 `supervised` (note, optional due) | anything but 已销号 | unchanged (a due date replaces the 转办's) |
//! | 办理情况 `progress` (note; a department, from the county console) | 办理中 after a 转办 | unchanged |
//! | 办结 `done` (answer; a department, from the county console) | 办理中 after a 转办 | 已办结 |
//! | 反馈 `feedback` (text) | 办理中, 已办结, 已反馈 | 已反馈 |
//! | 回访 `revisited` (satisfaction) | 已反馈, 已回访 | 已回访 |
//! | 销号 `closed` | 已回访 | 已销号 |
//! | 重开 `reopened` (reason) | 已办结, 已反馈, 已回访, 已销号 | 办理中 |
//!
//! A department's 办理情况 / 办结 carries the department of the 转办 it answers
//! (`department`); if another 转办 is in force by then (the demand was
//! transferred elsewhere meanwhile), it is flagged, not applied.
//!
//! An event that is not valid at its place in the merged order (two cadres
//! acted on one demand offline) is **kept**, marked with a flag saying why,
//! and changes nothing: a second 销号 is flagged as a duplicate of the first;
//! any step but 重开 that sorts after a 销号 is flagged "after 销号". Unknown
//! kinds (from a newer minqing) are kept, unflagged, and ignored.
//!
//! Derived values: the status; department and due date from the latest valid
//! 转办; satisfaction from the latest valid 回访; `closed_at` from the 销号 that
//! closed it (cleared by a later 重开). Overdue means: a due date before
//! `today` and not 已销号; `today` is always a parameter.
//!
//! A step written locally is stamped `max(now, latest event + 1 ms)`, so it
//! sorts after everything the laptop knows and is valid in the local fold.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use crate::error::ModelError;
use crate::id::Id;
use crate::text::trim;
use crate::validate::{Note, ValidationError, check_text, parse_date};
use crate::view::DemandView;

/// What happened to a demand. Unknown kinds (written by a newer minqing) are
/// kept and shown, and ignored by the fold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// 受理: the demand was taken down from the resident.
    Opened,
    /// 直办: handled directly by the cadre.
    Handled,
    /// 转办: transferred to a department.
    Transferred,
    /// 督办: supervised.
    Supervised,
    /// 办理情况: a department's progress note (county console).
    Progress,
    /// 办结: the department's answer, its handling done (county console).
    Done,
    /// 反馈: the answer was given to the resident.
    Feedback,
    /// 回访: the return visit, with satisfaction.
    Revisited,
    /// 销号: closed.
    Closed,
    /// 重开: reopened.
    Reopened,
    /// A kind this version does not know, kept verbatim.
    Other(String),
}

impl EventKind {
    /// The key stored in the document (`opened`, ...).
    pub fn as_key(&self) -> &str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Handled => "handled",
            EventKind::Transferred => "transferred",
            EventKind::Supervised => "supervised",
            EventKind::Progress => "progress",
            EventKind::Done => "done",
            EventKind::Feedback => "feedback",
            EventKind::Revisited => "revisited",
            EventKind::Closed => "closed",
            EventKind::Reopened => "reopened",
            EventKind::Other(s) => s,
        }
    }

    /// Reads a stored key.
    pub fn from_key(key: &str) -> EventKind {
        match key {
            "opened" => EventKind::Opened,
            "handled" => EventKind::Handled,
            "transferred" => EventKind::Transferred,
            "supervised" => EventKind::Supervised,
            "progress" => EventKind::Progress,
            "done" => EventKind::Done,
            "feedback" => EventKind::Feedback,
            "revisited" => EventKind::Revisited,
            "closed" => EventKind::Closed,
            "reopened" => EventKind::Reopened,
            other => EventKind::Other(other.to_owned()),
        }
    }

    /// The Chinese name shown to cadres.
    pub fn name(&self) -> &str {
        match self {
            EventKind::Opened => "受理",
            EventKind::Handled => "直办",
            EventKind::Transferred => "转办",
            EventKind::Supervised => "督办",
            EventKind::Progress => "办理情况",
            EventKind::Done => "办结",
            EventKind::Feedback => "反馈",
            EventKind::Revisited => "回访",
            EventKind::Closed => "销号",
            EventKind::Reopened => "重开",
            EventKind::Other(s) => s,
        }
    }
}

/// One entry of a demand's event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemandEvent {
    /// The event's id (its key in the `events` map).
    pub id: Id,
    /// What happened.
    pub kind: EventKind,
    /// When, in unix milliseconds (the writing laptop's clock).
    pub at_ms: i64,
    /// The cadre who recorded it.
    pub cadre: String,
    /// The device that recorded it.
    pub device_id: String,
    /// Further payload fields of the event (note, department, satisfaction...).
    pub fields: BTreeMap<String, String>,
}

/// A demand's status, derived from its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DemandStatus {
    /// 受理: taken down, not yet handled.
    Accepted,
    /// 办理中: handled directly or transferred, no answer yet.
    InProgress,
    /// 已办结: the department the demand was transferred to has answered
    /// (办结); the cadre's next step is the 反馈 to the resident.
    Done,
    /// 已反馈: the answer was given to the resident.
    Answered,
    /// 已回访: the return visit was made.
    Revisited,
    /// 已销号: closed.
    Closed,
}

impl DemandStatus {
    /// The Chinese name shown and printed in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            DemandStatus::Accepted => "受理",
            DemandStatus::InProgress => "办理中",
            DemandStatus::Done => "已办结",
            DemandStatus::Answered => "已反馈",
            DemandStatus::Revisited => "已回访",
            DemandStatus::Closed => "已销号",
        }
    }
}

impl fmt::Display for DemandStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Orders events the way the fold reads them: the `opened` event first (a
/// laptop whose clock is behind must not put a step before the 受理), then by
/// time, then id (ids break ties between laptops deterministically).
pub fn sort_events(events: &mut [DemandEvent]) {
    events.sort_by(|a, b| {
        (a.kind != EventKind::Opened, a.at_ms, &a.id).cmp(&(
            b.kind != EventKind::Opened,
            b.at_ms,
            &b.id,
        ))
    });
}

/// Derives a demand's status from its merged event log: a pure function of the
/// set of events, whatever order they arrive in.
pub fn demand_status(events: &[DemandEvent]) -> DemandStatus {
    fold(events).status
}

/// A resident's satisfaction recorded at the 回访.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Satisfaction {
    /// 满意.
    Satisfied,
    /// 基本满意.
    Basic,
    /// 不满意.
    Dissatisfied,
}

impl Satisfaction {
    /// Every value, best first.
    pub const ALL: [Satisfaction; 3] = [
        Satisfaction::Satisfied,
        Satisfaction::Basic,
        Satisfaction::Dissatisfied,
    ];

    /// Parses 满意 / 基本满意 / 不满意 or satisfied / basically / dissatisfied.
    pub fn parse(input: &str) -> Result<Satisfaction, WorkflowError> {
        match trim(input).to_lowercase().as_str() {
            "满意" | "satisfied" => Ok(Satisfaction::Satisfied),
            "基本满意" | "basically" | "basically-satisfied" => Ok(Satisfaction::Basic),
            "不满意" | "dissatisfied" | "unsatisfied" => Ok(Satisfaction::Dissatisfied),
            _ => Err(WorkflowError::Satisfaction {
                input: input.to_owned(),
            }),
        }
    }

    /// The Chinese name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "满意",
            Satisfaction::Basic => "基本满意",
            Satisfaction::Dissatisfied => "不满意",
        }
    }
}

impl fmt::Display for Satisfaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DemandStatus {
    /// Every status, in workflow order.
    pub const ALL: [DemandStatus; 6] = [
        DemandStatus::Accepted,
        DemandStatus::InProgress,
        DemandStatus::Done,
        DemandStatus::Answered,
        DemandStatus::Revisited,
        DemandStatus::Closed,
    ];

    /// Parses a status as typed after `--status`: 受理 / 办理中 / 已办结 / 已反馈 /
    /// 已回访 / 已销号 or accepted / in-progress / done / answered / revisited /
    /// closed.
    pub fn parse(input: &str) -> Result<DemandStatus, WorkflowError> {
        match trim(input).to_lowercase().as_str() {
            "受理" | "accepted" => Ok(DemandStatus::Accepted),
            "办理中" | "in-progress" | "in_progress" | "inprogress" => {
                Ok(DemandStatus::InProgress)
            }
            "已办结" | "done" => Ok(DemandStatus::Done),
            "已反馈" | "answered" => Ok(DemandStatus::Answered),
            "已回访" | "revisited" => Ok(DemandStatus::Revisited),
            "已销号" | "closed" => Ok(DemandStatus::Closed),
            _ => Err(WorkflowError::Status {
                input: input.to_owned(),
            }),
        }
    }

    /// Reads a status name as printed (受理, ...); `None` for anything else.
    pub fn from_name(name: &str) -> Option<DemandStatus> {
        DemandStatus::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A department a demand is transferred to (县住建局, 镇卫生院...), 1-50 characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Department(String);

impl Department {
    /// Longest value accepted, in characters.
    pub const MAX_CHARS: usize = 50;

    /// Trims and checks a department name.
    pub fn parse(input: &str) -> Result<Department, ValidationError> {
        check_text(
            "department",
            "--to 镇卫生院",
            input,
            Department::MAX_CHARS,
            false,
        )
        .map(Department)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A step a cadre asks for, with its checked payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// 直办: handled directly by the cadre.
    Handle,
    /// 转办: transferred to a department, with an optional due date.
    Transfer {
        /// The department.
        department: Department,
        /// When it must be done.
        due: Option<NaiveDate>,
    },
    /// 督办: supervision, with a note.
    Supervise {
        /// What was urged.
        note: Note,
    },
    /// 反馈: the answer given to the resident.
    Feedback {
        /// The answer.
        text: Note,
    },
    /// 回访: the return visit and the resident's satisfaction.
    Revisit {
        /// Satisfaction.
        satisfaction: Satisfaction,
        /// An optional note.
        note: Option<Note>,
    },
    /// 销号: closed.
    Close,
    /// 重开: reopened, with a reason.
    Reopen {
        /// Why.
        reason: Note,
    },
}

impl Transition {
    /// The event kind this step writes.
    pub fn kind(&self) -> EventKind {
        match self {
            Transition::Handle => EventKind::Handled,
            Transition::Transfer { .. } => EventKind::Transferred,
            Transition::Supervise { .. } => EventKind::Supervised,
            Transition::Feedback { .. } => EventKind::Feedback,
            Transition::Revisit { .. } => EventKind::Revisited,
            Transition::Close => EventKind::Closed,
            Transition::Reopen { .. } => EventKind::Reopened,
        }
    }

    /// The payload fields stored with the event.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_owned(), v.to_owned());
        };
        match self {
            Transition::Handle | Transition::Close => {}
            Transition::Transfer { department, due } => {
                put("department", department.as_str());
                if let Some(d) = due {
                    put("due", &d.format("%Y-%m-%d").to_string());
                }
            }
            Transition::Supervise { note } => put("note", note.as_str()),
            Transition::Feedback { text } => put("text", text.as_str()),
            Transition::Revisit { satisfaction, note } => {
                put("satisfaction", satisfaction.as_str());
                if let Some(n) = note {
                    put("note", n.as_str());
                }
            }
            Transition::Reopen { reason } => put("reason", reason.as_str()),
        }
        f
    }
}

/// Who acts from the county console (docs/console.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountyRole {
    /// A department (职能部门) answering demands transferred to it.
    Department,
    /// A supervisor (督导) pressing demands.
    Supervisor,
}

impl CountyRole {
    /// The key stored in the event's `role` field.
    pub fn as_key(self) -> &'static str {
        match self {
            CountyRole::Department => "department",
            CountyRole::Supervisor => "supervisor",
        }
    }
}

/// A step written from the county console, with its checked payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CountyStep {
    /// 办理情况: a department's progress note on a demand transferred to it.
    Progress {
        /// The department, as the 转办 in force names it.
        department: String,
        /// What was done so far.
        note: Note,
    },
    /// 办结: the department's answer; its handling is done.
    Done {
        /// The department, as the 转办 in force names it.
        department: String,
        /// The answer.
        answer: Note,
    },
    /// 督办 from a supervisor: a note and, optionally, a new due date.
    Supervise {
        /// What was urged.
        note: Note,
        /// The new due date.
        due: Option<NaiveDate>,
    },
}

impl CountyStep {
    /// The event kind this step writes.
    pub fn kind(&self) -> EventKind {
        match self {
            CountyStep::Progress { .. } => EventKind::Progress,
            CountyStep::Done { .. } => EventKind::Done,
            CountyStep::Supervise { .. } => EventKind::Supervised,
        }
    }

    /// Who may write it.
    pub fn role(&self) -> CountyRole {
        match self {
            CountyStep::Progress { .. } | CountyStep::Done { .. } => CountyRole::Department,
            CountyStep::Supervise { .. } => CountyRole::Supervisor,
        }
    }

    /// The payload fields stored with the event.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            f.insert(k.to_owned(), v.to_owned());
        };
        match self {
            CountyStep::Progress { department, note } => {
                put("department", department);
                put("note", note.as_str());
            }
            CountyStep::Done { department, answer } => {
                put("department", department);
                put("answer", answer.as_str());
            }
            CountyStep::Supervise { note, due } => {
                put("note", note.as_str());
                if let Some(d) = due {
                    put("due", &d.format("%Y-%m-%d").to_string());
                }
            }
        }
        f
    }
}

/// Why a step is not valid in a given state (used for both the local refusal
/// and the flag on a merged event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A second 销号 while already closed.
    DuplicateClose {
        /// Who closed it first.
        closed_by: String,
    },
    /// A step other than 重开 after 销号.
    AfterClose {
        /// Who closed it.
        closed_by: String,
    },
    /// A step that needs another status first.
    WrongStatus {
        /// The status at that point.
        status: DemandStatus,
        /// What the step needs, in words.
        needs: &'static str,
    },
    /// A second 受理 event.
    DuplicateOpen,
    /// A department's 办理情况 / 办结 for a 转办 no longer in force.
    OtherDepartment {
        /// The department the event answers for.
        event: String,
        /// The department of the 转办 in force (`None`: none).
        current: Option<String>,
    },
    /// A 回访 whose satisfaction is not one of the three values.
    BadSatisfaction(String),
}

/// Checks whether an event of `kind` may follow in `state`.
fn check(kind: &EventKind, state: &State) -> Result<(), Refusal> {
    use DemandStatus as S;
    let status = state.status;
    let closed_by = || state.closed_by.clone().unwrap_or_default();
    match kind {
        EventKind::Opened => return Err(Refusal::DuplicateOpen),
        EventKind::Other(_) => return Ok(()),
        EventKind::Closed if status == S::Closed => {
            return Err(Refusal::DuplicateClose {
                closed_by: closed_by(),
            });
        }
        EventKind::Reopened => {}
        _ if status == S::Closed => {
            return Err(Refusal::AfterClose {
                closed_by: closed_by(),
            });
        }
        _ => {}
    }
    let (ok, needs) = match kind {
        EventKind::Handled | EventKind::Transferred => (
            matches!(status, S::Accepted | S::InProgress),
            "受理 or 办理中",
        ),
        EventKind::Supervised => (true, "an open demand"),
        EventKind::Progress | EventKind::Done => (
            status == S::InProgress && state.department.is_some(),
            "办理中 after a 转办",
        ),
        EventKind::Feedback => (
            matches!(status, S::InProgress | S::Done | S::Answered),
            "直办 or 转办 first",
        ),
        EventKind::Revisited => (matches!(status, S::Answered | S::Revisited), "反馈 first"),
        EventKind::Closed => (status == S::Revisited, "回访 first"),
        EventKind::Reopened => (
            matches!(status, S::Done | S::Answered | S::Revisited | S::Closed),
            "办结, 反馈, 回访 or 销号 first",
        ),
        EventKind::Opened | EventKind::Other(_) => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::WrongStatus { status, needs })
    }
}

/// The replay state.
#[derive(Clone, Debug)]
struct State {
    status: DemandStatus,
    closed_by: Option<String>,
    /// Department of the latest valid 转办.
    department: Option<String>,
}

/// A department event's department must be the one of the 转办 in force.
fn check_department(event: &DemandEvent, state: &State) -> Result<(), Refusal> {
    if !matches!(event.kind, EventKind::Progress | EventKind::Done) {
        return Ok(());
    }
    match (event.fields.get("department"), &state.department) {
        (Some(theirs), Some(current)) if theirs != current => Err(Refusal::OtherDepartment {
            event: theirs.clone(),
            current: Some(current.clone()),
        }),
        _ => Ok(()),
    }
}

/// One event of the merged log in fold order, with its flag if it was not
/// valid at its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The event.
    pub event: DemandEvent,
    /// Why it was not applied, if it was not (`None`: applied or unknown kind).
    pub flag: Option<String>,
}

/// A demand's derived state: the fold of its merged event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// The status.
    pub status: DemandStatus,
    /// Department of the latest valid 转办.
    pub department: Option<String>,
    /// Due date of the latest valid 转办 (if it had one).
    pub due: Option<NaiveDate>,
    /// Whether a valid 直办 was recorded.
    pub handled_directly: bool,
    /// Satisfaction of the latest valid 回访.
    pub satisfaction: Option<Satisfaction>,
    /// When the 销号 that closed it was recorded (unix ms); `None` if open.
    pub closed_at_ms: Option<i64>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// Time of the latest event (unix ms); 0 for an empty log.
    pub last_at_ms: i64,
    /// Every event, in fold order, with flags.
    pub steps: Vec<Step>,
}

impl Fold {
    /// Whether the demand is closed (已销号).
    pub fn is_closed(&self) -> bool {
        self.status == DemandStatus::Closed
    }

    /// Overdue: a due date before `today` and not closed.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        !self.is_closed() && self.due.is_some_and(|d| d < today)
    }

    /// The flagged steps (kept, shown, not applied).
    pub fn flagged(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.flag.is_some())
    }

    /// Checks a step against this state before it is written: `Ok` or a
    /// refusal whose message tells the cadre what to do instead.
    pub fn can_apply(&self, demand: &Id, kind: &EventKind) -> Result<(), WorkflowError> {
        let state = State {
            status: self.status,
            closed_by: self.closed_by.clone(),
            department: self.department.clone(),
        };
        check(kind, &state).map_err(|refusal| WorkflowError::Refused {
            demand: demand.clone(),
            kind: kind.name().to_owned(),
            refusal,
        })
    }
}

impl Fold {
    /// Checks a county console step against this state before it is written,
    /// the department included (a department answers only the 转办 in force).
    pub fn can_apply_county(&self, demand: &Id, step: &CountyStep) -> Result<(), WorkflowError> {
        let kind = step.kind();
        self.can_apply(demand, &kind)?;
        let state = State {
            status: self.status,
            closed_by: self.closed_by.clone(),
            department: self.department.clone(),
        };
        let probe = DemandEvent {
            id: demand.clone(),
            kind: kind.clone(),
            at_ms: 0,
            cadre: String::new(),
            device_id: String::new(),
            fields: step.fields(),
        };
        check_department(&probe, &state).map_err(|refusal| WorkflowError::Refused {
            demand: demand.clone(),
            kind: kind.name().to_owned(),
            refusal,
        })
    }
}

/// Folds a demand's merged event log: a pure function of the set of events,
/// whatever order they were received in.
pub fn fold(events: &[DemandEvent]) -> Fold {
    let mut sorted = events.to_vec();
    sort_events(&mut sorted);
    let mut state = State {
        status: DemandStatus::Accepted,
        closed_by: None,
        department: None,
    };
    let mut f = Fold {
        status: DemandStatus::Accepted,
        department: None,
        due: None,
        handled_directly: false,
        satisfaction: None,
        closed_at_ms: None,
        closed_by: None,
        last_at_ms: 0,
        steps: Vec::with_capacity(sorted.len()),
    };
    let mut opened = false;
    for event in sorted {
        f.last_at_ms = f.last_at_ms.max(event.at_ms);
        let mut verdict = if event.kind == EventKind::Opened && !opened {
            opened = true;
            Ok(())
        } else {
            check(&event.kind, &state).and_then(|()| check_department(&event, &state))
        };
        let satisfaction = if event.kind == EventKind::Revisited {
            let raw = event
                .fields
                .get("satisfaction")
                .cloned()
                .unwrap_or_default();
            match Satisfaction::parse(&raw) {
                Ok(s) => Some(s),
                Err(_) => {
                    verdict = verdict.and(Err(Refusal::BadSatisfaction(raw)));
                    None
                }
            }
        } else {
            None
        };
        if let Err(refusal) = verdict {
            let flag = flag_text(&event, &refusal);
            f.steps.push(Step {
                event,
                flag: Some(flag),
            });
            continue;
        }
        match &event.kind {
            EventKind::Opened | EventKind::Progress | EventKind::Other(_) => {}
            EventKind::Supervised => {
                // A 督办 with a new due date (from the county console) moves it.
                if let Some(due) = event.fields.get("due").and_then(|d| parse_date(d).ok()) {
                    f.due = Some(due);
                }
            }
            EventKind::Done => state.status = DemandStatus::Done,
            EventKind::Handled => {
                state.status = DemandStatus::InProgress;
                f.handled_directly = true;
            }
            EventKind::Transferred => {
                state.status = DemandStatus::InProgress;
                f.department = event.fields.get("department").cloned();
                state.department = f.department.clone();
                f.due = event.fields.get("due").and_then(|d| parse_date(d).ok());
            }
            EventKind::Feedback => state.status = DemandStatus::Answered,
            EventKind::Revisited => {
                state.status = DemandStatus::Revisited;
                f.satisfaction = satisfaction;
            }
            EventKind::Closed => {
                state.status = DemandStatus::Closed;
                state.closed_by = Some(event.cadre.clone());
                f.closed_at_ms = Some(event.at_ms);
            }
            EventKind::Reopened => {
                state.status = DemandStatus::InProgress;
                state.closed_by = None;
                f.closed_at_ms = None;
            }
        }
        f.steps.push(Step { event, flag: None });
    }
    f.status = state.status;
    f.closed_by = state.closed_by;
    f
}

/// The flag text shown on a merged event that was not applied.
fn flag_text(event: &DemandEvent, refusal: &Refusal) -> String {
    let what = format!("{} by {}", event.kind.name(), event.cadre);
    match refusal {
        Refusal::DuplicateClose { closed_by } => {
            format!("{what} after 销号 by {closed_by} — concurrent close, kept as a duplicate")
        }
        Refusal::AfterClose { closed_by } => {
            format!("{what} after 销号 by {closed_by} — concurrent with the close, not applied")
        }
        Refusal::WrongStatus { status, needs } => {
            format!("{what} while {status} — needs {needs}, not applied")
        }
        Refusal::DuplicateOpen => format!("{what} — a second 受理, not applied"),
        Refusal::OtherDepartment { event, current } => format!(
            "{what} for {event}, but the demand is transferred to {} — not applied",
            current.as_deref().unwrap_or("no department")
        ),
        Refusal::BadSatisfaction(raw) => {
            format!("{what} — satisfaction {raw:?} is not 满意/基本满意/不满意, not applied")
        }
    }
}

/// What the cadre can run instead of a refused step.
fn advice(demand: &Id, refusal: &Refusal) -> String {
    let id = demand.as_str();
    match refusal {
        Refusal::DuplicateClose { closed_by } => {
            format!("it was already closed (销号) by {closed_by}; nothing to do")
        }
        Refusal::AfterClose { closed_by } => format!(
            "it is closed (销号 by {closed_by}): reopen it first with `minqing demand reopen {id} --reason TEXT`"
        ),
        Refusal::WrongStatus { status, needs } => {
            let next = match status {
                DemandStatus::Accepted => format!(
                    "handle it first: `minqing demand handle {id}` or `minqing demand transfer {id} --to DEPT`"
                ),
                DemandStatus::InProgress => {
                    format!("record the answer first: `minqing demand feedback {id} --text TEXT`")
                }
                DemandStatus::Done => format!(
                    "the department has answered (办结): give the resident the answer with `minqing demand feedback {id} --text TEXT`, or reopen it with `minqing demand reopen {id} --reason TEXT`"
                ),
                DemandStatus::Answered => format!(
                    "record the return visit first: `minqing demand revisit {id} --satisfaction 满意`"
                ),
                DemandStatus::Revisited => format!(
                    "close it with `minqing demand close {id}`, or reopen it with `minqing demand reopen {id} --reason TEXT`"
                ),
                DemandStatus::Closed => {
                    format!("reopen it first with `minqing demand reopen {id} --reason TEXT`")
                }
            };
            format!("it is {status} and this step needs {needs}: {next}")
        }
        Refusal::DuplicateOpen => "a demand is opened once".to_owned(),
        Refusal::OtherDepartment { event, current } => format!(
            "it is transferred to {}, not to {event}",
            current.as_deref().unwrap_or("no department")
        ),
        Refusal::BadSatisfaction(raw) => {
            format!("satisfaction {raw:?} is not 满意, 基本满意 or 不满意")
        }
    }
}

/// Errors of the workflow: refused steps, bad values, and document errors.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The step is not valid in the demand's current state; nothing was written.
    #[error("demand {demand}: cannot {kind}: {}", advice(demand, refusal))]
    Refused {
        /// The demand.
        demand: Id,
        /// Chinese name of the refused step.
        kind: String,
        /// Why.
        refusal: Refusal,
    },
    /// Not a satisfaction value.
    #[error(
        "satisfaction {input:?} is not known: use 满意 (satisfied), 基本满意 (basically) or 不满意 (dissatisfied)"
    )]
    Satisfaction {
        /// What was typed.
        input: String,
    },
    /// Not a status.
    #[error(
        "status {input:?} is not known: use 受理 (accepted), 办理中 (in-progress), 已办结 (done), 已反馈 (answered), 已回访 (revisited) or 已销号 (closed)"
    )]
    Status {
        /// What was typed.
        input: String,
    },
    /// A county console step written by an account of another role (a
    /// supervisor cannot record 办结, a department cannot 督办).
    #[error("{kind} is not a step a {} account records", role.as_key())]
    Role {
        /// Chinese name of the step.
        kind: String,
        /// The author's role.
        role: CountyRole,
    },
    /// The document layer failed (unknown demand, automerge error...).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The workflow fields of a demand, serialisable for `--json` (added to a
/// demand's view by callers that want them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowView {
    /// Status name (受理 ...).
    pub status: String,
    /// Department of the latest valid 转办.
    pub department: Option<String>,
    /// Due date `YYYY-MM-DD`.
    pub due: Option<String>,
    /// Whether handled directly (直办).
    pub handled_directly: bool,
    /// 满意 / 基本满意 / 不满意.
    pub satisfaction: Option<String>,
    /// When closed (RFC 3339, UTC).
    pub closed_at: Option<String>,
    /// Overdue on the given day.
    pub overdue: bool,
    /// Flags of events not applied: `{event_id, flag}`.
    pub flags: Vec<FlagView>,
}

/// A flagged event in [`WorkflowView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlagView {
    /// Event id.
    pub event_id: String,
    /// Why it was not applied.
    pub flag: String,
}

impl Fold {
    /// The serialisable summary, with `overdue` computed for `today`.
    pub fn view(&self, today: NaiveDate) -> WorkflowView {
        WorkflowView {
            status: self.status.name().to_owned(),
            department: self.department.clone(),
            due: self.due.map(|d| d.format("%Y-%m-%d").to_string()),
            handled_directly: self.handled_directly,
            satisfaction: self.satisfaction.map(|s| s.as_str().to_owned()),
            closed_at: self.closed_at_ms.map(crate::view::rfc3339_ms),
            overdue: self.is_overdue(today),
            flags: self
                .flagged()
                .map(|s| FlagView {
                    event_id: s.event.id.to_string(),
                    flag: s.flag.clone().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

impl DemandView {
    /// Overdue on `today`: the fold's due date (of the latest valid 转办, or
    /// a later valid 督办 that set one) before `today`, and not 已销号.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        let due = self.due.as_deref().and_then(|d| parse_date(d).ok());
        self.status != DemandStatus::Closed.name() && due.is_some_and(|d| d < today)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;
    use crate::village::Village;

    fn note(s: &str) -> Note {
        Note::parse(s).unwrap()
    }

    fn transfer(dept: &str, due: Option<&str>) -> Transition {
        Transition::Transfer {
            department: Department::parse(dept).unwrap(),
            due: due.map(date),
        }
    }

    fn revisit(s: &str) -> Transition {
        Transition::Revisit {
            satisfaction: Satisfaction::parse(s).unwrap(),
            note: None,
        }
    }

    /// A village with one demand opened by 李书记 on device A at `ms("2026-03-01")`.
    fn setup() -> (Village, Id) {
        let mut r = rng(1);
        let mut v = village("V1", "小河村");
        let who = author(DEV_A, "李书记", ms("2026-03-01"));
        let h = household(&mut v, &mut r, &who, "小河村1组1号");
        let p = resident(&mut v, &mut r, &who, &h, "张三", &[]);
        let d = demand(&mut v, &mut r, &who, &p, "道路");
        (v, d)
    }

    fn step(v: &mut Village, device: &str, cadre: &str, day: &str, d: &Id, t: &Transition) {
        let seed = ms(day) as u64 ^ device.len() as u64 ^ cadre.len() as u64;
        v.record_step(&mut rng(seed), &author(device, cadre, ms(day)), d, t)
            .unwrap_or_else(|e| panic!("{t:?} on {day}: {e}"));
    }

    /// Runs a demand to 已回访 with `satisfaction` on device A.
    fn to_revisited(v: &mut Village, d: &Id, satisfaction: &str) {
        step(v, DEV_A, "李书记", "2026-03-02", d, &Transition::Handle);
        step(
            v,
            DEV_A,
            "李书记",
            "2026-03-03",
            d,
            &Transition::Feedback {
                text: note("已修好"),
            },
        );
        step(v, DEV_A, "李书记", "2026-03-04", d, &revisit(satisfaction));
    }

    fn flags(f: &Fold) -> Vec<String> {
        f.flagged()
            .map(|s| s.flag.clone().unwrap_or_default())
            .collect()
    }

    /// Merges the two replicas in both directions, and also each into a fresh
    /// copy of the other in the opposite order; asserts that every replica
    /// derives the same fold and view. Returns the fold.
    fn converge(a: &mut Village, b: &mut Village, d: &Id) -> Fold {
        let mut a2 = fork(a, DEV_A);
        let mut b2 = fork(b, DEV_B);
        b2.merge(&mut a2).unwrap(); // B's copy receives A's events
        sync(a, b); // A receives B's events, then B receives A's
        let fa = a.demand_fold(d).unwrap();
        let fb = b.demand_fold(d).unwrap();
        let fc = b2.demand_fold(d).unwrap();
        assert_eq!(fa, fb);
        assert_eq!(fa, fc);
        assert_eq!(a.demand(d), b.demand(d));
        fa
    }

    #[test]
    fn status_and_satisfaction_aliases() {
        let check = |input: &str, expected: Option<&str>| {
            let got = DemandStatus::parse(input).ok().map(|s| s.name());
            assert_eq!(got, expected, "status {input:?}");
        };
        check("受理", Some("受理"));
        check("accepted", Some("受理"));
        check("办理中", Some("办理中"));
        check(" In-Progress ", Some("办理中"));
        check("answered", Some("已反馈"));
        check("已回访", Some("已回访"));
        check("revisited", Some("已回访"));
        check("CLOSED", Some("已销号"));
        check("已销号", Some("已销号"));
        check("open", None);
        let sat = |input: &str, expected: Option<&str>| {
            let got = Satisfaction::parse(input).ok().map(|s| s.as_str());
            assert_eq!(got, expected, "satisfaction {input:?}");
        };
        sat("满意", Some("满意"));
        sat("satisfied", Some("满意"));
        sat("basically", Some("基本满意"));
        sat("基本满意", Some("基本满意"));
        sat("dissatisfied", Some("不满意"));
        sat("\u{3000}不满意", Some("不满意"));
        sat("还行", None);
        let err = Satisfaction::parse("还行").unwrap_err().to_string();
        assert!(err.contains("满意 (satisfied)"), "{err}");
        for s in DemandStatus::ALL {
            assert_eq!(DemandStatus::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn happy_path_then_reopen() {
        let (mut v, d) = setup();
        assert_eq!(v.demand_fold(&d).unwrap().status, DemandStatus::Accepted);
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-02",
            &d,
            &transfer("镇交通所", Some("2026-03-20")),
        );
        let f = v.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::InProgress);
        assert_eq!(f.department.as_deref(), Some("镇交通所"));
        assert_eq!(f.due, Some(date("2026-03-20")));
        assert!(!f.is_overdue(date("2026-03-20")));
        assert!(f.is_overdue(date("2026-03-21")));
        step(
            &mut v,
            DEV_A,
            "王主任",
            "2026-03-05",
            &d,
            &Transition::Supervise {
                note: note("请加快"),
            },
        );
        assert_eq!(v.demand_fold(&d).unwrap().status, DemandStatus::InProgress);
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-06",
            &d,
            &Transition::Feedback {
                text: note("已修好"),
            },
        );
        assert_eq!(v.demand_fold(&d).unwrap().status, DemandStatus::Answered);
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-07",
            &d,
            &revisit("basically"),
        );
        let f = v.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::Revisited);
        assert_eq!(f.satisfaction, Some(Satisfaction::Basic));
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-08",
            &d,
            &Transition::Close,
        );
        let f = v.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::Closed);
        assert_eq!(f.closed_at_ms, Some(ms("2026-03-08")));
        assert!(
            !f.is_overdue(date("2026-04-30")),
            "closed demands are never overdue"
        );
        let view = v.demand(&d).unwrap();
        assert_eq!(view.status, "已销号");
        assert_eq!(view.department.as_deref(), Some("镇交通所"));
        assert_eq!(view.satisfaction.as_deref(), Some("基本满意"));
        assert!(!view.is_overdue(date("2026-04-30")));
        let kinds: Vec<&str> = view.events.iter().map(|e| e.kind_name.as_str()).collect();
        assert_eq!(kinds, ["受理", "转办", "督办", "反馈", "回访", "销号"]);
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-09",
            &d,
            &Transition::Reopen {
                reason: note("路灯又坏了"),
            },
        );
        let f = v.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::InProgress);
        assert_eq!(f.closed_at_ms, None);
        assert!(f.is_overdue(date("2026-04-30")));
        assert_eq!(flags(&f), Vec::<String>::new());
    }

    #[test]
    fn invalid_local_steps_are_refused_and_write_nothing() {
        let (mut v, d) = setup();
        let refuse = |v: &mut Village, t: &Transition, expected: &str| {
            let heads = v.heads();
            let err = v
                .record_step(
                    &mut rng(9),
                    &author(DEV_A, "李书记", ms("2026-03-10")),
                    &d,
                    t,
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{t:?}: {err:?} lacks {expected:?}");
            assert_eq!(v.heads(), heads, "a refused step wrote something");
        };
        refuse(&mut v, &Transition::Close, "`minqing demand handle");
        refuse(
            &mut v,
            &Transition::Feedback { text: note("x") },
            "needs 直办 or 转办 first",
        );
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-02",
            &d,
            &Transition::Handle,
        );
        refuse(&mut v, &revisit("满意"), "`minqing demand feedback");
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-03",
            &d,
            &Transition::Feedback {
                text: note("好了")
            },
        );
        refuse(
            &mut v,
            &Transition::Close,
            "销号: it is 已反馈 and this step needs 回访 first: record the return visit first: `minqing demand revisit",
        );
        refuse(&mut v, &Transition::Handle, "needs 受理 or 办理中");
        step(&mut v, DEV_A, "李书记", "2026-03-04", &d, &revisit("满意"));
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-05",
            &d,
            &Transition::Close,
        );
        refuse(
            &mut v,
            &Transition::Close,
            "already closed (销号) by 李书记",
        );
        refuse(
            &mut v,
            &transfer("镇政府", None),
            "reopen it first with `minqing demand reopen",
        );
        refuse(
            &mut v,
            &Transition::Supervise { note: note("催") },
            "it is closed",
        );
        let unknown = Id::parse("zzzzzzzzzzzzzzzz").unwrap();
        let heads = v.heads();
        let err = v
            .record_step(
                &mut rng(3),
                &author(DEV_A, "李书记", 0),
                &unknown,
                &Transition::Handle,
            )
            .unwrap_err();
        assert!(
            matches!(err, WorkflowError::Model(ModelError::NotFound { .. })),
            "{err}"
        );
        assert_eq!(v.heads(), heads);
    }

    #[test]
    fn a_step_from_a_laptop_with_a_slow_clock_still_sorts_last() {
        let (mut v, d) = setup();
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-05",
            &d,
            &Transition::Handle,
        );
        // This laptop's clock says February: the step is stamped after the
        // latest event it knows, so it is valid in the fold.
        step(
            &mut v,
            DEV_B,
            "王芳",
            "2026-02-01",
            &d,
            &Transition::Feedback {
                text: note("好了")
            },
        );
        let f = v.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::Answered);
        assert_eq!(f.steps.last().unwrap().event.at_ms, ms("2026-03-05") + 1);
        assert_eq!(flags(&f), Vec::<String>::new());
    }

    #[test]
    fn both_close_offline_in_either_order() {
        for (day_a, day_b) in [
            ("2026-03-05", "2026-03-06"),
            ("2026-03-06", "2026-03-05"),
            ("2026-03-05", "2026-03-05"),
        ] {
            let (mut a, d) = setup();
            to_revisited(&mut a, &d, "满意");
            let mut b = fork(&mut a, DEV_B);
            step(&mut a, DEV_A, "李书记", day_a, &d, &Transition::Close);
            step(&mut b, DEV_B, "王芳", day_b, &d, &Transition::Close);
            let f = converge(&mut a, &mut b, &d);
            assert_eq!(f.status, DemandStatus::Closed);
            assert_eq!(f.steps.len(), 6, "both closes are kept");
            let fl = flags(&f);
            assert_eq!(fl.len(), 1, "{fl:?}");
            let (first, second) = if f.closed_by.as_deref() == Some("李书记") {
                ("李书记", "王芳")
            } else {
                ("王芳", "李书记")
            };
            if day_a != day_b {
                let expected_first = if day_a < day_b { "李书记" } else { "王芳" };
                assert_eq!(first, expected_first);
                assert_eq!(f.closed_at_ms, Some(ms(day_a.min(day_b))));
            }
            assert_eq!(
                fl[0],
                format!(
                    "销号 by {second} after 销号 by {first} — concurrent close, kept as a duplicate"
                )
            );
        }
    }

    #[test]
    fn transfer_on_one_laptop_while_the_other_closes() {
        // B forked while the demand was 办理中 (handled on 03-02); A goes on to
        // feedback 03-03, revisit 03-04 and close 03-06. B transfers at:
        let cases = [
            // before A's feedback: valid, and everything of A's still follows.
            ("2026-03-02", DemandStatus::Closed, None),
            // between A's revisit and close: invalid after 回访.
            (
                "2026-03-05",
                DemandStatus::Closed,
                Some("转办 by 王芳 while 已回访 — needs 受理 or 办理中, not applied"),
            ),
            // after A's close.
            (
                "2026-03-07",
                DemandStatus::Closed,
                Some("转办 by 王芳 after 销号 by 李书记 — concurrent with the close, not applied"),
            ),
        ];
        for (day_b, status, flag) in cases {
            let (mut a, d) = setup();
            step(
                &mut a,
                DEV_A,
                "李书记",
                "2026-03-02",
                &d,
                &Transition::Handle,
            );
            let mut b = fork(&mut a, DEV_B);
            step(
                &mut a,
                DEV_A,
                "李书记",
                "2026-03-03",
                &d,
                &Transition::Feedback {
                    text: note("已修好"),
                },
            );
            step(&mut a, DEV_A, "李书记", "2026-03-04", &d, &revisit("满意"));
            step(
                &mut a,
                DEV_A,
                "李书记",
                "2026-03-06",
                &d,
                &Transition::Close,
            );
            step(
                &mut b,
                DEV_B,
                "王芳",
                day_b,
                &d,
                &transfer("县住建局", Some("2026-03-31")),
            );
            let f = converge(&mut a, &mut b, &d);
            assert_eq!(f.status, status, "transfer on {day_b}");
            assert_eq!(f.steps.len(), 6);
            assert_eq!(
                flags(&f),
                flag.map(str::to_owned).into_iter().collect::<Vec<_>>(),
                "transfer on {day_b}"
            );
            // The department is set only when the transfer was applied.
            assert_eq!(f.department.is_some(), flag.is_none());
            let view = a.demand(&d).unwrap();
            assert_eq!(view.flagged, usize::from(flag.is_some()));
            let shown = view
                .events
                .iter()
                .find(|e| e.kind == "transferred")
                .unwrap();
            assert_eq!(
                shown.flag.as_deref(),
                flag,
                "the flagged step stays visible"
            );
        }
    }

    #[test]
    fn dissatisfied_revisit_then_reopen_versus_close() {
        for (day_reopen, day_close, flag) in [
            // reopen first: the close no longer follows a 回访.
            (
                "2026-03-05",
                "2026-03-06",
                Some("销号 by 王芳 while 办理中 — needs 回访 first, not applied"),
            ),
            // close first: the reopen applies after it.
            ("2026-03-06", "2026-03-05", None),
        ] {
            let (mut a, d) = setup();
            to_revisited(&mut a, &d, "dissatisfied");
            let mut b = fork(&mut a, DEV_B);
            step(
                &mut a,
                DEV_A,
                "李书记",
                day_reopen,
                &d,
                &Transition::Reopen {
                    reason: note("群众不满意"),
                },
            );
            step(&mut b, DEV_B, "王芳", day_close, &d, &Transition::Close);
            let f = converge(&mut a, &mut b, &d);
            assert_eq!(
                f.status,
                DemandStatus::InProgress,
                "reopen {day_reopen}, close {day_close}"
            );
            assert_eq!(f.closed_at_ms, None);
            assert_eq!(f.satisfaction, Some(Satisfaction::Dissatisfied));
            assert_eq!(
                flags(&f),
                flag.map(str::to_owned).into_iter().collect::<Vec<_>>()
            );
            // After the merge, the local check sees the merged state.
            let err = a
                .record_step(
                    &mut rng(5),
                    &author(DEV_A, "李书记", ms("2026-03-07")),
                    &d,
                    &Transition::Close,
                )
                .unwrap_err()
                .to_string();
            assert!(err.contains("needs 回访 first"), "{err}");
        }
    }

    #[test]
    fn fold_ignores_arrival_order_and_unknown_kinds() {
        let ev = |id: &str, kind: &str, day: &str, fields: &[(&str, &str)]| DemandEvent {
            id: Id::parse(id).unwrap(),
            kind: EventKind::from_key(kind),
            at_ms: ms(day),
            cadre: "李书记".into(),
            device_id: DEV_A.into(),
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        };
        let events = vec![
            // The opened event is stamped late (a slow clock); it still comes first.
            ev("0000000000000001", "opened", "2026-03-09", &[]),
            ev(
                "0000000000000002",
                "transferred",
                "2026-03-02",
                &[("department", "镇政府"), ("due", "2026-03-10")],
            ),
            ev("0000000000000003", "escalated", "2026-03-03", &[]),
            ev(
                "0000000000000004",
                "feedback",
                "2026-03-04",
                &[("text", "好了")],
            ),
            ev(
                "0000000000000005",
                "revisited",
                "2026-03-05",
                &[("satisfaction", "还行")],
            ),
            ev(
                "0000000000000006",
                "revisited",
                "2026-03-06",
                &[("satisfaction", "满意")],
            ),
        ];
        let f = fold(&events);
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(fold(&reversed), f);
        assert_eq!(f.status, DemandStatus::Revisited);
        assert_eq!(f.satisfaction, Some(Satisfaction::Satisfied));
        assert_eq!(f.due, Some(date("2026-03-10")));
        assert_eq!(flags(&f).len(), 1);
        assert!(flags(&f)[0].contains("\"还行\""), "{:?}", flags(&f));
        assert_eq!(f.steps[0].event.kind, EventKind::Opened);
        assert_eq!(demand_status(&reversed), DemandStatus::Revisited);
    }

    fn event(id: &str, kind: &str, at_ms: i64) -> DemandEvent {
        DemandEvent {
            id: Id::parse(id).unwrap(),
            kind: EventKind::from_key(kind),
            at_ms,
            cadre: "李书记".into(),
            device_id: "d".into(),
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn opened_demand_is_accepted_and_unknown_kinds_are_ignored() {
        let a = event("aaaaaaaaaaaaaaaa", "opened", 1);
        let b = event("bbbbbbbbbbbbbbbb", "escalated-by-future-version", 2);
        assert_eq!(
            demand_status(std::slice::from_ref(&a)),
            DemandStatus::Accepted
        );
        assert_eq!(
            demand_status(&[b.clone(), a.clone()]),
            DemandStatus::Accepted
        );
        assert_eq!(DemandStatus::Accepted.name(), "受理");
        assert_eq!(EventKind::from_key("opened").name(), "受理");
        assert_eq!(b.kind.as_key(), "escalated-by-future-version");
    }

    // ---- steps from the county console (办理情况, 办结, 督办 with a due date) ----

    const WATER: &str = "县水务局";

    fn dept_author(day: &str) -> crate::village::CountyAuthor {
        crate::village::CountyAuthor {
            account: "shuiwu".into(),
            display: "张科长".into(),
            role: CountyRole::Department,
            now_ms: ms(day),
        }
    }

    fn county(v: &mut Village, day: &str, d: &Id, s: &CountyStep) {
        let author = match s.role() {
            CountyRole::Department => dept_author(day),
            CountyRole::Supervisor => crate::village::CountyAuthor {
                account: "ducha".into(),
                display: "督查室".into(),
                role: CountyRole::Supervisor,
                now_ms: ms(day),
            },
        };
        v.record_county_step(&mut rng(ms(day) as u64), &author, d, s)
            .unwrap_or_else(|e| panic!("{s:?} on {day}: {e}"));
    }

    fn progress(dept: &str) -> CountyStep {
        CountyStep::Progress {
            department: dept.into(),
            note: note("已派人勘察"),
        }
    }

    fn done(dept: &str) -> CountyStep {
        CountyStep::Done {
            department: dept.into(),
            answer: note("管道已修复"),
        }
    }

    /// A demand transferred to 县水务局 on 03-02; the relay's replica (as the
    /// console writes it) and a cadre's laptop forked from it.
    fn transferred() -> (Village, Village, Id) {
        let (mut cadre, d) = setup();
        step(
            &mut cadre,
            DEV_A,
            "李书记",
            "2026-03-02",
            &d,
            &transfer(WATER, Some("2026-03-20")),
        );
        let relay = fork(&mut cadre, "relayactor000000");
        (relay, cadre, d)
    }

    #[test]
    fn a_department_answers_and_the_cadre_closes_the_loop() {
        let (mut relay, mut cadre, d) = transferred();
        county(&mut relay, "2026-03-04", &d, &progress(WATER));
        assert_eq!(
            relay.demand_fold(&d).unwrap().status,
            DemandStatus::InProgress
        );
        county(&mut relay, "2026-03-06", &d, &done(WATER));
        let f = relay.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::Done);
        assert_eq!(flags(&f), Vec::<String>::new());
        // The cadre's laptop receives the relay's change at its next sync.
        let bytes = relay.changes_since(&cadre.heads());
        cadre.apply_changes(&bytes).unwrap();
        assert_eq!(cadre.demand_fold(&d).unwrap(), f);
        let view = cadre.demand(&d).unwrap();
        assert_eq!(view.status, "已办结");
        let shown: Vec<(&str, &str)> = view
            .events
            .iter()
            .map(|e| (e.kind_name.as_str(), e.cadre.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("受理", "李书记"),
                ("转办", "李书记"),
                ("办理情况", "张科长"),
                ("办结", "张科长")
            ]
        );
        let done_ev = &view.events[3];
        assert_eq!(done_ev.device_id, crate::village::COUNTY_CONSOLE_DEVICE);
        assert_eq!(
            done_ev.fields.get("answer").map(String::as_str),
            Some("管道已修复")
        );
        assert_eq!(
            done_ev.fields.get("role").map(String::as_str),
            Some("department")
        );
        assert_eq!(
            done_ev.fields.get("account").map(String::as_str),
            Some("shuiwu")
        );
        // Next valid steps for the cadre: 督办, 反馈, 重开 — not 直办/转办/回访/销号.
        let ok = |k: EventKind| f.can_apply(&d, &k).is_ok();
        assert!(ok(EventKind::Feedback) && ok(EventKind::Supervised) && ok(EventKind::Reopened));
        assert!(!ok(EventKind::Handled) && !ok(EventKind::Transferred));
        assert!(!ok(EventKind::Revisited) && !ok(EventKind::Closed));
        step(
            &mut cadre,
            DEV_A,
            "李书记",
            "2026-03-07",
            &d,
            &Transition::Feedback {
                text: note("已告知群众"),
            },
        );
        step(
            &mut cadre,
            DEV_A,
            "李书记",
            "2026-03-08",
            &d,
            &revisit("满意"),
        );
        step(
            &mut cadre,
            DEV_A,
            "李书记",
            "2026-03-09",
            &d,
            &Transition::Close,
        );
        let f = cadre.demand_fold(&d).unwrap();
        assert_eq!(f.status, DemandStatus::Closed);
        assert_eq!(flags(&f), Vec::<String>::new());
    }

    #[test]
    fn county_steps_refused_locally_write_nothing() {
        let (mut v, d) = setup();
        let refuse = |v: &mut Village,
                      author: &crate::village::CountyAuthor,
                      s: &CountyStep,
                      expected: &str| {
            let heads = v.heads();
            let err = v
                .record_county_step(&mut rng(4), author, &d, s)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{s:?}: {err:?} lacks {expected:?}");
            assert_eq!(v.heads(), heads, "a refused step wrote something");
        };
        let dept = dept_author("2026-03-03");
        // Not transferred yet.
        refuse(&mut v, &dept, &progress(WATER), "needs 办理中 after a 转办");
        step(
            &mut v,
            DEV_A,
            "李书记",
            "2026-03-02",
            &d,
            &transfer(WATER, None),
        );
        // Another department's answer.
        refuse(
            &mut v,
            &dept,
            &done("县住建局"),
            "transferred to 县水务局, not to 县住建局",
        );
        // A department cannot 督办.
        let sup = CountyStep::Supervise {
            note: note("请加快"),
            due: None,
        };
        refuse(
            &mut v,
            &dept,
            &sup,
            "督办 is not a step a department account records",
        );
        county(&mut v, "2026-03-04", &d, &done(WATER));
        refuse(&mut v, &dept, &done(WATER), "needs 办理中 after a 转办");
        refuse(&mut v, &dept, &progress(WATER), "needs 办理中 after a 转办");
    }

    #[test]
    fn supervision_from_the_console_moves_the_due_date() {
        let (mut relay, _cadre, d) = transferred();
        assert!(
            relay
                .demand_fold(&d)
                .unwrap()
                .is_overdue(date("2026-03-25"))
        );
        county(
            &mut relay,
            "2026-03-21",
            &d,
            &CountyStep::Supervise {
                note: note("请于月底前办结"),
                due: Some(date("2026-03-31")),
            },
        );
        let f = relay.demand_fold(&d).unwrap();
        assert_eq!(f.due, Some(date("2026-03-31")));
        assert!(!f.is_overdue(date("2026-03-25")));
        assert!(f.is_overdue(date("2026-04-01")));
        assert_eq!(f.status, DemandStatus::InProgress);
    }

    /// A department's event on the relay and a cadre's offline event on the
    /// same demand, merged in both orders (`converge`): every replica folds
    /// the same, and the invalid one is kept and flagged.
    #[test]
    fn department_and_cadre_offline_fold_identically_in_both_orders() {
        struct Case {
            done_day: &'static str,
            cadre_day: &'static str,
            cadre_step: Transition,
            status: DemandStatus,
            flag: Option<&'static str>,
        }
        let feedback = || Transition::Feedback {
            text: note("已电话告知"),
        };
        let cases = [
            // 办结 first, then the cadre's 反馈: both apply.
            Case {
                done_day: "2026-03-05",
                cadre_day: "2026-03-06",
                cadre_step: feedback(),
                status: DemandStatus::Answered,
                flag: None,
            },
            // The cadre answered before the department: its 办结 comes too late.
            Case {
                done_day: "2026-03-06",
                cadre_day: "2026-03-05",
                cadre_step: feedback(),
                status: DemandStatus::Answered,
                flag: Some("办结 by 张科长 while 已反馈 — needs 办理中 after a 转办, not applied"),
            },
            // The cadre transferred it elsewhere offline before the 办结.
            Case {
                done_day: "2026-03-06",
                cadre_day: "2026-03-05",
                cadre_step: transfer("县住建局", None),
                status: DemandStatus::InProgress,
                flag: Some(
                    "办结 by 张科长 for 县水务局, but the demand is transferred to 县住建局 — not applied",
                ),
            },
            // …or after it: the re-transfer needs 重开 first.
            Case {
                done_day: "2026-03-05",
                cadre_day: "2026-03-06",
                cadre_step: transfer("县住建局", None),
                status: DemandStatus::Done,
                flag: Some("转办 by 王芳 while 已办结 — needs 受理 or 办理中, not applied"),
            },
        ];
        for c in cases {
            let (mut relay, mut cadre, d) = transferred();
            county(&mut relay, c.done_day, &d, &done(WATER));
            let mut laptop = fork(&mut cadre, DEV_B);
            step(&mut laptop, DEV_B, "王芳", c.cadre_day, &d, &c.cadre_step);
            let f = converge(&mut relay, &mut laptop, &d);
            let label = format!(
                "done {} / {:?} {}",
                c.done_day,
                c.cadre_step.kind(),
                c.cadre_day
            );
            assert_eq!(f.status, c.status, "{label}");
            assert_eq!(f.steps.len(), 4, "{label}: every event is kept");
            assert_eq!(
                flags(&f),
                c.flag.map(str::to_owned).into_iter().collect::<Vec<_>>(),
                "{label}"
            );
        }
    }
}
