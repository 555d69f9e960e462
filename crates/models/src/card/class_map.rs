//! A card's class map resolved against a dataset's categories: the category id of each class
//! index, or `None` for a class the dataset does not have (its detections are dropped before
//! NMS, as Ultralytics' `classes=` filter drops them).
//!
//! The map (`[classes] map`):
//! - `by-name`: each class name matched to the dataset's category of that name;
//! - `coco80` (COCO's 80 classes in COCO's order -> COCO's ids), `identity` (the index is the
//!   id), `from-one` (`index + 1`, Ultralytics' validator on non-COCO data) or explicit `ids`:
//!   each id must be a category of the dataset, and where the class's name is known (the card's
//!   or the file's `names`; COCO's names for `coco80`) the category must carry that name, so a
//!   COCO model on a renumbered dataset is refused rather than scored against the wrong classes;
//! - absent: `by-name` when the class names and the dataset's categories are both known, else
//!   `coco80` for 80 classes with COCO's names or none, `identity` for 91 unnamed classes
//!   (torchvision's label space), `from-one` otherwise.
//!
//! Without a dataset (a speed-only run) the ids are taken as the map gives them.

use super::schema::{ClassMapKind, Classes, Unmatched};
use detbench_eval::labels::{COCO80_NAMES, COCO80_TO_91};

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
        "model `{model}`: class {index} (`{name}`) {why} (the dataset's categories: {available}); \
         match classes by name with `[classes] map = \"by-name\"` (and `names`), or set \
         `[classes] unmatched = \"drop\"` to ignore the classes the dataset lacks"
    )]
    Unmatched {
        model: String,
        index: usize,
        name: String,
        why: String,
        available: String,
    },
    #[error(
        "model `{model}`: `[classes] map = \"by-name\"` needs class names, and neither the card \
         (`[classes] names`, one per class) nor the file gives them ({classes} classes)"
    )]
    NoNames { model: String, classes: usize },
    #[error("model `{model}`: `[classes] names` has {names} names for {classes} classes")]
    NameCount {
        model: String,
        names: usize,
        classes: usize,
    },
    #[error("model `{model}`: `[classes] ids` has {ids} ids for {classes} classes")]
    IdCount {
        model: String,
        ids: usize,
        classes: usize,
    },
}

/// The category id of each of `classes` class indices. `names` are the class names the model
/// file carries (a card's `[classes] names` win over them); `categories` are the dataset's
/// (`None`: no dataset to check against).
pub fn class_map(
    model: &str,
    spec: &Classes,
    classes: usize,
    names: Option<&[String]>,
    categories: Option<&[DatasetCategory]>,
) -> Result<Vec<Option<u64>>, ClassMapError> {
    let names: Option<Vec<String>> = spec.names.clone().or_else(|| names.map(<[_]>::to_vec));
    if let Some(names) = &names
        && names.len() != classes
    {
        return Err(ClassMapError::NameCount {
            model: model.to_owned(),
            names: names.len(),
            classes,
        });
    }
    if let Some(ids) = &spec.ids
        && ids.len() != classes
    {
        return Err(ClassMapError::IdCount {
            model: model.to_owned(),
            ids: ids.len(),
            classes,
        });
    }
    let coco_names = classes == 80
        && names
            .as_ref()
            .is_none_or(|n| n.iter().zip(COCO80_NAMES).all(|(a, b)| a == b));
    let kind = match (spec.map, categories) {
        // Explicit ids are matched by id (and name, where known).
        _ if spec.ids.is_some() => ClassMapKind::Identity,
        (Some(ClassMapKind::ByName) | None, None) => default_kind(coco_names, &names, classes),
        (Some(kind), _) => kind,
        (None, Some(_)) if names.is_some() || coco_names => ClassMapKind::ByName,
        (None, Some(_)) => default_kind(coco_names, &names, classes),
    };
    // The names the classes are known by: the given ones, or COCO's for 80 unnamed classes
    // mapped the COCO way or by name.
    let coco_map = matches!(kind, ClassMapKind::Coco80 | ClassMapKind::ByName);
    let known_names: Option<Vec<String>> = names.or_else(|| {
        (classes == 80 && coco_map).then(|| COCO80_NAMES.iter().map(|s| (*s).to_owned()).collect())
    });
    if kind == ClassMapKind::ByName && known_names.is_none() && categories.is_some() {
        return Err(ClassMapError::NoNames {
            model: model.to_owned(),
            classes,
        });
    }
    let Some(categories) = categories else {
        return Ok(proposed_ids(
            spec,
            kind,
            classes,
            known_names.as_deref(),
            &[],
        ));
    };
    let ids = proposed_ids(spec, kind, classes, known_names.as_deref(), categories);
    let drop = spec.unmatched == Some(Unmatched::Drop);
    let mut out = Vec::with_capacity(classes);
    for (index, id) in ids.into_iter().enumerate() {
        let name = known_names.as_ref().map(|n| n[index].as_str());
        match unmatched_reason(kind, id, name, categories) {
            None => out.push(id),
            Some(_) if drop => out.push(None),
            Some(why) => {
                return Err(ClassMapError::Unmatched {
                    model: model.to_owned(),
                    index,
                    name: name.map_or_else(|| format!("class {index}"), str::to_owned),
                    why,
                    available: categories
                        .iter()
                        .map(|c| format!("{} `{}`", c.id, c.name))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
    }
    Ok(out)
}

/// The map of a card that names none, without a dataset to match names against.
fn default_kind(coco_names: bool, names: &Option<Vec<String>>, classes: usize) -> ClassMapKind {
    if coco_names {
        ClassMapKind::Coco80
    } else if names.is_none() && classes == 91 {
        ClassMapKind::Identity
    } else {
        ClassMapKind::FromOne
    }
}

/// The id each class gets from the map (`None`: a name no category has).
fn proposed_ids(
    spec: &Classes,
    kind: ClassMapKind,
    classes: usize,
    names: Option<&[String]>,
    categories: &[DatasetCategory],
) -> Vec<Option<u64>> {
    if let Some(ids) = &spec.ids {
        return ids.iter().map(|&id| Some(id)).collect();
    }
    match kind {
        ClassMapKind::ByName if !categories.is_empty() => (0..classes)
            .map(|index| {
                let name = names.map(|n| n[index].as_str())?;
                categories.iter().find(|c| c.name == name).map(|c| c.id)
            })
            .collect(),
        ClassMapKind::Coco80 if classes == 80 => COCO80_TO_91.iter().map(|&id| Some(id)).collect(),
        ClassMapKind::Identity => (0..classes as u64).map(Some).collect(),
        _ => (1..=classes as u64).map(Some).collect(),
    }
}

/// Why class `name` with proposed `id` does not fit `categories`, if it does not.
fn unmatched_reason(
    kind: ClassMapKind,
    id: Option<u64>,
    name: Option<&str>,
    categories: &[DatasetCategory],
) -> Option<String> {
    let Some(id) = id else {
        return Some("has no category of that name".to_owned());
    };
    let Some(category) = categories.iter().find(|c| c.id == id) else {
        return Some(format!(
            "maps to category id {id}, which the dataset does not have"
        ));
    };
    match name {
        Some(name) if kind != ClassMapKind::ByName && category.name != name => Some(format!(
            "maps to category {id}, which the dataset calls `{}`",
            category.name
        )),
        _ => None,
    }
}
