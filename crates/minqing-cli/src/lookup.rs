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
