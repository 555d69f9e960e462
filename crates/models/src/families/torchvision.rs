//! torchvision detection models scripted with `torch.jit.script` (tools/gpu/export_torchvision.py)
//! and, with another channel order, the D2Go wrapper ([`super::d2go`]): TorchScript modules that
//! take a **list** of `[3, H, W]` float images and return `(something, List[Dict[str, Tensor]])`.
//!
//! Input (torchvision's `references/detection`: `PILToTensor` + `ConvertImageDtype(float)`, i.e.
//! RGB, `pixel / 255`, original size): the model's own `GeneralizedRCNNTransform` (or SSD's)
//! normalises with ImageNet mean/std and resizes inside the graph, so nothing else happens here.
//! A batch is a list of images of any sizes (torchvision pads them to a common size inside).
//!
//! Output: in scripting mode torchvision's detectors return `(losses, detections)`
//! (`GeneralizedRCNN.forward`, `RetinaNet.forward`, `SSD.forward`: "RCNN always returns a
//! (Losses, Detections) tuple in scripting"), one dict per image with
//!
//! - `boxes` `[N, 4]` x1, y1, x2, y2 in original-image pixels (`transform.postprocess` rescales),
//! - `labels` `[N]` **COCO category ids** (torchvision's 91-slot label space is the COCO id),
//! - `scores` `[N]`,
//! - `masks` `[N, 1, H, W]` probabilities already pasted into the image (`paste_masks_in_image`),
//! - `keypoints` `[N, 17, 3]` x, y, visibility (torchvision sets visibility 1).
//!
//! Conversion to COCO results follows torchvision's `references/detection/coco_eval.py`:
//! `convert_to_xywh` (x2 - x1 computed in f32), masks `> 0.5` then RLE
//! (`prepare_for_coco_segmentation`), keypoints flattened as they are
//! (`prepare_for_coco_keypoint`). Labels in torchvision's 11 "N/A" slots (12, 26, 29, ...; only
//! untrained weights predict them) are not COCO categories: pycocotools ignores them (COCOeval
//! scores the ground truth's category ids only) while detbench's evaluator rejects unknown
//! categories, so they are dropped here, which changes no COCO metric; the count is kept.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use detbench_backends::{
    Backend, BackendConfig, BackendDescription, EngineKind, Outputs, Precision, Tensor, Value,
};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
use detbench_eval::{Detection, IouType, Rle, labels::COCO80_TO_91};
use detbench_imgproc::BgrImage;
use serde::Serialize;

use super::common::FamilyError;
use crate::ModelError;
use crate::zoo::ZooEntry;

/// Opens a scripted torchvision detector on the libtorch engine (the file is TorchScript, so
/// the engine is libtorch whatever `config.engine` says). Masks and keypoints are read when the
/// catalogue entry lists segm or keypoints evaluation.
pub fn open(
    entry: &ZooEntry,
    model_path: &Path,
    config: &BackendConfig,
) -> Result<ListModelDetector, ModelError> {
    let config = BackendConfig {
        engine: EngineKind::Torch,
        ..config.clone()
    };
    let backend = detbench_backends::open(model_path, &config)?;
    let mut pipeline = ListModelConfig::torchvision(
        entry.iou_types.contains(&IouType::Segm),
        entry.iou_types.contains(&IouType::Keypoints),
    );
    pipeline.export = export_record(model_path);
    Ok(ListModelDetector::new(&entry.name, backend, pipeline))
}

/// The manifest `tools/gpu/export_torchvision.py` writes beside the files it exports.
pub const EXPORT_MANIFEST: &str = "export_manifest.json";

/// How the TorchScript file at `model_path` was made, from the [`EXPORT_MANIFEST`] beside it:
/// its entry (weights: official or random with their seed, RetinaNet's `--calibrate` bias,
/// sha256) with the torch and torchvision versions of the export. `None` when there is no
/// manifest, it cannot be read, or it does not list the file.
pub fn export_record(model_path: &Path) -> Option<serde_json::Value> {
    let manifest = model_path.parent()?.join(EXPORT_MANIFEST);
    let text = std::fs::read_to_string(manifest).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let file = model_path.file_name()?.to_str()?;
    let entry = doc["models"]
        .as_object()?
        .values()
        .find(|entry| entry["file"] == file)?;
    Some(serde_json::json!({
        "manifest": EXPORT_MANIFEST,
        "torch": doc["torch"],
        "torchvision": doc["torchvision"],
        "entry": entry,
    }))
}

/// Channel order of the float image a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How a list-of-images TorchScript model is fed and read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListModelConfig {
    pub channel_order: ChannelOrder,
    /// The tuple element (backend output name) holding the list of per-image dicts.
    pub detections_output: String,
    /// Whether the dicts carry `masks` (segm) and `keypoints`.
    pub masks: bool,
    pub keypoints: bool,
    /// Mask probability threshold (strictly greater is foreground).
    pub mask_threshold: f32,
    /// Images per call the model accepts.
    pub max_batch: Option<usize>,
    /// The precision the model file itself fixes (D2Go's quantized model: `int8`), recorded in
    /// the run instead of the float precision the engine was asked for; `None`: as asked.
    pub weights_precision: Option<Precision>,
    /// Where this configuration comes from, for the run record.
    pub source: String,
    /// How the model file was exported ([`export_record`]), when its manifest says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<serde_json::Value>,
}

impl ListModelConfig {
    /// A scripted torchvision detector (RGB, `(losses, detections)`).
    pub fn torchvision(masks: bool, keypoints: bool) -> Self {
        ListModelConfig {
            channel_order: ChannelOrder::Rgb,
            detections_output: "1".into(),
            masks,
            keypoints,
            mask_threshold: 0.5,
            max_batch: None,
            weights_precision: None,
            source: "torchvision 0.26 references/detection (presets: PILToTensor, \
                     ConvertImageDtype; coco_eval.py: convert_to_xywh, masks > 0.5, keypoints as \
                     returned)"
                .into(),
            export: None,
        }
    }
}

/// A `Detector` around one TorchScript module that takes a list of images.
pub struct ListModelDetector {
    name: String,
    backend: Box<dyn Backend>,
    config: ListModelConfig,
    /// Detections dropped because their label is no COCO category (see the module docs).
    dropped_labels: AtomicU64,
}

impl ListModelDetector {
    pub fn new(name: &str, backend: Box<dyn Backend>, config: ListModelConfig) -> Self {
        ListModelDetector {
            name: name.to_owned(),
            backend,
            config,
            dropped_labels: AtomicU64::new(0),
        }
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The engine's description, with the model file's own precision where it fixes one.
    fn describe_backend(&self) -> BackendDescription {
        let mut backend = self.backend.describe();
        if let Some(precision) = self.config.weights_precision {
            backend.precision = precision;
        }
        backend
    }

    /// Detections dropped so far for labels that are no COCO category.
    pub fn dropped_non_coco_labels(&self) -> u64 {
        self.dropped_labels.load(Ordering::Relaxed)
    }
}

/// The model input for one image: `[3, H, W]` f32, `pixel / 255`, in `order`. The division is
/// one f32 division per value, as `tensor.float() / 255` in PyTorch.
pub fn image_tensor(image: &BgrImage, order: ChannelOrder) -> Tensor {
    let plane = image.width * image.height;
    let mut data = vec![0f32; 3 * plane];
    // Source channel for each output plane: BGR pixels, so RGB reads 2, 1, 0.
    let sources: [usize; 3] = match order {
        ChannelOrder::Bgr => [0, 1, 2],
        ChannelOrder::Rgb => [2, 1, 0],
    };
    for (plane_index, &source) in sources.iter().enumerate() {
        let out = &mut data[plane_index * plane..(plane_index + 1) * plane];
        for (value, pixel) in out.iter_mut().zip(image.data.chunks_exact(3)) {
            *value = pixel[source] as f32 / 255.0;
        }
    }
    Tensor::f32(vec![3, image.height, image.width], data)
}

/// The COCO category ids (torchvision's 91 label slots minus the 11 "N/A" ones).
pub fn is_coco_category(label: i64) -> bool {
    label > 0 && COCO80_TO_91.contains(&(label as u64))
}

impl ListModelDetector {
    /// The detections of one image from its result dict.
    fn to_detections(
        &self,
        result: &Value,
        image: &ImageInput<'_>,
    ) -> Result<Vec<Detection>, FamilyError> {
        let image_id = image.image_id;
        let bad = |reason: &dyn std::fmt::Display| FamilyError::Model {
            model: self.name.clone(),
            reason: format!("image {image_id}: {reason}"),
        };
        let tensor = |key: &str| -> Result<&Tensor, FamilyError> {
            result
                .dict_get(key)
                .and_then(Value::as_tensor)
                .ok_or_else(|| bad(&format!("the result dict has no tensor `{key}`")))
        };
        let boxes_t = tensor("boxes")?;
        let count = boxes_t.shape.first().copied().unwrap_or(0);
        let boxes = float_data(boxes_t, &[count, 4], "boxes").map_err(|e| bad(&e))?;
        let scores = float_data(tensor("scores")?, &[count], "scores").map_err(|e| bad(&e))?;
        let labels_t = tensor("labels")?;
        if labels_t.shape != [count] {
            return Err(bad(&format!(
                "labels has shape {:?}, expected [{count}]",
                labels_t.shape
            )));
        }
        let labels = labels_t
            .as_i64()
            .ok_or_else(|| bad(&"labels are not integers"))?;
        let (height, width) = (image.image.height, image.image.width);
        let masks = if self.config.masks {
            Some(
                float_data(tensor("masks")?, &[count, 1, height, width], "masks")
                    .map_err(|e| bad(&e))?,
            )
        } else {
            None
        };
        let keypoints = if self.config.keypoints {
            let t = tensor("keypoints")?;
            let joints = t.shape.get(1).copied().unwrap_or(0);
            Some((
                float_data(t, &[count, joints, 3], "keypoints").map_err(|e| bad(&e))?,
                joints,
            ))
        } else {
            None
        };

        let mut detections = Vec::with_capacity(count);
        for k in 0..count {
            if !is_coco_category(labels[k]) {
                self.dropped_labels.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let [x1, y1, x2, y2] = [
                boxes[4 * k],
                boxes[4 * k + 1],
                boxes[4 * k + 2],
                boxes[4 * k + 3],
            ];
            let mask = masks.map(|m| {
                let plane = height * width;
                encode_mask(
                    &m[k * plane..(k + 1) * plane],
                    height,
                    width,
                    self.config.mask_threshold,
                )
            });
            let keypoints = keypoints.map(|(kp, joints)| {
                kp[k * joints * 3..(k + 1) * joints * 3]
                    .iter()
                    .map(|&v| v as f64)
                    .collect()
            });
            detections.push(Detection {
                image_id,
                category_id: labels[k] as u64,
                bbox: [x1 as f64, y1 as f64, (x2 - x1) as f64, (y2 - y1) as f64],
                score: scores[k] as f64,
                mask,
                keypoints,
            });
        }
        Ok(detections)
    }
}

/// What is wrong with one tensor of a result dict.
#[derive(Debug, thiserror::Error)]
enum ResultTensorError {
    #[error("{name} has shape {got:?}, expected {expected:?}")]
    Shape {
        name: &'static str,
        got: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{name} is not a float tensor")]
    NotFloat { name: &'static str },
}

/// The f32 elements of a result tensor of the given shape.
fn float_data<'a>(
    tensor: &'a Tensor,
    shape: &[usize],
    name: &'static str,
) -> Result<&'a [f32], ResultTensorError> {
    if tensor.shape != shape {
        return Err(ResultTensorError::Shape {
            name,
            got: tensor.shape.clone(),
            expected: shape.to_vec(),
        });
    }
    tensor.as_f32().ok_or(ResultTensorError::NotFloat { name })
}

/// A row-major `[H, W]` probability map thresholded (`> threshold`) and run-length encoded the
/// COCO way (column-major), through hotcoco's `mask::encode` (pycocotools `maskApi.c rleEncode`).
pub fn encode_mask(probabilities: &[f32], height: usize, width: usize, threshold: f32) -> Rle {
    let mut column_major = vec![0u8; height * width];
    for y in 0..height {
        let row = &probabilities[y * width..(y + 1) * width];
        for (x, &p) in row.iter().enumerate() {
            column_major[y + height * x] = u8::from(p > threshold);
        }
    }
    let rle = hotcoco::mask::encode(&column_major, height as u32, width as u32)
        .expect("mask length is height * width by construction");
    Rle {
        height: rle.h,
        width: rle.w,
        counts: rle.counts,
    }
}

impl Detector for ListModelDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_support(&self) -> BatchSupport {
        BatchSupport::Dynamic {
            max: self.config.max_batch,
        }
    }

    fn iou_types(&self) -> Vec<IouType> {
        let mut types = vec![IouType::Bbox];
        if self.config.masks {
            types.push(IouType::Segm);
        }
        if self.config.keypoints {
            types.push(IouType::Keypoints);
        }
        types
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "pipeline": self.config,
            "backend": self.describe_backend(),
            "dropped_non_coco_labels": self.dropped_non_coco_labels(),
        })
    }

    fn backend(&self) -> Option<BackendDescription> {
        Some(self.describe_backend())
    }

    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        if !self.batch_support().accepts(batch.len()) {
            return Err(format!(
                "{} takes at most {:?} images per call; got {}",
                self.name,
                self.config.max_batch,
                batch.len()
            )
            .into());
        }
        let images = clock.time(Stage::Preprocess, || {
            batch
                .iter()
                .map(|input| Value::Tensor(image_tensor(input.image, self.config.channel_order)))
                .collect::<Vec<_>>()
        });
        let outputs: Outputs = clock.time(Stage::Inference, || {
            // Only the detections come back to the host: D2Go's wrapper also returns its input
            // images, which the reference's timing does not copy either.
            self.backend.run_selected(
                vec![("images".into(), Value::List(images))],
                &[self.config.detections_output.as_str()],
            )
        })?;
        let detections = clock.time(Stage::Postprocess, || {
            let results = match outputs.get(&self.config.detections_output)? {
                Value::List(items) if items.len() == batch.len() => items,
                other => {
                    return Err(FamilyError::Model {
                        model: self.name.clone(),
                        reason: format!(
                            "output {} should be a list of {} result dicts, got a {}",
                            self.config.detections_output,
                            batch.len(),
                            describe(other)
                        ),
                    });
                }
            };
            results
                .iter()
                .zip(batch)
                .map(|(result, input)| self.to_detections(result, input))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(detections)
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::List(items) => format!("list of {}", items.len()),
        other => other.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tensor_orders_planes_and_divides_by_255() {
        let image = BgrImage {
            width: 2,
            height: 1,
            data: vec![10, 20, 30, 40, 50, 255],
        };
        let rgb = image_tensor(&image, ChannelOrder::Rgb);
        assert_eq!(rgb.shape, vec![3, 1, 2]);
        let expected: Vec<f32> = [30u8, 255, 20, 50, 10, 40]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect();
        assert_eq!(rgb.as_f32().unwrap(), expected.as_slice());
        let bgr = image_tensor(&image, ChannelOrder::Bgr);
        assert_eq!(bgr.as_f32().unwrap()[..2], [10.0 / 255.0, 40.0 / 255.0]);
    }

    #[test]
    fn masks_are_thresholded_strictly_and_encoded_column_major() {
        // 2 rows x 3 columns; foreground (> 0.5) at (x=1, y=0) and (x=2, y=1). 0.5 itself is
        // background, as `masks > 0.5` in torchvision's coco_eval.py.
        let probabilities = [0.1, 0.9, 0.5, 0.0, 0.2, 0.7];
        let rle = encode_mask(&probabilities, 2, 3, 0.5);
        // Column-major: (0,0) (0,1) | (1,0) (1,1) | (2,0) (2,1) = 0 0 1 0 0 1.
        assert_eq!(rle.counts, vec![2, 1, 2, 1]);
        assert_eq!((rle.height, rle.width), (2, 3));
    }

    #[test]
    fn only_coco_ids_are_categories() {
        assert!(is_coco_category(1));
        assert!(is_coco_category(90));
        for na in [0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91] {
            assert!(!is_coco_category(na), "{na}");
        }
    }
}
