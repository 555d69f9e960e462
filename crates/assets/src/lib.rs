//! Where detbench finds what it ships with: the shared data folder (COCO subset, models,
//! reference results) and the project-local engine libraries installed by `scripts/setup.sh`.
//!
//! One place answers "where is X" for the binary, the tests and the benchmarks alike, so that an
//! environment variable set by a user means the same thing everywhere.
//!
//! It is the bottom of the workspace, so it also holds the two helpers every layer needs once:
//! how a file is identified ([`sha256_file`], [`sha256_hex`]), how a file is written
//! ([`write_atomic`]), how a percentile is taken ([`percentile`]) and the text of a caught panic
//! ([`panic_message`]).

mod digest;
mod files;
mod panic;
mod percentile;

pub use digest::{sha256_file, sha256_hex};
pub use files::{WriteError, write_atomic, write_atomic_set};
pub use panic::panic_message;
pub use percentile::{PERCENTILE_DEFINITION, percentile};

use std::path::{Path, PathBuf};

/// Environment variable naming the shared data folder (default: a `shared` folder beside the
/// repository, i.e. `../shared` from its root).
pub const SHARED_ENV: &str = "DETBENCH_SHARED";
/// Environment variable naming the project-local dependency folder made by `scripts/setup.sh`.
pub const DEPS_ENV: &str = "DETBENCH_DEPS";

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error(
        "cannot find the shared data folder: ${SHARED_ENV} is not set and no `shared` folder with a \
         README.md sits beside the repository (looked in: {looked_in}). Set {SHARED_ENV}=/path/to/shared"
    )]
    SharedNotFound { looked_in: String },
    #[error("{SHARED_ENV}={path} does not exist or is not a folder")]
    SharedEnvInvalid { path: String },
    #[error(
        "cannot find the ONNX Runtime library (looked in: {looked_in}); run `scripts/setup.sh` to \
         install it into .deps/, or set {ORT_LIBRARY_ENV}=/path/to/libonnxruntime.so"
    )]
    OnnxRuntimeNotFound { looked_in: String },
}

/// The shared data folder: `$DETBENCH_SHARED`, else the first `shared/` (holding a README.md)
/// beside an ancestor of the current directory, of the running executable, or of this crate's
/// source (for tests and benchmarks).
pub fn shared_dir() -> Result<PathBuf, AssetError> {
    if let Some(value) = std::env::var_os(SHARED_ENV) {
        let path = PathBuf::from(&value);
        return if path.is_dir() {
            Ok(path)
        } else {
            Err(AssetError::SharedEnvInvalid {
                path: path.display().to_string(),
            })
        };
    }
    let starts = search_starts();
    for start in &starts {
        for dir in start.ancestors() {
            let candidate = dir.join("shared");
            if candidate.join("README.md").is_file() && candidate.join("coco").is_dir() {
                return Ok(candidate);
            }
        }
    }
    Err(AssetError::SharedNotFound {
        looked_in: starts
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The project-local dependency folder (`.deps/` at the repository root unless `$DETBENCH_DEPS`
/// says otherwise), if it exists.
pub fn deps_dir() -> Option<PathBuf> {
    if let Some(value) = std::env::var_os(DEPS_ENV) {
        let path = PathBuf::from(value);
        return path.is_dir().then_some(path);
    }
    search_starts()
        .iter()
        .flat_map(|start| start.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .map(|dir| dir.join(".deps"))
        .find(|candidate| candidate.is_dir())
}

/// Environment variable naming the ONNX Runtime shared library (the variable `ort` itself reads).
pub const ORT_LIBRARY_ENV: &str = "ORT_DYLIB_PATH";
/// The ONNX Runtime version `scripts/setup.sh` installs (PyPI `onnxruntime`).
pub const ONNXRUNTIME_VERSION: &str = "1.31.1";

/// The ONNX Runtime shared library: `$ORT_DYLIB_PATH` if set, else the one `scripts/setup.sh`
/// put in `<deps>/onnxruntime/onnxruntime/capi/libonnxruntime.so.1.31.1`.
pub fn onnxruntime_library() -> Result<PathBuf, AssetError> {
    if let Some(value) = std::env::var_os(ORT_LIBRARY_ENV).filter(|v| !v.is_empty()) {
        // A library the user names explicitly is the only one tried.
        let path = PathBuf::from(value);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(AssetError::OnnxRuntimeNotFound {
                looked_in: format!("${ORT_LIBRARY_ENV}={} (not a file)", path.display()),
            })
        };
    }
    let mut looked_in = Vec::new();
    let relative = format!("onnxruntime/onnxruntime/capi/libonnxruntime.so.{ONNXRUNTIME_VERSION}");
    match deps_dir() {
        Some(deps) => {
            let path = deps.join(&relative);
            if path.is_file() {
                return Ok(path);
            }
            looked_in.push(path.display().to_string());
        }
        None => looked_in.push(format!(
            ".deps/{relative} (no .deps folder found; ${DEPS_ENV} not set)"
        )),
    }
    Err(AssetError::OnnxRuntimeNotFound {
        looked_in: looked_in.join(", "),
    })
}

fn search_starts() -> Vec<PathBuf> {
    let mut starts = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        starts.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        starts.push(dir.to_path_buf());
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    starts
}

/// Paths inside the shared folder.
pub mod shared {
    use super::*;

    pub fn coco_images() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("coco/val2017"))
    }
    pub fn instances_subset() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("coco/annotations/instances_val2017_subset.json"))
    }
    pub fn keypoints_subset() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("coco/annotations/person_keypoints_val2017_subset.json"))
    }
    pub fn models() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("models"))
    }
    pub fn reference() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("reference"))
    }
    pub fn conformance() -> Result<PathBuf, AssetError> {
        Ok(shared_dir()?.join("conformance"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_shared_folder_beside_the_repository() {
        let dir = super::shared_dir().unwrap();
        assert!(
            dir.join("models/MANIFEST.md").is_file(),
            "{}",
            dir.display()
        );
    }
}
