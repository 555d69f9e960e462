//! Shared by the eval crate's integration tests: the pycocotools goldens of
//! `../shared/conformance`, and a results-file reader that turns COCO results into
//! `detbench_eval::Detection`s the way a model pipeline would hand them over.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use detbench_eval::{Detection, DetectionArea, GroundTruth, IouType, Rle};
use serde_json::Value;

/// One ground-truth/results pair with pycocotools 2.0.11's output for it.
#[derive(Debug, Clone)]
pub struct GoldenPair {
    pub gt: PathBuf,
    pub dt: PathBuf,
    pub iou_type: IouType,
    pub stats: Vec<f64>,
    pub summary: Vec<String>,
}

impl GoldenPair {
    pub fn name(&self) -> String {
        format!(
            "{} + {} ({})",
            self.gt.file_name().unwrap().to_string_lossy(),
            self.dt.file_name().unwrap().to_string_lossy(),
            self.iou_type
        )
    }

    /// The hotcoco fixture whose ground truth uses annotation id 0 (see NOTES.md).
    pub fn is_zero_id_pair(&self) -> bool {
        self.gt.ends_with("hotcoco/fixtures/zero_gt.json")
    }
}

/// Every pair of `goldens_fixtures_pycocotools.json` and `goldens_subset_synthetic_pycocotools.json`.
pub fn golden_pairs() -> Vec<GoldenPair> {
    let conformance = detbench_assets::shared::conformance().unwrap();
    let annotations = detbench_assets::shared::instances_subset()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut pairs = Vec::new();
    // Fixture paths are relative to conformance/; the subset goldens' GT paths are relative to
    // coco/annotations/ and their results to conformance/ (shared/README.md).
    for (file, gt_dir) in [
        ("goldens_fixtures_pycocotools.json", conformance.clone()),
        ("goldens_subset_synthetic_pycocotools.json", annotations),
    ] {
        let text = std::fs::read_to_string(conformance.join(file)).unwrap();
        let goldens: Value = serde_json::from_str(&text).unwrap();
        for result in goldens["results"].as_array().unwrap() {
            pairs.push(GoldenPair {
                gt: gt_dir.join(result["gt"].as_str().unwrap()),
                dt: conformance.join(result["dt"].as_str().unwrap()),
                iou_type: result["iouType"].as_str().unwrap().parse().unwrap(),
                stats: result["stats"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
                summary: result["summary"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            });
        }
    }
    assert_eq!(
        pairs.len(),
        12,
        "expected 9 fixture pairs and 3 subset pairs"
    );
    pairs
}

/// Detections of a COCO results file, grouped by image in order of first appearance (each
/// image's detections in file order), and the area rule pycocotools' `loadRes` applies to the
/// file (from its first result: `bbox`, else `segmentation`, else `keypoints`).
///
/// Masks become uncompressed RLE as a model pipeline produces them: compressed strings are
/// decoded, polygons rasterised at the image size with hotcoco's `frPyObjects` port. A result
/// without `bbox` gets its mask's or keypoints' extent as the box (what `loadRes` derives).
pub fn detections_of_results_file(
    gt: &GroundTruth,
    path: &Path,
) -> (Vec<(u64, Vec<Detection>)>, DetectionArea) {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let results = match &value {
        Value::Array(items) => items.clone(),
        Value::Object(object) => object["annotations"].as_array().unwrap().clone(),
        _ => panic!("{}: not a results file", path.display()),
    };
    let area = match results.first() {
        Some(first) if first.get("bbox").is_some() => DetectionArea::Box,
        Some(first) if first.get("segmentation").is_some() => DetectionArea::Mask,
        Some(first) if first.get("keypoints").is_some() => DetectionArea::Keypoints,
        _ => DetectionArea::Box,
    };
    let mut order = Vec::new();
    let mut by_image: HashMap<u64, Vec<Detection>> = HashMap::new();
    for result in &results {
        let image_id = result["image_id"].as_u64().unwrap();
        let (height, width) = gt.image_size(image_id).unwrap();
        let mask = result
            .get("segmentation")
            .map(|segmentation| mask_of(segmentation, height, width));
        let keypoints: Option<Vec<f64>> = result.get("keypoints").map(|k| {
            k.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        });
        let bbox = match result.get("bbox") {
            Some(bbox) => {
                let b: Vec<f64> = bbox
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                [b[0], b[1], b[2], b[3]]
            }
            None => match (&mask, &keypoints) {
                (Some(mask), _) => hotcoco::mask::to_bbox(&hotcoco::Rle {
                    h: mask.height,
                    w: mask.width,
                    counts: mask.counts.clone(),
                }),
                (None, Some(k)) => keypoint_extent(k),
                (None, None) => panic!("a result without geometry"),
            },
        };
        let detection = Detection {
            image_id,
            category_id: result["category_id"].as_u64().unwrap(),
            bbox,
            score: result["score"].as_f64().unwrap(),
            mask,
            keypoints,
        };
        by_image
            .entry(image_id)
            .or_insert_with(|| {
                order.push(image_id);
                Vec::new()
            })
            .push(detection);
    }
    let grouped = order
        .into_iter()
        .map(|id| (id, by_image.remove(&id).unwrap()))
        .collect();
    (grouped, area)
}

fn mask_of(segmentation: &Value, height: u32, width: u32) -> Rle {
    let rle = match segmentation {
        Value::Array(polygons) => {
            let polygons: Vec<Vec<f64>> = polygons
                .iter()
                .map(|p| {
                    p.as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect()
                })
                .collect();
            hotcoco::mask::fr_polys(&polygons, height, width).unwrap()
        }
        Value::Object(object) => {
            let size = object["size"].as_array().unwrap();
            let (h, w) = (
                size[0].as_u64().unwrap() as u32,
                size[1].as_u64().unwrap() as u32,
            );
            match &object["counts"] {
                Value::String(counts) => hotcoco::mask::rle_from_string(counts, h, w).unwrap(),
                Value::Array(counts) => hotcoco::Rle {
                    h,
                    w,
                    counts: counts.iter().map(|c| c.as_u64().unwrap() as u32).collect(),
                },
                other => panic!("unexpected counts {other}"),
            }
        }
        other => panic!("unexpected segmentation {other}"),
    };
    Rle {
        height: rle.h,
        width: rle.w,
        counts: rle.counts,
    }
}

fn keypoint_extent(keypoints: &[f64]) -> [f64; 4] {
    let xs = keypoints.iter().step_by(3);
    let ys = keypoints.iter().skip(1).step_by(3);
    let (x0, x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    });
    let (y0, y1) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| {
        (lo.min(y), hi.max(y))
    });
    [x0, y0, x1 - x0, y1 - y0]
}

/// Bit-for-bit equality of two stat vectors, with a message showing both.
pub fn assert_bits_equal(what: &str, got: &[f64], want: &[f64]) {
    let same = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(same, "{what}:\n  got  {got:?}\n  want {want:?}");
}
