//! YOLOX (Megvii) with the box decode outside the graph, as `tools/export_onnx.py` exports it
//! by default (`decode_in_inference=False`), following upstream COCO evaluation exactly
//! (`../shared/reference/yolox_nano_416/SPEC.md`; Megvii-BaseDetection/YOLOX @ 6ddff48):
//!
//! - preprocess: `yolox/data/data_augment.py::preproc` with `ValTransform(legacy=False)`:
//!   `r = min(S/h, S/w)`, `cv2.resize` INTER_LINEAR to `(int(w*r), int(h*r))`, pasted at the
//!   top-left of an S x S canvas of 114, BGR, 0-255 floats, no normalisation;
//! - decode: `yolox/models/yolo_head.py::decode_outputs`: `xy = (t_xy + grid) * stride`,
//!   `wh = exp(t_wh) * stride`, strides 8/16/32, rows level by level, row-major;
//! - select and NMS: `yolox/utils/boxes.py::postprocess`: one label per box (argmax),
//!   `score = obj * cls >= test_conf` (0.01, `yolox/exp/yolox_base.py`), class-aware
//!   `torchvision.ops.batched_nms` at `nmsthre` 0.65;
//! - map back: `yolox/evaluators/coco_evaluator.py::convert_to_coco_format`: boxes / r, not
//!   clipped; at most 100 per image (the reference cap; upstream itself has none).

use detbench_backends::{Outputs, Tensor};
use detbench_eval::Detection;
use detbench_imgproc::BgrImage;

use super::common::{ClassMap, FamilyError, KeptBox, Pipeline, argmax, output_f32};
use super::nms::{BoxXyxy, batched_nms};
use super::numpy_math::exp_f32;

/// Settings of the YOLOX pipeline; the defaults are upstream's COCO-evaluation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct YoloxConfig {
    /// Square network input side (416 for YOLOX-Nano/Tiny).
    pub input_size: usize,
    /// `test_conf`: keep candidates with `obj * cls >= score_threshold`.
    pub score_threshold: f32,
    /// `nmsthre`: class-aware NMS IoU threshold.
    pub nms_iou: f64,
    /// Detections kept per image after NMS (`None`: all, as upstream).
    pub max_detections: Option<usize>,
    /// Letterbox canvas value.
    pub pad_value: u8,
    /// Name of the model output.
    pub output_name: String,
    /// Name of the model input.
    pub input_name: String,
    /// Category id of each of the 80 classes (recorded only when it is not COCO's).
    #[serde(skip_serializing_if = "ClassMap::is_coco80")]
    pub class_map: ClassMap,
}

impl Default for YoloxConfig {
    fn default() -> Self {
        YoloxConfig {
            input_size: 416,
            score_threshold: 0.01,
            nms_iou: 0.65,
            max_detections: Some(100),
            pad_value: 114,
            output_name: "output".to_owned(),
            input_name: "images".to_owned(),
            class_map: ClassMap::coco80(),
        }
    }
}

pub const STRIDES: [usize; 3] = [8, 16, 32];
/// Values per output row: 4 box terms, objectness, 80 class probabilities.
const ROW: usize = 85;

/// What postprocessing needs from preprocessing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloxMeta {
    /// `min(S/h, S/w)` in f64.
    pub ratio: f64,
    pub width: usize,
    pub height: usize,
}

/// The YOLOX pipeline (preprocessing + postprocessing) for one input size.
#[derive(Debug, Clone)]
pub struct Yolox {
    pub config: YoloxConfig,
}

impl Yolox {
    pub fn new(config: YoloxConfig) -> Self {
        Yolox { config }
    }

    /// Rows of the output: one per grid point over the three levels.
    pub fn rows(&self) -> usize {
        STRIDES
            .iter()
            .map(|s| (self.config.input_size / s).pow(2))
            .sum()
    }

    /// Letterbox scale and resized size for an image of `width` x `height`
    /// (`preproc`: `r = min(S/h, S/w)` in double, sizes truncated).
    pub fn letterbox_geometry(&self, width: usize, height: usize) -> (f64, usize, usize) {
        let s = self.config.input_size as f64;
        let r = (s / height as f64).min(s / width as f64);
        let resized_w = (width as f64 * r) as usize;
        let resized_h = (height as f64 * r) as usize;
        (r, resized_w, resized_h)
    }

    /// Decodes the raw `[1, rows, 85]` output and applies threshold, NMS and the cap: boxes in
    /// original-image pixels, descending score.
    pub fn decode(&self, output: &[f32], meta: &YoloxMeta) -> Vec<KeptBox> {
        let (boxes, scores, classes) = self.candidates(output);
        let mut keep = batched_nms(&boxes, &scores, &classes, self.config.nms_iou);
        if let Some(max) = self.config.max_detections {
            keep.truncate(max);
        }
        let ratio = meta.ratio as f32;
        keep.into_iter()
            .filter_map(|i| {
                let b = boxes[i];
                Some(KeptBox {
                    bbox: [b[0] / ratio, b[1] / ratio, b[2] / ratio, b[3] / ratio],
                    score: scores[i],
                    category_id: self.config.class_map.get(classes[i])?,
                })
            })
            .collect()
    }

    /// Candidates over the score threshold, in input pixels, in row order.
    fn candidates(&self, output: &[f32]) -> (Vec<BoxXyxy>, Vec<f32>, Vec<usize>) {
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        let mut classes = Vec::new();
        let mut row_index = 0;
        for stride in STRIDES {
            let n = self.config.input_size / stride;
            let s = stride as f32;
            for grid_y in 0..n {
                for grid_x in 0..n {
                    let row = &output[row_index * ROW..(row_index + 1) * ROW];
                    row_index += 1;
                    let (class, class_prob) = argmax(&row[5..ROW]);
                    let score = row[4] * class_prob;
                    // `score >= threshold` keeps a candidate (NaN scores never pass).
                    if score.is_nan()
                        || score < self.config.score_threshold
                        || self.config.class_map.get(class).is_none()
                    {
                        continue;
                    }
                    let cx = (row[0] + grid_x as f32) * s;
                    let cy = (row[1] + grid_y as f32) * s;
                    let w = exp_f32(row[2]) * s;
                    let h = exp_f32(row[3]) * s;
                    boxes.push([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]);
                    scores.push(score);
                    classes.push(class);
                }
            }
        }
        (boxes, scores, classes)
    }
}

impl Pipeline for Yolox {
    type Meta = YoloxMeta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, YoloxMeta), FamilyError> {
        let size = self.config.input_size;
        let (ratio, resized_w, resized_h) = self.letterbox_geometry(image.width, image.height);
        if resized_w == 0 || resized_h == 0 {
            return Err(FamilyError::Image {
                width: image.width,
                height: image.height,
                reason: format!("too thin to letterbox to {size}x{size}"),
            });
        }
        let resized = detbench_imgproc::resize_linear(image, resized_w, resized_h);
        // BGR HWC u8 -> CHW f32 on a canvas of `pad_value`, image at the top-left.
        let plane = size * size;
        let mut data = vec![self.config.pad_value as f32; 3 * plane];
        for y in 0..resized_h {
            let src_row = &resized.data[y * resized_w * 3..(y + 1) * resized_w * 3];
            for (x, px) in src_row.chunks_exact(3).enumerate() {
                let at = y * size + x;
                data[at] = px[0] as f32;
                data[plane + at] = px[1] as f32;
                data[2 * plane + at] = px[2] as f32;
            }
        }
        let meta = YoloxMeta {
            ratio,
            width: image.width,
            height: image.height,
        };
        Ok((Tensor::f32(vec![1, 3, size, size], data), meta))
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &YoloxMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let output = output_f32(outputs, &self.config.output_name, &[1, self.rows(), ROW])?;
        Ok(self
            .decode(output, meta)
            .into_iter()
            .map(|k| k.to_detection(image_id))
            .collect())
    }

    fn input_name(&self) -> &str {
        &self.config.input_name
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "family": "YOLOX",
            "config": self.config,
            "preprocess": format!(
                "top-left letterbox to {0}x{0} (r = min(S/h, S/w), cv2.resize INTER_LINEAR, bit-exact), pad {1}, BGR 0-255 float, no normalisation",
                self.config.input_size, self.config.pad_value
            ),
            "postprocess": "decode (t_xy+grid)*stride, exp(t_wh)*stride; score = obj*max cls >= score_threshold; class-aware batched_nms (IoU > nms_iou); top max_detections; boxes / r, unclipped",
            "upstream": "Megvii-BaseDetection/YOLOX@6ddff48: yolox/data/data_augment.py::preproc, yolox/models/yolo_head.py::decode_outputs, yolox/utils/boxes.py::postprocess, yolox/exp/yolox_base.py (test_conf 0.01, nmsthre 0.65)",
        })
    }
}
