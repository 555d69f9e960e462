//! The one error type of the crate: every failure names the file, the field or the step, and
//! what was expected.

use std::path::PathBuf;

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
        reason: String,
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
    /// A data-loading worker failed or went away.
    #[error("data loader: {0}")]
    Loader(String),
    /// The process group (data parallelism) failed.
    #[error("process group: {0}")]
    Distributed(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
