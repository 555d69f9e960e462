//! detbench's Ultralytics pipeline against Ultralytics' own predictor (`ultralytics` 8.4.190 on
//! CPU), on the fixtures `tools/ultralytics/make_fixtures.py` made
//! (`tests/fixtures/ultralytics/`):
//!
//! - the shipped int8 YOLOv8n (640), YOLO11n (320) and YOLOv8n-seg (320) run end to end here
//!   (JPEG decode, letterbox, ONNX Runtime, NMS, masks) on the same images with the same
//!   conf/iou/max_det: at least 99% of the predictor's boxes matched (same class, IoU >= 0.99,
//!   |score difference| <= 1e-3), no more than 1% extra, and masks of matched boxes with mask IoU
//!   >= 0.95;
//! - pose, end-to-end and YOLOv5-style outputs (layouts no shipped model has): the predictor's
//!   postprocess on seeded synthetic raw outputs; detbench's postprocess on the same rows must
//!   give the same boxes, scores, classes and keypoints.
//!
//! CI uses these fixtures rather than a live `ultralytics` install: the package needs torch
//! (scripts/setup.sh --torch fetches ~3.8 GB of wheels) for a check whose inputs never change;
//! regenerating them is one script (`tools/ultralytics/make_fixtures.py`), and the live
//! side-by-side run belongs to the speed benchmark.

mod common;

use std::path::PathBuf;

use detbench_bench::{Detector, ImageInput, StageClock};
use detbench_eval::Detection;
use detbench_models::families::common::SingleModelDetector;
use detbench_models::families::ultralytics::layout::{Layout, OutputSpec, Task};
use detbench_models::families::ultralytics::letterbox::Letterbox;
use detbench_models::families::ultralytics::nms::{self, NmsSettings};
use detbench_models::families::ultralytics::{Ultralytics, UltralyticsConfig, UltralyticsMeta};
use detbench_models::families::watch::{BelowThresholdWatch, DEFAULT_WINDOW};
use serde_json::Value as Json;

fn fixture(name: &str) -> Json {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ultralytics")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// One reference result of the predictor.
#[derive(Debug, Clone)]
struct Reference {
    bbox: [f32; 4],
    score: f32,
    class: usize,
    mask: Option<String>,
    keypoints: Option<Vec<f32>>,
}

fn f32s(v: &Json) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn references(image: &Json) -> Vec<Reference> {
    let boxes = image["boxes"].as_array().unwrap();
    (0..boxes.len())
        .map(|i| {
            let b = f32s(&boxes[i]);
            Reference {
                bbox: [b[0], b[1], b[2], b[3]],
                score: image["scores"][i].as_f64().unwrap() as f32,
                class: image["classes"][i].as_u64().unwrap() as usize,
                mask: image
                    .get("masks")
                    .map(|m| m[i].as_str().unwrap().to_owned()),
                keypoints: image.get("keypoints").map(|k| f32s(&k[i])),
            }
        })
        .collect()
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 1.0 }
}

fn xyxy(d: &Detection) -> [f64; 4] {
    [
        d.bbox[0],
        d.bbox[1],
        d.bbox[0] + d.bbox[2],
        d.bbox[1] + d.bbox[3],
    ]
}

/// Counts of a comparison.
#[derive(Debug, Default)]
struct Tally {
    reference: usize,
    candidate: usize,
    matched: usize,
    masks: usize,
    masks_matched: usize,
    worst_mask_iou: f64,
}

/// Greedy matching in reference order (descending score): same category, IoU >= 0.99, score
/// within 1e-3; masks of matched pairs compared by IoU.
fn compare(
    refs: &[Reference],
    ours: &[Detection],
    class_map: &[Option<u64>],
    size: (u32, u32),
    tally: &mut Tally,
) {
    tally.reference += refs.len();
    tally.candidate += ours.len();
    let mut used = vec![false; ours.len()];
    for r in refs {
        let rb = r.bbox.map(f64::from);
        let best = ours
            .iter()
            .enumerate()
            .filter(|(k, d)| !used[*k] && Some(d.category_id) == class_map[r.class])
            .map(|(k, d)| (k, iou(rb, xyxy(d))))
            .filter(|(k, v)| *v >= 0.99 && (ours[*k].score - r.score as f64).abs() <= 1e-3)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((k, _)) = best else { continue };
        used[k] = true;
        tally.matched += 1;
        if let Some(rle) = &r.mask {
            tally.masks += 1;
            let reference = hotcoco::mask::rle_from_string(rle, size.1, size.0).unwrap();
            let ours_rle = ours[k]
                .mask
                .as_ref()
                .expect("a mask for every segmentation result");
            let ours_rle = hotcoco::types::Rle {
                h: ours_rle.height,
                w: ours_rle.width,
                counts: ours_rle.counts.clone(),
            };
            let a = hotcoco::mask::decode(&reference);
            let b = hotcoco::mask::decode(&ours_rle);
            let inter = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| **x == 1 && **y == 1)
                .count() as f64;
            let union = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| **x == 1 || **y == 1)
                .count() as f64;
            let mask_iou = if union > 0.0 { inter / union } else { 1.0 };
            tally.worst_mask_iou = if tally.masks == 1 {
                mask_iou
            } else {
                tally.worst_mask_iou.min(mask_iou)
            };
            if mask_iou >= 0.95 {
                tally.masks_matched += 1;
            }
        }
    }
}

fn assert_tally(what: &str, t: &Tally) {
    eprintln!("{what}: {t:?}");
    assert!(t.reference > 0, "{what}: nothing to compare");
    assert!(
        t.matched as f64 >= 0.99 * t.reference as f64,
        "{what}: {t:?}"
    );
    assert!(
        t.candidate as f64 <= 1.01 * t.reference as f64 + 0.5,
        "{what}: extra results {t:?}"
    );
    assert!(
        t.masks_matched as f64 >= 0.99 * t.masks as f64,
        "{what}: masks {t:?}"
    );
}

/// Runs a shipped model through detbench (auto-configured from the file) at each fixture run's
/// settings and compares with the predictor.
fn check_shipped(model: &str) {
    let doc = fixture(&format!("{model}.json"));
    let path = detbench_assets::shared::models()
        .unwrap()
        .join(doc["model"].as_str().unwrap());
    let images = detbench_assets::shared::coco_images().unwrap();
    for run in doc["runs"].as_array().unwrap() {
        let settings = &run["settings"];
        let (backend, mut pipeline) = common::open_ultralytics(&path);
        pipeline.nms.conf = settings["conf"].as_f64().unwrap() as f32;
        pipeline.nms.iou = settings["iou"].as_f64().unwrap();
        pipeline.nms.max_det = settings["max_det"].as_u64().unwrap() as usize;
        let class_map = pipeline.class_map.clone();
        let pipeline = Ultralytics::new(pipeline).unwrap();
        let mut detector = SingleModelDetector::new(model, backend, pipeline).unwrap();
        let mut tally = Tally::default();
        for image in run["images"].as_array().unwrap() {
            let stem = image["image"].as_str().unwrap();
            let bgr = detbench_imgproc::decode_file(images.join(format!("{stem}.jpg"))).unwrap();
            let input = ImageInput {
                image_id: 1,
                image: &bgr,
            };
            let ours = detector
                .detect(&[input], &mut StageClock::new())
                .unwrap()
                .pop()
                .unwrap();
            let size = (bgr.width as u32, bgr.height as u32);
            compare(&references(image), &ours, &class_map, size, &mut tally);
        }
        assert_tally(&format!("{model} conf {}", settings["conf"]), &tally);
    }
}

#[test]
fn yolov8n_int8_640_matches_the_ultralytics_predictor() {
    check_shipped("yolov8n_int8_640");
}

#[test]
fn yolo11n_int8_320_matches_the_ultralytics_predictor() {
    check_shipped("yolo11n_int8_320");
}

#[test]
fn yolov8n_seg_int8_320_boxes_and_masks_match_the_ultralytics_predictor() {
    check_shipped("yolov8n-seg_int8_320");
}

/// The raw output rebuilt from the fixture's rows (zeros elsewhere: no such row passes the
/// confidence threshold), in the layout's order.
fn raw_output(image: &Json, layout: Layout) -> (Vec<f32>, usize) {
    let shape: Vec<usize> = image["raw_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let (rows, row_len) = match layout {
        Layout::ChannelsFirst => (shape[2], shape[1]),
        _ => (shape[1], shape[2]),
    };
    let mut data = vec![0.0f32; rows * row_len];
    for row in image["raw_rows"].as_array().unwrap() {
        let values = f32s(row);
        let n = values[0] as usize;
        for (c, &v) in values[1..].iter().enumerate() {
            match layout {
                Layout::ChannelsFirst => data[c * rows + n] = v,
                _ => data[n * row_len + c] = v,
            }
        }
    }
    (data, rows)
}

fn synthetic_pipeline(doc: &Json, spec: OutputSpec) -> Ultralytics {
    let size = doc["input_size"].as_array().unwrap();
    let (h, w) = (
        size[0].as_u64().unwrap() as usize,
        size[1].as_u64().unwrap() as usize,
    );
    let run = &doc["runs"][0]["settings"];
    let classes = spec.classes;
    let mut config = UltralyticsConfig::new(
        "images",
        (w, h),
        spec,
        (1..=classes as u64).map(Some).collect(),
    );
    config.nms.conf = run["conf"].as_f64().unwrap() as f32;
    config.nms.iou = run["iou"].as_f64().unwrap();
    config.nms.max_det = run["max_det"].as_u64().unwrap() as usize;
    Ultralytics::new(config).unwrap()
}

fn spec(
    layout: Layout,
    task: Task,
    classes: usize,
    keypoints: Option<(usize, usize)>,
) -> OutputSpec {
    OutputSpec {
        layout,
        task,
        classes,
        keypoints,
        mask_coefficients: 0,
        output: "output0".into(),
        prototypes: None,
    }
}

/// Postprocesses every fixture image's raw rows and compares exactly with the predictor.
fn check_synthetic(doc: &Json, pipeline: &Ultralytics, layout: Layout) -> usize {
    let mut compared = 0;
    for image in doc["runs"][0]["images"].as_array().unwrap() {
        let (w, h) = (
            image["width"].as_u64().unwrap() as usize,
            image["height"].as_u64().unwrap() as usize,
        );
        let (cw, ch) = pipeline.config.input_size;
        let meta = UltralyticsMeta {
            letterbox: Letterbox::new(w, h, cw, ch, true),
        };
        let (data, rows) = raw_output(image, layout);
        let ours = pipeline.detections(&data, rows, None, &meta, 1).unwrap();
        let refs = references(image);
        assert_eq!(ours.len(), refs.len(), "{}: result count", image["image"]);
        for (k, (d, r)) in ours.iter().zip(&refs).enumerate() {
            let want = [
                r.bbox[0] as f64,
                r.bbox[1] as f64,
                (r.bbox[2] - r.bbox[0]) as f64,
                (r.bbox[3] - r.bbox[1]) as f64,
            ];
            assert_eq!(d.bbox, want, "{} result {k}: box", image["image"]);
            assert_eq!(
                d.score, r.score as f64,
                "{} result {k}: score",
                image["image"]
            );
            assert_eq!(
                d.category_id,
                r.class as u64 + 1,
                "{} result {k}: class",
                image["image"]
            );
            if let Some(kpts) = &r.keypoints {
                let got: Vec<f32> = d
                    .keypoints
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                assert_eq!(&got, kpts, "{} result {k}: keypoints", image["image"]);
            }
            compared += 1;
        }
    }
    compared
}

#[test]
fn pose_postprocessing_equals_the_ultralytics_pose_predictor() {
    let doc = fixture("synthetic_pose.json");
    let pipeline = synthetic_pipeline(
        &doc,
        spec(Layout::ChannelsFirst, Task::Pose, 1, Some((17, 3))),
    );
    assert!(check_synthetic(&doc, &pipeline, Layout::ChannelsFirst) > 100);
}

#[test]
fn end_to_end_postprocessing_equals_the_ultralytics_predictor() {
    let doc = fixture("synthetic_end2end.json");
    let pipeline = synthetic_pipeline(&doc, spec(Layout::EndToEnd, Task::Detect, 80, None));
    assert!(check_synthetic(&doc, &pipeline, Layout::EndToEnd) > 50);
}

#[test]
fn objectness_nms_equals_yolov5_reference_nms() {
    let doc = fixture("synthetic_yolov5.json");
    let nc = doc["nc"].as_u64().unwrap() as usize;
    let (data, _) = raw_output(&doc, Layout::Objectness);
    let settings = NmsSettings {
        conf: doc["settings"]["conf"].as_f64().unwrap() as f32,
        iou: doc["settings"]["iou"].as_f64().unwrap(),
        ..Default::default()
    };
    let candidates = nms::candidates_objectness(&data, 5 + nc, nc, settings.conf);
    let kept = nms::non_max_suppression(candidates, &settings);
    let refs = references(&doc);
    assert!(refs.len() > 50);
    assert_eq!(kept.len(), refs.len());
    for (k, (c, r)) in kept.iter().zip(&refs).enumerate() {
        assert_eq!(
            (c.bbox, c.score, c.class),
            (r.bbox, r.score, r.class),
            "result {k}"
        );
    }
}

#[test]
fn a_quantized_model_with_nothing_over_the_threshold_warns_once() {
    let models = detbench_assets::shared::models().unwrap();
    let path = models.join("yolo11n_int8_320.onnx");
    assert!(detbench_models::autoconfig::is_quantized(&path));
    assert!(!detbench_models::autoconfig::is_quantized(
        &models.join("deimv2_hgnetv2_atto_coco.onnx")
    ));
    let (backend, mut config) = common::open_ultralytics(&path);
    // No score of this model reaches 0.999: every image is "below the threshold".
    config.nms.conf = 0.999;
    let watch = BelowThresholdWatch::new("yolo11n_int8_320", 0.999, true, DEFAULT_WINDOW);
    let mut detector = SingleModelDetector::new(
        "yolo11n_int8_320",
        backend,
        Ultralytics::new(config).unwrap(),
    )
    .unwrap()
    .with_watch(watch);
    let mut warnings = Vec::new();
    let images = detbench_assets::shared::coco_images().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for (k, file) in files.iter().take(9).enumerate() {
        let bgr = detbench_imgproc::decode_file(file).unwrap();
        let found = detector
            .detect(
                &[ImageInput {
                    image_id: k as u64,
                    image: &bgr,
                }],
                &mut StageClock::new(),
            )
            .unwrap();
        assert!(found[0].is_empty());
        warnings.extend(detector.take_warnings());
        let expected = usize::from(k + 1 >= DEFAULT_WINDOW);
        assert_eq!(warnings.len(), expected, "after image {}", k + 1);
    }
    assert!(warnings[0].contains("0.999"), "{}", warnings[0]);
    assert!(detector.take_warnings().is_empty(), "taken once");
}
