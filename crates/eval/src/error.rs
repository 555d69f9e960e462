//! The one error type of the accuracy layer. Every message names where the problem is (the
//! file, or the image and detection for in-memory input) and what was expected.

use std::path::PathBuf;

/// What can go wrong loading ground truth or results, or evaluating detections.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file is not valid JSON, or a value has the wrong type. `message` carries serde's
    /// description with its line and column, and the field's path when it could be found.
    #[error("{}: {message}", path.display())]
    Json { path: PathBuf, message: String },
    /// A file parses but its content is not what COCO evaluation needs (unknown ids, bad
    /// geometry, a missing score, ...).
    #[error("{}: {message}", path.display())]
    InvalidFile { path: PathBuf, message: String },
    /// A detection handed to the in-memory evaluator is unusable; the message names the image
    /// and the detection's position in that image's list.
    #[error("{0}")]
    InvalidDetection(String),
    /// Evaluation parameters that COCO evaluation cannot use (e.g. an unparsable area range).
    #[error("invalid evaluation parameters: {0}")]
    InvalidParams(String),
    /// hotcoco refused the input; `context` says what was being done.
    #[error("{context}: {source}")]
    Hotcoco {
        context: String,
        source: hotcoco::Error,
    },
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
