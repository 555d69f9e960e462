//! Ground-truth files shaped like real exports (CVAT, Label Studio, Roboflow, hand-converted
//! files; made by tools/realworld_fixtures.py) evaluate exactly as pycocotools 2.0.11 does:
//! stats bit for bit and summary lines character for character, with the settings the goldens
//! name (`--max-dets` without 100, an image subset). Label Studio and Roboflow number
//! annotations from 0; their goldens are pycocotools' result with the ids shifted by one (the
//! documented id-0 exception, ../shared/conformance/NOTES.md).
//!
//! Also here: the errors and warnings of files pycocotools refuses or mis-scores.

mod common;

use std::path::{Path, PathBuf};

use common::assert_bits_equal;
use detbench_eval::{
    EvalParams, GroundTruth, ImageScope, IouType, SummaryMaxDets, evaluate_results_file,
    evaluate_results_file_in,
};
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realworld")
}

fn goldens() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("goldens.json")).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    value["goldens"].as_array().unwrap().clone()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn params_of(golden: &Value) -> EvalParams {
    let iou_type: IouType = golden["iou_type"].as_str().unwrap().parse().unwrap();
    let mut params = EvalParams::new(iou_type);
    if let Some(max_dets) = golden["max_dets"].as_array() {
        params.max_dets = max_dets
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
    }
    if let Some(ids) = golden["image_ids"].as_array() {
        params.image_ids = Some(ids.iter().map(|v| v.as_u64().unwrap()).collect());
    }
    params
}

#[test]
fn real_export_shapes_evaluate_as_pycocotools() {
    let goldens = goldens();
    assert_eq!(goldens.len(), 9);
    for golden in &goldens {
        let what = format!(
            "{} {} max_dets {} image_ids {}",
            golden["gt"], golden["iou_type"], golden["max_dets"], golden["image_ids"]
        );
        let gt = GroundTruth::load(fixtures().join(golden["gt"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let dt = fixtures().join(golden["dt"].as_str().unwrap());
        let summary = evaluate_results_file(&gt, &dt, &params_of(golden))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_bits_equal(&what, &summary.stats, &floats(&golden["stats"]));
        let lines: Vec<String> = golden["summary"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(summary.summary_lines(), lines, "{what}");
        let warnings = gt.warnings().join("\n");
        if golden["ids_shifted"].as_bool().unwrap() {
            assert!(warnings.contains("have id 0"), "{what}: {warnings}");
        }
    }
}

#[test]
fn mistyped_metadata_is_ignored_with_a_warning_naming_it() {
    let cvat = GroundTruth::load(fixtures().join("cvat_gt.json")).unwrap();
    let warnings = cvat.warnings().join("\n");
    assert!(
        warnings.contains("metadata value(s)") && warnings.contains("(first: `info` = {"),
        "{warnings}"
    );
    let roboflow = GroundTruth::load(fixtures().join("roboflow_gt.json")).unwrap();
    assert!(roboflow.warnings().join("\n").contains("`info` ="));
    let loose = GroundTruth::load(fixtures().join("loose_gt.json")).unwrap();
    let warnings = loose.warnings().join("\n");
    assert!(
        warnings.contains("`info` = \"converted from VOC by a script\""),
        "{warnings}"
    );
    // Label Studio's metadata is well typed: nothing to ignore.
    let label_studio = GroundTruth::load(fixtures().join("label_studio_gt.json")).unwrap();
    assert!(
        !label_studio.warnings().join("\n").contains("metadata"),
        "{:?}",
        label_studio.warnings()
    );
}

/// The loose file lists image 2 twice: pycocotools evaluates 6 images (its index keeps one
/// record per id); so does detbench, and it says so.
#[test]
fn a_repeated_image_id_is_evaluated_once_with_a_warning() {
    let gt = GroundTruth::load(fixtures().join("loose_gt.json")).unwrap();
    assert_eq!(gt.image_ids().len(), 6);
    assert!(
        gt.warnings().join("\n").contains(
            "repeat an image id listed before (first: image id 2 at images[1] and images[6])"
        ),
        "{:?}",
        gt.warnings()
    );
    let summary = evaluate_results_file(
        &gt,
        &fixtures().join("loose_dt.json"),
        &EvalParams::new(IouType::Bbox),
    )
    .unwrap();
    assert_eq!(summary.images, 6);
}

fn write(dir: &Path, name: &str, value: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec(value).unwrap()).unwrap();
    path
}

fn small_gt(annotations: Value) -> Value {
    json!({
        "images": [{"id": 1, "height": 100, "width": 100, "file_name": "a.jpg"},
                   {"id": 2, "height": 100, "width": 100, "file_name": "b.jpg"},
                   {"id": 3, "height": 100, "width": 100, "file_name": "c.jpg"}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": annotations,
    })
}

#[test]
fn an_annotation_without_id_is_an_error_naming_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let anns = json!([
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}
    ]);
    let path = write(tmp.path(), "gt.json", &small_gt(anns.clone()));
    let err = GroundTruth::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("gt.json")
            && err.contains("2 annotation(s) have no `id` (first: annotations[1], image_id 2"),
        "{err}"
    );
    // The lenient reading checks ids too.
    let mut lenient = small_gt(anns);
    lenient["info"] = json!({"year": ""});
    let path = write(tmp.path(), "cvat.json", &lenient);
    let err = GroundTruth::load(&path).unwrap_err().to_string();
    assert!(err.contains("have no `id`"), "{err}");
    // An explicit id 0 is an id (with its own warning), not a missing one.
    let anns =
        json!([{"id": 0, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}]);
    let path = write(tmp.path(), "zero.json", &small_gt(anns));
    let gt = GroundTruth::load(&path).unwrap();
    assert!(gt.warnings().join("\n").contains("have id 0"));
}

#[test]
fn segm_on_ground_truth_without_masks_warns_with_the_count() {
    let tmp = tempfile::tempdir().unwrap();
    let anns = json!([
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100,
         "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}
    ]);
    let gt = GroundTruth::load(write(tmp.path(), "gt.json", &small_gt(anns))).unwrap();
    let dt = write(
        tmp.path(),
        "dt.json",
        &json!([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9,
                 "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}]),
    );
    let segm = evaluate_results_file(&gt, &dt, &EvalParams::new(IouType::Segm)).unwrap();
    let warnings = segm.warnings.join("\n");
    assert!(
        warnings.contains(
            "2 ground-truth annotation(s) have no `segmentation` (first: annotation id 2)"
        ),
        "{warnings}"
    );
    let bbox = evaluate_results_file(&gt, &dt, &EvalParams::new(IouType::Bbox)).unwrap();
    assert!(!bbox.warnings.join("\n").contains("segmentation"));
}

/// pycocotools' `stats[0]` is AP at 100 detections whatever `maxDets` is (the cvat golden
/// with 1,10,1000 has -1 there); the other reading is an option.
#[test]
fn max_dets_without_100_reads_the_first_ap_as_pycocotools_or_at_the_largest() {
    let gt = GroundTruth::load(fixtures().join("cvat_gt.json")).unwrap();
    let dt = fixtures().join("cvat_dt.json");
    let mut params = EvalParams::new(IouType::Bbox);
    params.max_dets = vec![1, 10, 1000];
    let pycocotools = evaluate_results_file(&gt, &dt, &params).unwrap();
    assert_eq!(pycocotools.stats[0], -1.0);
    assert!(pycocotools.summary_lines()[0].ends_with("maxDets=100 ] = -1.000"));
    params.summary_max_dets = SummaryMaxDets::Largest;
    let largest = evaluate_results_file(&gt, &dt, &params).unwrap();
    let default = evaluate_results_file(&gt, &dt, &EvalParams::new(IouType::Bbox)).unwrap();
    // No image has more than 100 detections: AP at 1000 is AP at 100.
    assert_eq!(largest.stats[0], default.stats[0]);
    assert!(largest.summary_lines()[0].contains("maxDets=1000"));
    assert_eq!(largest.stats[1..], pycocotools.stats[1..]);
}

#[test]
fn image_scope_and_the_warning_for_results_of_part_of_the_images() {
    let gt = GroundTruth::load(fixtures().join("cvat_gt.json")).unwrap();
    let all: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cvat_dt.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let part: Vec<&Value> = all
        .iter()
        .filter(|d| d["image_id"] == 2 || d["image_id"] == 3)
        .collect();
    let dt = write(tmp.path(), "part.json", &json!(part));
    let params = EvalParams::new(IouType::Bbox);
    let everywhere = evaluate_results_file(&gt, &dt, &params).unwrap();
    assert_eq!(everywhere.images, 6);
    let warnings = everywhere.warnings.join("\n");
    assert!(
        warnings.contains("4 of the 6 evaluated images have no detection")
            && warnings.contains("--images-with-detections"),
        "{warnings}"
    );
    let scoped = evaluate_results_file_in(&gt, &dt, &params, ImageScope::WithDetections).unwrap();
    assert_eq!(scoped.images, 2);
    assert!(scoped.warnings.is_empty(), "{:?}", scoped.warnings);
    // The same as pycocotools with params.imgIds = [2, 3] (the cvat golden with image_ids).
    let golden = goldens()
        .into_iter()
        .find(|g| g["image_ids"].is_array())
        .unwrap();
    let full = fixtures().join("cvat_dt.json");
    let by_ids = evaluate_results_file(&gt, &full, &params_of(&golden)).unwrap();
    assert_bits_equal("image ids 2,3", &by_ids.stats, &floats(&golden["stats"]));
    let mut unknown = EvalParams::new(IouType::Bbox);
    unknown.image_ids = Some(vec![2, 99]);
    let err = evaluate_results_file(&gt, &full, &unknown)
        .unwrap_err()
        .to_string();
    assert!(err.contains("image id 99 is not an image of"), "{err}");
}

#[test]
fn messages_name_the_problem_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    let gt_value = small_gt(
        json!([{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100}]),
    );
    // A UTF-8 byte-order mark.
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(serde_json::to_vec(&gt_value).unwrap());
    let path = tmp.path().join("bom.json");
    std::fs::write(&path, bom).unwrap();
    let err = GroundTruth::load(&path).unwrap_err().to_string();
    assert!(err.contains("byte-order mark (BOM)"), "{err}");
    // A list where the dataset object belongs.
    let path = write(tmp.path(), "list.json", &json!([1, 2]));
    let err = GroundTruth::load(&path).unwrap_err().to_string();
    assert!(
        !err.contains("struct Dataset")
            && err.contains(
                "is a JSON list; a COCO ground-truth file is a JSON object with `images`"
            ),
        "{err}"
    );
    let path = write(tmp.path(), "text.json", &json!("instances"));
    let err = GroundTruth::load(&path).unwrap_err().to_string();
    assert!(
        !err.contains("struct Dataset") && err.contains("expected a COCO dataset: a JSON object"),
        "{err}"
    );
    // A missing file is named once.
    let err = GroundTruth::load(tmp.path().join("none.json"))
        .unwrap_err()
        .to_string();
    assert_eq!(err.matches("none.json").count(), 1, "{err}");
    // Results are `results[i]` in every message.
    let gt = GroundTruth::load(write(tmp.path(), "gt.json", &gt_value)).unwrap();
    let dt = write(
        tmp.path(),
        "dt.json",
        &json!([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"}]),
    );
    let err = evaluate_results_file(&gt, &dt, &EvalParams::new(IouType::Bbox))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`results[0].score`"), "{err}");
    // Height and width of 0 are named as such for segm.
    let mut zero = gt_value.clone();
    zero["images"][0]["height"] = json!(0);
    zero["annotations"][0]["segmentation"] = json!([[0, 0, 10, 0, 10, 10]]);
    let gt = GroundTruth::load(write(tmp.path(), "zero.json", &zero)).unwrap();
    let dt = write(
        tmp.path(),
        "segm.json",
        &json!([{"image_id": 2, "category_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10]], "score": 0.5}]),
    );
    let err = evaluate_results_file(&gt, &dt, &EvalParams::new(IouType::Segm))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`height` or `width` missing or 0 (first: image id 1, height 0, width 100)"),
        "{err}"
    );
}
