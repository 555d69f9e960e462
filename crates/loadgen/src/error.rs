//! The crate's errors: each names the setting, the config file line or the sample at fault and
//! says what was expected.

use std::fmt::Display;
use std::path::PathBuf;

use thiserror::Error;

/// A setting with a value the harness refuses.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("bad setting {key} = {value}: expected {expected}")]
pub struct SettingsError {
    /// LoadGen's name for the setting (`TestSettings` field).
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What would be accepted.
    pub expected: String,
}

impl SettingsError {
    pub(crate) fn new(key: &str, value: impl Display, expected: impl Into<String>) -> Self {
        SettingsError {
            key: key.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// A LoadGen config file (`user.conf`, `mlperf.conf`) that cannot be used.
#[derive(Debug, Error)]
pub enum ConfError {
    #[error("cannot read LoadGen config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line that is not `model.scenario.key = value`, or a key or value LoadGen would not use.
    #[error("{path}:{line}: {key}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        /// The key as written (empty when the line has none).
        key: String,
        message: String,
    },
    /// The file parsed, but the settings it produces are refused.
    #[error("{path}: {source}")]
    Settings {
        path: PathBuf,
        source: SettingsError,
    },
}

/// A query sample library that failed to load or unload samples.
#[derive(Debug, Error)]
#[error("query sample library: {message}")]
pub struct QslError {
    pub message: String,
}

impl QslError {
    pub fn new(message: impl Into<String>) -> Self {
        QslError {
            message: message.into(),
        }
    }
}

/// Why a test could not run to the end.
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("loading samples into memory failed: {0}")]
    Qsl(#[from] QslError),
    /// The SUT stopped answering: no completion arrived for the drain timeout.
    #[error(
        "the system under test completed no sample for {waited_s:.0} s with {outstanding} of \
         {expected} samples outstanding; is a response missing from its QuerySamplesComplete calls?"
    )]
    SutStalled {
        waited_s: f64,
        outstanding: usize,
        expected: usize,
    },
    #[error("the issuing thread panicked: {0}")]
    IssuePanicked(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}
