//! A card's class map resolved against a dataset's categories: the category id of each class
//! index, or `None` for a class the dataset does not have (its detections are dropped before
//! NMS, as Ultralytics' `classes=` filter drops them).

use super::schema::{ClassMapKind, Classes};
use detbench_eval::labels::COCO80_TO_91;

/// One category of the dataset being evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetCategory {
    pub id: u64,
    pub name: String,
}

/// Why a class map does not fit the dataset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassMapError {
    #[error(
        "model `{model}`: class {index} (`{name}`) matches no category of the dataset (its categories: {available}); \
         rename it in the card's `[classes] names`, or set `[classes] unmatched = \"drop\"` to ignore classes the dataset lacks"
    )]
    Unmatched {
        model: String,
        index: usize,
        name: String,
        available: String,
    },
    #[error(
        "model `{model}`: `[classes] map = \"by-name\"` needs `[classes] names` (one per class, {classes} classes)"
    )]
    NoNames { model: String, classes: usize },
    #[error("model `{model}`: `[classes] names` has {names} names for {classes} classes")]
    NameCount {
        model: String,
        names: usize,
        classes: usize,
    },
}

/// The category id of each of `classes` class indices for a dataset with `categories`.
///
/// `by-name` matches names exactly (case-sensitive, as COCO's are); the other maps give ids
/// (`coco80`, `identity`, `from-one`, or explicit `ids`) that must be categories of the dataset.
/// A class with no category is an error naming the first such class, unless `drop_unmatched`.
pub fn class_map(
    model: &str,
    spec: &Classes,
    classes: usize,
    categories: &[DatasetCategory],
    drop_unmatched: bool,
) -> Result<Vec<Option<u64>>, ClassMapError> {
    let available = || {
        categories
            .iter()
            .map(|c| format!("{} `{}`", c.id, c.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name_of = |index: usize| {
        spec.names
            .as_ref()
            .and_then(|n| n.get(index).cloned())
            .unwrap_or_else(|| format!("class {index}"))
    };
    if let Some(names) = &spec.names
        && names.len() != classes
    {
        return Err(ClassMapError::NameCount {
            model: model.to_owned(),
            names: names.len(),
            classes,
        });
    }
    let proposed: Vec<Option<u64>> = match (spec.map, &spec.ids) {
        (_, Some(ids)) => ids.iter().map(|&id| Some(id)).collect(),
        (Some(ClassMapKind::ByName), None) => {
            let names = spec.names.as_ref().ok_or_else(|| ClassMapError::NoNames {
                model: model.to_owned(),
                classes,
            })?;
            names
                .iter()
                .map(|n| categories.iter().find(|c| &c.name == n).map(|c| c.id))
                .collect()
        }
        (Some(ClassMapKind::Coco80) | None, None) if classes == 80 => {
            COCO80_TO_91.iter().map(|&id| Some(id)).collect()
        }
        (Some(ClassMapKind::Identity), None) => (0..classes as u64).map(Some).collect(),
        _ => (1..=classes as u64).map(Some).collect(),
    };
    let mut out = Vec::with_capacity(classes);
    for (index, id) in proposed.into_iter().enumerate().take(classes) {
        let known = id.filter(|id| categories.iter().any(|c| c.id == *id));
        if known.is_none() && !drop_unmatched {
            return Err(ClassMapError::Unmatched {
                model: model.to_owned(),
                index,
                name: name_of(index),
                available: available(),
            });
        }
        out.push(known);
    }
    Ok(out)
}
