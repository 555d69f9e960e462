//! Model cards: a small TOML file that describes any model, so that models are data, not code.
//!
//! A card says which file to load and with what engine, which family of pre- and
//! post-processing it needs (or which output layout it has), its input, its preprocessing, how
//! its class indices map to dataset categories, its thresholds, its batch dimension, and where it
//! comes from (upstream accuracy claim, licence). `crates/models/cards/*.toml` are the built-in
//! zoo's cards; `detbench zoo --card NAME` prints one to start from. Every field is documented on
//! [`Card`] and its parts; an unknown field is an error (a typo must not be ignored silently).
//!
//! [`parse`] reports errors with the card's path, the line, and the field
//! (`input.size`), [`class_map`] resolves a card's class map against a dataset's categories, and
//! [`check_output_shape`] compares a file's declared output with what the card says.

mod class_map;
pub mod configs;
mod errors;
mod from_file;
pub mod pipelines;
mod schema;

pub use class_map::{ClassMapError, DatasetCategory, class_map};
pub use errors::CardError;
pub use from_file::card_from_file;
pub use schema::*;

use std::path::Path;

/// Parses a card from `text`; `origin` (a path or `built-in:NAME`) names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Card, CardError> {
    let card: Card = toml::from_str(text).map_err(|e| errors::from_toml(&e, text, origin))?;
    card.validate()
        .map_err(|(field, reason)| CardError::Invalid {
            origin: origin.to_owned(),
            line: errors::line_of_key(text, &field),
            field,
            reason,
        })?;
    Ok(card)
}

/// The card as TOML text (a card made from a model file, to start a card from).
pub fn to_toml(card: &Card) -> Result<String, CardError> {
    toml::to_string(card).map_err(|e| CardError::Print {
        model: card.name.clone(),
        reason: e.to_string(),
    })
}

/// Reads and parses the card at `path`.
pub fn load(path: &Path) -> Result<Card, CardError> {
    let text = std::fs::read_to_string(path).map_err(|source| CardError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks a model file's declared main output shape against the card's: every dimension the
/// card fixes must match a fixed dimension of the file (a dynamic one passes). The error names
/// both shapes.
pub fn check_output_shape(
    card: &Card,
    output_name: &str,
    declared: Option<&[Option<usize>]>,
) -> Result<(), CardError> {
    let (Some(expected), Some(declared)) = (card.output.shape.as_deref(), declared) else {
        return Ok(());
    };
    let agrees = expected.len() == declared.len()
        && expected
            .iter()
            .zip(declared)
            .all(|(e, d)| e.is_none() || d.is_none() || e == d);
    if agrees {
        return Ok(());
    }
    let show = |dims: &[Option<usize>]| {
        let parts: Vec<String> = dims
            .iter()
            .map(|d| d.map_or("dynamic".into(), |v| v.to_string()))
            .collect();
        format!("[{}]", parts.join(", "))
    };
    Err(CardError::OutputShape {
        model: card.name.clone(),
        output: output_name.to_owned(),
        card: show(expected),
        file: show(declared),
    })
}

#[cfg(test)]
mod tests;
