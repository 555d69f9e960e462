//! Where detbench finds what it ships with: the shared data folder (COCO subset, models,
//! reference results) and the project-local engine libraries installed by `scripts/setup.sh`.
//!
//! One place answers "where is X" for the binary, the tests and the benchmarks alike, so that an
//! environment variable set by a user means the same thing everywhere.

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
