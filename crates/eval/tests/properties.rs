//! Property tests of the in-memory evaluator on random scenes (random images, objects, crowd
//! regions, detections near and far from the objects):
//!
//! - it gives the same numbers, bit for bit, as writing the detections to a COCO results file
//!   and evaluating that file through hotcoco's loader (bbox, segm and keypoints);
//! - the order in which images and detections are handed over does not matter (scores are
//!   distinct, so pycocotools' ranking has no ties to break);
//! - a perfect detector (every non-crowd object's box, score 1) scores AP 1 and AR 1.
//!
//! Each test sets its case count explicitly and prints how many cases ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use detbench_eval::{
    Detection, EvalParams, EvalSummary, Evaluator, GroundTruth, IouType, Rle, evaluate_results_file,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

const CASES: u32 = 256;

#[derive(Debug, Clone)]
struct Object {
    category_id: u64,
    bbox: [f64; 4],
    crowd: bool,
    /// Whether the detector finds it, and how far off its box is.
    found: Option<(f64, f64)>,
}

/// One image: width, height, its objects, and the false positives the detector reports on it.
type ImageScene = (u32, u32, Vec<Object>, Vec<[f64; 4]>);

#[derive(Debug, Clone)]
struct Scene {
    images: Vec<ImageScene>,
    /// One raw score per detection (object hits first, then false positives, image by image).
    raw_scores: Vec<f64>,
}

fn box_in(width: u32, height: u32) -> impl Strategy<Value = [f64; 4]> {
    let (w, h) = (f64::from(width), f64::from(height));
    (0.0..0.8f64, 0.0..0.8f64, 0.05..0.6f64, 0.05..0.6f64)
        .prop_map(move |(x, y, bw, bh)| [x * w, y * h, bw * w, bh * h])
}

fn object(width: u32, height: u32, categories: u64) -> impl Strategy<Value = Object> {
    (
        1..=categories,
        box_in(width, height),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.8, (-3.0..3.0f64, -3.0..3.0f64)),
    )
        .prop_map(|(category_id, bbox, crowd, found)| Object {
            category_id,
            bbox,
            crowd,
            found,
        })
}

fn image(categories: u64) -> impl Strategy<Value = ImageScene> {
    (16u32..80, 16u32..80).prop_flat_map(move |(width, height)| {
        (
            Just(width),
            Just(height),
            prop::collection::vec(object(width, height, categories), 0..7),
            prop::collection::vec(box_in(width, height), 0..5),
        )
    })
}

fn scene(categories: u64) -> impl Strategy<Value = Scene> {
    prop::collection::vec(image(categories), 1..5).prop_flat_map(|images| {
        let detections: usize = images
            .iter()
            .map(|(_, _, objects, false_positives)| {
                objects.iter().filter(|o| o.found.is_some()).count() + false_positives.len()
            })
            .sum();
        (
            Just(images),
            prop::collection::vec(0.0..1.0f64, detections..=detections),
        )
            .prop_map(|(images, raw_scores)| Scene { images, raw_scores })
    })
}

/// 17 keypoints spread over a box, as `[x, y, v]` triples.
fn keypoints_in(bbox: &[f64; 4], visibility: f64) -> Vec<f64> {
    (0..17)
        .flat_map(|j| {
            let fx = f64::from(j % 5) / 4.0;
            let fy = f64::from(j / 5) / 3.0;
            [bbox[0] + fx * bbox[2], bbox[1] + fy * bbox[3], visibility]
        })
        .collect()
}

/// The mask of the polygon the ground truth gives an object ([`Scene::ground_truth_json`]).
fn mask_of_polygon(bbox: &[f64; 4], width: u32, height: u32) -> Rle {
    to_rle(hotcoco::mask::fr_poly(&box_polygon(bbox), height, width).unwrap())
}

fn box_polygon(&[x, y, w, h]: &[f64; 4]) -> Vec<f64> {
    vec![x, y, x + w, y, x + w, y + h, x, y + h]
}

fn mask_of_box(bbox: &[f64; 4], width: u32, height: u32) -> Rle {
    to_rle(hotcoco::mask::fr_bbox(bbox, height, width).unwrap())
}

fn to_rle(rle: hotcoco::Rle) -> Rle {
    Rle {
        height: rle.h,
        width: rle.w,
        counts: rle.counts,
    }
}

impl Scene {
    fn ground_truth_json(&self) -> serde_json::Value {
        let mut images = Vec::new();
        let mut annotations = Vec::new();
        for (index, (width, height, objects, _)) in self.images.iter().enumerate() {
            let image_id = index as u64 + 1;
            images.push(json!({"id": image_id, "width": width, "height": height,
                               "file_name": format!("{image_id}.jpg")}));
            for object in objects {
                let [_, _, w, h] = object.bbox;
                annotations.push(json!({
                    "id": annotations.len() + 1,
                    "image_id": image_id,
                    "category_id": object.category_id,
                    "bbox": object.bbox,
                    "area": w * h,
                    "iscrowd": u8::from(object.crowd),
                    "segmentation": [box_polygon(&object.bbox)],
                    "keypoints": keypoints_in(&object.bbox, 2.0),
                    "num_keypoints": 17,
                }));
            }
        }
        json!({
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        })
    }

    /// Detections per image: found objects (shifted boxes) and false positives, with distinct
    /// scores (a raw score plus a per-detection offset, so no two are equal).
    fn detections(&self) -> Vec<(u64, Vec<Detection>)> {
        let mut scores = self.raw_scores.iter().enumerate();
        let mut next_score = || {
            let (i, raw) = scores.next().unwrap();
            0.5 * raw + 1e-6 * i as f64
        };
        let mut out = Vec::new();
        for (index, (width, height, objects, false_positives)) in self.images.iter().enumerate() {
            let image_id = index as u64 + 1;
            let mut detections = Vec::new();
            let mut push = |category_id: u64, bbox: [f64; 4], score: f64| {
                detections.push(Detection {
                    image_id,
                    category_id,
                    bbox,
                    score,
                    mask: Some(mask_of_box(&bbox, *width, *height)),
                    keypoints: Some(keypoints_in(&bbox, 1.0)),
                });
            };
            for object in objects {
                if let Some((dx, dy)) = object.found {
                    let [x, y, w, h] = object.bbox;
                    push(object.category_id, [x + dx, y + dy, w, h], next_score());
                }
            }
            for (j, bbox) in false_positives.iter().enumerate() {
                push(1 + (j as u64 % 3), *bbox, next_score());
            }
            out.push((image_id, detections));
        }
        out
    }
}

fn results_json(images: &[(u64, Vec<Detection>)], iou_type: IouType) -> serde_json::Value {
    let results: Vec<serde_json::Value> = images
        .iter()
        .flat_map(|(_, detections)| detections)
        .map(|d| {
            let mut result = json!({
                "image_id": d.image_id, "category_id": d.category_id,
                "bbox": d.bbox, "score": d.score,
            });
            match iou_type {
                IouType::Bbox => {}
                IouType::Segm => {
                    let mask = d.mask.as_ref().unwrap();
                    result["segmentation"] =
                        json!({"size": [mask.height, mask.width], "counts": mask.counts});
                }
                IouType::Keypoints => result["keypoints"] = json!(d.keypoints),
            }
            result
        })
        .collect();
    serde_json::Value::Array(results)
}

fn evaluate_in_memory(
    gt: &Arc<GroundTruth>,
    iou_type: IouType,
    images: &[(u64, Vec<Detection>)],
) -> EvalSummary {
    let mut evaluator = Evaluator::new(gt.clone(), EvalParams::new(iou_type)).unwrap();
    for (image_id, detections) in images {
        evaluator.add_image(*image_id, detections).unwrap();
    }
    evaluator.finish().unwrap()
}

fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn run(
    name: &str,
    strategy: impl Strategy<Value = Scene>,
    test: impl Fn(&Scene, &tempfile::TempDir),
) {
    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |scene| {
            cases.fetch_add(1, Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            test(&scene, &dir);
            Ok(())
        })
        .unwrap();
    let ran = cases.load(Ordering::Relaxed);
    println!("{name}: {ran} cases ran");
    assert!(ran >= CASES as usize);
}

fn load_gt(scene: &Scene, dir: &tempfile::TempDir) -> Arc<GroundTruth> {
    let path = dir.path().join("gt.json");
    std::fs::write(&path, scene.ground_truth_json().to_string()).unwrap();
    Arc::new(GroundTruth::load(&path).unwrap())
}

#[test]
fn in_memory_equals_results_file_through_hotcocos_loader() {
    run("in-memory == results file", scene(3), |scene, dir| {
        let gt = load_gt(scene, dir);
        let images = scene.detections();
        for iou_type in [IouType::Bbox, IouType::Segm, IouType::Keypoints] {
            let in_memory = evaluate_in_memory(&gt, iou_type, &images);
            let path = dir.path().join(format!("{iou_type}.json"));
            std::fs::write(&path, results_json(&images, iou_type).to_string()).unwrap();
            let from_file = evaluate_results_file(&gt, &path, &EvalParams::new(iou_type)).unwrap();
            assert!(
                same_bits(&in_memory.stats, &from_file.stats),
                "{iou_type}: in memory {:?} != file {:?}",
                in_memory.stats,
                from_file.stats
            );
            assert_eq!(in_memory.per_class, from_file.per_class);
        }
    });
}

#[test]
fn order_of_images_and_detections_does_not_matter() {
    let strategy = scene(3).prop_flat_map(|scene| {
        let n = scene.images.len();
        (
            Just(scene),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            any::<u64>(),
        )
    });
    let cases = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(scene, image_order, seed)| {
            cases.fetch_add(1, Ordering::Relaxed);
            let dir = tempfile::tempdir().unwrap();
            let gt = load_gt(&scene, &dir);
            let images = scene.detections();
            let mut shuffled: Vec<(u64, Vec<Detection>)> =
                image_order.iter().map(|&i| images[i].clone()).collect();
            for (k, (_, detections)) in shuffled.iter_mut().enumerate() {
                // A deterministic per-image rotation and reversal driven by `seed`.
                if !detections.is_empty() {
                    let len = detections.len();
                    detections.rotate_left((seed as usize + k) % len);
                    if (seed >> k) & 1 == 1 {
                        detections.reverse();
                    }
                }
            }
            for iou_type in [IouType::Bbox, IouType::Segm, IouType::Keypoints] {
                let original = evaluate_in_memory(&gt, iou_type, &images);
                let permuted = evaluate_in_memory(&gt, iou_type, &shuffled);
                prop_assert!(
                    same_bits(&original.stats, &permuted.stats),
                    "{iou_type}: {:?} != {:?}",
                    original.stats,
                    permuted.stats
                );
            }
            Ok(())
        })
        .unwrap();
    let ran = cases.load(Ordering::Relaxed);
    println!("permutation invariance: {ran} cases ran");
    assert!(ran >= CASES as usize);
}

#[test]
fn a_perfect_detector_scores_ap_one() {
    run("perfect detector", scene(3), check_perfect_detector);
}

/// The smallest scene proptest found failing in CI: a box 0.8 px wide whose polygon covers no
/// pixel centre, so its mask is empty and segm cannot match it (AP 0), while bbox and keypoints
/// still score 1.
#[test]
fn a_perfect_detector_on_a_sub_pixel_wide_box() {
    let scene = Scene {
        images: vec![(
            16,
            46,
            vec![Object {
                category_id: 1,
                bbox: [1.533591410071071, 0.0, 0.8, 2.3000000000000003],
                crowd: false,
                found: None,
            }],
            vec![],
        )],
        raw_scores: vec![],
    };
    check_perfect_detector(&scene, &tempfile::tempdir().unwrap());
}

/// A detector that returns every non-crowd object exactly (its box, the ground truth's own
/// polygon as the mask, its keypoints) at score 1 scores AP 1 and AR 1 for every IoU type.
fn check_perfect_detector(scene: &Scene, dir: &tempfile::TempDir) {
    let gt = load_gt(scene, dir);
    let images: Vec<(u64, Vec<Detection>)> = scene
        .images
        .iter()
        .enumerate()
        .map(|(index, (width, height, objects, _))| {
            let image_id = index as u64 + 1;
            let detections = objects
                .iter()
                .filter(|o| !o.crowd)
                .map(|o| Detection {
                    image_id,
                    category_id: o.category_id,
                    bbox: o.bbox,
                    score: 1.0,
                    mask: Some(mask_of_polygon(&o.bbox, *width, *height)),
                    keypoints: Some(keypoints_in(&o.bbox, 1.0)),
                })
                .collect();
            (image_id, detections)
        })
        .collect();
    let has_objects = scene
        .images
        .iter()
        .any(|(_, _, objects, _)| objects.iter().any(|o| !o.crowd));
    // An object whose polygon covers no pixel centre has an empty mask, and pycocotools gives
    // two empty masks IoU 0 (maskApi.c rleIou: union 0), so no detection can match it in segm.
    // The detections carry exactly those masks, one per non-crowd object.
    let (empty_masks, objects): (usize, usize) = images
        .iter()
        .flat_map(|(_, detections)| detections)
        .filter_map(|d| d.mask.as_ref())
        .fold((0, 0), |(empty, all), mask| {
            let pixels = mask.height * mask.width;
            (empty + usize::from(mask.counts == [pixels]), all + 1)
        });
    for iou_type in [IouType::Bbox, IouType::Segm, IouType::Keypoints] {
        let summary = evaluate_in_memory(&gt, iou_type, &images);
        let (ap, ar) = match iou_type {
            IouType::Keypoints => (summary.stats[0], summary.stats[5]),
            _ => (summary.stats[0], summary.stats[8]),
        };
        if !has_objects {
            assert_eq!((ap, ar), (-1.0, -1.0), "{iou_type}: no objects");
            continue;
        }
        if iou_type == IouType::Segm && empty_masks > 0 {
            if empty_masks == objects {
                assert_eq!((ap, ar), (0.0, 0.0), "segm: every mask is empty");
            }
            continue;
        }
        // pycocotools' precision is tp / (tp + fp + np.spacing(1)), a hair under 1.
        assert!(
            (1.0 - ap).abs() < 1e-12,
            "{iou_type}: AP {ap} ({:?})",
            summary.stats
        );
        assert_eq!(ar, 1.0, "{iou_type}: AR {:?}", summary.stats);
        for class in &summary.per_class {
            if let Some(ap) = class.ap {
                assert!(
                    (1.0 - ap).abs() < 1e-12,
                    "{iou_type} {}: AP {ap}",
                    class.name
                );
            }
        }
    }
}
