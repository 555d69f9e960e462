//! TensorFlow 2 Object Detection API models exported to ONNX (tf2onnx from the zoo's
//! SavedModel). The exported graph does its own resizing, box decoding and NMS; detbench only
//! feeds the whole image and reads the standard detection signature:
//!
//! - input `input_tensor`: uint8 `[1, H, W, 3]`, **RGB** (the SavedModel's
//!   `serving_default`, `object_detection/exporter_lib_v2.py`, `input_type=image_tensor`);
//! - outputs `detection_boxes` `[1, N, 4]` normalised `[ymin, xmin, ymax, xmax]`,
//!   `detection_classes` `[1, N]` (COCO category ids as floats, 1-based: the zoo's
//!   `mscoco_label_map.pbtxt` uses the COCO ids), `detection_scores` `[1, N]`,
//!   `num_detections` `[1]` (N is the exporter's `max_total_detections`, 100 for these models);
//! - map back: `box_list_ops.to_absolute_coordinates` (y times height, x times width, in f32)
//!   and `coco_tools.ExportSingleImageDetectionBoxesToCoco` (`[xmin, ymin, w, h]`), keeping
//!   the detections whose class is a COCO category (`if detection_classes[i] in
//!   category_id_set`): the label map has 90 slots, and the 10 that are not COCO categories
//!   (12, 26, 29, 30, 45, 66, 68, 69, 71, 83) and the background slot 0 are dropped there too.

use detbench_backends::{Outputs, Tensor, TensorData};
use detbench_eval::Detection;
use detbench_eval::labels::COCO80_TO_91;
use detbench_imgproc::BgrImage;

use super::common::{FamilyError, KeptBox, Pipeline, output_f32};

/// Output names of the TF OD API detection signature.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tf2Config {
    pub input_name: String,
    pub boxes: String,
    pub classes: String,
    pub scores: String,
    pub count: String,
}

impl Default for Tf2Config {
    fn default() -> Self {
        Tf2Config {
            input_name: "input_tensor".to_owned(),
            boxes: "detection_boxes".to_owned(),
            classes: "detection_classes".to_owned(),
            scores: "detection_scores".to_owned(),
            count: "num_detections".to_owned(),
        }
    }
}

/// The original image size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tf2Meta {
    pub width: usize,
    pub height: usize,
}

/// The TF2 Object Detection pipeline.
#[derive(Debug, Clone)]
pub struct Tf2ObjectDetection {
    pub config: Tf2Config,
}

impl Tf2ObjectDetection {
    pub fn new(config: Tf2Config) -> Self {
        Tf2ObjectDetection { config }
    }

    /// The detections of one image from the signature's outputs.
    pub fn decode(&self, outputs: &Outputs, meta: &Tf2Meta) -> Result<Vec<KeptBox>, FamilyError> {
        let scores_tensor = outputs.tensor(&self.config.scores)?;
        let slots = match scores_tensor.shape.as_slice() {
            [1, n] => *n,
            other => {
                return Err(FamilyError::OutputShape {
                    name: self.config.scores.clone(),
                    expected: "shape [1, N]".to_owned(),
                    got: format!("shape {other:?}"),
                });
            }
        };
        let scores = output_f32(outputs, &self.config.scores, &[1, slots])?;
        let classes = output_f32(outputs, &self.config.classes, &[1, slots])?;
        let boxes = output_f32(outputs, &self.config.boxes, &[1, slots, 4])?;
        let count = output_f32(outputs, &self.config.count, &[1])?[0];
        if !(count >= 0.0 && count as usize <= slots) {
            return Err(FamilyError::OutputShape {
                name: self.config.count.clone(),
                expected: format!("a count in 0..={slots}"),
                got: count.to_string(),
            });
        }
        let (w, h) = (meta.width as f32, meta.height as f32);
        let mut kept = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let class = classes[i];
            // coco_tools.ExportSingleImageDetectionBoxesToCoco: `detection_classes[i] in
            // category_id_set` (a float equal to one of the COCO ids).
            if !(class.fract() == 0.0 && class >= 1.0 && COCO80_TO_91.contains(&(class as u64))) {
                continue;
            }
            let b = &boxes[i * 4..i * 4 + 4];
            kept.push(KeptBox {
                bbox: [b[1] * w, b[0] * h, b[3] * w, b[2] * h],
                score: scores[i],
                category_id: class as u64,
            });
        }
        Ok(kept)
    }
}

impl Pipeline for Tf2ObjectDetection {
    type Meta = Tf2Meta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, Tf2Meta), FamilyError> {
        let mut rgb = Vec::with_capacity(image.data.len());
        for px in image.data.chunks_exact(3) {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        let tensor = Tensor {
            shape: vec![1, image.height, image.width, 3],
            data: TensorData::U8(rgb),
        };
        let meta = Tf2Meta {
            width: image.width,
            height: image.height,
        };
        Ok((tensor, meta))
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &Tf2Meta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        Ok(self
            .decode(outputs, meta)?
            .into_iter()
            .map(|k| k.to_detection(image_id))
            .collect())
    }

    fn input_name(&self) -> &str {
        &self.config.input_name
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "family": "TF2 Object Detection API (ONNX export)",
            "config": self.config,
            "preprocess": "whole image, uint8 [1,H,W,3] RGB; the graph resizes",
            "postprocess": "first num_detections of the graph's detections; normalised [ymin,xmin,ymax,xmax] times image size (f32); classes are COCO ids; no extra threshold or NMS",
            "upstream": "tensorflow/models research/object_detection: exporter_lib_v2.py (serving signature), core/box_list_ops.py::to_absolute_coordinates, metrics/coco_tools.py::ExportSingleImageDetectionBoxesToCoco",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use detbench_backends::Value;

    fn outputs(boxes: Vec<f32>, classes: Vec<f32>, scores: Vec<f32>, count: f32) -> Outputs {
        let n = scores.len();
        Outputs(vec![
            (
                "detection_boxes".into(),
                Value::Tensor(Tensor::f32(vec![1, n, 4], boxes)),
            ),
            (
                "detection_classes".into(),
                Value::Tensor(Tensor::f32(vec![1, n], classes)),
            ),
            (
                "detection_scores".into(),
                Value::Tensor(Tensor::f32(vec![1, n], scores)),
            ),
            (
                "num_detections".into(),
                Value::Tensor(Tensor::f32(vec![1], vec![count])),
            ),
        ])
    }

    #[test]
    fn normalised_yx_boxes_become_coco_xywh_pixels() {
        let pipeline = Tf2ObjectDetection::new(Tf2Config::default());
        let out = outputs(
            vec![
                0.25, 0.5, 0.75, 1.0, // ymin xmin ymax xmax
                0.0, 0.0, 0.5, 0.25, //
                0.1, 0.1, 0.2, 0.2, // beyond num_detections
            ],
            vec![18.0, 1.0, 3.0],
            vec![0.9, 0.4, 0.01],
            2.0,
        );
        let meta = Tf2Meta {
            width: 640,
            height: 480,
        };
        let dets = pipeline.postprocess(&out, &meta, 42).unwrap();
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].image_id, 42);
        assert_eq!(dets[0].category_id, 18);
        assert_eq!(dets[0].bbox, [320.0, 120.0, 320.0, 240.0]);
        assert_eq!(dets[0].score, 0.9f32 as f64);
        assert_eq!(dets[1].category_id, 1);
        assert_eq!(dets[1].bbox, [0.0, 0.0, 160.0, 240.0]);
    }

    #[test]
    fn background_and_non_coco_slots_are_dropped() {
        let pipeline = Tf2ObjectDetection::new(Tf2Config::default());
        // Background 0, the label map's non-COCO slots 12 and 83, a non-integral class, NaN,
        // and two COCO categories (90 = toothbrush, 13 = stop sign).
        let classes = vec![0.0, 12.0, 83.0, 1.5, f32::NAN, 90.0, 13.0];
        let n = classes.len();
        let out = outputs(
            [0.0, 0.0, 1.0, 1.0].repeat(n),
            classes,
            vec![0.5; n],
            n as f32,
        );
        let meta = Tf2Meta {
            width: 10,
            height: 10,
        };
        let kept: Vec<u64> = pipeline
            .postprocess(&out, &meta, 1)
            .unwrap()
            .iter()
            .map(|d| d.category_id)
            .collect();
        assert_eq!(kept, [90, 13]);
    }

    #[test]
    fn a_bad_count_is_an_error() {
        let pipeline = Tf2ObjectDetection::new(Tf2Config::default());
        let out = outputs(vec![0.0, 0.0, 1.0, 1.0], vec![1.0], vec![0.5], 7.0);
        let meta = Tf2Meta {
            width: 10,
            height: 10,
        };
        let err = pipeline.postprocess(&out, &meta, 1).unwrap_err();
        assert!(err.to_string().contains("num_detections"), "{err}");
    }

    #[test]
    fn preprocessing_swaps_bgr_to_rgb_in_nhwc() {
        let pipeline = Tf2ObjectDetection::new(Tf2Config::default());
        let image = BgrImage {
            width: 2,
            height: 1,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let (t, _) = pipeline.preprocess(&image).unwrap();
        assert_eq!(t.shape, vec![1, 1, 2, 3]);
        assert_eq!(t.data, TensorData::U8(vec![3, 2, 1, 6, 5, 4]));
    }
}
