//! AP on the shipped 206-image subset against Ultralytics' own validator
//! (`tools/ultralytics/val_subset.py`: `val` with `save_json=True`, its predictions gzipped in
//! `tests/fixtures/ultralytics/val/`, with its own mAP and pycocotools' stats on that JSON):
//!
//! - detbench's evaluator on the validator's saved JSON gives pycocotools' 12 stats exactly;
//! - detbench's pipeline, opened from the model's shipped card, with the validator's geometry (`Geometry::Validator`: `load_image` with
//!   `ceil` sizes, then `LetterBox(scaleup=False)`), mask path (`MaskMode::Validator`) and NMS
//!   settings (conf 0.001, iou 0.7, max_det 300, multi-label) scores within 0.2 AP points of
//!   that JSON's AP (pycocotools on the validator's own predictions), box and mask;
//! - Ultralytics' own mAP50-95 (its `ap_per_class`: its own matching, 101-point interpolation,
//!   crowd annotations dropped by its converter instead of ignored) is itself 0.4-1.1 points
//!   below pycocotools on the same predictions, so detbench's distance to it is that metric
//!   difference plus at most the 0.2 points above.
//!
//! Run with `--release` (206 images per model).

mod common;

use std::io::Read;
use std::path::PathBuf;

use detbench_backends::BackendConfig;
use detbench_eval::{EvalParams, GroundTruth, IouType};
use serde_json::Value as Json;

fn val_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ultralytics/val")
}

fn summary(model: &str) -> Json {
    let text = std::fs::read_to_string(val_dir().join(format!("{model}.summary.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Json) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn evaluate_saved_json(model: &str) -> Vec<f64> {
    let mut gz = flate2::read::GzDecoder::new(
        std::fs::File::open(val_dir().join(format!("{model}.predictions.json.gz"))).unwrap(),
    );
    let mut text = String::new();
    gz.read_to_string(&mut text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("predictions.json");
    std::fs::write(&path, text).unwrap();
    let gt = GroundTruth::load(detbench_assets::shared::instances_subset().unwrap()).unwrap();
    detbench_eval::files::evaluate_results_file(&gt, &path, &EvalParams::new(IouType::Bbox))
        .unwrap()
        .stats
}

/// detbench's pipeline on the whole subset, opened from the model's shipped card; bbox stats.
fn run_subset(model: &str) -> Vec<f64> {
    run_subset_card(model, &[IouType::Bbox]).remove(0)
}

/// detbench's pipeline on the whole subset, opened from the model's shipped card (`protocol =
/// "validator"`: conf 0.001, iou 0.7, max_det 300, multi-label, `Geometry::Validator`,
/// `MaskMode::Validator`); stats per IoU type.
fn run_subset_card(model: &str, iou_types: &[IouType]) -> Vec<Vec<f64>> {
    let engine = BackendConfig {
        threads: Some(2),
        ..Default::default()
    };
    let mut detector = detbench_models::open_detector(model, None, &engine).unwrap();
    let provenance = detector.provenance();
    let config = &provenance["pipeline"]["config"];
    assert_eq!(config["geometry"], "validator", "{model}: {config}");
    assert_eq!(config["masks"], "validator", "{model}: {config}");
    assert_eq!(config["nms"]["multi_label"], true, "{model}: {config}");
    assert_eq!(config["nms"]["max_det"], 300, "{model}: {config}");
    assert_eq!(
        detector.iou_types(),
        iou_types,
        "{model}: the card's task gives its evaluations"
    );
    let annotations = detbench_assets::shared::instances_subset().unwrap();
    common::evaluate_subset(detector.as_mut(), &annotations, iou_types)
        .into_iter()
        .map(|e| e.stats)
        .collect()
}

fn check(model: &str) {
    let s = summary(model);
    let pycocotools = f64s(&s["pycocotools_bbox"]);
    let own = s["ultralytics_own_metrics"]["box_map50_95"]
        .as_f64()
        .unwrap();
    if s.get("pycocotools_bbox").is_some()
        && val_dir()
            .join(format!("{model}.predictions.json.gz"))
            .is_file()
    {
        assert_eq!(
            evaluate_saved_json(model),
            pycocotools,
            "{model}: detbench eval on Ultralytics' JSON"
        );
    }
    let ours = run_subset(model)[0];
    eprintln!(
        "{model}: detbench AP {:.5}, pycocotools on Ultralytics' val JSON {:.5} ({:+.3} points), Ultralytics' own mAP50-95 {:.5} ({:+.3} points)",
        ours,
        pycocotools[0],
        100.0 * (ours - pycocotools[0]),
        own,
        100.0 * (ours - own)
    );
    assert!(
        (ours - pycocotools[0]).abs() <= 0.002,
        "{model}: {ours} vs {}",
        pycocotools[0]
    );
    let metric_difference = (pycocotools[0] - own).abs();
    assert!(
        (ours - own).abs() <= metric_difference + 0.002,
        "{model}: {ours} vs own {own} (the metrics differ by {metric_difference} on the same predictions)"
    );
}

#[test]
fn yolov8n_int8_640_ap_agrees_with_ultralytics_val() {
    check("yolov8n_int8_640");
}

#[test]
fn yolo11n_int8_320_ap_agrees_with_ultralytics_val() {
    check("yolo11n_int8_320");
}

/// The segmentation model, box and mask AP (the predictor's geometry and mask path give +0.47
/// box and -0.62 mask points: its masks are computed at the image size and empty ones dropped).
#[test]
fn yolov8n_seg_int8_320_box_and_mask_ap_agree_with_ultralytics_val() {
    let model = "yolov8n-seg_int8_320";
    let s = summary(model);
    let stats = run_subset_card(model, &[IouType::Bbox, IouType::Segm]);
    for (k, key) in ["pycocotools_bbox", "pycocotools_segm"].iter().enumerate() {
        let theirs = f64s(&s[key])[0];
        let diff = stats[k][0] - theirs;
        eprintln!(
            "{model}: {key}: detbench {:.5}, Ultralytics' val JSON {theirs:.5} ({:+.3} points)",
            stats[k][0],
            100.0 * diff
        );
        assert!(
            diff.abs() <= 0.006,
            "{model} {key}: {} vs {theirs}",
            stats[k][0]
        );
    }
}
