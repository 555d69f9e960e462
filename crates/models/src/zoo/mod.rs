//! The model zoo catalogue: every model detbench knows, with its file name, checksum, official
//! source, licence and the accuracy its authors claim. Shipped models (in `../shared/models`)
//! run out of the box; for the others, `detbench zoo` says how to get the file.

mod onnx_shipped;
mod seed_detectron2;
mod seed_tf2;
mod seed_torchvision;
mod torch_shipped;

pub use seed_torchvision::{OFFICIAL_WEIGHTS, OfficialWeights};

use detbench_backends::EngineKind;
use detbench_bench::dataset::GroundTruthKind;
use detbench_eval::IouType;
use serde::Serialize;

detbench_backends::named_enum! {
    /// The pipeline family: which pre- and post-processing a model needs. Its name is what
    /// results and the store record as the row's `family`.
    pub enum Family as "family" {
        /// Megvii YOLOX (ONNX, decode outside the graph).
        Yolox = "Yolox",
        /// RangiLyu NanoDet legacy GFL head (ONNX).
        NanoDet = "NanoDet",
        /// dog-qiuqiu FastestDet (ONNX).
        FastestDet = "FastestDet",
        /// Top-down keypoints: a person detector's boxes feeding a SimplePose heatmap model.
        SimplePoseTopDown = "SimplePoseTopDown",
        /// D2Go scripted Faster R-CNN wrapper (TorchScript, int8, CPU).
        D2Go = "D2Go",
        /// torchvision detection models scripted with `torch.jit.script` (TorchScript).
        TorchvisionDetection = "TorchvisionDetection",
        /// TensorFlow 2 Object Detection API exports (detection boxes/classes/scores in the
        /// graph).
        Tf2ObjectDetection = "Tf2ObjectDetection",
        /// detectron2 models exported to TorchScript (`tools/deploy/export_model.py`).
        Detectron2 = "Detectron2",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ModelFormat {
    Onnx,
    TorchScript,
    /// A format no detbench engine reads directly; `detbench zoo` explains the conversion.
    Other(&'static str),
}

impl ModelFormat {
    /// The engine that reads this format when `--backend` does not choose one (ONNX Runtime
    /// for anything that is not TorchScript: converted files are ONNX).
    pub fn default_engine(self) -> EngineKind {
        match self {
            ModelFormat::TorchScript => EngineKind::Torch,
            ModelFormat::Onnx | ModelFormat::Other(_) => EngineKind::Ort,
        }
    }
}

/// What we know of the file's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sha256 {
    Full(&'static str),
    /// A prefix, as torchvision puts in its file names (`...-258fb6c6.pth`).
    Prefix(&'static str),
    Unknown,
}

/// One catalogue entry.
#[derive(Debug, Clone, Serialize)]
pub struct ZooEntry {
    /// The zoo name users type (`--model yolox_nano`).
    pub name: &'static str,
    pub family: Family,
    /// Evaluations its outputs support.
    pub iou_types: &'static [IouType],
    /// Network input size (width, height), `None` where the model resizes internally.
    pub input_size: Option<(u32, u32)>,
    /// Human-readable input description (e.g. "416x416 letterbox, BGR 0-255").
    pub input: &'static str,
    pub file_name: &'static str,
    pub format: ModelFormat,
    pub sha256: Sha256,
    /// Official download URL, where one exists.
    pub url: Option<&'static str>,
    pub licence: &'static str,
    /// Accuracy its authors claim on COCO val2017, e.g. `[("box AP", 25.8)]`.
    pub upstream_accuracy: &'static [(&'static str, f64)],
    /// Where the file comes from (repository @ commit : path, or paper/model zoo).
    pub source: &'static str,
    /// What to do to get (or convert) the file when it is not present.
    pub how_to_get: &'static str,
    /// Whether the file ships in `../shared/models`.
    pub shipped: bool,
}

impl ZooEntry {
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
            None => self.input.to_owned(),
        }
    }
}

/// Every entry, shipped models first.
pub fn catalogue() -> Vec<&'static ZooEntry> {
    onnx_shipped::ENTRIES
        .iter()
        .chain(torch_shipped::ENTRIES)
        .chain(seed_torchvision::ENTRIES)
        .chain(seed_tf2::ENTRIES)
        .chain(seed_detectron2::ENTRIES)
        .collect()
}

/// The entry named `name`.
pub fn find(name: &str) -> Option<&'static ZooEntry> {
    catalogue().into_iter().find(|e| e.name == name)
}
