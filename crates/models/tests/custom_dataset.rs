//! A custom dataset through the class map: the shipped subset with three categories kept and
//! renumbered (person 1 -> 1, car 3 -> 2, dog 18 -> 3), scored with the COCO-trained YOLO11n
//! whose 80 class names are matched to the dataset's categories by name (the others dropped
//! before NMS). COCO evaluation scores each category on its own, so each kept category's AP must
//! equal its AP on the full subset with the COCO class map, to the last bit.
//!
//! Run with `--release` (two passes over the 206 images).

mod common;

use detbench_eval::IouType;
use detbench_eval::labels::COCO80_NAMES;
use detbench_models::card::{self, ClassMapKind, Classes, DatasetCategory, Unmatched};
use detbench_models::families::common::SingleModelDetector;
use detbench_models::families::ultralytics::Ultralytics;
use serde_json::{Value as Json, json};

/// (COCO id, new id, name) of the kept categories.
const KEPT: [(u64, u64, &str); 3] = [(1, 1, "person"), (3, 2, "car"), (18, 3, "dog")];

/// The subset's annotations with only the kept categories, renumbered.
fn custom_annotations(dir: &std::path::Path) -> std::path::PathBuf {
    let subset = detbench_assets::shared::instances_subset().unwrap();
    let mut doc: Json = serde_json::from_str(&std::fs::read_to_string(subset).unwrap()).unwrap();
    let new_id = |old: u64| KEPT.iter().find(|(o, _, _)| *o == old).map(|(_, n, _)| *n);
    let annotations: Vec<Json> = doc["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let id = new_id(a["category_id"].as_u64().unwrap())?;
            let mut a = a.clone();
            a["category_id"] = json!(id);
            Some(a)
        })
        .collect();
    doc["annotations"] = json!(annotations);
    doc["categories"] = json!(
        KEPT.iter()
            .map(|(_, id, name)| json!({"id": id, "name": name, "supercategory": "x"}))
            .collect::<Vec<_>>()
    );
    let path = dir.join("custom.json");
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    path
}

/// Per-category AP (by category id) of YOLO11n with `class_map` against `annotations`.
fn per_class_ap(
    annotations: &std::path::Path,
    class_map: Option<Vec<Option<u64>>>,
) -> Vec<(u64, Option<f64>)> {
    let path = detbench_assets::shared::models()
        .unwrap()
        .join("yolo11n_int8_320.onnx");
    let (backend, mut config) = common::open_ultralytics(&path);
    if let Some(map) = class_map {
        config.class_map = map;
    }
    let pipeline = Ultralytics::new(config).unwrap();
    let mut detector = SingleModelDetector::new("yolo11n", backend, pipeline).unwrap();
    common::evaluate_subset(&mut detector, annotations, &[IouType::Bbox])
        .remove(0)
        .per_class
        .iter()
        .map(|c| (c.category_id, c.ap))
        .collect()
}

#[test]
fn kept_categories_score_as_on_the_full_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let custom = custom_annotations(dir.path());
    let categories: Vec<DatasetCategory> = KEPT
        .iter()
        .map(|(_, id, name)| DatasetCategory {
            id: *id,
            name: name.to_string(),
        })
        .collect();
    let mut by_name = Classes {
        map: Some(ClassMapKind::ByName),
        names: Some(COCO80_NAMES.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    // Strict matching names the first class the dataset lacks.
    let err = card::class_map("yolo11n", &by_name, 80, None, Some(&categories)).unwrap_err();
    assert!(err.to_string().contains("class 1 (`bicycle`)"), "{err}");
    by_name.unmatched = Some(Unmatched::Drop);
    let map = card::class_map("yolo11n", &by_name, 80, None, Some(&categories)).unwrap();
    assert_eq!(
        (map[0], map[2], map[16], map.iter().flatten().count()),
        (Some(1), Some(2), Some(3), 3)
    );

    let on_custom = per_class_ap(&custom, Some(map));
    let full = per_class_ap(&detbench_assets::shared::instances_subset().unwrap(), None);
    for (coco_id, new_id, name) in KEPT {
        let want = full.iter().find(|(id, _)| *id == coco_id).unwrap().1;
        let got = on_custom.iter().find(|(id, _)| *id == new_id).unwrap().1;
        eprintln!("{name}: AP {got:?} on the custom dataset, {want:?} on the full subset");
        assert!(want.is_some_and(|ap| ap > 0.1), "{name}: {want:?}");
        assert_eq!(got, want, "{name}");
    }
}
