//! The model zoo: every model detbench knows, each described by a model card (`card`), with its
//! file name, checksum, official source, licence and the accuracy its authors claim. The built-in
//! zoo is the cards in `crates/models/cards/`, embedded in the binary ([`builtin`]); a user's own
//! cards join it ([`Zoo::with_user_cards`]). Shipped models (in `../shared/models`) run out of
//! the box; for the others, `detbench zoo` says how to get the file.

mod builtin;
mod user;

pub use user::{CardProblem, Zoo};

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use detbench_backends::EngineKind;
use detbench_bench::dataset::GroundTruthKind;
use detbench_eval::IouType;
use serde::Serialize;

use crate::card::{self, Card};

detbench_backends::named_enum! {
    /// The pipeline family: which pre- and post-processing a model needs. Its name is what
    /// results and the store record as the row's `family`; cards may also write it in lower
    /// case (`family = "yolox"`).
    pub enum Family as "family" {
        /// Megvii YOLOX (ONNX, decode outside the graph).
        Yolox = "Yolox" | "yolox",
        /// RangiLyu NanoDet legacy GFL head (ONNX).
        NanoDet = "NanoDet" | "nanodet",
        /// dog-qiuqiu FastestDet (ONNX).
        FastestDet = "FastestDet" | "fastestdet",
        /// Top-down keypoints: a person detector's boxes feeding a SimplePose heatmap model.
        SimplePoseTopDown = "SimplePoseTopDown" | "simplepose-top-down",
        /// D2Go scripted Faster R-CNN wrapper (TorchScript, int8, CPU).
        D2Go = "D2Go" | "d2go",
        /// torchvision detection models scripted with `torch.jit.script` (TorchScript).
        TorchvisionDetection = "TorchvisionDetection" | "torchvision",
        /// TensorFlow 2 Object Detection API exports (detection boxes/classes/scores in the
        /// graph).
        Tf2ObjectDetection = "Tf2ObjectDetection" | "tf2",
        /// detectron2 models exported to TorchScript (`tools/deploy/export_model.py`).
        Detectron2 = "Detectron2" | "detectron2",
        /// Ultralytics YOLO exports (YOLOv5/v8/11/12/26; detect, segment, pose).
        Ultralytics = "Ultralytics" | "ultralytics",
        /// DETR-style set predictors (RT-DETR, D-FINE, DEIM, RF-DETR exports).
        Detr = "DETR" | "detr",
    }
}

detbench_backends::named_enum! {
    /// The format of a model file.
    pub enum ModelFormat as "model format" {
        Onnx = "onnx",
        TorchScript = "torchscript",
        /// TensorFlow Lite; no detbench engine reads it yet.
        Tflite = "tflite",
        /// A TensorFlow SavedModel, run after conversion to ONNX (`how_to_get` says how).
        Tf2SavedModel = "tf2-savedmodel",
        /// A detectron2 checkpoint, exported to TorchScript first.
        Detectron2Pkl = "detectron2-pkl",
    }
}

impl ModelFormat {
    /// The engine that reads this format when `--backend` does not choose one (ONNX Runtime
    /// for anything that is not TorchScript: converted files are ONNX).
    pub fn default_engine(self) -> EngineKind {
        match self {
            ModelFormat::TorchScript => EngineKind::Torch,
            _ => EngineKind::Ort,
        }
    }

    /// How `detbench zoo` shows it.
    pub fn label(self) -> &'static str {
        match self {
            ModelFormat::Onnx => "ONNX",
            ModelFormat::TorchScript => "TorchScript",
            ModelFormat::Tflite => "TFLite",
            ModelFormat::Tf2SavedModel => "TF2 SavedModel",
            ModelFormat::Detectron2Pkl => "detectron2 checkpoint",
        }
    }

    /// The format a model file's extension says (`.onnx`, `.pt`/`.ts`/`.torchscript`,
    /// `.tflite`), if any.
    pub fn from_path(path: &Path) -> Option<ModelFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "onnx" => Some(ModelFormat::Onnx),
            "pt" | "ts" | "ptl" | "torchscript" => Some(ModelFormat::TorchScript),
            "tflite" => Some(ModelFormat::Tflite),
            _ => None,
        }
    }
}

/// What we know of the file's checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Sha256 {
    Full(String),
    /// A prefix, as torchvision puts in its file names (`...-258fb6c6.pth`).
    Prefix(String),
    Unknown,
}

/// Where an entry's card came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardOrigin {
    /// Embedded in the binary (`crates/models/cards/<name>.toml`).
    BuiltIn,
    /// A card file in a user folder; its `file` is looked up beside it first.
    File(PathBuf),
    /// Made for `--model-file` (from the card given with it, or from what the file says).
    ModelFile,
}

/// One zoo entry: a card, and what the harness and `detbench zoo` read off it.
#[derive(Debug, Clone, Serialize)]
pub struct ZooEntry {
    /// The zoo name users type (`--model yolox_nano`).
    pub name: String,
    pub family: Family,
    /// Evaluations its outputs support.
    pub iou_types: Vec<IouType>,
    /// Network input size (width, height), `None` where the model resizes internally.
    pub input_size: Option<(u32, u32)>,
    /// Human-readable input description (e.g. "416x416 letterbox, BGR 0-255").
    pub input: String,
    pub file_name: String,
    pub format: ModelFormat,
    pub sha256: Sha256,
    /// Official download URL, where one exists.
    pub url: Option<String>,
    pub licence: String,
    /// Accuracy its authors claim on COCO val2017, e.g. `[("box AP", 25.8)]`.
    pub upstream_accuracy: Vec<(String, f64)>,
    /// Where the file comes from (repository @ commit : path, or paper/model zoo).
    pub source: String,
    /// What to do to get (or convert) the file when it is not present.
    pub how_to_get: String,
    /// Whether the file ships in `../shared/models`.
    pub shipped: bool,
    /// The card itself (thresholds, preprocessing, class map, output layout).
    #[serde(skip)]
    pub card: Card,
    #[serde(skip)]
    pub origin: CardOrigin,
}

impl ZooEntry {
    /// The entry a card describes.
    pub fn from_card(card: Card, origin: CardOrigin) -> ZooEntry {
        let sha256 = match (&card.sha256, &card.sha256_prefix) {
            (Some(full), _) => Sha256::Full(full.clone()),
            (None, Some(prefix)) => Sha256::Prefix(prefix.clone()),
            (None, None) => Sha256::Unknown,
        };
        let upstream_accuracy = card
            .upstream
            .iter()
            .map(|claim| (claim.metric.clone(), claim.value))
            .collect();
        ZooEntry {
            name: card.name.clone(),
            family: card.family,
            iou_types: card.tasks.clone(),
            input_size: card.input.size.map(|[w, h]| (w, h)),
            input: card.input.description.clone().unwrap_or_default(),
            file_name: card.file.clone(),
            format: card.format,
            sha256,
            url: card.url.clone(),
            licence: card.licence.clone(),
            upstream_accuracy,
            source: card.source.clone().unwrap_or_default(),
            how_to_get: card.how_to_get.clone().unwrap_or_default(),
            shipped: card.shipped,
            card,
            origin,
        }
    }

    /// The ground truth the model is scored on: keypoint models on the person-keypoint file,
    /// all others on the instance file.
    pub fn ground_truth(&self) -> GroundTruthKind {
        if self.iou_types.contains(&IouType::Keypoints) {
            GroundTruthKind::Keypoints
        } else {
            GroundTruthKind::Instances
        }
    }

    /// The table's Input column: the network input size `WxH`, or the zoo's description for a
    /// model that resizes inside.
    pub fn input_label(&self) -> String {
        match self.input_size {
            Some((w, h)) => format!("{w}x{h}"),
            None => self.input.clone(),
        }
    }

    /// The engine the card asks for, else the one of its format.
    pub fn default_engine(&self) -> EngineKind {
        self.card
            .engine
            .unwrap_or_else(|| self.format.default_engine())
    }

    /// Where the model file is looked for: beside a user's card first, then in `model_dir`
    /// (an absolute `file` is itself).
    pub fn candidate_paths(&self, model_dir: &Path) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        if let CardOrigin::File(card_path) = &self.origin
            && let Some(dir) = card_path.parent()
        {
            paths.push(dir.join(&self.file_name));
        }
        paths.push(model_dir.join(&self.file_name));
        paths
    }

    /// The file's path: the first candidate that exists, else where it was expected in
    /// `model_dir` (the last candidate).
    pub fn file_path(&self, model_dir: &Path) -> PathBuf {
        let candidates = self.candidate_paths(model_dir);
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| candidates.last().cloned().expect("one candidate at least"))
    }
}

/// The built-in entries, shipped models first.
pub fn catalogue() -> &'static [ZooEntry] {
    static CATALOGUE: LazyLock<Vec<ZooEntry>> = LazyLock::new(|| {
        builtin::CARDS
            .iter()
            .map(|(file, text)| {
                // The embedded cards are checked by the tests (tests/cards.rs); a bad one is a
                // build defect, not user input.
                let card = card::parse(text, &format!("built-in:{file}"))
                    .unwrap_or_else(|e| panic!("embedded card {file}: {e}"));
                ZooEntry::from_card(card, CardOrigin::BuiltIn)
            })
            .collect()
    });
    &CATALOGUE
}

/// The text of the built-in card named `name` (as `detbench zoo --card` prints it).
pub fn builtin_card_text(name: &str) -> Option<&'static str> {
    builtin::CARDS
        .iter()
        .zip(catalogue())
        .find(|(_, entry)| entry.name == name)
        .map(|((_, text), _)| *text)
}

/// The built-in entry named `name`.
pub fn find(name: &str) -> Option<&'static ZooEntry> {
    catalogue().iter().find(|e| e.name == name)
}
