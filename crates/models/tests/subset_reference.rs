//! Whole-subset checks against the Python reference (`../shared/reference/<model>/`): each
//! pipeline runs on every image of the shipped COCO subset (206 images; 128 for keypoints)
//! through the real engine, and
//! - at least 99% of the reference detections are matched with the same category, IoU >= 0.95
//!   and a score within 1e-3 (`reference_check`, the matching of `compare_dets.py`);
//! - AP (pycocotools stat 0, through detbench-eval/hotcoco in memory) is within 0.3 points of the
//!   reference `stats.json`.
//!
//! Run with `--release` (each model takes seconds there, minutes in a debug build).

mod common;

use std::sync::Arc;

use detbench_backends::BackendConfig;
use detbench_bench::dataset::Dataset;
use detbench_bench::{Detector, ImageInput, StageClock};
use detbench_eval::params::DetectionArea;
use detbench_eval::{Detection, EvalParams, Evaluator, GroundTruth, IouType};
use detbench_models::families::simplepose::{PersonBox, ground_truth_person_boxes};
use detbench_models::reference_check::{
    Agreement, MatchCriteria, compare_boxes, compare_keypoints, load_results,
};
use detbench_models::{families, open_detector};

fn config() -> BackendConfig {
    BackendConfig {
        threads: Some(2),
        ..Default::default()
    }
}

fn dataset(annotations: &std::path::Path) -> Dataset {
    let images = detbench_assets::shared::coco_images().unwrap();
    Dataset::coco(&images, annotations, None).unwrap()
}

/// Runs zoo model `name` on every image of the dataset.
fn run(name: &str, data: &Dataset) -> Vec<Vec<Detection>> {
    let mut detector = open_detector(name, None, &config()).unwrap();
    let mut clock = StageClock::new();
    data.images
        .iter()
        .map(|image| {
            let bgr = detbench_imgproc::decode_file(&image.path).unwrap();
            let input = ImageInput {
                image_id: image.id,
                image: &bgr,
            };
            detector
                .detect(&[input], &mut clock)
                .unwrap()
                .pop()
                .unwrap()
        })
        .collect()
}

/// pycocotools stats of per-image detections against `annotations`.
fn stats(
    annotations: &std::path::Path,
    iou: IouType,
    per_image: &[(u64, Vec<Detection>)],
    area: DetectionArea,
) -> Vec<f64> {
    let gt = Arc::new(GroundTruth::load(annotations).unwrap());
    let mut params = EvalParams::new(iou);
    params.detection_area = area;
    let mut evaluator = Evaluator::new(gt, params).unwrap();
    for (image_id, dets) in per_image {
        evaluator.add_image(*image_id, dets).unwrap();
    }
    evaluator.finish().unwrap().stats
}

fn reference_stats(model: &str, key: &str) -> Vec<f64> {
    let path = common::reference_dir(model).join("stats.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(doc[key].clone()).unwrap()
}

fn report(name: &str, agreement: &Agreement, ap: f64, reference_ap: f64) {
    eprintln!("{name}: {}", agreement.summary());
    eprintln!(
        "{name}: AP {ap:.4} (reference {reference_ap:.4}, diff {:+.4})",
        ap - reference_ap
    );
}

fn check_detector(name: &str, reference: &str) {
    let annotations = detbench_assets::shared::instances_subset().unwrap();
    let data = dataset(&annotations);
    assert_eq!(data.images.len(), 206);
    let per_image: Vec<(u64, Vec<Detection>)> = data
        .images
        .iter()
        .map(|i| i.id)
        .zip(run(name, &data))
        .collect();
    let ours: Vec<Detection> = per_image
        .iter()
        .flat_map(|(_, d)| d.iter().cloned())
        .collect();
    let golden =
        load_results(&common::reference_dir(reference).join("detections_subset.json")).unwrap();
    let agreement = compare_boxes(&golden, &ours, &MatchCriteria::default());
    let ap = stats(&annotations, IouType::Bbox, &per_image, DetectionArea::Box)[0];
    let reference_ap = reference_stats(reference, "stats")[0];
    report(name, &agreement, ap, reference_ap);
    assert!(
        agreement.matched_fraction() >= 0.99,
        "{name}: {}",
        agreement.summary()
    );
    assert!(
        (ap - reference_ap).abs() <= 0.003,
        "{name}: AP {ap} vs reference {reference_ap}"
    );
}

#[test]
fn yolox_nano_matches_the_reference_on_the_subset() {
    check_detector("yolox_nano", "yolox_nano_416");
}

#[test]
fn nanodet_m_320_matches_the_reference_on_the_subset() {
    check_detector("nanodet_m_320", "nanodet_m_320");
}

#[test]
fn nanodet_m_416_matches_the_reference_on_the_subset() {
    check_detector("nanodet_m_416", "nanodet_m_416");
}

#[test]
fn fastestdet_matches_the_reference_on_the_subset() {
    check_detector("fastestdet", "fastestdet_352");
}

/// What must agree with the reference results of a keypoint protocol.
enum KeypointTarget {
    /// At least 99% of the reference results matched whole (every joint within 1 px, score within
    /// 1e-3): the pose pipeline alone, on fixed boxes.
    WholeDetections,
    /// At least 99% of the reference joints within 1 px of the nearest result's. For the cascade with
    /// YOLOX boxes: on an AVX-512 EPYC, where ONNX Runtime picks other kernels, YOLOX's scores
    /// differed from the reference's by up to 3.9e-6 (all boxes still matched at IoU 1.00000).
    /// The crop moves with the box: 28 of 1,289 keypoint results (2.2%) each had exactly one of
    /// their 17 joints jump to a second, near-equal heatmap peak, with AP equal to 4 decimals and
    /// 99.87% of joints within 1 px. The same code matched 100% whole on the machines where the
    /// check first ran.
    Joints,
}

fn keypoint_check(
    name: &str,
    ours: &[(u64, Vec<Detection>)],
    reference_file: &str,
    stats_key: &str,
    target: KeypointTarget,
) {
    let annotations = detbench_assets::shared::keypoints_subset().unwrap();
    let flat: Vec<Detection> = ours.iter().flat_map(|(_, d)| d.iter().cloned()).collect();
    let golden =
        load_results(&common::reference_dir("ultralight_simplepose").join(reference_file)).unwrap();
    assert_eq!(flat.len(), golden.len(), "{name}: result count");
    let agreement = compare_keypoints(&golden, &flat, &MatchCriteria::default());
    let ap = stats(&annotations, IouType::Keypoints, ours, DetectionArea::Box)[0];
    let reference_ap = reference_stats("ultralight_simplepose", stats_key)[0];
    report(name, &agreement, ap, reference_ap);
    let fraction = match target {
        KeypointTarget::WholeDetections => agreement.matched_fraction(),
        KeypointTarget::Joints => agreement.joint_fraction().unwrap_or(0.0),
    };
    assert!(fraction >= 0.99, "{name}: {}", agreement.summary());
    assert!(
        (ap - reference_ap).abs() <= 0.003,
        "{name}: AP {ap} vs reference {reference_ap}"
    );
}

/// Protocol (b): YOLOX-Nano person boxes on the 128 keypoint images (reference AP 0.4896).
#[test]
fn simplepose_yolox_matches_the_reference_on_the_keypoint_subset() {
    let annotations = detbench_assets::shared::keypoints_subset().unwrap();
    let data = dataset(&annotations);
    assert_eq!(data.images.len(), 128);
    let per_image: Vec<(u64, Vec<Detection>)> = data
        .images
        .iter()
        .map(|i| i.id)
        .zip(run("simplepose_yolox", &data))
        .collect();
    keypoint_check(
        "simplepose_yolox",
        &per_image,
        "keypoints_yoloxboxes_subset.json",
        "stats_yolox_boxes",
        KeypointTarget::Joints,
    );
}

/// Protocol (a): ground-truth person boxes, GluonCV's validation (reference AP 0.5467, the
/// protocol of the upstream 51.8 claim).
#[test]
fn simplepose_on_ground_truth_boxes_matches_the_reference() {
    let annotations = detbench_assets::shared::keypoints_subset().unwrap();
    let boxes = ground_truth_person_boxes(&annotations).unwrap();
    assert_eq!(boxes.len(), 112);
    let entry = detbench_models::entry("simplepose_yolox").unwrap();
    let dir = detbench_models::model_dir(None).unwrap();
    let path = detbench_models::model_file(entry, &dir).unwrap();
    let zoo = detbench_models::Zoo::builtin();
    let ctx = families::OpenContext {
        model_dir: &dir,
        config: &config(),
        categories: None,
        zoo: &zoo,
    };
    let mut top_down = families::open_top_down(entry, &path, &ctx).unwrap();
    let data = dataset(&annotations);
    let mut clock = StageClock::new();
    let mut per_image: Vec<(u64, Vec<Detection>)> = Vec::new();
    for image in &data.images {
        let persons: Vec<PersonBox> = boxes
            .iter()
            .filter(|b| b.image_id == image.id)
            .copied()
            .collect();
        let bgr = detbench_imgproc::decode_file(&image.path).unwrap();
        let results = top_down
            .keypoints_for_boxes(&bgr, &persons, &mut clock)
            .unwrap();
        per_image.push((image.id, results));
    }
    keypoint_check(
        "simplepose (GT boxes)",
        &per_image,
        "keypoints_gtboxes_subset.json",
        "stats_gt_boxes",
        KeypointTarget::WholeDetections,
    );
}

/// The legacy point-centre option (`i*stride + (stride-1)/2`, pre-Feb-2021 NanoDet) reproduces
/// the reference's variant of that name (AP 0.2288 at 320).
#[test]
fn nanodet_legacy_centres_reproduce_the_reference_variant() {
    use detbench_models::families::common::SingleModelDetector;
    use detbench_models::families::nanodet::{CentreConvention, NanoDet, NanoDetConfig};
    let annotations = detbench_assets::shared::instances_subset().unwrap();
    let data = dataset(&annotations);
    let path = detbench_assets::shared::models()
        .unwrap()
        .join("nanodet_m_320.onnx");
    let backend = detbench_backends::open(&path, &config()).unwrap();
    let pipeline = NanoDet::new(NanoDetConfig {
        centres: CentreConvention::Legacy,
        ..Default::default()
    });
    let mut detector = SingleModelDetector::new("nanodet_m_320", backend, pipeline).unwrap();
    let mut clock = StageClock::new();
    let per_image: Vec<(u64, Vec<Detection>)> = data
        .images
        .iter()
        .map(|image| {
            let bgr = detbench_imgproc::decode_file(&image.path).unwrap();
            let input = ImageInput {
                image_id: image.id,
                image: &bgr,
            };
            (
                image.id,
                detector
                    .detect(&[input], &mut clock)
                    .unwrap()
                    .pop()
                    .unwrap(),
            )
        })
        .collect();
    let ap = stats(&annotations, IouType::Bbox, &per_image, DetectionArea::Box)[0];
    let path = common::reference_dir("nanodet_m_320").join("stats.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let variants = doc["variant_stats"].as_object().unwrap();
    let (_, legacy) = variants
        .iter()
        .find(|(k, _)| k.starts_with("centers_i*stride"))
        .unwrap();
    let reference_ap = legacy["stats"][0].as_f64().unwrap();
    eprintln!("nanodet_m_320 legacy centres: AP {ap:.4} (reference variant {reference_ap:.4})");
    assert!(
        (ap - reference_ap).abs() <= 0.003,
        "AP {ap} vs {reference_ap}"
    );
}
