//! FastestDet (dog-qiuqiu) as its shipped ONNX (`example/onnx-runtime/FastestDet.onnx`),
//! following the upstream *evaluation* path (`../shared/reference/fastestdet_352/SPEC.md`;
//! dog-qiuqiu/FastestDet @ 50473cd):
//!
//! - preprocess: `utils/datasets.py::TensorDataset`: `cv2.resize` INTER_LINEAR stretched to
//!   352 x 352 (no letterbox), BGR; `utils/evaluation.py::compute_map`: `/ 255`;
//! - decode: `utils/tool.py::handle_preds`: one 22 x 22 level, `cx = (tanh(tx) + gx) / W`,
//!   `cy = (tanh(ty) + gy) / H`, `w, h = sigmoid(tw, th)`, score `obj^0.6 * cls^0.4 > 0.001`,
//!   one label per cell (argmax), class-aware `torchvision.ops.batched_nms` at 0.45 on the
//!   normalised boxes;
//! - map back: x times the image width, y times its height, not clipped; at most 100 per image
//!   (the reference cap; upstream has none).

use detbench_backends::{Outputs, Tensor};
use detbench_eval::Detection;
use detbench_imgproc::BgrImage;

use super::common::{ClassMap, FamilyError, KeptBox, Pipeline, argmax, output_f32};
use super::nms::{BoxXyxy, batched_nms};
use super::numpy_math::{exp_f32, tanh_f32};

/// Settings of the FastestDet pipeline; the defaults are upstream's COCO-evaluation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FastestDetConfig {
    /// Square network input side.
    pub input_size: usize,
    /// Keep candidates with `obj^0.6 * cls^0.4 > score_threshold` (`conf_thresh`).
    pub score_threshold: f32,
    /// Class-aware NMS IoU threshold (`nms_thresh`).
    pub nms_iou: f64,
    pub max_detections: Option<usize>,
    pub input_name: String,
    pub output_name: String,
    /// Category id of each of the 80 classes (recorded only when it is not COCO's).
    #[serde(skip_serializing_if = "ClassMap::is_coco80")]
    pub class_map: ClassMap,
}

impl Default for FastestDetConfig {
    fn default() -> Self {
        FastestDetConfig {
            input_size: 352,
            score_threshold: 0.001,
            nms_iou: 0.45,
            max_detections: Some(100),
            input_name: "input.1".to_owned(),
            output_name: "758".to_owned(),
            class_map: ClassMap::coco80(),
        }
    }
}

const CHANNELS: usize = 85;
const STRIDE: usize = 16;

/// What postprocessing needs from preprocessing: the original size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FastestDetMeta {
    pub width: usize,
    pub height: usize,
}

/// The FastestDet pipeline.
#[derive(Debug, Clone)]
pub struct FastestDet {
    pub config: FastestDetConfig,
}

impl FastestDet {
    pub fn new(config: FastestDetConfig) -> Self {
        FastestDet { config }
    }

    /// Grid side (22 at 352).
    pub fn grid(&self) -> usize {
        self.config.input_size / STRIDE
    }

    /// Decodes the raw `[1, 85, G, G]` output (NCHW), applies threshold, NMS and the cap, and
    /// scales the boxes to the original image.
    pub fn decode(&self, output: &[f32], meta: &FastestDetMeta) -> Vec<KeptBox> {
        let (boxes, scores, classes) = self.candidates(output);
        let mut keep = batched_nms(&boxes, &scores, &classes, self.config.nms_iou);
        if let Some(max) = self.config.max_detections {
            keep.truncate(max);
        }
        let (w, h) = (meta.width as f32, meta.height as f32);
        keep.into_iter()
            .filter_map(|i| {
                let b = boxes[i];
                Some(KeptBox {
                    bbox: [b[0] * w, b[1] * h, b[2] * w, b[3] * h],
                    score: scores[i],
                    category_id: self.config.class_map.get(classes[i])?,
                })
            })
            .collect()
    }

    /// Candidates over the threshold in normalised coordinates, cells in row-major order.
    fn candidates(&self, output: &[f32]) -> (Vec<BoxXyxy>, Vec<f32>, Vec<usize>) {
        let g = self.grid();
        let plane = g * g;
        let channel = |c: usize, cell: usize| output[c * plane + cell];
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        let mut classes = Vec::new();
        let mut class_probs = [0.0f32; CHANNELS - 5];
        let (gw, gh) = (g as f32, g as f32);
        for cell in 0..plane {
            for (k, p) in class_probs.iter_mut().enumerate() {
                *p = channel(5 + k, cell);
            }
            let (class, class_prob) = argmax(&class_probs);
            let score = channel(0, cell).powf(0.6) * class_prob.powf(0.4);
            // `score > threshold` keeps a candidate (NaN scores never pass).
            if score.is_nan()
                || score <= self.config.score_threshold
                || self.config.class_map.get(class).is_none()
            {
                continue;
            }
            let (gx, gy) = ((cell % g) as f32, (cell / g) as f32);
            let cx = (tanh_f32(channel(1, cell)) + gx) / gw;
            let cy = (tanh_f32(channel(2, cell)) + gy) / gh;
            let bw = sigmoid(channel(3, cell));
            let bh = sigmoid(channel(4, cell));
            boxes.push([cx - 0.5 * bw, cy - 0.5 * bh, cx + 0.5 * bw, cy + 0.5 * bh]);
            scores.push(score);
            classes.push(class);
        }
        (boxes, scores, classes)
    }
}

/// `1 / (1 + exp(-x))` in f32.
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

impl Pipeline for FastestDet {
    type Meta = FastestDetMeta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, FastestDetMeta), FamilyError> {
        let size = self.config.input_size;
        let resized = detbench_imgproc::resize_linear(image, size, size);
        let plane = size * size;
        let mut data = vec![0.0f32; 3 * plane];
        for (at, px) in resized.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + at] = px[c] as f32 / 255.0;
            }
        }
        let meta = FastestDetMeta {
            width: image.width,
            height: image.height,
        };
        Ok((Tensor::f32(vec![1, 3, size, size], data), meta))
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &FastestDetMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let g = self.grid();
        let output = output_f32(outputs, &self.config.output_name, &[1, CHANNELS, g, g])?;
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
            "family": "FastestDet",
            "config": self.config,
            "preprocess": format!(
                "stretch resize to {0}x{0} (cv2.resize INTER_LINEAR, bit-exact), BGR, /255",
                self.config.input_size
            ),
            "postprocess": "cx=(tanh(tx)+gx)/G, cy=(tanh(ty)+gy)/G, w,h=sigmoid; score=obj^0.6*cls^0.4 > score_threshold; class-aware NMS (IoU > nms_iou) in normalised coordinates; top max_detections; x*width, y*height, unclipped",
            "upstream": "dog-qiuqiu/FastestDet@50473cd: utils/datasets.py::TensorDataset, utils/evaluation.py::compute_map, utils/tool.py::handle_preds (conf 0.001, nms 0.45)",
        })
    }
}
