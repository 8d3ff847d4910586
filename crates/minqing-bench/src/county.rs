//! The county generator: deterministic villages (households, residents with valid
//! 身份证号 and tags, a year of monthly visits, demands) built through the
//! `minqing-model` API, so every record is exactly what the CLI would write.
//!
//! Every model write is one automerge commit (the model commits per record, as
//! the CLI does), so the history is realistic: one change per household,
//! resident, visit and demand, by one of the village's three cadres.

use anyhow::{Context, Result};
use chrono::{Datelike, NaiveDate, NaiveTime};
use minqing_model::{
    Address, Author, Category, DemandStatus, DemandText, Department, Gender, HouseholdNumber, Id,
    IdCardNumber, NewDemand, NewHousehold, NewResident, NewVisit, Note, PersonName, Phone,
    Relation, ResidentFields, Satisfaction, Tag, Transition, Village, VisitKind, new_village,
};
use minqing_sync::DocId;
use rand::Rng;
use rand::rngs::StdRng;

use crate::text;

/// How big one generated village is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VillageSize {
    /// Households (1–6 residents each, about 3.3 on average).
    pub households: usize,
    /// Visits over the year.
    pub visits: usize,
    /// Demands opened over the year.
    pub demands: usize,
}

impl VillageSize {
    /// A full village of the `device` profile: ~1,250 residents, 5,000 visits, 500 demands.
    pub const FULL: VillageSize = VillageSize {
        households: 380,
        visits: 5_000,
        demands: 500,
    };
    /// A small village of the rest of the county: ~65 residents, a monthly visit
    /// to every household, 10 demands.
    pub const LIGHT: VillageSize = VillageSize {
        households: 20,
        visits: 240,
        demands: 10,
    };
    /// A tiny village for `--quick` runs.
    pub const TINY: VillageSize = VillageSize {
        households: 8,
        visits: 40,
        demands: 4,
    };
}

/// The year the generated visits cover.
pub const YEAR: i32 = 2024;

/// "Today" for 身份证号 checks: the day after the generated year.
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(YEAR + 1, 1, 1).unwrap_or(NaiveDate::MIN)
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    // Only called with valid calendar dates from this file.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// Unix milliseconds at a random time of the working day on `date`.
pub fn ms_on(rng: &mut impl Rng, date: NaiveDate) -> i64 {
    let secs = rng.random_range(8 * 3600..18 * 3600);
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap_or(NaiveTime::MIN);
    date.and_time(t).and_utc().timestamp_millis()
}

/// A cadre of a village's service team.
#[derive(Debug, Clone)]
pub struct Cadre {
    /// Device id (also the automerge actor of the cadre's changes).
    pub device_id: Id,
    /// Name.
    pub name: PersonName,
}

impl Cadre {
    /// A cadre with a random name and device id.
    pub fn random(rng: &mut StdRng) -> Result<Cadre> {
        let male = rng.random_bool(0.5);
        let name = format!("{}{}", text::surname(rng), text::given_name(rng, male));
        Ok(Cadre {
            device_id: Id::random(rng),
            name: PersonName::parse(&name)?,
        })
    }

    /// Writing as this cadre at `now_ms`.
    pub fn author(&self, now_ms: i64) -> Author {
        Author {
            device_id: self.device_id.clone(),
            cadre: self.name.clone(),
            now_ms,
        }
    }
}

/// What one generated village is called.
#[derive(Debug, Clone)]
pub struct VillageInfo {
    /// Document id.
    pub id: DocId,
    /// Name.
    pub name: String,
    /// Township.
    pub township: String,
}

/// Builds one village in memory. `relay_actor` makes the creating change, as
/// `minqing-relay village add` would; the records are written by three cadres.
pub fn build_village(
    rng: &mut StdRng,
    index: usize,
    size: VillageSize,
    relay_actor: &[u8],
) -> Result<(VillageInfo, Village)> {
    let id = DocId::new(format!("V{index:04}"))?;
    let name = text::village_name(rng, index);
    let township = text::township(rng).to_owned();
    let created = ymd(YEAR - 1, 12, 1)
        .and_hms_opt(9, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis());
    let doc = new_village(&id, &name, Some(&township), relay_actor, created)
        .with_context(|| format!("creating village {id}"))?;
    let mut village = Village::from_new_doc(id.clone(), doc)?;
    let team: Vec<Cadre> = (0..3).map(|_| Cadre::random(rng)).collect::<Result<_>>()?;
    let region = format!("3307{:02}", 81 + index % 3);
    let households = add_households(&mut village, rng, &team, &name, &region, size.households)?;
    add_visits(&mut village, rng, &team, &households, size.visits)?;
    add_demands(&mut village, rng, &team, &households, size.demands)?;
    Ok((VillageInfo { id, name, township }, village))
}

/// A household's id and its residents' ids.
type Household = (Id, Vec<Id>);

/// Households and residents, registered in December of the year before.
fn add_households(
    village: &mut Village,
    rng: &mut StdRng,
    team: &[Cadre],
    name: &str,
    region: &str,
    n: usize,
) -> Result<Vec<Household>> {
    let mut households: Vec<Household> = Vec::with_capacity(n);
    for h in 0..n {
        let cadre = &team[h % team.len()];
        let when = ms_on(rng, ymd(YEAR - 1, 12, 1 + (h % 28) as u32));
        village.set_actor(cadre.device_id.as_bytes());
        let author = cadre.author(when);
        let group = 1 + h / 40;
        let address = Address::parse(&format!("{name}{group}组{}号", 1 + h % 40))?;
        let hid = village.add_household(
            rng,
            &author,
            &NewHousehold {
                address,
                number: Some(HouseholdNumber::parse(&format!("{:04}", h + 1))?),
            },
        )?;
        let members = household_members(rng, region)?;
        let mut rids = Vec::with_capacity(members.len());
        for m in members {
            let rid = village.add_resident(
                rng,
                &author,
                &NewResident {
                    household: hid.clone(),
                    ..m
                },
            )?;
            rids.push(rid);
        }
        households.push((hid, rids));
    }
    Ok(households)
}

/// A year of visits: spread evenly over the months, households drawn at random.
fn add_visits(
    village: &mut Village,
    rng: &mut StdRng,
    team: &[Cadre],
    households: &[Household],
    n: usize,
) -> Result<()> {
    for i in 0..n {
        let month = (i * 12 / n.max(1)) as u32 + 1;
        let date = text::date_between(rng, ymd(YEAR, month, 1), ymd(YEAR, month, 28));
        let (hid, rids) = &households[rng.random_range(0..households.len())];
        let cadre = &team[rng.random_range(0..team.len())];
        village.set_actor(cadre.device_id.as_bytes());
        let kind = *text::weighted(
            rng,
            &[
                (VisitKind::Regular, 75),
                (VisitKind::Key, 20),
                (VisitKind::Makeup, 5),
            ],
        );
        let resident = (rng.random_bool(0.5) && !rids.is_empty())
            .then(|| rids[rng.random_range(0..rids.len())].clone());
        let note = text::note(rng);
        let author = cadre.author(ms_on(rng, date));
        village.log_visit(
            rng,
            &author,
            &NewVisit {
                household: hid.clone(),
                resident,
                kind,
                note: Note::parse(&note)?,
                date,
            },
        )?;
    }
    Ok(())
}

/// Demands opened over the year, each taken some way along its closed loop.
fn add_demands(
    village: &mut Village,
    rng: &mut StdRng,
    team: &[Cadre],
    households: &[Household],
    n: usize,
) -> Result<()> {
    for _ in 0..n {
        let (_, rids) = &households[rng.random_range(0..households.len())];
        if rids.is_empty() {
            continue;
        }
        let resident = rids[rng.random_range(0..rids.len())].clone();
        let cadre = &team[rng.random_range(0..team.len())];
        village.set_actor(cadre.device_id.as_bytes());
        let date = text::date_between(rng, ymd(YEAR, 1, 1), ymd(YEAR, 12, 31));
        let author = cadre.author(ms_on(rng, date));
        let category = *text::weighted(rng, text::CATEGORIES);
        let text_ = text::demand_text(rng);
        let demand = village.open_demand(
            rng,
            &author,
            &NewDemand {
                resident,
                category: Category::parse(category)?,
                text: DemandText::parse(text_)?,
            },
        )?;
        // How far along its closed loop the demand got, in rough proportions.
        let steps = *text::weighted(
            rng,
            &[(0usize, 10), (1, 15), (2, 15), (3, 15), (4, 40), (6, 5)],
        );
        let mut at = author.now_ms;
        for _ in 0..steps {
            at += rng.random_range(1..=10) * 86_400_000;
            let cadre = &team[rng.random_range(0..team.len())];
            village.set_actor(cadre.device_id.as_bytes());
            if !next_step(village, rng, &cadre.author(at), &demand)? {
                break;
            }
        }
    }
    Ok(())
}

/// Records the natural next step of a demand's closed loop (受理 → 直办/转办 →
/// 反馈 → 回访 → 销号, 销号 → 重开, sometimes a 督办 on the way). Returns false
/// when the demand does not exist.
pub fn next_step(
    village: &mut Village,
    rng: &mut StdRng,
    author: &Author,
    demand: &Id,
) -> Result<bool> {
    let Some(fold) = village.demand_fold(demand) else {
        return Ok(false);
    };
    let note = |rng: &mut StdRng| Note::parse(text::demand_text(rng));
    let step = match fold.status {
        DemandStatus::Accepted if rng.random_bool(0.5) => Transition::Handle,
        DemandStatus::Accepted => Transition::Transfer {
            department: {
                let d: &&str = text::weighted(rng, DEPARTMENTS);
                Department::parse(d)?
            },
            due: Some(
                chrono::DateTime::from_timestamp_millis(author.now_ms)
                    .map_or(today(), |t| t.date_naive())
                    + chrono::Duration::days(15),
            ),
        },
        DemandStatus::InProgress if fold.department.is_some() && rng.random_bool(0.1) => {
            Transition::Supervise { note: note(rng)? }
        }
        DemandStatus::InProgress => Transition::Feedback { text: note(rng)? },
        DemandStatus::Answered => Transition::Revisit {
            satisfaction: *text::weighted(
                rng,
                &[
                    (Satisfaction::Satisfied, 70),
                    (Satisfaction::Basic, 22),
                    (Satisfaction::Dissatisfied, 8),
                ],
            ),
            note: None,
        },
        DemandStatus::Revisited => Transition::Close,
        DemandStatus::Closed => Transition::Reopen { reason: note(rng)? },
        // A status added by a newer model: leave the demand as it is.
        _ => return Ok(false),
    };
    village
        .record_step(rng, author, demand, &step)
        .map_err(|e| anyhow::anyhow!("demand {demand}: {e}"))?;
    Ok(true)
}

const DEPARTMENTS: &[(&str, u32)] = &[
    ("镇民政办", 5),
    ("镇卫生院", 3),
    ("县交通局", 2),
    ("县水务局", 2),
    ("镇农业服务中心", 3),
    ("县人社局", 2),
];

/// The residents of one household (household id left empty), 1–6 people with
/// relations, birth dates, 身份证号, phones and tags in realistic proportions.
fn household_members(rng: &mut StdRng, region: &str) -> Result<Vec<NewResident>> {
    let size = *text::weighted(
        rng,
        &[(1usize, 15), (2, 20), (3, 22), (4, 20), (5, 13), (6, 10)],
    );
    let needy = rng.random_bool(0.04);
    let subsistence = rng.random_bool(0.03);
    let family = text::surname(rng);
    let head_male = rng.random_bool(0.8);
    let head_birth = text::date_between(rng, ymd(1945, 1, 1), ymd(1988, 12, 31));
    let mut out = Vec::with_capacity(size);
    let mut push = |rng: &mut StdRng,
                    relation: &str,
                    male: bool,
                    birth: NaiveDate,
                    surname: &str|
     -> Result<()> {
        let name = format!("{surname}{}", text::given_name(rng, male));
        let card = text::id_card(rng, region, birth, male);
        let age = YEAR - birth.year();
        let mut tags = Vec::new();
        if age >= 50 && rng.random_bool(0.08) {
            tags.push(Tag::parse("老党员")?);
        }
        if age < 16 && rng.random_bool(0.15) {
            tags.push(Tag::parse("留守儿童")?);
        }
        if size == 1 && age >= 65 {
            tags.push(Tag::parse("独居老人")?);
        }
        if rng.random_bool(0.02) {
            tags.push(Tag::parse("残疾人")?);
        }
        if male && (22..=70).contains(&age) && rng.random_bool(0.04) {
            tags.push(Tag::parse("退役军人")?);
        }
        if relation == "户主" && needy {
            tags.push(Tag::parse("困难户")?);
        }
        if relation == "户主" && subsistence {
            tags.push(Tag::parse("低保户")?);
        }
        let phone = ((18..=75).contains(&age) && rng.random_bool(0.85))
            .then(|| Phone::parse(&text::phone(rng)))
            .transpose()?;
        out.push(NewResident {
            household: Id::random(rng),
            name: PersonName::parse(&name)?,
            fields: ResidentFields {
                gender: Some(if male { Gender::Male } else { Gender::Female }),
                birth: Some(birth),
                id_card: Some(IdCardNumber::parse(&card, today())?),
                phone,
                relation: Some(Relation::parse(relation)?),
            },
            tags,
        });
        Ok(())
    };
    push(rng, "户主", head_male, head_birth, family)?;
    if size >= 2 {
        let spouse_birth = text::date_between(
            rng,
            head_birth - chrono::Duration::days(5 * 365),
            head_birth + chrono::Duration::days(5 * 365),
        );
        let spouse_family = text::surname(rng);
        push(rng, "配偶", !head_male, spouse_birth, spouse_family)?;
    }
    let mut parents = 0;
    for _ in 2..size {
        if parents == 0 && head_birth.year() > 1965 && rng.random_bool(0.3) {
            parents += 1;
            let b = text::date_between(rng, ymd(1930, 1, 1), ymd(1958, 12, 31));
            let male = rng.random_bool(0.4);
            push(rng, "父母", male, b, family)?;
        } else {
            let from = ymd((head_birth.year() + 20).min(2020), 1, 1);
            let b = text::date_between(rng, from, ymd(2020, 12, 31).max(from));
            let male = rng.random_bool(0.5);
            push(rng, "子女", male, b, family)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_same_seed_makes_the_same_village_and_another_seed_does_not() {
        let actor = [7u8; 16];
        let make = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let (_, mut v) = build_village(&mut rng, 3, VillageSize::TINY, &actor)
                .unwrap_or_else(|e| panic!("{e:#}"));
            (
                v.heads(),
                v.residents().len(),
                v.visits().len(),
                v.demands().len(),
            )
        };
        let a = make(5);
        assert_eq!(a, make(5));
        assert_ne!(a.0, make(6).0);
        assert_eq!(a.2, VillageSize::TINY.visits);
        assert_eq!(a.3, VillageSize::TINY.demands);
        assert!(a.1 >= VillageSize::TINY.households);
    }
}
