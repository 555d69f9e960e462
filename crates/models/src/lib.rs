//! The model zoo (what each model is, where its file comes from, what it should score) and the
//! per-family pipelines that turn images into COCO detections exactly as the upstream projects'
//! evaluation code does.
//!
//! Every model is described by a card ([`card`]); the built-in zoo is cards embedded in the
//! binary, a user's cards join them ([`zoo::Zoo`]), and a bare model file gets a card from what
//! it says about itself ([`model_file_entry`], [`autoconfig`]).
//!
//! For the harness: [`open_entry`] (zoo entry, model folder, engine settings, the dataset's
//! categories) gives a `Detector` ([`open_detector`]: the same by built-in name); [`model_spec`]
//! describes a model to the harness before it is opened (its file checked against the card's
//! checksum, [`verify_sha256`]); [`reference_check`] matches detections against reference
//! detections and [`reference_agreement`] turns that into a run's `ReferenceAgreement`.

pub mod autoconfig;
pub mod card;
pub mod families;
mod model_file;
pub mod reference_agreement;
pub mod reference_check;
mod spec;
pub mod zoo;

use std::path::{Path, PathBuf};

use detbench_backends::{BackendConfig, EngineKind};
use detbench_bench::Detector;

pub use families::OpenContext;
pub use model_file::model_file_entry;
pub use spec::{ModelSpecCheck, model_spec};
pub use zoo::{Family, ModelFormat, Sha256, Zoo, ZooEntry, catalogue, find};

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
    #[error("model `{name}` ({family}) cannot run here: {reason}")]
    Unsupported {
        name: String,
        family: Family,
        reason: String,
    },
    #[error(transparent)]
    Backend(#[from] detbench_backends::BackendError),
    #[error(transparent)]
    Assets(#[from] detbench_assets::AssetError),
    #[error("{name}: {source}")]
    Pipeline {
        name: String,
        source: families::common::FamilyError,
    },
    /// A model file without a card that does not describe itself.
    #[error(transparent)]
    AutoConfig(#[from] autoconfig::AutoConfigError),
    /// The card does not fit the file or the dataset (or lacks what the file does not say).
    #[error("{name}: {source}")]
    Card {
        name: String,
        source: Box<card::CardError>,
    },
    #[error(
        "{name}: catalogue input size {size:?} is not square; this family needs a square input"
    )]
    NotSquare {
        name: String,
        size: Option<(u32, u32)>,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A model given by zoo name or by catalogue entry.
#[derive(Debug, Clone, Copy)]
pub enum ModelRef<'a> {
    Name(&'a str),
    Entry(&'a ZooEntry),
}

impl<'a> From<&'a str> for ModelRef<'a> {
    fn from(name: &'a str) -> Self {
        ModelRef::Name(name)
    }
}

impl<'a> From<&'a ZooEntry> for ModelRef<'a> {
    fn from(entry: &'a ZooEntry) -> Self {
        ModelRef::Entry(entry)
    }
}

/// The built-in entry of a zoo name.
pub fn entry(name: &str) -> Result<&'static ZooEntry, ModelError> {
    find(name).ok_or_else(|| ModelError::UnknownModel {
        name: name.to_owned(),
        known: catalogue()
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The folder models are read from: `model_dir` if given, else the shared models folder.
pub fn model_dir(model_dir: Option<&Path>) -> Result<PathBuf, ModelError> {
    match model_dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(detbench_assets::shared::models()?),
    }
}

/// The path of `entry`'s file (beside its card, else in `dir`), which must exist.
pub fn model_file(entry: &ZooEntry, dir: &Path) -> Result<PathBuf, ModelError> {
    let path = entry.file_path(dir);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::FileMissing {
            name: entry.name.clone(),
            path: path.display().to_string(),
            how_to_get: entry.how_to_get.clone(),
        })
    }
}

/// Opens the pipeline of a built-in model: resolves its file in `model_dir` (default: the
/// shared models folder), checks it exists, and builds the family's `Detector` on the engine
/// `config` names, with the card's class map as it stands (no dataset to match it against).
pub fn open_detector<'a>(
    model: impl Into<ModelRef<'a>>,
    model_dir: Option<&Path>,
    config: &BackendConfig,
) -> Result<Box<dyn Detector>, ModelError> {
    let entry: &ZooEntry = match model.into() {
        ModelRef::Name(name) => entry(name)?,
        ModelRef::Entry(entry) => entry,
    };
    let dir = self::model_dir(model_dir)?;
    let zoo = Zoo::builtin();
    open_entry(
        entry,
        &OpenContext {
            model_dir: &dir,
            config,
            categories: None,
            zoo: &zoo,
        },
    )
}

/// Opens the pipeline of `entry` (its file beside its card or in `ctx.model_dir`), configured
/// from its card, with the class map resolved against `ctx.categories`.
pub fn open_entry(
    entry: &ZooEntry,
    ctx: &OpenContext<'_>,
) -> Result<Box<dyn Detector>, ModelError> {
    if ctx.config.engine == EngineKind::Native {
        // detbench-native depends on this crate, so its detectors are opened by its caller.
        return Err(ModelError::Unsupported {
            name: entry.name.to_owned(),
            family: entry.family,
            reason: format!(
                "the {} engine's detectors are opened by `detbench_native::NativeDetector::open` \
                 (`detbench run --backend {}`), not by the family pipelines",
                EngineKind::Native,
                EngineKind::Native.cli_name()
            ),
        });
    }
    let path = model_file(entry, ctx.model_dir)?;
    families::open_family(entry, &path, ctx)
}

/// The outcome of checking a model file's sha256 against the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ShaCheck {
    /// The full checksum matches.
    Match,
    /// The catalogue has a prefix (torchvision file names) and the file's checksum starts
    /// with it.
    PrefixMatch,
    Mismatch {
        expected: String,
        actual: String,
    },
    /// The catalogue has no checksum for this file.
    Unknown {
        actual: String,
    },
}

impl ShaCheck {
    /// Whether the file is the catalogued one, as far as the catalogue can tell.
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            ShaCheck::Match | ShaCheck::PrefixMatch | ShaCheck::Unknown { .. }
        )
    }
}

/// Checks the file at `path` against the sha256 `entry`'s card gives.
pub fn verify_sha256(entry: &ZooEntry, path: &Path) -> Result<ShaCheck, ModelError> {
    let actual = detbench_assets::sha256_file(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(sha_check(entry, actual))
}

/// How the file checksum `actual` compares with `entry`'s catalogued one.
pub fn sha_check(entry: &ZooEntry, actual: String) -> ShaCheck {
    match &entry.sha256 {
        Sha256::Full(expected) if expected.eq_ignore_ascii_case(&actual) => ShaCheck::Match,
        Sha256::Full(expected) => ShaCheck::Mismatch {
            expected: expected.clone(),
            actual,
        },
        Sha256::Prefix(prefix) if actual.starts_with(&prefix.to_ascii_lowercase()) => {
            ShaCheck::PrefixMatch
        }
        Sha256::Prefix(prefix) => ShaCheck::Mismatch {
            expected: format!("{prefix}..."),
            actual,
        },
        Sha256::Unknown => ShaCheck::Unknown { actual },
    }
}
