//! The one error type of the crate: every failure names the file, the field or the step, and
//! what was expected.

use std::path::PathBuf;

use crate::config::ModelKind;
use crate::results::TrainResults;

/// Why training could not start, or why it stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The annotation file could not be read or parsed.
    #[error("{path}: {reason}")]
    Annotations { path: PathBuf, reason: String },
    /// One annotation cannot become a training target for this model.
    #[error("{path}: annotation id {ann_id} (image {image_id}): {reason}")]
    Annotation {
        path: PathBuf,
        ann_id: u64,
        image_id: u64,
        reason: AnnotationIssue,
    },
    /// An image file could not be read or decoded.
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// A setting is out of range or inconsistent with the data.
    #[error("invalid setting: {0}")]
    Config(String),
    /// Some loss became NaN or infinite; training stopped as torchvision's engine.py does.
    #[error(
        "loss is {total} at step {step} (epoch {epoch}); stopping training. Loss components: {components}"
    )]
    NonFiniteLoss {
        step: usize,
        epoch: usize,
        total: f64,
        components: String,
    },
    /// libtorch (or the C++ shim over it) reported an error.
    #[error("libtorch: {0}")]
    Torch(String),
    /// The model file could not be loaded or does not train.
    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    /// An output could not be written.
    #[error("cannot write {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    /// An output file could not be written (atomically, by `detbench_assets::write_atomic`).
    #[error(transparent)]
    Write(#[from] detbench_assets::WriteError),
    /// A libtorch library (CUDA, torchvision's ops) could not be loaded.
    #[cfg(feature = "torch")]
    #[error(transparent)]
    Runtime(#[from] &'static detbench_backends::torch::runtime::RuntimeError),
    /// The CUDA half of the shim could not be loaded.
    #[cfg(feature = "torch")]
    #[error(transparent)]
    CudaShim(#[from] &'static crate::torch::cuda::CudaShimError),
    /// A data-loading worker failed or went away.
    #[error("data loader: {0}")]
    Loader(String),
    /// The process group (data parallelism) failed.
    #[error("process group: {0}")]
    Distributed(String),
    /// The run stopped after some steps: `error` says why, `partial` holds the steps done (and
    /// their throughput), with `stopped` set, so that nothing measured is lost.
    #[error("{error} (after {} completed step(s))", partial.steps.len())]
    Stopped {
        error: Box<TrainError>,
        partial: Box<TrainResults>,
    },
}

impl TrainError {
    /// The error itself, without the [`TrainError::Stopped`] wrapper.
    pub fn cause(&self) -> &TrainError {
        match self {
            TrainError::Stopped { error, .. } => error,
            other => other,
        }
    }
}

/// What is wrong with one annotation (the field, and what was expected).
#[derive(Debug, thiserror::Error)]
pub enum AnnotationIssue {
    #[error("no `bbox` (every annotation needs one)")]
    NoBox,
    #[error(
        "no `segmentation`; {model} trains on masks (use an instances_*.json file with polygons \
         or RLE, or a box-only model such as fasterrcnn_resnet50_fpn)"
    )]
    NoSegmentation { model: ModelKind },
    #[error("`segmentation` is an empty polygon list (pycocotools cannot rasterise it)")]
    EmptyPolygonList,
    #[error(
        "`segmentation`: the first polygon has 4 values (read as a box by pycocotools) but \
         another has {values}"
    )]
    BoxesMixedWithPolygons { values: usize },
    #[error(
        "`segmentation`: the first polygon has {values} values; a polygon needs at least 3 \
         points (6 values)"
    )]
    ShortPolygon { values: usize },
    #[error("`segmentation` RLE has size [{rle_h}, {rle_w}], the image is [{image_h}, {image_w}]")]
    RleSize {
        rle_h: u32,
        rle_w: u32,
        image_h: usize,
        image_w: usize,
    },
    #[error("`segmentation` is in a format this version cannot read (polygons, boxes or RLE)")]
    UnsupportedSegmentation,
    #[error("`segmentation` cannot be rasterised: {0}")]
    Rasterise(#[source] hotcoco::Error),
    #[error("no `keypoints`; {model} needs a person keypoints file")]
    NoKeypoints { model: ModelKind },
    #[error("`keypoints` has {values} values; expected (x, y, visibility) triples")]
    KeypointValues { values: usize },
    #[error("{values} keypoint values, the image's first annotation has {expected}")]
    KeypointCount { values: usize, expected: usize },
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
