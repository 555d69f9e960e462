//! `--model-file PATH [--card FILE]`: the zoo entry of a model file given on the command line.
//! With a card, the card describes it (its `file` replaced by the path); without one, the file
//! must describe itself: an ONNX export whose metadata or inputs and outputs
//! [`crate::autoconfig`] recognises, written out as a card ([`crate::card::card_from_file`]).
//! Otherwise the error lists the file's inputs and outputs and the card fields to fill.

use std::path::Path;

use detbench_backends::BackendConfig;

use crate::ModelError;
use crate::autoconfig::{AutoConfigError, autoconfigure};
use crate::card::{Card, card_from_file};
use crate::zoo::{CardOrigin, ModelFormat, ZooEntry};

/// The entry of the model file at `path`, described by `card` or by the file itself (opened
/// with `config` to read its inputs and outputs).
pub fn model_file_entry(
    path: &Path,
    card: Option<Card>,
    config: &BackendConfig,
) -> Result<ZooEntry, ModelError> {
    let io = |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    };
    if !path.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such model file",
        )));
    }
    let absolute = std::path::absolute(path).map_err(io)?;
    let file = absolute.display().to_string();
    if let Some(mut card) = card {
        card.file = file;
        return Ok(ZooEntry::from_card(card, CardOrigin::ModelFile));
    }
    let format = ModelFormat::from_path(path);
    if format != Some(ModelFormat::Onnx) {
        return Err(ModelError::AutoConfig(AutoConfigError::NotOnnx {
            path: path.display().to_string(),
        }));
    }
    let backend = detbench_backends::open(&absolute, config)?;
    let auto = autoconfigure(&absolute, backend.inputs(), backend.outputs())?;
    let name = path
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    let card = card_from_file(&name, &file, &auto);
    Ok(ZooEntry::from_card(card, CardOrigin::ModelFile))
}
