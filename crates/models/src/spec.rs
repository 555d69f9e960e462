//! What the harness needs to know of a model before opening it (`ModelSpec`): its
//! name, family, input, file with checksum, the ground truth that scores it, and the engine as
//! requested (recorded on its rows if it fails before the engine can describe itself).

use std::path::Path;

use detbench_backends::{BackendConfig, BackendDescription};
use detbench_bench::results::ModelFile;
use detbench_bench::scenario::ModelSpec;

use crate::{ShaCheck, ZooEntry, sha_check};

/// A model's spec and how its file compared with the catalogue checksum.
#[derive(Debug, Clone)]
pub struct ModelSpecCheck {
    pub spec: ModelSpec,
    /// `None` when the file is missing or unreadable (the row will say so when it is opened).
    pub sha256: Option<ShaCheck>,
}

/// The spec of `entry` with its file beside its card or in `model_dir`, run with `config`.
pub fn model_spec(entry: &ZooEntry, model_dir: &Path, config: &BackendConfig) -> ModelSpecCheck {
    let path = entry.file_path(model_dir);
    let actual = path
        .is_file()
        .then(|| detbench_assets::sha256_file(&path).ok())
        .flatten();
    let check = actual.clone().map(|actual| sha_check(entry, actual));
    ModelSpecCheck {
        spec: ModelSpec {
            name: entry.name.clone(),
            family: entry.family.to_string(),
            input: entry.input_label(),
            file: ModelFile {
                file: path.display().to_string(),
                sha256: actual,
            },
            ground_truth: entry.ground_truth(),
            requested_backend: Some(BackendDescription::requested(config)),
        },
        sha256: check,
    }
}
