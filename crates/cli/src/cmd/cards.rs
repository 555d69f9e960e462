//! The zoo a command sees: the built-in cards joined by the user's own, from the `--model-dir`
//! folder (when given) and the platform config folder (`$XDG_CONFIG_HOME/detbench/cards` on
//! Linux, `~/Library/Application Support/detbench/cards` on macOS, `%APPDATA%\detbench\config\cards`
//! on Windows). A card that does not parse is reported with its file, line and field; the others
//! still join.

use std::path::{Path, PathBuf};

use detbench_models::Zoo;

/// `<platform config folder>/detbench/cards`, when the platform has one.
pub fn config_cards_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "detbench").map(|dirs| dirs.config_dir().join("cards"))
}

/// The user's card folders: the config folder's, then `--model-dir` (its cards win).
pub fn user_card_folders(model_dir: Option<&Path>) -> Vec<PathBuf> {
    config_cards_dir()
        .into_iter()
        .chain(model_dir.map(Path::to_path_buf))
        .collect()
}

/// The built-in zoo and the user's cards; cards that cannot be used are reported on stderr.
pub fn load_zoo(model_dir: Option<&Path>) -> Zoo {
    let (zoo, problems) = Zoo::with_user_cards(&user_card_folders(model_dir));
    for problem in problems {
        eprintln!(
            "warning: card {} is left out: {}",
            problem.path.display(),
            problem.error
        );
    }
    zoo
}
