//! Finding a record by id or unique prefix across every village held.

use minqing_model::{IdPrefix, RecordKind, Village};

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
