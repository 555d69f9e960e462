//! DETR-style detectors (RT-DETR, D-FINE, DEIM/DEIMv2, RF-DETR exports): set prediction, no NMS.
//!
//! Two output forms, recognised from the file's inputs and outputs alone ([`recognise`]):
//!
//! - [`DetrOutputs::LabelsBoxesScores`]: the postprocessor inside the graph, as the RT-DETR /
//!   D-FINE / DEIM / DEIMv2 `tools/deployment/export_onnx.py` exports it (the shipped DEIMv2
//!   files): inputs `images [N, 3, H, W]` and `orig_target_sizes [N, 2]` (int64, `(W, H)`),
//!   outputs `labels [N, K]` (class index), `boxes [N, K, 4]` (xyxy in original pixels),
//!   `scores [N, K]`. Every one of the `K` (300) results is kept, as the upstream COCO evaluator
//!   does (`engine/data/dataset/coco_eval.py::prepare_for_coco_detection`: `convert_to_xywh`
//!   `(x2 - x1, y2 - y1)` in f32);
//! - [`DetrOutputs::Logits`]: no postprocessor: `logits [N, Q, C]` and normalised `cxcywh` boxes
//!   `[N, Q, 4]`, post-processed as `RTDETRPostProcessor` / D-FINE's `PostProcessor` with focal
//!   loss do: `sigmoid`, top-K over the flattened `Q * C` scores (K = 300), `label = index % C`,
//!   `query = index / C`, `box_convert(cxcywh -> xyxy)` (`x1 = cx - 0.5 * w`) times `(W, H, W, H)`.
//!   Equal scores keep the lower flat index first (torch's `topk` order is unspecified there).
//!
//! Preprocessing is the deploy recipe of the shipped files' sample
//! (Kazuhito00/DEIMv2-ONNX-Sample @ 73feca3 `sample_onnx.py`): `cv2.cvtColor(BGR2RGB)`,
//! `cv2.resize` to the input size (INTER_LINEAR, no letterbox, bit-exact here),
//! `astype(float32) / 255`. (The upstream eval dataloader resizes PIL images with torchvision's
//! `Resize`, which antialiases when shrinking; the ONNX deploy path above is what the files ship
//! with.) The batch dimension is dynamic in these exports, so a batch is one call.

use detbench_backends::{DType, IoSpec, Outputs, Tensor, TensorData, Value};
use detbench_eval::Detection;
use detbench_imgproc::BgrImage;

use super::common::{FamilyError, KeptBox, Pipeline};
use super::nms::argsort_descending;
use super::ultralytics::layout::describe_specs;

/// Which outputs the model has, by name.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum DetrOutputs {
    LabelsBoxesScores {
        sizes_input: String,
        labels: String,
        boxes: String,
        scores: String,
    },
    Logits {
        logits: String,
        boxes: String,
        /// Results kept per image (`num_top_queries`).
        top_k: usize,
    },
}

/// The pipeline's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DetrConfig {
    pub input_name: String,
    /// Network input (width, height).
    pub input_size: (usize, usize),
    pub outputs: DetrOutputs,
    /// Keep results with `score >= score_threshold` (0: all, as upstream evaluation).
    pub score_threshold: f32,
    /// Category id of each class index; `None` drops the class (a dataset without it).
    pub class_map: Vec<Option<u64>>,
    pub rgb: bool,
    pub divisor: f32,
}

/// Why the inputs/outputs are not a DETR-style export.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "not a DETR-style export: {reason}. The model has inputs [{inputs}] and outputs [{outputs}]; expected \
     `images` [N, 3, H, W] (+ `orig_target_sizes` [N, 2] int64) with `labels`/`boxes`/`scores`, or `logits` \
     [N, Q, C] with `boxes` [N, Q, 4] (a card can name them: `family = \"detr\"`, `[output]` names)"
)]
pub struct DetrLayoutError {
    pub reason: String,
    pub inputs: String,
    pub outputs: String,
}

fn dims(spec: &IoSpec) -> Vec<Option<usize>> {
    spec.shape.clone().unwrap_or_default()
}

/// Recognises a DETR-style export from its inputs and outputs: the image input (4-D, 3
/// channels, fixed H and W) and the output form. Returns the image input's name, size (W, H) and
/// outputs.
pub fn recognise(
    inputs: &[IoSpec],
    outputs: &[IoSpec],
) -> Result<(String, (usize, usize), DetrOutputs), DetrLayoutError> {
    let fail = |reason: &str| DetrLayoutError {
        reason: reason.to_owned(),
        inputs: describe_specs(inputs),
        outputs: describe_specs(outputs),
    };
    let image = inputs
        .iter()
        .find(|s| matches!(dims(s).as_slice(), [_, Some(3), Some(_), Some(_)]))
        .ok_or_else(|| fail("no [N, 3, H, W] image input of fixed H and W"))?;
    let [_, _, Some(h), Some(w)] = dims(image)[..] else {
        unreachable!("matched above")
    };
    let find = |names: &[&str], rank: usize| {
        outputs
            .iter()
            .find(|o| names.contains(&o.name.as_str()) && dims(o).len() == rank)
    };
    let sizes = inputs
        .iter()
        .find(|s| s.name != image.name && dims(s).len() == 2);
    let lbs = (
        find(&["labels"], 2),
        find(&["boxes"], 3),
        find(&["scores"], 2),
    );
    if let (Some(sizes), (Some(labels), Some(boxes), Some(scores))) = (sizes, lbs) {
        return Ok((
            image.name.clone(),
            (w, h),
            DetrOutputs::LabelsBoxesScores {
                sizes_input: sizes.name.clone(),
                labels: labels.name.clone(),
                boxes: boxes.name.clone(),
                scores: scores.name.clone(),
            },
        ));
    }
    let logits =
        find(&["logits", "pred_logits", "labels"], 3).filter(|o| o.dtype != Some(DType::I64));
    let boxes = find(&["boxes", "pred_boxes", "dets"], 3);
    match (logits, boxes) {
        (Some(logits), Some(boxes)) if inputs.len() == 1 => Ok((
            image.name.clone(),
            (w, h),
            DetrOutputs::Logits {
                logits: logits.name.clone(),
                boxes: boxes.name.clone(),
                top_k: 300,
            },
        )),
        _ => Err(fail(
            "neither labels/boxes/scores with a sizes input nor logits/boxes outputs",
        )),
    }
}

/// The DETR-style pipeline (run by [`super::common::SingleModelDetector`], which batches images
/// into one call: the batch dimension of these exports is dynamic).
#[derive(Debug, Clone)]
pub struct Detr {
    pub config: DetrConfig,
}

/// The original size of one image: `orig_target_sizes` and the scale of normalised boxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetrMeta {
    pub width: usize,
    pub height: usize,
}

impl Detr {
    pub fn new(config: DetrConfig) -> Self {
        Detr { config }
    }

    /// `cvtColor(BGR2RGB)`, `cv2.resize` to the input size, `/ 255`, CHW, appended to `out`.
    pub fn preprocess_into(&self, image: &BgrImage, out: &mut Vec<f32>) {
        let (w, h) = self.config.input_size;
        let resized;
        let source = if (image.width, image.height) == (w, h) {
            image
        } else {
            resized = detbench_imgproc::resize_linear(image, w, h);
            &resized
        };
        let plane = w * h;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let order: [usize; 3] = if self.config.rgb {
            [2, 1, 0]
        } else {
            [0, 1, 2]
        };
        let divisor = self.config.divisor;
        let (first, rest) = out[start..].split_at_mut(plane);
        let (second, third) = rest.split_at_mut(plane);
        for (at, px) in source.data.chunks_exact(3).enumerate() {
            first[at] = px[order[0]] as f32 / divisor;
            second[at] = px[order[1]] as f32 / divisor;
            third[at] = px[order[2]] as f32 / divisor;
        }
    }

    /// The (label, score, xyxy box) results of image `k` of a batch's outputs.
    fn results(
        &self,
        outputs: &Outputs,
        k: usize,
        image: (usize, usize),
    ) -> Result<Vec<(i64, f32, [f32; 4])>, FamilyError> {
        match &self.config.outputs {
            DetrOutputs::LabelsBoxesScores {
                labels,
                boxes,
                scores,
                ..
            } => {
                let labels = outputs.tensor(labels)?;
                let queries = *labels
                    .shape
                    .get(1)
                    .ok_or_else(|| shape_error("labels", "[N, K]", &shape_text(&labels.shape)))?;
                let label_values: Vec<i64> = match &labels.data {
                    TensorData::I64(v) => v[k * queries..(k + 1) * queries].to_vec(),
                    TensorData::F32(v) => v[k * queries..(k + 1) * queries]
                        .iter()
                        .map(|&x| x as i64)
                        .collect(),
                    TensorData::U8(_) => {
                        return Err(shape_error("labels", "int64 or float labels", "u8"));
                    }
                };
                let boxes = per_image(outputs.tensor(boxes)?, k, queries * 4)?;
                let scores = per_image(outputs.tensor(scores)?, k, queries)?;
                Ok((0..queries)
                    .map(|q| {
                        let b = &boxes[4 * q..4 * q + 4];
                        (label_values[q], scores[q], [b[0], b[1], b[2], b[3]])
                    })
                    .collect())
            }
            DetrOutputs::Logits {
                logits,
                boxes,
                top_k,
            } => {
                let logits_tensor = outputs.tensor(logits)?;
                let [_, queries, classes] = logits_tensor.shape[..] else {
                    return Err(shape_error(
                        logits,
                        "[N, Q, C]",
                        &shape_text(&logits_tensor.shape),
                    ));
                };
                let logits = per_image(logits_tensor, k, queries * classes)?;
                let boxes = per_image(outputs.tensor(boxes)?, k, queries * 4)?;
                Ok(top_k_results(logits, boxes, classes, *top_k, image))
            }
        }
    }

    /// The detections of image `k` of a batch, from the batch's outputs.
    pub fn detections(
        &self,
        outputs: &Outputs,
        k: usize,
        image: (usize, usize),
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let results = self.results(outputs, k, image)?;
        let mut out = Vec::with_capacity(results.len());
        for (label, score, bbox) in results {
            if score < self.config.score_threshold || reversed(&bbox) {
                continue;
            }
            let mapped = usize::try_from(label)
                .ok()
                .and_then(|l| self.config.class_map.get(l))
                .ok_or_else(|| FamilyError::OutputShape {
                    name: "labels".to_owned(),
                    expected: format!(
                        "class indices below {} (the class map's size)",
                        self.config.class_map.len()
                    ),
                    got: label.to_string(),
                })?;
            let Some(category_id) = *mapped else { continue };
            out.push(
                KeptBox {
                    bbox,
                    score,
                    category_id,
                }
                .to_detection(image_id),
            );
        }
        Ok(out)
    }
}

/// Whether an xyxy box has `x2 < x1` or `y2 < y1`. D-FINE-style box regression (DEIM, DEIMv2)
/// can give one (DEIMv2-Atto does once on the shipped subset: image 311303, score 0.04), and
/// the upstream evaluator passes it to pycocotools as a negative width or height. pycocotools can
/// never count it: its IoU with any box is 0 (`maskApi.c` `bbIou`: `w <= 0` or `h <= 0` ->
/// `continue`) and, unmatched, it is ignored when its area `w * h` is negative, outside every area
/// range (`cocoeval.py` `evaluateImg`: `dtIg |= dtm == 0 & a`). It is dropped here, because COCO
/// results (and detbench's evaluator) take no negative sizes. The one case where keeping it would
/// differ is a slot among the first `maxDets` of its image and class (AR1/AR10, or more than 100
/// results of one class on one image); on the subset all 12 stats are equal either way
/// (docs/BENCHMARKS.md, "Modern families").
fn reversed(bbox: &[f32; 4]) -> bool {
    bbox[2] < bbox[0] || bbox[3] < bbox[1]
}

/// `[1, 3, 320, 320]`: a shape as the error messages show it.
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl Pipeline for Detr {
    type Meta = DetrMeta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, DetrMeta), FamilyError> {
        if image.width == 0 || image.height == 0 {
            return Err(FamilyError::Image {
                width: image.width,
                height: image.height,
                reason: "empty image".into(),
            });
        }
        let (w, h) = self.config.input_size;
        let mut pixels = Vec::with_capacity(3 * w * h);
        self.preprocess_into(image, &mut pixels);
        let meta = DetrMeta {
            width: image.width,
            height: image.height,
        };
        Ok((Tensor::f32(vec![1, 3, h, w], pixels), meta))
    }

    /// `orig_target_sizes` `[N, 2]` (int64, `(W, H)`), for the exports that take it.
    fn extra_inputs(&self, metas: &[DetrMeta]) -> Vec<(String, Value)> {
        let DetrOutputs::LabelsBoxesScores { sizes_input, .. } = &self.config.outputs else {
            return Vec::new();
        };
        let sizes = metas
            .iter()
            .flat_map(|m| [m.width as i64, m.height as i64])
            .collect();
        let sizes = Tensor {
            shape: vec![metas.len(), 2],
            data: TensorData::I64(sizes),
        };
        vec![(sizes_input.clone(), Value::Tensor(sizes))]
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &DetrMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        self.detections(outputs, 0, (meta.width, meta.height), image_id)
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "family": "DETR-style (RT-DETR / D-FINE / DEIM / RF-DETR exports)",
            "config": self.config,
            "preprocess": "cv2.cvtColor BGR2RGB, cv2.resize INTER_LINEAR to the input size (bit-exact), /255 in f32, no letterbox, no mean/std",
            "postprocess": "labels/boxes/scores as exported (orig_target_sizes = (W, H)), or sigmoid + top-k over Q*C with cxcywh -> xyxy * (W, H); no NMS; boxes with x2 < x1 or y2 < y1 dropped (pycocotools never counts them); boxes -> [x, y, x2 - x, y2 - y] in f32",
            "upstream": "Kazuhito00/DEIMv2-ONNX-Sample@73feca3 sample_onnx.py (deploy preprocessing); Intellindust-AI-Lab/DEIMv2 tools/deployment/export_onnx.py (inputs/outputs); lyuwenyu/RT-DETR rtdetr_postprocessor.py (focal-loss top-k)",
        })
    }

    fn input_name(&self) -> &str {
        &self.config.input_name
    }
}

fn shape_error(name: &str, expected: &str, got: &str) -> FamilyError {
    FamilyError::OutputShape {
        name: name.to_owned(),
        expected: expected.to_owned(),
        got: got.to_owned(),
    }
}

/// Image `k`'s `per` values of a batched f32 output.
fn per_image(tensor: &Tensor, k: usize, per: usize) -> Result<&[f32], FamilyError> {
    let values = tensor
        .as_f32()
        .ok_or_else(|| shape_error("output", "f32 elements", &tensor.dtype().to_string()))?;
    values.get(k * per..(k + 1) * per).ok_or_else(|| {
        shape_error(
            "output",
            &format!("at least {} values", (k + 1) * per),
            &format!("shape {}", shape_text(&tensor.shape)),
        )
    })
}

/// Focal-loss DETR postprocessing of one image: sigmoid, top-k over `Q * C`, boxes scaled to
/// `image` (W, H).
pub fn top_k_results(
    logits: &[f32],
    boxes: &[f32],
    classes: usize,
    top_k: usize,
    image: (usize, usize),
) -> Vec<(i64, f32, [f32; 4])> {
    let scores: Vec<f32> = logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect();
    let order = argsort_descending(&scores);
    let (w, h) = (image.0 as f32, image.1 as f32);
    order
        .into_iter()
        .take(top_k)
        .map(|flat| {
            let (query, label) = (flat / classes, flat % classes);
            let b = &boxes[query * 4..query * 4 + 4];
            let (cx, cy, bw, bh) = (b[0], b[1], b[2], b[3]);
            let xyxy = [
                (cx - 0.5 * bw) * w,
                (cy - 0.5 * bh) * h,
                (cx + 0.5 * bw) * w,
                (cy + 0.5 * bh) * h,
            ];
            (label as i64, scores[flat], xyxy)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, dims: &[Option<usize>], dtype: DType) -> IoSpec {
        IoSpec {
            name: name.into(),
            shape: Some(dims.to_vec()),
            dtype: Some(dtype),
        }
    }

    #[test]
    fn recognises_the_shipped_deimv2_layout() {
        let inputs = [
            spec("images", &[None, Some(3), Some(320), Some(320)], DType::F32),
            spec("orig_target_sizes", &[None, Some(2)], DType::I64),
        ];
        let outputs = [
            spec("labels", &[None, None], DType::I64),
            spec("boxes", &[None, None, Some(4)], DType::F32),
            spec("scores", &[None, None], DType::F32),
        ];
        let (input, size, outs) = recognise(&inputs, &outputs).unwrap();
        assert_eq!((input.as_str(), size), ("images", (320, 320)));
        assert!(
            matches!(outs, DetrOutputs::LabelsBoxesScores { ref sizes_input, .. } if sizes_input == "orig_target_sizes")
        );
    }

    #[test]
    fn recognises_logits_and_boxes_and_refuses_others_listing_them() {
        let inputs = [spec(
            "images",
            &[Some(1), Some(3), Some(640), Some(640)],
            DType::F32,
        )];
        let outputs = [
            spec("logits", &[Some(1), Some(300), Some(80)], DType::F32),
            spec("boxes", &[Some(1), Some(300), Some(4)], DType::F32),
        ];
        let (_, _, outs) = recognise(&inputs, &outputs).unwrap();
        assert!(matches!(outs, DetrOutputs::Logits { top_k: 300, .. }));
        let err = recognise(
            &inputs,
            &[spec(
                "output0",
                &[Some(1), Some(84), Some(8400)],
                DType::F32,
            )],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("output0 [1, 84, 8400] f32"),
            "{err}"
        );
    }

    /// A box with `y2 < y1` (as DEIMv2-Atto gives once on the subset) is dropped; the others
    /// are kept as `[x, y, w, h]`.
    #[test]
    fn reversed_boxes_are_dropped() {
        let detr = Detr::new(DetrConfig {
            input_name: "images".into(),
            input_size: (320, 320),
            outputs: DetrOutputs::LabelsBoxesScores {
                sizes_input: "orig_target_sizes".into(),
                labels: "labels".into(),
                boxes: "boxes".into(),
                scores: "scores".into(),
            },
            score_threshold: 0.0,
            class_map: vec![Some(1), Some(3)],
            rgb: true,
            divisor: 255.0,
        });
        let tensor = |shape: Vec<usize>, data: Vec<f32>| Value::Tensor(Tensor::f32(shape, data));
        let outputs = Outputs(vec![
            ("labels".into(), tensor(vec![1, 3], vec![0.0, 1.0, 1.0])),
            (
                "boxes".into(),
                tensor(
                    vec![1, 3, 4],
                    vec![
                        10.0, 20.0, 30.0, 60.0, // kept
                        262.9, 267.0, 331.8, 243.5, // y2 < y1
                        50.0, 50.0, 40.0, 80.0, // x2 < x1
                    ],
                ),
            ),
            ("scores".into(), tensor(vec![1, 3], vec![0.9, 0.04, 0.5])),
        ]);
        let got = detr.detections(&outputs, 0, (640, 480), 7).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].category_id, got[0].bbox),
            (1, [10.0, 20.0, 20.0, 40.0])
        );
    }

    #[test]
    fn top_k_takes_the_best_query_class_pairs_and_scales_boxes() {
        // Two queries, two classes.
        let logits = [0.0, 3.0, -1.0, 1.0];
        let boxes = [0.5, 0.5, 0.25, 0.5, 0.25, 0.25, 0.5, 0.5];
        let got = top_k_results(&logits, &boxes, 2, 2, (100, 200));
        assert_eq!(got[0].0, 1);
        assert_eq!(got[0].2, [37.5, 50.0, 62.5, 150.0]);
        assert_eq!(got[1].0, 1, "query 1, class 1 (logit 1.0)");
        assert_eq!(got[1].2, [0.0, 0.0, 50.0, 100.0]);
    }
}
