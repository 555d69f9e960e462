//! The zoo a command sees: the built-in cards, joined by the cards in a user's folders (the
//! `--model-dir` folder and `<config>/detbench/cards`). A user's card with the name of a built-in
//! one replaces it (to change a threshold, copy the card `detbench zoo --card NAME` prints); a
//! card that does not parse is reported with its file, line and field, and the others are still
//! usable.

use std::path::{Path, PathBuf};

use super::{CardOrigin, ZooEntry, catalogue};
use crate::ModelError;
use crate::card::{self, CardError};

/// A card file in a user folder that could not be used.
#[derive(Debug)]
pub struct CardProblem {
    pub path: PathBuf,
    pub error: CardError,
}

/// Built-in and user cards.
#[derive(Debug, Clone)]
pub struct Zoo {
    entries: Vec<ZooEntry>,
    /// Folders whose cards joined, in order.
    folders: Vec<PathBuf>,
}

impl Zoo {
    /// The built-in cards only.
    pub fn builtin() -> Zoo {
        Zoo {
            entries: catalogue().to_vec(),
            folders: Vec::new(),
        }
    }

    /// The built-in cards joined by every `*.toml` card in `folders` (those that exist; later
    /// folders win over earlier ones). Returns the zoo and the card files that could not be
    /// used.
    pub fn with_user_cards(folders: &[PathBuf]) -> (Zoo, Vec<CardProblem>) {
        let mut zoo = Zoo::builtin();
        let mut problems = Vec::new();
        for folder in folders.iter().filter(|f| f.is_dir()) {
            zoo.folders.push(folder.clone());
            for path in card_files(folder, &mut problems) {
                match card::load(&path) {
                    Ok(card) => zoo.insert(ZooEntry::from_card(card, CardOrigin::File(path))),
                    Err(error) => problems.push(CardProblem { path, error }),
                }
            }
        }
        (zoo, problems)
    }

    /// Adds `entry`, replacing an entry of the same name.
    pub fn insert(&mut self, entry: ZooEntry) {
        match self.entries.iter_mut().find(|e| e.name == entry.name) {
            Some(slot) => *slot = entry,
            None => self.entries.push(entry),
        }
    }

    pub fn entries(&self) -> &[ZooEntry] {
        &self.entries
    }

    /// The folders whose cards joined.
    pub fn folders(&self) -> &[PathBuf] {
        &self.folders
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Result<&ZooEntry, ModelError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_owned(),
                known: self
                    .entries
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The `*.toml` files of `folder`, sorted by name.
fn card_files(folder: &Path, problems: &mut Vec<CardProblem>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(source) => {
            problems.push(CardProblem {
                path: folder.to_path_buf(),
                error: CardError::Io {
                    path: folder.display().to_string(),
                    source,
                },
            });
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}
