//! The model zoo (what each model is, where its file comes from, what it should score) and the
//! per-family pipelines that turn images into COCO detections exactly as the upstream projects'
//! evaluation code does.

pub mod families;
pub mod zoo;

pub use zoo::{Family, ModelFormat, Sha256, ZooEntry, catalogue, find};

/// Errors of opening a model pipeline.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model `{name}`; `detbench zoo` lists the catalogue (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error(
        "model file {path} for `{name}` not found; run `detbench zoo` to see where to get it ({how_to_get})"
    )]
    FileMissing {
        name: String,
        path: String,
        how_to_get: String,
    },
    #[error("model `{name}` ({family:?}) cannot run here: {reason}")]
    Unsupported {
        name: String,
        family: Family,
        reason: String,
    },
    #[error(transparent)]
    Backend(#[from] detbench_backends::BackendError),
    #[error("{0}")]
    Other(String),
}
