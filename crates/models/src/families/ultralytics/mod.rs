//! Ultralytics YOLO exports (detect, segment, pose; YOLOv5/v8/11/12/26 and end-to-end layouts),
//! with the pre- and post-processing of Ultralytics' own predictor, `ultralytics` 8.4.x
//! (checked against 8.4.190 by tests/ultralytics_parity.rs):
//!
//! - preprocess: [`letterbox`] (`LetterBox`, centred, pad 114, `cv2.resize` INTER_LINEAR),
//!   BGR to RGB, `/ 255` (`BasePredictor.preprocess`);
//! - [`nms`]: `non_max_suppression` for the three [`layout`]s;
//! - map back: `scale_boxes` (clipped), `scale_coords` for keypoints;
//! - masks: [`masks`] (`process_mask_native`, as `retina_masks=True` and the validator's
//!   `save_json` path), RLE; detections whose mask is empty are dropped as the predictor does.
//!
//! Class indices map to dataset category ids through `class_map` (COCO: the 80 -> 91 map that
//! the validator's `coco80_to_coco91_class` gives).

pub mod layout;
pub mod letterbox;
pub mod masks;
pub mod metadata;
pub mod nms;

use detbench_backends::{Outputs, Tensor};
use detbench_eval::{Detection, IouType};
use detbench_imgproc::BgrImage;

use super::common::{FamilyError, KeptBox, Pipeline, output_f32};
use layout::{Layout, OutputSpec, Task};
use letterbox::{Letterbox, Unletterbox};
use masks::{MaskGeometry, Prototypes};
use nms::{Candidate, NmsSettings};

/// Everything the pipeline needs; [`UltralyticsConfig::new`] gives the predictor's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UltralyticsConfig {
    pub input_name: String,
    /// Network input (width, height).
    pub input_size: (usize, usize),
    /// Centred letterbox (`center=True`) or image at the top-left.
    pub centre: bool,
    pub pad_value: u8,
    /// Feed RGB (Ultralytics) or BGR.
    pub rgb: bool,
    /// Pixel values are divided by this (255).
    pub divisor: f32,
    pub output: OutputSpec,
    pub nms: NmsSettings,
    /// Category id of each class index; `None` drops the class before NMS (Ultralytics'
    /// `classes=` filter), for a dataset without that category.
    pub class_map: Vec<Option<u64>>,
    /// Which of Ultralytics' two mask paths to follow.
    pub masks: MaskMode,
    /// Whose letterbox geometry: the predictor's (`LetterBox`, rounded sizes) or the
    /// validator's (`load_image` with `ceil` sizes, then `LetterBox(scaleup=False)`).
    pub geometry: Geometry,
}

/// The predictor's or the validator's image geometry ([`letterbox::Letterbox::validator`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Geometry {
    Predictor,
    Validator,
}

/// The predictor's masks or the validator's (they differ: [`masks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// `retina_masks=True`: `process_mask_native` at the image size; detections with an empty
    /// mask dropped (`SegmentationPredictor.construct_result`).
    Predictor,
    /// `SegmentationValidator` with `save_json`: masks at the input size, `scale_masks` with
    /// `.byte()` truncation; every detection kept.
    Validator,
}

impl UltralyticsConfig {
    /// The predictor's settings (`conf=0.25`, `iou=0.7`, `max_det=300`) for `output` on an
    /// input of `input_size` (width, height).
    pub fn new(
        input_name: &str,
        input_size: (usize, usize),
        output: OutputSpec,
        class_map: Vec<Option<u64>>,
    ) -> Self {
        UltralyticsConfig {
            input_name: input_name.to_owned(),
            input_size,
            centre: true,
            pad_value: 114,
            rgb: true,
            divisor: 255.0,
            output,
            nms: NmsSettings::default(),
            class_map,
            masks: MaskMode::Predictor,
            geometry: Geometry::Predictor,
        }
    }
}

/// The pipeline.
#[derive(Debug, Clone)]
pub struct Ultralytics {
    pub config: UltralyticsConfig,
}

/// The letterbox of one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UltralyticsMeta {
    pub letterbox: Letterbox,
}

impl Ultralytics {
    /// Checks that every class has a category id.
    pub fn new(config: UltralyticsConfig) -> Result<Self, FamilyError> {
        if config.class_map.len() < config.output.classes {
            return Err(FamilyError::Model {
                model: config.output.output.clone(),
                reason: format!(
                    "the model predicts {} classes but the class map has {} category ids",
                    config.output.classes,
                    config.class_map.len()
                ),
            });
        }
        Ok(Ultralytics { config })
    }

    /// The candidates of one image's main output (`data`, `rows` candidates).
    fn select(&self, data: &[f32], rows: usize) -> Vec<Candidate> {
        let spec = &self.config.output;
        let s = &self.config.nms;
        let wanted = |c: &Candidate| {
            self.config
                .class_map
                .get(c.class)
                .is_some_and(Option::is_some)
        };
        let mut candidates = match spec.layout {
            Layout::ChannelsFirst if s.multi_label => nms::candidates_channels_first_multi(
                data,
                spec.row_len(),
                rows,
                spec.classes,
                s.conf,
            ),
            Layout::ChannelsFirst => {
                nms::candidates_channels_first(data, spec.row_len(), rows, spec.classes, s.conf)
            }
            Layout::Objectness => {
                nms::candidates_objectness(data, spec.row_len(), spec.classes, s.conf)
            }
            Layout::EndToEnd => {
                // The end-to-end branch filters classes before taking the first max_det rows.
                let all = nms::end_to_end(data, spec.row_len(), s.conf, usize::MAX);
                return all.into_iter().filter(wanted).take(s.max_det).collect();
            }
        };
        candidates.retain(wanted);
        nms::non_max_suppression(candidates, s)
    }

    /// The extra values (mask coefficients or keypoints) of a kept candidate's row.
    fn extra(&self, data: &[f32], rows: usize, row: usize) -> Vec<f32> {
        let spec = &self.config.output;
        let start = match spec.layout {
            Layout::ChannelsFirst => 4 + spec.classes,
            Layout::Objectness => 5 + spec.classes,
            Layout::EndToEnd => 6,
        };
        (start..start + spec.extra())
            .map(|c| match spec.layout {
                Layout::ChannelsFirst => data[c * rows + row],
                _ => data[row * spec.row_len() + c],
            })
            .collect()
    }

    /// The detections of one image from its main output (and prototypes): NMS, boxes and
    /// keypoints in image pixels, masks. `rows` is the candidate count of the output.
    pub fn detections(
        &self,
        data: &[f32],
        rows: usize,
        prototypes: Option<Prototypes<'_>>,
        meta: &UltralyticsMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let lb = &meta.letterbox;
        let unletterbox = lb.unletterbox(self.config.centre);
        let geometry = prototypes.map(|p| match self.config.masks {
            MaskMode::Predictor => MaskGeometry::new(p.width, p.height, lb.image_w, lb.image_h),
            MaskMode::Validator => MaskGeometry::new(p.width, p.height, lb.canvas_w, lb.canvas_h),
        });
        let ratio_pad = masks::RatioPad {
            gain_h: unletterbox.gain_y,
            gain_w: unletterbox.gain_x,
            pad_w: unletterbox.pad_x as f64,
            pad_h: unletterbox.pad_y as f64,
            image_w: lb.image_w,
            image_h: lb.image_h,
        };
        let mut out = Vec::new();
        for candidate in self.select(data, rows) {
            let category_id =
                self.config.class_map[candidate.class].expect("select keeps mapped classes only");
            let bbox = unletterbox.boxes(candidate.bbox);
            let mut detection = KeptBox {
                bbox,
                score: candidate.score,
                category_id,
            }
            .to_detection(image_id);
            let extra = self.extra(data, rows, candidate.row);
            match (self.config.output.task, &geometry, &prototypes) {
                (Task::Segment, Some(geometry), Some(protos)) => {
                    let mask = match self.config.masks {
                        MaskMode::Predictor => match geometry.mask(protos, &extra, bbox) {
                            Some(mask) => mask,
                            None => continue, // `keep = masks.amax((-2, -1)) > 0`
                        },
                        MaskMode::Validator => masks::validator_mask(
                            protos,
                            &extra,
                            candidate.bbox,
                            bbox,
                            geometry,
                            ratio_pad,
                        ),
                    };
                    detection.mask = Some(mask.to_rle());
                }
                (Task::Pose, _, _) => {
                    let (_, dims) = self.config.output.keypoints.unwrap_or((0, 3));
                    detection.keypoints = Some(keypoints(&extra, dims, &unletterbox));
                }
                _ => {}
            }
            out.push(detection);
        }
        Ok(out)
    }
}

/// `scale_coords` on each keypoint, its visibility (third value) kept, as COCO `[x, y, v]`
/// triples; a model with 2-value keypoints (`kpt_shape = [k, 2]`) gets `v = 0`.
fn keypoints(values: &[f32], dims: usize, unletterbox: &Unletterbox) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len() / dims.max(1) * 3);
    for k in values.chunks_exact(dims.max(2)) {
        let (x, y) = unletterbox.point(k[0], k[1]);
        out.extend([x as f64, y as f64, k.get(2).copied().unwrap_or(0.0) as f64]);
    }
    out
}

impl Pipeline for Ultralytics {
    type Meta = UltralyticsMeta;

    fn preprocess(&self, image: &BgrImage) -> Result<(Tensor, UltralyticsMeta), FamilyError> {
        let (w, h) = self.config.input_size;
        if image.width == 0 || image.height == 0 {
            return Err(FamilyError::Image {
                width: image.width,
                height: image.height,
                reason: "empty image".into(),
            });
        }
        let letterbox = match self.config.geometry {
            Geometry::Predictor => {
                Letterbox::new(image.width, image.height, w, h, self.config.centre)
            }
            Geometry::Validator => Letterbox::validator(image.width, image.height, w, h),
        };
        let data = letterbox.to_chw(
            image,
            self.config.pad_value,
            self.config.rgb,
            self.config.divisor,
        );
        Ok((
            Tensor::f32(vec![1, 3, h, w], data),
            UltralyticsMeta { letterbox },
        ))
    }

    fn postprocess(
        &self,
        outputs: &Outputs,
        meta: &UltralyticsMeta,
        image_id: u64,
    ) -> Result<Vec<Detection>, FamilyError> {
        let spec = &self.config.output;
        let tensor = outputs.tensor(&spec.output)?;
        let rows = match (spec.layout, tensor.shape.as_slice()) {
            (Layout::ChannelsFirst, [1, _, n]) | (_, [1, n, _]) => *n,
            _ => 0,
        };
        let data = output_f32(outputs, &spec.output, &spec.shape(rows))?;
        let prototypes = match &spec.prototypes {
            Some(name) => {
                let t = outputs.tensor(name)?;
                let [1, c, mh, mw] = t.shape[..] else {
                    return Err(FamilyError::OutputShape {
                        name: name.clone(),
                        expected: format!("[1, {}, mh, mw]", spec.mask_coefficients),
                        got: format!("shape {:?}", t.shape),
                    });
                };
                let data = output_f32(outputs, name, &[1, spec.mask_coefficients, mh, mw])?;
                Some(Prototypes {
                    data,
                    channels: c,
                    height: mh,
                    width: mw,
                })
            }
            None => None,
        };
        self.detections(data, rows, prototypes, meta, image_id)
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "family": "Ultralytics YOLO",
            "config": self.config,
            "preprocess": "LetterBox (centred, pad 114, r = min(H/h, W/w), new size max(round(side*r), 1) with Python's half-to-even round, top = round(dh - 0.1)), cv2.resize INTER_LINEAR bit-exact, BGR->RGB, /255 in f32",
            "postprocess": "non_max_suppression (amax > conf in f32, best class, xywh2xyxy, class offset 7680, torchvision NMS with double IoU compare, max_det), scale_boxes + clip, scale_coords (pose), process_mask_native (segment; empty masks dropped)",
            "upstream": "ultralytics 8.4.x: data/augment.py::LetterBox, engine/predictor.py::BasePredictor.preprocess, utils/nms.py::non_max_suppression, utils/ops.py::scale_boxes/scale_coords/process_mask_native/scale_masks/crop_mask",
        })
    }

    fn input_name(&self) -> &str {
        &self.config.input_name
    }

    /// Boxes; masks too for a segmentation model; keypoints alone for a pose model.
    fn iou_types(&self) -> Vec<IouType> {
        match self.config.output.task {
            Task::Detect => vec![IouType::Bbox],
            Task::Segment => vec![IouType::Bbox, IouType::Segm],
            Task::Pose => vec![IouType::Keypoints],
        }
    }
}
