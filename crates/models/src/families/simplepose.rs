//! Top-down COCO keypoints: person boxes from a detector (YOLOX-Nano), then
//! Ultralight-Nano-SimplePose on one affine crop per person, following GluonCV's SimplePose
//! validation path (`../shared/reference/ultralight_simplepose/SPEC.md`; dmlc/gluon-cv):
//!
//! - crop: `data/transforms/presets/simple_pose.py::_box_to_center_scale` (aspect 192/256,
//!   scale 1.25) and `data/transforms/pose.py::get_affine_transform` with `cv2.warpAffine`
//!   (INTER_LINEAR, border 0), through detbench-imgproc's bit-exact versions; RGB,
//!   `(x/255 - mean) / std` with ImageNet mean/std, in f32;
//! - decode: `data/transforms/pose.py::get_final_preds`: argmax per heatmap (first maximum),
//!   (0, 0) when the peak is <= 0, a quarter-pixel step towards the higher neighbour when the
//!   peak is inside the map, then the inverse affine transform (`get_affine_transform(...,
//!   inv=1)` for the 48 x 64 heatmap);
//! - result: `utils/metrics/coco_keypoints.py::COCOKeyPointsMetric.update`: visibility = raw
//!   peak, score = box score x mean of the peaks > 0 (`in_vis_thresh` 0).
//!
//! Person boxes: protocol (a), ground-truth boxes (GluonCV `COCOKeyPoints` validation, box
//! score 1), is [`ground_truth_person_boxes`]; protocol (b), detector boxes (every category-1
//! detection, `(x, y, x + w, y + h)`, its score), is what [`TopDownDetector`] runs.

use std::path::Path;

use detbench_backends::{Backend, Outputs, Tensor, Value};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
use detbench_eval::{Detection, IouType};
use detbench_imgproc::BgrImage;
use detbench_imgproc::affine::{PoseCrop, get_affine_transform};

use super::common::{FamilyError, SingleModelDetector, output_f32};
use super::yolox::Yolox;

/// COCO keypoints per person.
pub const JOINTS: usize = 17;

/// Settings of the SimplePose pipeline (defaults: Ultralight-Nano-SimplePose, GluonCV eval).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimplePoseConfig {
    /// Network input (width, height).
    pub input_size: (usize, usize),
    /// Heatmap (width, height).
    pub heatmap_size: (usize, usize),
    /// `scale_mult` of `_box_to_center_scale`.
    pub scale_mult: f32,
    /// RGB mean and std of the normalisation (on pixel / 255).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// COCO category of the person boxes taken from the detector.
    pub person_category: u64,
    pub input_name: String,
    pub output_name: String,
}

impl Default for SimplePoseConfig {
    fn default() -> Self {
        SimplePoseConfig {
            input_size: (192, 256),
            heatmap_size: (48, 64),
            scale_mult: 1.25,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            person_category: 1,
            input_name: "data".to_owned(),
            output_name: "hybridsequential0_conv7_fwd".to_owned(),
        }
    }
}

/// One person box to run the pose model on: corners in original-image pixels and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonBox {
    pub image_id: u64,
    /// `[xmin, ymin, xmax, ymax]`.
    pub xyxy: [f64; 4],
    pub score: f64,
}

/// The SimplePose crop, decode and result steps.
#[derive(Debug, Clone)]
pub struct SimplePose {
    pub config: SimplePoseConfig,
}

impl SimplePose {
    pub fn new(config: SimplePoseConfig) -> Self {
        SimplePose { config }
    }

    /// The network input for one person: the affine crop as an RGB, normalised `[1, 3, H, W]`
    /// tensor, and the crop (centre, scale, matrix) for decoding.
    pub fn crop(
        &self,
        image: &BgrImage,
        person: &PersonBox,
    ) -> Result<(Tensor, PoseCrop), FamilyError> {
        let (w, h) = self.config.input_size;
        let crop =
            detbench_imgproc::simple_pose_crop(image, person.xyxy, w, h, self.config.scale_mult)
                .map_err(|e| FamilyError::Image {
                    width: image.width,
                    height: image.height,
                    reason: e.to_string(),
                })?;
        let plane = w * h;
        let mut data = vec![0.0f32; 3 * plane];
        // The crop keeps the BGR order of the image; channel c of RGB is BGR channel 2 - c.
        for (at, px) in crop.image.data.chunks_exact(3).enumerate() {
            for rgb in 0..3 {
                let x = px[2 - rgb] as f32 / 255.0;
                data[rgb * plane + at] = (x - self.config.mean[rgb]) / self.config.std[rgb];
            }
        }
        Ok((Tensor::f32(vec![1, 3, h, w], data), crop))
    }

    /// `get_final_preds` for one person: `[x, y, maxval]` per joint in original-image pixels.
    pub fn decode(
        &self,
        heatmaps: &[f32],
        crop: &PoseCrop,
    ) -> Result<[[f64; 3]; JOINTS], FamilyError> {
        let (hm_w, hm_h) = self.config.heatmap_size;
        let inverse =
            get_affine_transform(crop.center, crop.scale, hm_w, hm_h, true).ok_or_else(|| {
                FamilyError::Model {
                    model: "simplepose".to_owned(),
                    reason: format!("degenerate crop (scale {:?})", crop.scale),
                }
            })?;
        let mut out = [[0.0f64; 3]; JOINTS];
        for (joint, map) in heatmaps.chunks_exact(hm_w * hm_h).enumerate().take(JOINTS) {
            let (index, max) = first_argmax(map);
            // coords *= (maxvals > 0): the peak position, or (0, 0) for a non-positive peak.
            let positive = if max > 0.0 { 1.0f32 } else { 0.0 };
            let mut x = (index % hm_w) as f32 * positive;
            let mut y = (index / hm_w) as f32 * positive;
            let px = (x + 0.5).floor() as isize;
            let py = (y + 0.5).floor() as isize;
            if 1 < px && px < hm_w as isize - 1 && 1 < py && py < hm_h as isize - 1 {
                let at = |yy: isize, xx: isize| map[yy as usize * hm_w + xx as usize];
                x += sign(at(py, px + 1) - at(py, px - 1)) * 0.25;
                y += sign(at(py + 1, px) - at(py - 1, px)) * 0.25;
            }
            let (x, y) = (x as f64, y as f64);
            out[joint] = [
                inverse[0][0] * x + inverse[0][1] * y + inverse[0][2],
                inverse[1][0] * x + inverse[1][1] * y + inverse[1][2],
                max as f64,
            ];
        }
        Ok(out)
    }

    /// The COCO keypoint result of one person: keypoints `[x, y, maxval]`, score
    /// `box score x mean(maxval > 0)` (0 when no joint is positive). `bbox` is the extent of the
    /// keypoints, which is what pycocotools' `loadRes` gives a keypoint-only result (GluonCV
    /// writes none): its area decides the area range of an unmatched result, so a results file
    /// with this `bbox` scores the same as the reference's keypoint-only file.
    pub fn result(&self, person: &PersonBox, joints: &[[f64; 3]; JOINTS]) -> Detection {
        let positive: Vec<f64> = joints.iter().map(|j| j[2]).filter(|&v| v > 0.0).collect();
        let keypoint_score = if positive.is_empty() {
            0.0
        } else {
            numpy_sum(&positive) / positive.len() as f64
        };
        let (mut x0, mut y0) = (f64::INFINITY, f64::INFINITY);
        let (mut x1, mut y1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for j in joints {
            x0 = x0.min(j[0]);
            x1 = x1.max(j[0]);
            y0 = y0.min(j[1]);
            y1 = y1.max(j[1]);
        }
        Detection {
            image_id: person.image_id,
            category_id: self.config.person_category,
            bbox: [x0, y0, x1 - x0, y1 - y0],
            score: keypoint_score * person.score,
            mask: None,
            keypoints: Some(joints.iter().flat_map(|j| j.iter().copied()).collect()),
        }
    }

    /// Crop, one pose inference and decode for each person of one image, timed by stage.
    pub fn run_persons(
        &self,
        backend: &mut dyn Backend,
        image: &BgrImage,
        persons: &[PersonBox],
        clock: &mut StageClock,
    ) -> Result<Vec<Detection>, FamilyError> {
        let (hm_w, hm_h) = self.config.heatmap_size;
        let mut results = Vec::with_capacity(persons.len());
        for person in persons {
            let (tensor, crop) = clock.time(Stage::Preprocess, || self.crop(image, person))?;
            let outputs: Outputs = clock.time(Stage::Inference, || {
                backend.run(vec![(
                    self.config.input_name.clone(),
                    Value::Tensor(tensor),
                )])
            })?;
            let result = clock.time(Stage::Postprocess, || -> Result<Detection, FamilyError> {
                let heatmaps =
                    output_f32(&outputs, &self.config.output_name, &[1, JOINTS, hm_h, hm_w])?;
                let joints = self.decode(heatmaps, &crop)?;
                Ok(self.result(person, &joints))
            })?;
            results.push(result);
        }
        Ok(results)
    }
}

/// Index and value of the first maximum (`np.argmax` / `max` on finite maps).
fn first_argmax(map: &[f32]) -> (usize, f32) {
    let mut best = 0;
    let mut best_value = map[0];
    for (i, &v) in map.iter().enumerate().skip(1) {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    (best, best_value)
}

/// `np.sign` in f32.
fn sign(v: f32) -> f32 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// `np.sum` of a contiguous float64 array (numpy `pairwise_sum`, starting from the identity 0):
/// sequential below 8 values, else 8 running partial sums combined pairwise, then the rest.
fn numpy_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        return values.iter().fold(0.0, |acc, v| acc + v);
    }
    assert!(
        n <= 128,
        "more than one pairwise block; not needed for 17 joints"
    );
    let mut r = [0.0f64; 8];
    r.copy_from_slice(&values[..8]);
    let full = n - n % 8;
    for block in values[8..full].chunks_exact(8) {
        for (acc, v) in r.iter_mut().zip(block) {
            *acc += v;
        }
    }
    let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for v in &values[full..] {
        sum += v;
    }
    0.0 + sum
}

/// GluonCV `COCOKeyPoints` validation boxes (protocol (a)) from a COCO keypoint annotation
/// file: non-crowd category-1 annotations with a labelled keypoint, `xywh` turned into
/// `(x, y, x + max(w - 1, 0), y + max(h - 1, 0))` clipped to `[0, W-1] x [0, H-1]`, dropped
/// when empty or of non-positive area; score 1; sorted by (image id, annotation id), as
/// `tools/reference/run_pose.py::gt_person_boxes`.
pub fn ground_truth_person_boxes(annotations: &Path) -> Result<Vec<PersonBox>, FamilyError> {
    let bad = |reason: String| FamilyError::Model {
        model: "simplepose ground-truth boxes".to_owned(),
        reason: format!("{}: {reason}", annotations.display()),
    };
    let text = std::fs::read_to_string(annotations).map_err(|e| bad(e.to_string()))?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut sizes = std::collections::HashMap::new();
    for image in doc["images"]
        .as_array()
        .ok_or_else(|| bad("no `images` array".into()))?
    {
        let id = image["id"]
            .as_u64()
            .ok_or_else(|| bad(format!("image without integer id: {image}")))?;
        let w = image["width"]
            .as_f64()
            .ok_or_else(|| bad(format!("image {id}: no width")))?;
        let h = image["height"]
            .as_f64()
            .ok_or_else(|| bad(format!("image {id}: no height")))?;
        sizes.insert(id, (w, h));
    }
    let mut boxes: Vec<(u64, u64, PersonBox)> = Vec::new();
    let anns = doc["annotations"]
        .as_array()
        .ok_or_else(|| bad("no `annotations` array".into()))?;
    for (k, a) in anns.iter().enumerate() {
        let field = |name: &str| bad(format!("annotation #{k}: missing or invalid `{name}`"));
        // The reference's order (run_pose.py, gt_person_boxes): `a["iscrowd"] or
        // a["category_id"] != 1 or max(a["keypoints"]) == 0` short-circuits, so crowd and
        // non-person annotations need no `keypoints`.
        if a["iscrowd"].as_u64().unwrap_or(0) != 0 {
            continue;
        }
        let category = a["category_id"]
            .as_u64()
            .ok_or_else(|| field("category_id"))?;
        if category != 1 {
            continue;
        }
        let keypoints: Vec<f64> = a["keypoints"]
            .as_array()
            .ok_or_else(|| field("keypoints"))?
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| field("keypoints")))
            .collect::<Result<_, _>>()?;
        let max_keypoint = keypoints.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if max_keypoint == 0.0 {
            continue;
        }
        let image_id = a["image_id"].as_u64().ok_or_else(|| field("image_id"))?;
        let ann_id = a["id"].as_u64().ok_or_else(|| field("id"))?;
        let &(img_w, img_h) = sizes
            .get(&image_id)
            .ok_or_else(|| field("image_id (no such image)"))?;
        let bbox: Vec<f64> = a["bbox"]
            .as_array()
            .ok_or_else(|| field("bbox"))?
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| field("bbox")))
            .collect::<Result<_, _>>()?;
        let [x, y, w, h] = bbox[..] else {
            return Err(field("bbox"));
        };
        let area = a["area"].as_f64().ok_or_else(|| field("area"))?;
        let clip = |v: f64, limit: f64| (limit - 1.0).min(0f64.max(v));
        let x1 = clip(x, img_w);
        let y1 = clip(y, img_h);
        let x2 = clip(x + (w - 1.0).max(0.0), img_w);
        let y2 = clip(y + (h - 1.0).max(0.0), img_h);
        if area <= 0.0 || x2 <= x1 || y2 <= y1 {
            continue;
        }
        let visible: f64 = keypoints
            .iter()
            .skip(2)
            .step_by(3)
            .map(|&v| v.min(1.0))
            .sum();
        if visible < 1.0 {
            continue;
        }
        boxes.push((
            image_id,
            ann_id,
            PersonBox {
                image_id,
                xyxy: [x1, y1, x2, y2],
                score: 1.0,
            },
        ));
    }
    boxes.sort_by_key(|&(image, ann, _)| (image, ann));
    Ok(boxes.into_iter().map(|(_, _, b)| b).collect())
}

/// The `simplepose_yolox` pipeline: YOLOX person boxes, then SimplePose per person.
pub struct TopDownDetector {
    name: String,
    detector: SingleModelDetector<Yolox>,
    pose_backend: Box<dyn Backend>,
    pose: SimplePose,
}

impl TopDownDetector {
    pub fn new(
        name: &str,
        detector: SingleModelDetector<Yolox>,
        pose_backend: Box<dyn Backend>,
        pose: SimplePose,
    ) -> Self {
        TopDownDetector {
            name: name.to_owned(),
            detector,
            pose_backend,
            pose,
        }
    }

    pub fn pose(&self) -> &SimplePose {
        &self.pose
    }

    /// Runs only the pose model on given person boxes of one image (e.g. ground-truth boxes).
    pub fn keypoints_for_boxes(
        &mut self,
        image: &BgrImage,
        persons: &[PersonBox],
        clock: &mut StageClock,
    ) -> Result<Vec<Detection>, FamilyError> {
        self.pose
            .run_persons(self.pose_backend.as_mut(), image, persons, clock)
    }
}

impl Detector for TopDownDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_support(&self) -> BatchSupport {
        BatchSupport::Fixed(1)
    }

    fn iou_types(&self) -> Vec<IouType> {
        vec![IouType::Keypoints]
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "pipeline": {
                "family": "top-down keypoints (SimplePose)",
                "config": self.pose.config,
                "person_boxes": "every category-1 detection of the person detector (no score threshold), box (x, y, x+w, y+h), its score",
                "preprocess": "per person: GluonCV _box_to_center_scale (aspect 0.75, x1.25) + get_affine_transform + cv2.warpAffine (bit-exact), RGB, (x/255 - mean)/std",
                "postprocess": "get_final_preds: first argmax, quarter-pixel refinement, inverse affine; score = box score x mean(maxval > 0)",
                "upstream": "dmlc/gluon-cv: data/transforms/presets/simple_pose.py, data/transforms/pose.py, utils/metrics/coco_keypoints.py; dog-qiuqiu/Ultralight-SimplePose@40f9b5d",
                "timing": "preprocess/inference/postprocess include the person detector's stages plus every person's crop, inference and decode",
            },
            "person_detector": self.detector.provenance(),
            "backend": self.pose_backend.describe(),
        })
    }

    /// The pose model's engine (the person detector runs with the same settings).
    fn backend(&self) -> Option<detbench_backends::BackendDescription> {
        Some(self.pose_backend.describe())
    }

    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        let mut all = Vec::with_capacity(batch.len());
        for input in batch {
            let boxes = self.detector.detect(std::slice::from_ref(input), clock)?;
            let persons: Vec<PersonBox> = boxes
                .into_iter()
                .flatten()
                .filter(|d| d.category_id == self.pose.config.person_category)
                .map(|d| PersonBox {
                    image_id: input.image_id,
                    xyxy: [
                        d.bbox[0],
                        d.bbox[1],
                        d.bbox[0] + d.bbox[2],
                        d.bbox[1] + d.bbox[3],
                    ],
                    score: d.score,
                })
                .collect();
            let results = self
                .pose
                .run_persons(self.pose_backend.as_mut(), input.image, &persons, clock)
                .map_err(|e| format!("{}: image {}: {e}", self.name, input.image_id))?;
            all.push(results);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_sum_orders_additions_like_pairwise_sum() {
        let v: Vec<f64> = (0..17).map(|i| 0.1 * i as f64 + 1e-9).collect();
        let r: Vec<f64> = (0..8).map(|j| v[j] + v[j + 8]).collect();
        let want = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])) + v[16];
        assert_eq!(numpy_sum(&v), want);
        assert_eq!(numpy_sum(&[0.5, 0.25]), 0.75);
    }

    /// Crowd and non-person annotations are skipped before their keypoints are read, as the
    /// reference's short-circuit `or` does: they need no `keypoints` field.
    #[test]
    fn ground_truth_boxes_skip_crowd_and_other_categories_before_reading_keypoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kp.json");
        let mut kp = vec![0.0; 51];
        kp[0..3].copy_from_slice(&[5.0, 5.0, 2.0]);
        let doc = serde_json::json!({
            "images": [{"id": 7, "width": 100, "height": 50}],
            "annotations": [
                {"id": 1, "image_id": 7, "category_id": 2, "bbox": [0, 0, 9, 9], "area": 81},
                {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 9, 9], "area": 81},
                {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 0, "bbox": [10, 20, 11, 6],
                 "area": 66, "keypoints": kp},
            ],
        });
        std::fs::write(&path, doc.to_string()).unwrap();
        let boxes = ground_truth_person_boxes(&path).unwrap();
        assert_eq!(boxes.len(), 1);
        assert_eq!(boxes[0].image_id, 7);
        assert_eq!(boxes[0].xyxy, [10.0, 20.0, 20.0, 25.0]);
    }

    #[test]
    fn argmax_takes_the_first_peak() {
        assert_eq!(first_argmax(&[0.1, 0.9, 0.9, -1.0]), (1, 0.9));
    }
}
