//! Reading a COCO ground-truth file the way pycocotools does: strict about what evaluation
//! reads (ids, boxes, masks, keypoints, image sizes), indifferent to the metadata it never
//! reads.
//!
//! hotcoco's fast reader types every field of the COCO format, so real exports that spell
//! metadata their own way are refused: CVAT writes `"info": {"year": ""}` and
//! `"date_captured": 0`, Roboflow `"year": "2023"`, other tools `"info": "some text"`.
//! pycocotools stores the JSON as dicts and never looks at those fields
//! (`pycocotools/coco.py`, `COCO.__init__` / `createIndex` read only `images[].id`,
//! `annotations` and `categories[].id`). So when the fast read fails on a value of the wrong
//! type, the file is read again as plain JSON, metadata values of an unexpected type are
//! dropped (with a warning naming the first), and the rest is read as strictly as before. A
//! clean file pays nothing for this.
//!
//! Also here: an annotation without an `id`. hotcoco reads a missing id as 0, and every such
//! annotation then shares one id; pycocotools stops on it (`KeyError: 'id'` in `createIndex`).
//! It is an error naming the first one.

use std::path::Path;

use hotcoco::COCO;
use hotcoco::types::{Category, Dataset, Image, Info, License};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

use crate::capture::without_hotcoco_stderr;
use crate::diagnose::{self, FileKind};
use crate::error::{EvalError, Result};

/// A ground truth as read, with what the reading has to tell the user.
pub(crate) struct Loaded {
    pub coco: COCO,
    pub warnings: Vec<String>,
}

/// Loads `path` through hotcoco's reader, falling back to the lenient reading when a value of
/// the wrong type stopped it.
pub(crate) fn load(path: &Path) -> Result<Loaded> {
    match without_hotcoco_stderr(|| COCO::new(path)) {
        Ok(coco) => {
            // hotcoco reads a missing id as 0; only then is the file probed for missing ids.
            if coco.dataset.annotations.iter().any(|a| a.id == 0) {
                let bytes = read(path)?;
                if let Ok(probe) = serde_json::from_slice::<IdProbe>(&bytes) {
                    let missing = probe.annotations.iter().map(|a| a.id.is_none());
                    check_ids(path, &coco.dataset, missing)?;
                }
            }
            let warnings = hotcoco_warnings(path, &coco);
            Ok(Loaded { coco, warnings })
        }
        Err(hotcoco::Error::Json(error)) if error.is_data() => {
            let strict = diagnose::load_error(path, FileKind::GroundTruth, error.into());
            lenient(path, strict)
        }
        Err(error) => Err(diagnose::load_error(path, FileKind::GroundTruth, error)),
    }
}

/// The second reading: plain JSON, metadata of an unexpected type dropped. `strict` is the
/// fast reader's error, returned when dropping metadata does not explain it.
fn lenient(path: &Path, strict: EvalError) -> Result<Loaded> {
    let Ok(mut value) = serde_json::from_slice::<Value>(&read(path)?) else {
        return Err(strict);
    };
    let ignored = drop_unread_metadata(&mut value);
    let Some((first_field, first_value)) = ignored.first() else {
        return Err(strict);
    };
    let dataset: Dataset =
        serde_path_to_error::deserialize(&value).map_err(|e| EvalError::Json {
            path: path.to_path_buf(),
            message: format!("unexpected value: {} (field `{}`)", e.inner(), e.path()),
        })?;
    let missing = value["annotations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ann| ann.get("id").is_none_or(Value::is_null));
    check_ids(path, &dataset, missing)?;
    let coco = without_hotcoco_stderr(|| COCO::from_dataset(dataset));
    let mut warnings = vec![format!(
        "{}: {} metadata value(s) that COCO evaluation never reads do not have the COCO format's \
         type and were ignored, as pycocotools ignores them (first: `{first_field}` = \
         {first_value})",
        path.display(),
        ignored.len()
    )];
    warnings.extend(hotcoco_warnings(path, &coco));
    Ok(Loaded { coco, warnings })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// hotcoco's load warnings (duplicate annotation ids, unnamed categories, NaN/Infinity read
/// as null), naming the file.
fn hotcoco_warnings(path: &Path, coco: &COCO) -> Vec<String> {
    coco.load_warnings()
        .iter()
        .map(|w| format!("{}: {w}", path.display()))
        .collect()
}

#[derive(Deserialize)]
struct IdProbe {
    #[serde(default)]
    annotations: Vec<AnnotationIdProbe>,
}

#[derive(Deserialize)]
struct AnnotationIdProbe {
    #[serde(default)]
    id: Option<IgnoredAny>,
}

/// An error naming the first annotation without an `id` (`missing` is, per annotation in file
/// order, whether its id is absent or null).
fn check_ids(path: &Path, dataset: &Dataset, missing: impl Iterator<Item = bool>) -> Result<()> {
    let positions: Vec<usize> = missing
        .enumerate()
        .filter_map(|(i, missing)| missing.then_some(i))
        .collect();
    let Some(&first) = positions.first() else {
        return Ok(());
    };
    let ann = &dataset.annotations[first];
    Err(EvalError::InvalidFile {
        path: path.to_path_buf(),
        message: format!(
            "{} annotation(s) have no `id` (first: annotations[{first}], image_id {}, \
             category_id {}); every ground-truth annotation needs a unique id: pycocotools \
             indexes them by id and stops with KeyError: 'id', and without one they would all \
             share one id",
            positions.len(),
            ann.image_id,
            ann.category_id
        ),
    })
}

/// Removes the metadata values pycocotools never reads whose type is not the COCO format's
/// (`info`, `licenses`, and per image `license`, `coco_url`, `flickr_url`, `date_captured`,
/// `file_name`, per category `name`, `supercategory`, `skeleton`, `keypoints`, `frequency`).
/// Returns each removed value's field path and JSON text, in file order.
fn drop_unread_metadata(value: &mut Value) -> Vec<(String, String)> {
    let mut ignored = Vec::new();
    let Some(top) = value.as_object_mut() else {
        return ignored;
    };
    drop_unless::<Option<Info>>(top, "info", "", &mut ignored);
    drop_unless::<Option<Vec<License>>>(top, "licenses", "", &mut ignored);
    if let Some(images) = top.get_mut("images").and_then(Value::as_array_mut) {
        for (i, image) in images.iter_mut().enumerate() {
            if fits::<Image>(image) {
                continue;
            }
            let Some(image) = image.as_object_mut() else {
                continue;
            };
            let at = format!("images[{i}].");
            drop_if(image, "license", &at, &mut ignored, |v| {
                v.is_null() || v.as_f64().is_some_and(|n| n >= 0.0 && n.fract() == 0.0)
            });
            for key in ["coco_url", "flickr_url", "date_captured"] {
                drop_unless::<Option<String>>(image, key, &at, &mut ignored);
            }
            drop_unless::<String>(image, "file_name", &at, &mut ignored);
        }
    }
    if let Some(categories) = top.get_mut("categories").and_then(Value::as_array_mut) {
        for (i, category) in categories.iter_mut().enumerate() {
            if fits::<Category>(category) {
                continue;
            }
            let Some(category) = category.as_object_mut() else {
                continue;
            };
            let at = format!("categories[{i}].");
            drop_unless::<String>(category, "name", &at, &mut ignored);
            drop_unless::<Option<String>>(category, "supercategory", &at, &mut ignored);
            drop_unless::<Option<Vec<[u32; 2]>>>(category, "skeleton", &at, &mut ignored);
            drop_unless::<Option<Vec<String>>>(category, "keypoints", &at, &mut ignored);
            drop_unless::<Option<String>>(category, "frequency", &at, &mut ignored);
        }
    }
    ignored
}

fn fits<T: DeserializeOwned>(value: &Value) -> bool {
    T::deserialize(value).is_ok()
}

fn drop_unless<T: DeserializeOwned>(
    object: &mut serde_json::Map<String, Value>,
    key: &str,
    at: &str,
    ignored: &mut Vec<(String, String)>,
) {
    drop_if(object, key, at, ignored, fits::<T>);
}

fn drop_if(
    object: &mut serde_json::Map<String, Value>,
    key: &str,
    at: &str,
    ignored: &mut Vec<(String, String)>,
    keep: impl Fn(&Value) -> bool,
) {
    if object.get(key).is_some_and(|v| !keep(v))
        && let Some(value) = object.remove(key)
    {
        let mut text = value.to_string();
        if text.chars().count() > 40 {
            text = text.chars().take(40).collect::<String>() + "...";
        }
        ignored.push((format!("{at}{key}"), text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mistyped_metadata_is_dropped() {
        let mut value = serde_json::json!({
            "info": {"year": "", "description": "CVAT"},
            "licenses": [{"name": "", "id": 0, "url": ""}],
            "images": [
                {"id": 1, "file_name": "a.jpg", "height": 4, "width": 4, "date_captured": 0,
                 "license": 0, "coco_url": ""},
                {"id": 2, "file_name": "b.jpg", "height": 4, "width": 4}
            ],
            "categories": [{"id": 1, "name": "car", "supercategory": 7}],
            "annotations": []
        });
        let ignored = drop_unread_metadata(&mut value);
        let fields: Vec<&str> = ignored.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "info",
                "images[0].date_captured",
                "categories[0].supercategory"
            ]
        );
        assert_eq!(value["images"][0]["license"], 0);
        assert_eq!(value["licenses"][0]["id"], 0);
        assert!(fits::<Dataset>(&value));
    }
}
