//! NanoDet-m (legacy v0.x GFL head, reg_max 7) as exported by nanodet `tools/export_onnx.py`
//! (class probabilities and raw distance distributions per stride), following NanoDet's own
//! evaluation path (`../shared/reference/nanodet_m_320/SPEC.md`; RangiLyu/nanodet at v0.1.0,
//! v0.4.2, 605926d, ed7d3f6):
//!
//! - preprocess: `nanodet/data/transform/warp.py::warp_and_resize(keep_ratio=True)`: a centred
//!   letterbox made with `cv2.warpPerspective` (INTER_LINEAR, border 0), then
//!   `color.py::_normalize`: `(x/255 - mean/255) / (std/255)` in f32, BGR;
//! - decode: `nanodet/model/head/gfl_head.py::get_bboxes`: softmax over the 8 bins of each side,
//!   expectation, times stride; point centres `(i + 0.5) * stride` (the official convention
//!   from v0.1.0 on; the mmdet-v1 `i*stride + (stride-1)/2` of the pre-Feb-2021 code is
//!   [`CentreConvention::Legacy`]); top 1000 points by max class probability per level
//!   (`nms_pre`); boxes clipped to the input;
//! - `nanodet/model/module/nms.py::multiclass_nms`: multi-label candidates with probability
//!   `> 0.05`, class-aware NMS at IoU 0.6, at most 100 (`max_num`);
//! - map back: `warp_boxes` with the inverse warp in f64, clipped to the image.

use detbench_backends::{Outputs, Tensor};
use detbench_eval::Detection;
use detbench_imgproc::BgrImage;

use super::common::{ClassMap, FamilyError, KeptBox, Pipeline, output_f32};
use super::nms::{BoxXyxy, argsort_descending, batched_nms};
use super::numpy_math::exp_f32;

/// Where a level's grid point `i` sits in input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CentreConvention {
    /// `(i + 0.5) * stride`: NanoDet's deployment demos and eval code from Feb 2021 on.
    HalfStride,
    /// `i * stride + (stride - 1) / 2`: mmdet-v1 anchor centres, the pre-Feb-2021 code.
    Legacy,
}

/// Settings of the NanoDet pipeline; the defaults are upstream's COCO-evaluation settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NanoDetConfig {
    /// Square network input side (320 or 416).
    pub input_size: usize,
    /// Candidates need class probability `> score_threshold` (`score_thr`).
    pub score_threshold: f32,
    /// Class-aware NMS IoU threshold.
    pub nms_iou: f64,
    /// Detections kept per image (`max_num`).
    pub max_detections: Option<usize>,
    /// Points kept per level before NMS, by max class probability (`nms_pre`); 0 keeps all.
    pub pre_nms_top_k: usize,
    pub centres: CentreConvention,
    /// BGR mean and std of `_normalize`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub input_name: String,
    /// Category id of each of the 80 classes (recorded only when it is not COCO's).
    #[serde(skip_serializing_if = "ClassMap::is_coco80")]
    pub class_map: ClassMap,
}

impl Default for NanoDetConfig {
    fn default() -> Self {
        NanoDetConfig {
            input_size: 320,
            score_threshold: 0.05,
            nms_iou: 0.6,
            max_detections: Some(100),
            pre_nms_top_k: 1000,
            centres: CentreConvention::HalfStride,
            mean: [103.53, 116.28, 123.675],
            std: [57.375, 57.12, 58.395],
            input_name: "input.1".to_owned(),
            class_map: ClassMap::coco80(),
        }
    }
}

pub const STRIDES: [usize; 3] = [8, 16, 32];
/// Bins per side of the GFL distance distribution (reg_max + 1).
const BINS: usize = 8;
const CLASSES: usize = 80;

/// What postprocessing needs from preprocessing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NanoDetMeta {
    /// The forward warp (original image -> network input), row-major 3x3, f64.
    pub warp: [[f64; 3]; 3],
    pub width: usize,
    pub height: usize,
}

/// The NanoDet pipeline for one input size.
#[derive(Debug, Clone)]
pub struct NanoDet {
    pub config: NanoDetConfig,
}

/// Raw outputs of one level: class probabilities `[N, 80]` and distance logits `[N, 32]`.
pub struct LevelOutputs<'a> {
    pub stride: usize,
    pub cls: &'a [f32],
    pub dis: &'a [f32],
}

impl NanoDet {
    pub fn new(config: NanoDetConfig) -> Self {
        NanoDet { config }
    }

    /// `warp_and_resize(keep_ratio=True)` at test time: `M = T · R · C` in f64, where C moves
    /// the image centre to the origin, R scales by `S/h` for portrait images and `S/w`
    /// otherwise, and T moves the origin to the centre of the S x S input.
    pub fn warp_matrix(&self, width: usize, height: usize) -> [[f64; 3]; 3] {
        let s = self.config.input_size as f64;
        let (w, h) = (width as f64, height as f64);
        // nanodet/data/transform/warp.py: `if width / height < dst_w / dst_h: ratio = dst_h / height
        // else: ratio = dst_w / width` (square input: dst_w / dst_h = 1).
        let ratio = if w / h < 1.0 { s / h } else { s / w };
        // T·R·C multiplied out; each entry is one product and one sum, as the 3x3 matrix
        // product gives it (the other terms are exact zeros).
        [
            [ratio, 0.0, ratio * (-w / 2.0) + 0.5 * s],
            [0.0, ratio, ratio * (-h / 2.0) + 0.5 * s],
            [0.0, 0.0, 1.0],
        ]
    }

    /// Points per level.
    pub fn level_points(&self, stride: usize) -> usize {
        (self.config.input_size / stride).pow(2)
    }

    /// Decodes the six raw outputs (levels in stride order), applies multi-label selection,
    /// NMS and the cap, and maps the boxes back to the original image.
    pub fn decode(&self, levels: &[LevelOutputs<'_>], meta: &NanoDetMeta) -> Vec<KeptBox> {
        let (boxes, scores) = self.decode_levels(levels);
        // Multi-label candidates: every (point, class) with probability > threshold, point-major.
        let mut cand_boxes = Vec::new();
        let mut cand_scores = Vec::new();
        let mut cand_classes = Vec::new();
        for (point, point_scores) in scores.chunks_exact(CLASSES).enumerate() {
            for (class, &p) in point_scores.iter().enumerate() {
                if p > self.config.score_threshold && self.config.class_map.get(class).is_some() {
                    cand_boxes.push(boxes[point]);
                    cand_scores.push(p);
                    cand_classes.push(class);
                }
            }
        }
        let mut keep = batched_nms(
            &cand_boxes,
            &cand_scores,
            &cand_classes,
            self.config.nms_iou,
        );
        if let Some(max) = self.config.max_detections {
            keep.truncate(max);
        }
        let inverse = invert_affine(&meta.warp);
        keep.into_iter()
            .filter_map(|i| {
                Some(KeptBox {
                    bbox: warp_box(&cand_boxes[i], &inverse, meta.width, meta.height),
                    score: cand_scores[i],
                    category_id: self.config.class_map.get(cand_classes[i])?,
                })
            })
            .collect()
    }

    /// Boxes (input pixels, clipped) and their 80 class probabilities, level by level, after
    /// the per-level top-k.
    fn decode_levels(&self, levels: &[LevelOutputs<'_>]) -> (Vec<BoxXyxy>, Vec<f32>) {
        let size = self.config.input_size as f32;
        let mut boxes = Vec::new();
        let mut scores = Vec::new();
        for level in levels {
            let n_side = self.config.input_size / level.stride;
            let points = n_side * n_side;
            let s = level.stride as f32;
            let selected: Vec<usize> =
                if self.config.pre_nms_top_k > 0 && points > self.config.pre_nms_top_k {
                    let best: Vec<f32> = level
                        .cls
                        .chunks_exact(CLASSES)
                        .map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                        .collect();
                    let mut order = argsort_descending(&best);
                    order.truncate(self.config.pre_nms_top_k);
                    order
                } else {
                    (0..points).collect()
                };
            for point in selected {
                let (col, row) = ((point % n_side) as f32, (point / n_side) as f32);
                let (cx, cy) = match self.config.centres {
                    CentreConvention::HalfStride => ((col + 0.5) * s, (row + 0.5) * s),
                    CentreConvention::Legacy => {
                        let offset = (0.5 * (level.stride as f64 - 1.0)) as f32;
                        (col * s + offset, row * s + offset)
                    }
                };
                let d = distances(&level.dis[point * 4 * BINS..(point + 1) * 4 * BINS], s);
                boxes.push([
                    (cx - d[0]).clamp(0.0, size),
                    (cy - d[1]).clamp(0.0, size),
                    (cx + d[2]).clamp(0.0, size),
                    (cy + d[3]).clamp(0.0, size),
                ]);
                scores.extend_from_slice(&level.cls[point * CLASSES..(point + 1) * CLASSES]);
            }
        }
        (boxes, scores)
    }
}

/// GFL `Integral`: per side, softmax over the bins and the expectation `sum_j p_j * j`, times
/// the stride; in f32 (the reference computes `d - max`, `exp`, `/ sum`, then a dot product).
fn distances(logits: &[f32], stride: f32) -> [f32; 4] {
    let mut out = [0.0f32; 4];
    for (side, bins) in logits.chunks_exact(BINS).enumerate() {
        let max = bins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut e = [0.0f32; BINS];
        for (ej, &b) in e.iter_mut().zip(bins) {
            *ej = exp_f32(b - max);
        }
        let sum = pairwise_sum8(&e);
        let mut products = [0.0f32; BINS];
        for (j, (p, &ej)) in products.iter_mut().zip(&e).enumerate() {
            *p = (ej / sum) * j as f32;
        }
        out[side] = blas_dot8(&products) * stride;
    }
    out
}

/// numpy's float32 `sum` over 8 contiguous values (`pairwise_sum` unrolled by 8):
/// `((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))`.
fn pairwise_sum8(a: &[f32; BINS]) -> f32 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// The sum of the 8 products `prob_j * j` as the reference's `prob @ proj` gets it: numpy's
/// `matmul` hands the (4 x 8) @ (8) product to BLAS `sgemv` (OpenBLAS in numpy's wheels), whose
/// AVX2 kernel (`sgemv_t_microk_haswell-4.c`) accumulates the 8 products in one 8-lane register,
/// folds the upper half onto the lower half and finishes with two horizontal adds:
/// `((p0 + p4) + (p1 + p5)) + ((p2 + p6) + (p3 + p7))`.
fn blas_dot8(p: &[f32; BINS]) -> f32 {
    let folded = [p[0] + p[4], p[1] + p[5], p[2] + p[6], p[3] + p[7]];
    (folded[0] + folded[1]) + (folded[2] + folded[3])
}

/// Inverse of an affine 3x3 matrix (bottom row 0 0 1) in f64.
pub fn invert_affine(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let a = m[1][1] / det;
    let b = -m[0][1] / det;
    let c = -m[1][0] / det;
    let d = m[0][0] / det;
    [
        [a, b, -(a * m[0][2] + b * m[1][2])],
        [c, d, -(c * m[0][2] + d * m[1][2])],
        [0.0, 0.0, 1.0],
    ]
}

/// `warp_boxes`: the four corners through the inverse warp in f64, their bounding box, clipped
/// to the image, cast to f32.
fn warp_box(b: &BoxXyxy, inverse: &[[f64; 3]; 3], width: usize, height: usize) -> BoxXyxy {
    let corners = [
        (b[0] as f64, b[1] as f64),
        (b[2] as f64, b[3] as f64),
        (b[0] as f64, b[3] as f64),
        (b[2] as f64, b[1] as f64),
    ];
    let mut min_x = f64::INFINITY;
    let mut min_y = f64::INFINITY;
    let mut max_x = f64::NEG_INFINITY;
    let mut max_y = f64::NEG_INFINITY;
    for (x, y) in corners {
        let px = inverse[0][0] * x + inverse[0][1] * y + inverse[0][2];
        let py = inverse[1][0] * x + inverse[1][1] * y + inverse[1][2];
        let pw = inverse[2][0] * x + inverse[2][1] * y + inverse[2][2];
        let (px, py) = (px / pw, py / pw);
        min_x = min_x.min(px);
        min_y = min_y.min(py);
        max_x = max_x.max(px);
        max_y = max_y.max(py);
    }
    let (w, h) = (width as f64, height as f64);
    [
        min_x.clamp(0.0, w) as f32,
        min_y.clamp(0.0, h) as f32,
        max_x.clamp(0.0, w) as f32,
        max_y.clamp(0.0, h) as f32,
    ]
}

impl Pipeline for NanoDet {
    type Meta = NanoDetMeta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, NanoDetMeta), FamilyError> {
        let size = self.config.input_size;
        let warp = self.warp_matrix(image.width, image.height);
        let warped = detbench_imgproc::warp_perspective_linear_constant0(image, &warp, size, size)
            .map_err(|e| FamilyError::Image {
                width: image.width,
                height: image.height,
                reason: e.to_string(),
            })?;
        let plane = size * size;
        let mut data = vec![0.0f32; 3 * plane];
        // color.py::_normalize: img / 255, then (img - mean/255) / (std/255), all in f32.
        let mean: [f32; 3] = self.config.mean.map(|m| m / 255.0);
        let std: [f32; 3] = self.config.std.map(|s| s / 255.0);
        for (at, px) in warped.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + at] = (px[c] as f32 / 255.0 - mean[c]) / std[c];
            }
        }
        let meta = NanoDetMeta {
            warp,
            width: image.width,
            height: image.height,
        };
        Ok((Tensor::f32(vec![1, 3, size, size], data), meta))
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &NanoDetMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let mut levels = Vec::with_capacity(STRIDES.len());
        for stride in STRIDES {
            let points = self.level_points(stride);
            levels.push(LevelOutputs {
                stride,
                cls: output_f32(
                    outputs,
                    &format!("cls_pred_stride_{stride}"),
                    &[1, points, CLASSES],
                )?,
                dis: output_f32(
                    outputs,
                    &format!("dis_pred_stride_{stride}"),
                    &[1, points, 4 * BINS],
                )?,
            });
        }
        Ok(self
            .decode(&levels, meta)
            .into_iter()
            .map(|k| k.to_detection(image_id))
            .collect())
    }

    fn input_name(&self) -> &str {
        &self.config.input_name
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "family": "NanoDet",
            "config": self.config,
            "preprocess": format!(
                "centred letterbox to {0}x{0} with cv2.warpPerspective (INTER_LINEAR, border 0, bit-exact), BGR, (x/255 - mean/255)/(std/255) in f32",
                self.config.input_size
            ),
            "postprocess": "GFL: softmax+expectation*stride per side, centres per `centres`, top pre_nms_top_k points per level, clip to input; multi-label candidates > score_threshold; class-aware NMS (IoU > nms_iou); top max_detections; warp_boxes with inverse warp (f64), clipped",
            "upstream": "RangiLyu/nanodet v0.1.0..v0.4.2: nanodet/data/transform/warp.py::warp_and_resize, color.py::_normalize, model/head/gfl_head.py::get_bboxes, model/module/nms.py::multiclass_nms (score_thr 0.05, IoU 0.6, max_num 100, nms_pre 1000)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warp_matrix_centres_the_image() {
        let nd = NanoDet::new(NanoDetConfig::default());
        // 640x426 at 320: r = 0.5, content rows start at 160 - 0.5*213 = 53.5 (parity meta).
        let m = nd.warp_matrix(640, 426);
        assert_eq!(m, [[0.5, 0.0, 0.0], [0.0, 0.5, 53.5], [0.0, 0.0, 1.0]]);
        let inv = invert_affine(&m);
        assert_eq!(inv[0][0], 2.0);
        assert_eq!(inv[1][2], -107.0);
    }

    #[test]
    fn distances_of_a_one_hot_distribution_are_the_bin_times_stride() {
        let mut logits = [-1000.0f32; 32];
        logits[3] = 10.0; // left: bin 3
        logits[8] = 10.0; // top: bin 0
        logits[16 + 7] = 10.0; // right: bin 7
        logits[24 + 1] = 10.0; // bottom: bin 1
        assert_eq!(distances(&logits, 8.0), [24.0, 0.0, 56.0, 8.0]);
    }
}
