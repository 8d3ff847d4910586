//! Form posts, parsed and checked: `application/x-www-form-urlencoded` bodies
//! (and query strings) into fields, then into the model's checked inputs
//! (`NewVisit`, `NewDemand`, `Transition`) with the model's own validation, so
//! the browser and the CLI refuse the same things with the same reasons.
//! The service checks the CSRF field ([`crate::CSRF_FIELD`]) before using a
//! form, writes through `Village`, and saves.

use chrono::NaiveDate;
use minqing_model::{
    Category, DemandText, Department, EventKind, Gender, Id, IdCardNumber, LeaveReason, Month,
    NewDemand, NewResident, NewVisit, Note, PersonName, Phone, ReadVillage, RecordKind, Relation,
    ResidentFields, Satisfaction, Tag, Transition, VisitKind, parse_date, parse_past_date,
};

/// The most fields a form may carry, and the longest body parsed; anything
/// beyond is ignored (the service bounds the body it reads too).
pub const MAX_FIELDS: usize = 64;

/// A parsed form or query string: fields in the order sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses `a=1&b=%E6%9D%8E+x` (a query string without `?`, or a
    /// urlencoded body). Malformed escapes are kept as written; invalid UTF-8
    /// becomes U+FFFD. Never panics.
    pub fn parse(body: &str) -> Form {
        let fields = body
            .split('&')
            .filter(|p| !p.is_empty())
            .take(MAX_FIELDS)
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (decode(k), decode(v))
            })
            .collect();
        Form { fields }
    }

    /// The first value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every non-blank value of `name`, trimmed (checkboxes).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name`, trimmed, if sent and not blank.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str, label: &'static str) -> Result<&str, FormError> {
        self.value(name).ok_or(FormError::Missing { field: label })
    }

    fn id(&self, name: &'static str, label: &'static str) -> Result<Id, FormError> {
        let raw = self.required(name, label)?;
        Id::parse(raw).map_err(|e| FormError::Invalid {
            field: label,
            reason: crate::zh::error(&e),
        })
    }
}

/// Percent-decoding with `+` as a space.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Why a form was refused; shown to the cadre above the form, which keeps
/// what they typed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A required field is empty.
    #[error("请填写“{field}”")]
    Missing {
        /// The field's label.
        field: &'static str,
    },
    /// A field's value fails its check.
    #[error("“{field}”有误：{reason}")]
    Invalid {
        /// The field's label.
        field: &'static str,
        /// The model's reason.
        reason: String,
    },
    /// An unknown step name.
    #[error("未知的办理步骤：{0}")]
    UnknownStep(String),
}

fn invalid(field: &'static str) -> impl Fn(minqing_model::ValidationError) -> FormError {
    move |e| FormError::Invalid {
        field,
        reason: crate::zh::validation(&e),
    }
}

/// The visit form (`POST` [`crate::routes::VISITS`]): `household` (full id),
/// `resident` (full id, optional), `kind` (普遍走访/重点走访/补访), `note`,
/// `date` (`YYYY-MM-DD`, not after `today`; today when empty).
pub fn visit(form: &Form, today: NaiveDate) -> Result<NewVisit, FormError> {
    let household = form.id("household", "住户")?;
    let resident = match form.value("resident") {
        Some(_) => Some(form.id("resident", "走访对象")?),
        None => None,
    };
    let kind = VisitKind::parse(form.required("kind", "走访类型")?).map_err(invalid("走访类型"))?;
    let note = Note::parse(form.required("note", "走访记录")?).map_err(invalid("走访记录"))?;
    let date = match form.value("date") {
        Some(d) => parse_past_date("date", d, today).map_err(invalid("日期"))?,
        None => today,
    };
    Ok(NewVisit {
        household,
        resident,
        kind,
        note,
        date,
    })
}

/// The form opening a demand (`POST` [`crate::routes::DEMANDS`]): `resident`
/// (full id), `category`, `text`.
pub fn demand(form: &Form) -> Result<NewDemand, FormError> {
    Ok(NewDemand {
        resident: form.id("resident", "居民")?,
        category: Category::parse(form.required("category", "类别")?).map_err(invalid("类别"))?,
        text: DemandText::parse(form.required("text", "诉求内容")?).map_err(invalid("诉求内容"))?,
    })
}

/// The steps of the closed loop the demand page offers, in order, with the
/// form value (`step=`) that names each.
pub const STEPS: &[(EventKind, &str)] = &[
    (EventKind::Handled, "handle"),
    (EventKind::Transferred, "transfer"),
    (EventKind::Supervised, "supervise"),
    (EventKind::Feedback, "feedback"),
    (EventKind::Revisited, "revisit"),
    (EventKind::Closed, "close"),
    (EventKind::Reopened, "reopen"),
];

/// A step form (`POST /demand/<id>/step`): `step` (handle, transfer,
/// supervise, feedback, revisit, close, reopen) and its fields: `department`
/// and `due` for transfer, `note` for supervise (and an optional one for
/// revisit), `text` for feedback, `satisfaction` for revisit, `reason` for
/// reopen. The model checks the step against the demand's state when it is
/// recorded (`Village::record_step`).
pub fn step(form: &Form) -> Result<Transition, FormError> {
    let step = form.required("step", "办理步骤")?;
    let note = |name: &'static str, label: &'static str| -> Result<Note, FormError> {
        Note::parse(form.required(name, label)?).map_err(invalid(label))
    };
    Ok(match step {
        "handle" => Transition::Handle,
        "transfer" => Transition::Transfer {
            department: Department::parse(form.required("department", "承办部门")?)
                .map_err(invalid("承办部门"))?,
            due: form
                .value("due")
                .map(parse_date)
                .transpose()
                .map_err(invalid("办理期限"))?,
        },
        "supervise" => Transition::Supervise {
            note: note("note", "督办意见")?,
        },
        "feedback" => Transition::Feedback {
            text: note("text", "反馈内容")?,
        },
        "revisit" => Transition::Revisit {
            satisfaction: Satisfaction::parse(form.required("satisfaction", "满意度")?).map_err(
                |e| FormError::Invalid {
                    field: "满意度",
                    reason: crate::zh::error(&e),
                },
            )?,
            note: form
                .value("note")
                .map(Note::parse)
                .transpose()
                .map_err(invalid("回访记录"))?,
        },
        "close" => Transition::Close,
        "reopen" => Transition::Reopen {
            reason: note("reason", "重开原因")?,
        },
        other => return Err(FormError::UnknownStep(other.to_owned())),
    })
}

/// The new-resident form (`POST` [`crate::routes::RESIDENTS`]): `household`
/// (full id), `name`, and optional `gender`, `id_card`, `phone`, `relation`,
/// `tag` (repeated). A 身份证号 that contradicts the gender is refused, as
/// `minqing resident add` refuses it.
pub fn resident(form: &Form, today: NaiveDate) -> Result<NewResident, FormError> {
    let household = form.id("household", "住户")?;
    let name = PersonName::parse(form.required("name", "姓名")?).map_err(invalid("姓名"))?;
    let gender = form
        .value("gender")
        .map(Gender::parse)
        .transpose()
        .map_err(invalid("性别"))?;
    let id_card = form
        .value("id_card")
        .map(|c| IdCardNumber::parse(c, today))
        .transpose()
        .map_err(invalid("身份证号"))?;
    let phone = form
        .value("phone")
        .map(Phone::parse)
        .transpose()
        .map_err(invalid("联系电话"))?;
    let relation = form
        .value("relation")
        .map(Relation::parse)
        .transpose()
        .map_err(invalid("与户主关系"))?;
    let tags = form
        .all("tag")
        .map(Tag::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid("人员类别"))?;
    if let Some(card) = &id_card {
        card.check_consistent(None, gender)
            .map_err(|e| FormError::Invalid {
                field: "身份证号",
                reason: crate::zh::error(&e),
            })?;
    }
    Ok(NewResident {
        fields: ResidentFields {
            gender,
            id_card,
            phone,
            relation,
            ..ResidentFields::default()
        },
        tags,
        ..NewResident::new(household, name)
    })
}

/// The leave form (`POST` [`crate::routes::LEAVES`]): `month` (`YYYY-MM`),
/// `reason`, `village` (its id; may be empty when the laptop holds one).
pub fn leave(form: &Form) -> Result<(Month, LeaveReason, Option<String>), FormError> {
    let month = Month::parse(form.required("month", "请假月份")?).map_err(invalid("请假月份"))?;
    let reason =
        LeaveReason::parse(form.required("reason", "请假原因")?).map_err(invalid("请假原因"))?;
    Ok((month, reason, form.value("village").map(str::to_owned)))
}

/// Which of `villages` holds the record `id` of `kind` (one map lookup each).
pub fn village_of<V: ReadVillage + ?Sized>(
    villages: &[&V],
    kind: RecordKind,
    id: &Id,
) -> Option<usize> {
    villages.iter().position(|v| v.contains(kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::date;

    #[test]
    fn urlencoded_bodies_decode() {
        let f = Form::parse("q=%E6%9D%8E%E7%A7%80%E8%8B%B1&tag=&note=a+b%0Ac&x=%ZZ&y=%4");
        assert_eq!(f.get("q"), Some("李秀英"));
        assert_eq!(f.get("tag"), Some(""));
        assert_eq!(f.value("tag"), None);
        assert_eq!(f.get("note"), Some("a b\nc"));
        assert_eq!(f.get("x"), Some("%ZZ"));
        assert_eq!(f.get("y"), Some("%4"));
        assert_eq!(Form::parse("%FF=%C3").get("\u{fffd}"), Some("\u{fffd}"));
        assert_eq!(Form::parse("").get("a"), None);
        assert_eq!(Form::parse("a&b=1").get("a"), Some(""));
    }

    const H: &str = "k4fa5j71yy7sa1dk";

    #[test]
    fn visit_form_uses_the_model_checks() {
        let today = date("2026-03-15");
        let f = Form::parse(&format!(
            "household={H}&kind=%E9%87%8D%E7%82%B9%E8%B5%B0%E8%AE%BF&note=hi"
        ));
        let v = visit(&f, today).unwrap();
        assert_eq!(v.kind, VisitKind::Key);
        assert_eq!(v.date, today, "today by default");
        assert_eq!(v.resident, None);
        let future = Form::parse(&format!("household={H}&kind=key&note=hi&date=2026-03-16"));
        assert!(matches!(
            visit(&future, today),
            Err(FormError::Invalid {
                field: "日期", ..
            })
        ));
        let empty = Form::parse(&format!("household={H}&kind=key&note=+"));
        assert_eq!(
            visit(&empty, today),
            Err(FormError::Missing {
                field: "走访记录"
            })
        );
        let bad = Form::parse("household=short&kind=key&note=x");
        assert!(matches!(
            visit(&bad, today),
            Err(FormError::Invalid {
                field: "住户", ..
            })
        ));
        let bidi = Form::parse(&format!("household={H}&kind=key&note=a%E2%80%AEb"));
        assert!(matches!(
            visit(&bidi, today),
            Err(FormError::Invalid {
                field: "走访记录",
                ..
            })
        ));
    }

    #[test]
    fn step_forms_carry_their_fields() {
        let t = step(&Form::parse(
            "step=transfer&department=%E6%B0%B4%E5%8A%A1%E5%B1%80&due=2026-03-10",
        ))
        .unwrap();
        assert_eq!(t.kind(), EventKind::Transferred);
        assert_eq!(t.fields()["due"], "2026-03-10");
        assert_eq!(step(&Form::parse("step=close")).unwrap(), Transition::Close);
        assert!(matches!(
            step(&Form::parse("step=revisit&satisfaction=so-so")),
            Err(FormError::Invalid {
                field: "满意度",
                ..
            })
        ));
        assert_eq!(
            step(&Form::parse("step=feedback")),
            Err(FormError::Missing {
                field: "反馈内容"
            })
        );
        assert_eq!(
            step(&Form::parse("step=delete")),
            Err(FormError::UnknownStep("delete".into()))
        );
        assert_eq!(
            FormError::Missing {
                field: "反馈内容"
            }
            .to_string(),
            "请填写“反馈内容”"
        );
    }
}
