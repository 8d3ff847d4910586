//! Finding a record by id or unique prefix across every village held: over
//! loaded villages ([`find`], [`resident`]) or through the village index
//! ([`Finder`], which loads only the village that holds the record).

use std::collections::BTreeMap;

use minqing_model::{Id, IdPrefix, RecordKind, Village};
use minqing_sync::DocId;

use crate::home::Home;
use crate::index::VillageIds;

/// The index of every village held, for one command ([`Home::index`]).
pub struct Finder<'h> {
    home: &'h Home,
    ids: Vec<(DocId, VillageIds)>,
    /// Villages loaded while their index was rebuilt, handed out once.
    loaded: BTreeMap<DocId, Village>,
}

impl<'h> Finder<'h> {
    /// An empty finder for `home`.
    pub fn new(home: &'h Home) -> Finder<'h> {
        Finder {
            home,
            ids: Vec::new(),
            loaded: BTreeMap::new(),
        }
    }

    /// Adds a village's ids (and the village, if it was loaded for them).
    pub fn add(&mut self, doc: DocId, ids: VillageIds, loaded: Option<Village>) {
        if let Some(v) = loaded {
            self.loaded.insert(doc.clone(), v);
        }
        self.ids.push((doc, ids));
    }

    /// The one record of `kind` whose id starts with `typed`, and its village:
    /// the same candidates, so the same answer and errors, as [`find`] over
    /// every village loaded.
    pub fn find(&self, kind: RecordKind, typed: &str) -> anyhow::Result<(DocId, Id)> {
        let prefix = IdPrefix::parse(typed)?;
        let candidates = self.ids.iter().flat_map(|(doc, ids)| {
            ids.with_prefix(kind, &prefix)
                .filter_map(|id| Id::parse(id).ok())
                .map(move |id| (id.clone(), (doc.clone(), id)))
                .collect::<Vec<_>>()
        });
        Ok(prefix.resolve(kind.name(), candidates)?)
    }

    /// Finds the one record of `kind` named by `typed` (id or unique
    /// prefix) and loads only its village. An index that does not lead to the
    /// record, or an error (unknown, ambiguous), is checked the old way, over
    /// every village loaded, so answers and errors are those of a full read.
    pub fn record(&mut self, kind: RecordKind, typed: &str) -> anyhow::Result<(Village, Id)> {
        if let Ok((doc, id)) = self.find(kind, typed)
            && let Some(v) = self.take(&doc)?
            && v.contains(kind, &id)
        {
            return Ok((v, id));
        }
        let mut all = self.home.villages()?;
        let (i, id) = find(&all, kind, typed)?;
        Ok((all.swap_remove(i), id))
    }

    /// The village `doc`, loaded (once per finder from what the index
    /// rebuild loaded, else from the store); `None` if not held.
    pub fn take(&mut self, doc: &DocId) -> anyhow::Result<Option<Village>> {
        match self.loaded.remove(doc) {
            Some(v) => Ok(Some(v)),
            None => self.home.village(doc),
        }
    }

    /// The village as loaded to rebuild its index, if it was (taken out).
    pub fn loaded(&mut self, doc: &DocId) -> Option<Village> {
        self.loaded.remove(doc)
    }
}

/// Finds the one record of `kind` whose id starts with `typed` among
/// `villages`; returns the index of its village and its full id.
pub fn find(
    villages: &[Village],
    kind: RecordKind,
    typed: &str,
) -> anyhow::Result<(usize, minqing_model::Id)> {
    let prefix = IdPrefix::parse(typed)?;
    let candidates = villages.iter().enumerate().flat_map(|(i, v)| {
        v.ids_with_prefix(kind, &prefix)
            .into_iter()
            .map(move |id| (id.clone(), (i, id)))
    });
    Ok(prefix.resolve(kind.name(), candidates)?)
}

/// Finds a resident named by id (or unique prefix) or by name: by name when
/// `typed` is not an id that matches, among the residents of `household`
/// (in village `villages[in_village]`) when given, else among every village
/// held. A name held by several residents is refused with their ids, so the
/// cadre can pick one.
pub fn resident(
    villages: &[Village],
    typed: &str,
    household: Option<(usize, &minqing_model::Id)>,
) -> anyhow::Result<(usize, minqing_model::Id)> {
    let by_id = find(villages, RecordKind::Resident, typed);
    let Err(id_error) = by_id else {
        return by_id;
    };
    by_name(villages, typed, household, id_error)
}

/// The resident named `typed` among `villages` (within `household` when
/// given); `id_error` is the answer when `typed` is no name at all (ASCII)
/// and matches nobody.
pub fn by_name(
    villages: &[Village],
    typed: &str,
    household: Option<(usize, &minqing_model::Id)>,
    id_error: anyhow::Error,
) -> anyhow::Result<(usize, minqing_model::Id)> {
    let name = minqing_model::text::trim(typed);
    let mut hits = Vec::new();
    for (i, v) in villages.iter().enumerate() {
        if household.is_some_and(|(hv, _)| hv != i) {
            continue;
        }
        for r in v.residents() {
            if r.name == name
                && household.is_none_or(|(_, h)| r.household_id == h.as_str())
                && let Ok(id) = minqing_model::Id::parse(&r.id)
            {
                hits.push((i, id, r.address.clone()));
            }
        }
    }
    match hits.len() {
        1 => {
            let (i, id, _) = hits.remove(0);
            Ok((i, id))
        }
        0 if !name.is_ascii() => {
            let place = match household {
                Some((_, h)) => format!("household {h}"),
                None => "any village on this laptop".to_owned(),
            };
            anyhow::bail!(
                "no resident named {name} in {place}: check the name, or give the resident's id (`minqing resident list --search {name}`)"
            )
        }
        0 => Err(id_error),
        n => anyhow::bail!(
            "{n} residents are named {name}: give the id of the one you mean — {}",
            hits.iter()
                .map(|(_, id, address)| format!("{id} ({address})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
