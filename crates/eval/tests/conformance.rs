//! Every ground-truth/results pair of `../shared/conformance/goldens_*_pycocotools.json` is
//! evaluated through both paths of the accuracy layer — the results file (as `detbench eval`
//! does) and the in-memory evaluator fed `Detection`s — and must give pycocotools 2.0.11's
//! stats bit for bit, and its summary lines character for character.
//!
//! The exception is the hotcoco fixture whose ground truth uses annotation id 0: pycocotools
//! uses 0 for "unmatched" in its match arrays, so it can never match that annotation and
//! reports AP 0.442 for perfect detections; hotcoco matches it (AP 1.0). See
//! ../shared/conformance/NOTES.md. That test asserts hotcoco's corrected stats.

mod common;

use std::sync::Arc;

use common::{GoldenPair, assert_bits_equal, detections_of_results_file, golden_pairs};
use detbench_eval::{
    EvalParams, EvalSummary, Evaluator, GroundTruth, IouType, evaluate_results_file,
};

/// Perfect detections of the 3 medium-sized objects on 2 images (one image holds 2): AP 1 at
/// every threshold; AR@1 is 2/3 (one of image 0's two objects fits in one detection), averaged
/// over 10 thresholds in numpy's pairwise order; no small or large objects (-1).
fn corrected_zero_id_stats() -> Vec<f64> {
    vec![
        1.0,
        1.0,
        1.0,
        -1.0,
        1.0,
        -1.0,
        0.6666666666666667,
        1.0,
        1.0,
        -1.0,
        1.0,
        -1.0,
    ]
}

fn expected_stats(pair: &GoldenPair) -> Vec<f64> {
    if pair.is_zero_id_pair() {
        corrected_zero_id_stats()
    } else {
        pair.stats.clone()
    }
}

fn check_summary(pair: &GoldenPair, path: &str, summary: &EvalSummary) {
    assert_bits_equal(
        &format!("{} via {path}", pair.name()),
        &summary.stats,
        &expected_stats(pair),
    );
    if !pair.is_zero_id_pair() {
        assert_eq!(
            summary.summary_lines(),
            pair.summary,
            "{} via {path}: summary lines",
            pair.name()
        );
    }
}

fn evaluate_in_memory(pair: &GoldenPair, gt: &Arc<GroundTruth>) -> EvalSummary {
    let (images, area) = detections_of_results_file(gt, &pair.dt);
    let mut params = EvalParams::new(pair.iou_type);
    params.detection_area = area;
    let mut evaluator = Evaluator::new(gt.clone(), params).unwrap();
    for (image_id, detections) in &images {
        evaluator.add_image(*image_id, detections).unwrap();
    }
    evaluator.finish().unwrap()
}

#[test]
fn every_golden_pair_is_reproduced_exactly_from_files_and_in_memory() {
    let pairs = golden_pairs();
    for pair in &pairs {
        let gt = Arc::new(GroundTruth::load(&pair.gt).unwrap());
        let from_file =
            evaluate_results_file(&gt, &pair.dt, &EvalParams::new(pair.iou_type)).unwrap();
        check_summary(pair, "results file", &from_file);
        let in_memory = evaluate_in_memory(pair, &gt);
        check_summary(pair, "in-memory evaluator", &in_memory);

        // Both paths agree on everything derived from the accumulated arrays too.
        assert_eq!(from_file.per_class, in_memory.per_class, "{}", pair.name());
        assert_eq!(from_file.pr_curves, in_memory.pr_curves, "{}", pair.name());
        println!("ok: {} ({} detections)", pair.name(), from_file.detections);
    }
}

#[test]
fn per_class_ap_equals_hotcocos_own_per_class_report() {
    for pair in golden_pairs() {
        let gt = GroundTruth::load(&pair.gt).unwrap();
        let summary =
            evaluate_results_file(&gt, &pair.dt, &EvalParams::new(pair.iou_type)).unwrap();

        let coco_gt = hotcoco::COCO::new(&pair.gt).unwrap();
        let coco_dt = coco_gt.load_res(&pair.dt).unwrap();
        let iou_type = match pair.iou_type {
            IouType::Bbox => hotcoco::IouType::Bbox,
            IouType::Segm => hotcoco::IouType::Segm,
            IouType::Keypoints => hotcoco::IouType::Keypoints,
        };
        let mut ev = hotcoco::COCOeval::new(coco_gt, coco_dt, iou_type);
        ev.evaluate().unwrap();
        ev.accumulate();
        let _ = ev.summarize_lines();
        let report = ev.report().unwrap();
        let mut compared = 0;
        for class in &summary.per_class {
            let theirs = report.per_class.get(&class.name).and_then(|m| m.get("AP"));
            match (class.ap, theirs) {
                (Some(ours), Some(&theirs)) => {
                    assert_eq!(
                        ours.to_bits(),
                        theirs.to_bits(),
                        "{} {}",
                        pair.name(),
                        class.name
                    );
                    compared += 1;
                }
                (None, None) => {}
                other => panic!("{} {}: {other:?}", pair.name(), class.name),
            }
        }
        assert!(compared > 0, "{}", pair.name());
    }
}

#[test]
fn zero_annotation_id_is_warned_about() {
    let pair = golden_pairs()
        .into_iter()
        .find(GoldenPair::is_zero_id_pair)
        .unwrap();
    let gt = GroundTruth::load(&pair.gt).unwrap();
    let warnings = gt.warnings().join("\n");
    assert!(warnings.contains("id 0"), "{warnings}");
    assert!(warnings.contains("pycocotools"), "{warnings}");
    // pycocotools' own (uncorrected) numbers, for the record: AP 0.442 for perfect detections.
    assert!((pair.stats[0] - 0.4422).abs() < 1e-4);
}

#[test]
fn image_order_and_update_grouping_do_not_change_the_stats() {
    let pair = golden_pairs()
        .into_iter()
        .find(|p| p.dt.ends_with("synthetic_dets_segm.json"))
        .unwrap();
    let gt = Arc::new(GroundTruth::load(&pair.gt).unwrap());
    let (mut images, area) = detections_of_results_file(&gt, &pair.dt);
    images.reverse();
    let mut params = EvalParams::new(IouType::Segm);
    params.detection_area = area;
    let mut evaluator = Evaluator::new(gt.clone(), params).unwrap();
    for (image_id, detections) in &images {
        evaluator.add_image(*image_id, detections).unwrap();
    }
    let summary = evaluator.finish().unwrap();
    assert_bits_equal("reversed image order", &summary.stats, &pair.stats);
}

#[test]
fn background_evaluator_gives_the_same_stats() {
    let pairs = golden_pairs();
    let bbox = pairs
        .iter()
        .find(|p| p.dt.ends_with("synthetic_dets_bbox.json"))
        .unwrap();
    let segm = pairs
        .iter()
        .find(|p| p.dt.ends_with("synthetic_dets_segm.json"))
        .unwrap();
    let gt = Arc::new(GroundTruth::load(&bbox.gt).unwrap());
    let (bbox_images, _) = detections_of_results_file(&gt, &bbox.dt);
    let (segm_images, segm_area) = detections_of_results_file(&gt, &segm.dt);
    let mut segm_params = EvalParams::new(IouType::Segm);
    segm_params.detection_area = segm_area;
    // Two background evaluators, one per results file (they hold different detections).
    let bbox_worker = detbench_eval::BackgroundEvaluator::spawn(vec![
        Evaluator::new(gt.clone(), EvalParams::new(IouType::Bbox)).unwrap(),
    ]);
    let segm_worker = detbench_eval::BackgroundEvaluator::spawn(vec![
        Evaluator::new(gt.clone(), segm_params).unwrap(),
    ]);
    for (image_id, detections) in bbox_images {
        bbox_worker.add_image(image_id, detections).unwrap();
    }
    for (image_id, detections) in segm_images {
        segm_worker.add_image(image_id, detections).unwrap();
    }
    assert_bits_equal(
        "background bbox",
        &bbox_worker.finish().unwrap()[0].stats,
        &bbox.stats,
    );
    assert_bits_equal(
        "background segm",
        &segm_worker.finish().unwrap()[0].stats,
        &segm.stats,
    );
}

/// The reference pipelines' COCO results on the 206-image subset (../shared/reference), scored
/// by pycocotools 2.0.11 into each model's stats.json: real detector output, reproduced
/// exactly through both paths.
#[test]
fn reference_model_results_reproduce_their_pycocotools_stats() {
    let reference = detbench_assets::shared::reference().unwrap();
    let instances = detbench_assets::shared::instances_subset().unwrap();
    let keypoints = detbench_assets::shared::keypoints_subset().unwrap();
    let mut cases = Vec::new();
    for model in [
        "yolox_nano_416",
        "nanodet_m_320",
        "nanodet_m_416",
        "fastestdet_352",
        "d2go_fasterrcnn_fbnetv3a",
    ] {
        cases.push((
            instances.clone(),
            reference.join(model).join("detections_subset.json"),
            IouType::Bbox,
            reference.join(model).join("stats.json"),
            "stats",
        ));
    }
    let pose = reference.join("ultralight_simplepose");
    for (file, key) in [
        ("keypoints_gtboxes_subset.json", "stats_gt_boxes"),
        ("keypoints_yoloxboxes_subset.json", "stats_yolox_boxes"),
    ] {
        cases.push((
            keypoints.clone(),
            pose.join(file),
            IouType::Keypoints,
            pose.join("stats.json"),
            key,
        ));
    }
    let mut ground_truths: std::collections::HashMap<std::path::PathBuf, Arc<GroundTruth>> =
        Default::default();
    for (gt_path, dt_path, iou_type, stats_path, key) in cases {
        let gt = ground_truths
            .entry(gt_path.clone())
            .or_insert_with(|| Arc::new(GroundTruth::load(&gt_path).unwrap()))
            .clone();
        let stats_json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&stats_path).unwrap()).unwrap();
        let want: Vec<f64> = stats_json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let name = dt_path.display().to_string();
        let from_file = evaluate_results_file(&gt, &dt_path, &EvalParams::new(iou_type)).unwrap();
        assert_bits_equal(&format!("{name} (file)"), &from_file.stats, &want);
        let (images, area) = detections_of_results_file(&gt, &dt_path);
        let mut params = EvalParams::new(iou_type);
        params.detection_area = area;
        let mut evaluator = Evaluator::new(gt.clone(), params).unwrap();
        for (image_id, detections) in &images {
            evaluator.add_image(*image_id, detections).unwrap();
        }
        assert_bits_equal(
            &format!("{name} (in memory)"),
            &evaluator.finish().unwrap().stats,
            &want,
        );
    }
}

/// `add_images_parallel` (detbench run's after-run scoring) splits the images into shares scored
/// on separate threads and merges them: the stats, per-class AP and PR curves must be the
/// image-by-image ones bit for bit, and the goldens. A pool of 4 threads makes several shares
/// on any machine (the 500-image synthetic sets: 4 shares; the 206-image subset: 3).
#[test]
fn parallel_scoring_gives_the_image_by_image_results_exactly() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let mut checked = 0;
    for pair in golden_pairs() {
        let gt = Arc::new(GroundTruth::load(&pair.gt).unwrap());
        let (images, area) = detections_of_results_file(&gt, &pair.dt);
        if images.len() < 128 {
            continue; // one share only: nothing parallel to check
        }
        let mut params = EvalParams::new(pair.iou_type);
        params.detection_area = area;
        let sequential = evaluate_in_memory(&pair, &gt);
        let borrowed: Vec<(u64, &[detbench_eval::Detection])> = images
            .iter()
            .map(|(id, detections)| (*id, detections.as_slice()))
            .collect();
        let mut evaluator = Evaluator::new(gt.clone(), params).unwrap();
        pool.install(|| evaluator.add_images_parallel(&borrowed))
            .unwrap();
        let parallel = evaluator.finish().unwrap();
        check_summary(&pair, "parallel in-memory evaluator", &parallel);
        assert_bits_equal(&pair.name(), &parallel.stats, &sequential.stats);
        assert_eq!(parallel.per_class, sequential.per_class, "{}", pair.name());
        assert_eq!(parallel.pr_curves, sequential.pr_curves, "{}", pair.name());
        assert_eq!(
            parallel.detections,
            sequential.detections,
            "{}",
            pair.name()
        );
        checked += 1;
    }
    // The synthetic bbox and segm sets (the keypoint set's results cover fewer images).
    assert!(
        checked >= 2,
        "only {checked} golden pairs have 128 images or more"
    );

    // A real detector's results: YOLOX-Nano's reference detections on the 206-image subset.
    let subset = detbench_assets::shared::instances_subset().unwrap();
    let gt = Arc::new(GroundTruth::load(subset).unwrap());
    let dt = detbench_assets::shared::reference()
        .unwrap()
        .join("yolox_nano_416/detections_subset.json");
    let (images, _) = detections_of_results_file(&gt, &dt);
    let borrowed: Vec<(u64, &[detbench_eval::Detection])> = images
        .iter()
        .map(|(id, detections)| (*id, detections.as_slice()))
        .collect();
    let mut sequential = Evaluator::new(gt.clone(), EvalParams::new(IouType::Bbox)).unwrap();
    for (image_id, detections) in &borrowed {
        sequential.add_image(*image_id, detections).unwrap();
    }
    let sequential = sequential.finish().unwrap();
    let mut parallel = Evaluator::new(gt.clone(), EvalParams::new(IouType::Bbox)).unwrap();
    pool.install(|| parallel.add_images_parallel(&borrowed))
        .unwrap();
    let parallel = parallel.finish().unwrap();
    assert_bits_equal(
        "yolox_nano_416 reference",
        &parallel.stats,
        &sequential.stats,
    );
    assert_eq!(parallel.per_class, sequential.per_class);
    assert_eq!(parallel.pr_curves, sequential.pr_curves);

    // An image given twice, once in each of two shares, is refused as in add_image.
    let pair = golden_pairs()
        .into_iter()
        .find(|p| p.dt.ends_with("synthetic_dets_bbox.json"))
        .unwrap();
    let gt = Arc::new(GroundTruth::load(&pair.gt).unwrap());
    let (images, _) = detections_of_results_file(&gt, &pair.dt);
    let mut borrowed: Vec<(u64, &[detbench_eval::Detection])> = images
        .iter()
        .map(|(id, detections)| (*id, detections.as_slice()))
        .collect();
    borrowed.push(borrowed[0]);
    let mut evaluator = Evaluator::new(gt, EvalParams::new(IouType::Bbox)).unwrap();
    let error = pool
        .install(|| evaluator.add_images_parallel(&borrowed))
        .unwrap_err()
        .to_string();
    assert!(error.contains("was added twice"), "{error}");
}
