//! The model zoo catalogue: every model detbench knows, with its file name, checksum, official
//! source, licence and the accuracy its authors claim. Shipped models (in `../shared/models`)
//! run out of the box; for the others, `detbench zoo` says how to get the file.

mod onnx_shipped;
mod seed_detectron2;
mod seed_tf2;
mod seed_torchvision;
mod torch_shipped;

pub use seed_torchvision::{OFFICIAL_WEIGHTS, OfficialWeights};

use detbench_eval::IouType;
use serde::Serialize;

/// The pipeline family: which pre- and post-processing a model needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Family {
    /// Megvii YOLOX (ONNX, decode outside the graph).
    Yolox,
    /// RangiLyu NanoDet legacy GFL head (ONNX).
    NanoDet,
    /// dog-qiuqiu FastestDet (ONNX).
    FastestDet,
    /// Top-down keypoints: a person detector's boxes feeding a SimplePose heatmap model.
    SimplePoseTopDown,
    /// D2Go scripted Faster R-CNN wrapper (TorchScript, int8, CPU).
    D2Go,
    /// torchvision detection models scripted with `torch.jit.script` (TorchScript).
    TorchvisionDetection,
    /// TensorFlow 2 Object Detection API exports (detection boxes/classes/scores in the graph).
    Tf2ObjectDetection,
    /// detectron2 models exported to TorchScript (`tools/deploy/export_model.py`).
    Detectron2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ModelFormat {
    Onnx,
    TorchScript,
    /// A format no detbench engine reads directly; `detbench zoo` explains the conversion.
    Other(&'static str),
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
