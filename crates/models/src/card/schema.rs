//! The card schema: every field a card may have, as typed values (parsed once, at the edge).

use serde::{Deserialize, Serialize};

use detbench_backends::EngineKind;
use detbench_eval::IouType;

pub use crate::zoo::{Family, ModelFormat as Format};

/// A model card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// The name users type (`--model NAME`).
    pub name: String,
    /// One line on what the model is.
    #[serde(default)]
    pub description: Option<String>,
    /// The model file, relative to the card's folder or the model folder.
    pub file: String,
    pub format: Format,
    /// The engine to run it with (`onnxruntime`, `libtorch`); default: ONNX Runtime for ONNX,
    /// libtorch for TorchScript.
    #[serde(default)]
    pub engine: Option<EngineKind>,
    /// The family whose pre- and post-processing the model needs (`ultralytics`, `detr`,
    /// `yolox`, `nanodet`, `fastestdet`, `simplepose-top-down`, `d2go`, `torchvision`, `tf2`,
    /// `detectron2`).
    #[serde(deserialize_with = "card_family")]
    pub family: Family,
    /// The evaluations its results support.
    pub tasks: Vec<IouType>,
    /// Whether the file ships in the shared models folder.
    #[serde(default)]
    pub shipped: bool,
    /// The file's full sha256, or the prefix its official name carries (torchvision).
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub sha256_prefix: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// Where the file comes from (repository @ commit : path, or model zoo).
    #[serde(default)]
    pub source: Option<String>,
    /// What to do to get (or convert) the file when it is missing.
    #[serde(default)]
    pub how_to_get: Option<String>,
    pub licence: String,
    /// Another card this model needs (a top-down keypoint model's person detector).
    #[serde(default)]
    pub companion: Option<String>,
    #[serde(default)]
    pub input: Input,
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    #[serde(default)]
    pub output: Output,
    #[serde(default)]
    pub postprocess: Postprocess,
    #[serde(default)]
    pub classes: Classes,
    /// Accuracy claims of the model's authors (`[[upstream]]` tables).
    #[serde(default)]
    pub upstream: Vec<Claim>,
}

/// A family as cards spell it; an unknown one lists the card spellings.
fn card_family<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Family, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        let known: Vec<&str> = Family::ALL.iter().map(|f| f.aliases()[0]).collect();
        serde::de::Error::custom(format!(
            "unknown family `{text}`: expected {}",
            detbench_backends::names::one_of(known)
        ))
    })
}

/// The batch dimension: a fixed size or `"dynamic"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Batch {
    Fixed(usize),
    Word(BatchWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchWord {
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputLayout {
    /// `[N, C, H, W]`.
    Nchw,
    /// `[N, H, W, C]`.
    Nhwc,
    /// A list of `[C, H, W]` images of any size (TorchScript detection models).
    ImageList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    F32,
    U8,
    I8,
}

/// `[input]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The input tensor's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Network input `[width, height]`; absent where the model resizes inside.
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    #[serde(default)]
    pub layout: Option<InputLayout>,
    #[serde(default)]
    pub dtype: Option<InputType>,
    #[serde(default)]
    pub batch: Option<Batch>,
    /// Free text shown by `detbench zoo`.
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Keep the aspect ratio, pad to the input size (`align`, `pad`).
    Letterbox,
    /// The letterbox made with `cv2.warpPerspective` (NanoDet).
    WarpLetterbox,
    /// Stretch to the input size.
    Stretch,
    /// The model takes the whole image and resizes inside.
    InsideModel,
    /// Per-person affine crops (top-down keypoints).
    AffineCrop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Align {
    Centre,
    TopLeft,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Rgb,
    Bgr,
}

/// Pixel scaling: a number multiplies (`scale = 0.5`); `"1/255"` divides by 255, which is not
/// the same in float32 as multiplying by 1/255 (Ultralytics and torchvision divide).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scale {
    Multiply(f32),
    Fraction(String),
}

/// A `scale` that is neither a number nor `"1/N"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a number or \"1/N\", got \"{text}\"")]
pub struct ScaleError {
    pub text: String,
}

impl Scale {
    /// The divisor of a `"1/N"` scale, or `None` for a multiplier.
    pub fn divisor(&self) -> Result<Option<f32>, ScaleError> {
        match self {
            Scale::Multiply(_) => Ok(None),
            Scale::Fraction(text) => text
                .strip_prefix("1/")
                .and_then(|n| n.trim().parse::<f32>().ok())
                .filter(|n| *n > 0.0)
                .map(Some)
                .ok_or_else(|| ScaleError { text: text.clone() }),
        }
    }
}

/// `[preprocess]`: what turns a decoded image into the input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    pub resize: Resize,
    #[serde(default)]
    pub align: Option<Align>,
    /// Canvas value of the padding (0..255).
    #[serde(default)]
    pub pad: Option<u8>,
    pub colour: Colour,
    #[serde(default)]
    pub scale: Option<Scale>,
    /// Per-channel mean and std (in the fed colour order), applied after `scale`.
    #[serde(default)]
    pub mean: Option<[f32; 3]>,
    #[serde(default)]
    pub std: Option<[f32; 3]>,
}

detbench_backends::named_enum! {
    /// The layouts of the outputs, for the families that read several.
    pub enum OutputLayoutKind as "output layout" {
        /// Ultralytics `[1, 4 + nc + extra, N]`.
        ChannelsFirst = "channels_first",
        /// YOLOv5 `[1, N, 5 + nc + extra]`.
        Objectness = "objectness",
        /// `[1, K, 6 + extra]`, NMS inside.
        EndToEnd = "end_to_end",
        /// DETR `labels`/`boxes`/`scores` with an `orig_target_sizes` input.
        LabelsBoxesScores = "labels_boxes_scores",
        /// DETR `logits` and normalised cxcywh boxes.
        LogitsBoxes = "logits_boxes",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detect,
    Segment,
    Pose,
}

/// A dimension of a declared shape: a size or `"dynamic"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(usize),
    Word(BatchWord),
}

/// `[output]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    #[serde(default)]
    pub layout: Option<OutputLayoutKind>,
    #[serde(default)]
    pub task: Option<Task>,
    /// Class scores per row.
    #[serde(default)]
    pub classes: Option<usize>,
    /// `[keypoints, values per keypoint]` (pose).
    #[serde(default)]
    pub keypoints: Option<[usize; 2]>,
    /// The output tensors' names, main output first.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// The main output's shape, dimension by dimension (`"dynamic"` where it varies); a file
    /// that contradicts it is refused.
    #[serde(default, rename = "shape", with = "dims")]
    pub shape: Option<Vec<Option<usize>>>,
}

mod dims {
    use super::{BatchWord, Dim};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        v: &Option<Vec<Option<usize>>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|d| {
                d.iter()
                    .map(|x| x.map_or(Dim::Word(BatchWord::Dynamic), Dim::Fixed))
                    .collect::<Vec<_>>()
            })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<Option<usize>>>, D::Error> {
        let dims: Option<Vec<Dim>> = Option::deserialize(d)?;
        Ok(dims.map(|v| {
            v.into_iter()
                .map(|x| match x {
                    Dim::Fixed(n) => Some(n),
                    Dim::Word(_) => None,
                })
                .collect()
        }))
    }
}

/// `[postprocess]`: thresholds (absent: the family's upstream defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postprocess {
    #[serde(default)]
    pub score_threshold: Option<f32>,
    #[serde(default)]
    pub nms_iou: Option<f64>,
    /// Class-agnostic NMS.
    #[serde(default)]
    pub agnostic: Option<bool>,
    #[serde(default)]
    pub max_detections: Option<usize>,
    /// Whose pipeline to reproduce where the upstream project has two (Ultralytics: its
    /// predictor, or its validator, which selects multi-label, loads images with `ceil` sizes
    /// and computes masks at the input size); default `predictor`.
    #[serde(default)]
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Predictor,
    Validator,
}

/// How class indices become category ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassMapKind {
    /// COCO's 80 classes in COCO's order -> COCO's 91 ids.
    Coco80,
    /// The index is the category id (torchvision, 91 slots).
    Identity,
    /// `index + 1` (Ultralytics' validator on non-COCO data).
    FromOne,
    /// Each class name matched to the dataset's category of that name.
    ByName,
}

/// `[classes]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classes {
    #[serde(default)]
    pub map: Option<ClassMapKind>,
    /// Explicit category id of each index.
    #[serde(default)]
    pub ids: Option<Vec<u64>>,
    /// Class names by index (for `by-name`, and for display).
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// What to do with a class the dataset has no category for: `"error"` (default) or
    /// `"drop"` (its detections are dropped; a COCO model on a dataset of a few COCO categories).
    #[serde(default)]
    pub unmatched: Option<Unmatched>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    Error,
    Drop,
}

/// One upstream accuracy claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// e.g. `box AP`, `mask AP`, `keypoint AP`.
    pub metric: String,
    pub value: f64,
    #[serde(default)]
    pub note: Option<String>,
}

impl Card {
    /// Checks between fields that the types alone cannot; `Err((field, reason))`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |field: &str, reason: String| Err((field.to_owned(), reason));
        if self.tasks.is_empty() {
            return err("tasks", "at least one of bbox, segm, keypoints".into());
        }
        if let Some([w, h]) = self.input.size
            && (w == 0 || h == 0)
        {
            return err(
                "input.size",
                format!("[width, height] must be positive, got [{w}, {h}]"),
            );
        }
        if let Some(scale) = self.preprocess.as_ref().and_then(|p| p.scale.as_ref())
            && let Err(reason) = scale.divisor()
        {
            return err("preprocess.scale", reason.to_string());
        }
        if let Some(layout) = self.output.layout {
            let yolo = matches!(
                layout,
                OutputLayoutKind::ChannelsFirst
                    | OutputLayoutKind::Objectness
                    | OutputLayoutKind::EndToEnd
            );
            let fits = match self.family {
                Family::Ultralytics => yolo,
                Family::Detr => !yolo,
                _ => false,
            };
            if !fits {
                return err(
                    "output.layout",
                    format!(
                        "`{}` is not a layout of family `{}`",
                        layout.as_str(),
                        self.family
                    ),
                );
            }
        }
        if self.output.keypoints.is_some() != (self.output.task == Some(Task::Pose))
            && self.output.task.is_some()
        {
            return err(
                "output.keypoints",
                "give keypoints = [k, d] exactly when task = \"pose\"".into(),
            );
        }
        if let (Some(ids), Some(classes)) = (&self.classes.ids, self.output.classes)
            && ids.len() != classes
        {
            return err(
                "classes.ids",
                format!("{} ids for {classes} classes (output.classes)", ids.len()),
            );
        }
        if let Some(t) = self.postprocess.score_threshold
            && !(0.0..=1.0).contains(&t)
        {
            return err(
                "postprocess.score_threshold",
                format!("must be in 0..1, got {t}"),
            );
        }
        if let Some(t) = self.postprocess.nms_iou
            && !(0.0..=1.0).contains(&t)
        {
            return err("postprocess.nms_iou", format!("must be in 0..1, got {t}"));
        }
        Ok(())
    }

    /// The batch the card declares (absent: 1).
    pub fn batch(&self) -> Batch {
        self.input.batch.unwrap_or(Batch::Fixed(1))
    }
}
