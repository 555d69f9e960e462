//! `detbench zoo`: every model card (built-in, and the user's own from `--model-dir` and the
//! platform config folder), whether its file is in the model folder, whether the file's sha256
//! matches the card, and how to get the files that are missing. `--card NAME` prints a card to
//! start from: a zoo model's card, or the card a model file gets from what it says about itself.

use std::path::{Path, PathBuf};

use anyhow::Context;
use detbench_models::zoo::{CardOrigin, builtin_card_text};
use detbench_models::{Sha256, ShaCheck, Zoo, ZooEntry};

use super::cards::{config_cards_dir, load_zoo};

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding the model files, and model cards (`*.toml`) that join the zoo [default:
    /// the shared models folder, no cards].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// Print the card of NAME (a zoo model) or of a model file (the card detbench makes from
    /// what the file says about itself), as a card to start from, and exit.
    #[arg(long, value_name = "NAME|FILE")]
    card: Option<String>,

    /// Do not hash the files (faster with large models); only say whether they are present.
    #[arg(long)]
    no_verify: bool,

    /// Print the catalogue with the check results as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// What was found for one entry.
#[derive(serde::Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    entry: &'a ZooEntry,
    path: String,
    present: bool,
    /// `match`, `prefix match`, `MISMATCH (...)`, `not catalogued (...)`, `not checked`, or
    /// `-` when the file is absent.
    sha256_check: String,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let zoo = load_zoo(args.model_dir.as_deref());
    if let Some(name) = &args.card {
        return print_card(&zoo, name);
    }
    let dir = detbench_models::model_dir(args.model_dir.as_deref())?;
    let rows: Vec<Row> = zoo
        .entries()
        .iter()
        .map(|entry| {
            let path = entry.file_path(&dir);
            let present = path.is_file();
            let sha256_check = if !present {
                "-".to_owned()
            } else if args.no_verify {
                "not checked".to_owned()
            } else {
                match detbench_models::verify_sha256(entry, &path) {
                    Ok(ShaCheck::Match) => "match".to_owned(),
                    Ok(ShaCheck::PrefixMatch) => "prefix match".to_owned(),
                    Ok(ShaCheck::Mismatch { expected, actual }) => {
                        format!("MISMATCH (expected {expected}, file has {actual})")
                    }
                    Ok(ShaCheck::Unknown { actual }) => {
                        format!("not catalogued (file has {actual})")
                    }
                    Err(e) => format!("cannot read: {e}"),
                }
            };
            Row {
                entry,
                path: path.display().to_string(),
                present,
                sha256_check,
            }
        })
        .collect();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("Model folder: {}\n", dir.display());
    println!(
        "| Name | Family | Input | Format | Licence | Upstream accuracy | File | Present | sha256 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let e = row.entry;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            e.name,
            e.family,
            input(e),
            e.format.label(),
            e.licence,
            accuracy(e),
            e.file_name,
            if row.present { "yes" } else { "no" },
            row.sha256_check
        );
    }
    let missing: Vec<&Row> = rows.iter().filter(|r| !r.present).collect();
    if !missing.is_empty() {
        println!(
            "\nMissing files ({} of {}), and how to get them:",
            missing.len(),
            rows.len()
        );
        for row in missing {
            let e = row.entry;
            println!("- {} -> {}", e.name, row.path);
            println!("  {}", e.how_to_get);
            if let Some(url) = &e.url {
                println!("  download: {url}");
            }
            match &e.sha256 {
                Sha256::Full(sha) => println!("  expected sha256: {sha}"),
                Sha256::Prefix(prefix) => println!("  expected sha256 prefix: {prefix}"),
                Sha256::Unknown => {}
            }
        }
    }
    print_user_cards(&zoo);
    let mismatched = rows
        .iter()
        .filter(|r| r.sha256_check.starts_with("MISMATCH"))
        .count();
    if mismatched > 0 {
        println!(
            "\n{mismatched} file(s) do not match the catalogue's sha256; their results may differ \
             from the reference."
        );
    }
    Ok(())
}

fn input(e: &ZooEntry) -> String {
    match e.input_size {
        Some((w, h)) => format!("{w}x{h}"),
        None => "set by the model".to_owned(),
    }
}

/// Where the user's cards came from (and where they may go).
fn print_user_cards(zoo: &Zoo) {
    let user: Vec<&ZooEntry> = zoo
        .entries()
        .iter()
        .filter(|e| matches!(e.origin, CardOrigin::File(_)))
        .collect();
    if !user.is_empty() {
        println!("\nYour cards:");
        for entry in user {
            if let CardOrigin::File(path) = &entry.origin {
                println!("- {} <- {}", entry.name, path.display());
            }
        }
    }
    if let Some(dir) = config_cards_dir() {
        println!(
            "\nYour own cards (`*.toml`) join the zoo from {} or the --model-dir folder; \
             `detbench zoo --card NAME` prints one to start from.",
            dir.display()
        );
    }
}

/// `--card NAME|FILE`: the card's text (a built-in card as embedded, a user's card as its
/// file), or the card a model file gets from what it says about itself.
fn print_card(zoo: &Zoo, name: &str) -> anyhow::Result<()> {
    if let Ok(entry) = zoo.get(name) {
        let text = match &entry.origin {
            CardOrigin::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
            _ => builtin_card_text(name)
                .context("a built-in card without its text")?
                .to_owned(),
        };
        print!("{text}");
        return Ok(());
    }
    let path = Path::new(name);
    if !path.is_file() {
        // Neither a zoo name nor a file: the unknown-name error lists the zoo.
        zoo.get(name)?;
    }
    // Read with ONNX Runtime on the CPU, its default settings: only the graph's inputs and
    // outputs are needed.
    let config = detbench_backends::BackendConfig::default();
    let entry = detbench_models::model_file_entry(path, None, &config)?;
    println!(
        "# detbench model card made from {} (what the file says about itself); edit it and run \
         `detbench run --model-file {} --card THIS.toml`",
        path.display(),
        path.display()
    );
    print!("{}", detbench_models::card::to_toml(&entry.card)?);
    Ok(())
}

fn accuracy(e: &ZooEntry) -> String {
    if e.upstream_accuracy.is_empty() {
        return "-".to_owned();
    }
    e.upstream_accuracy
        .iter()
        .map(|(what, value)| format!("{what} {value}"))
        .collect::<Vec<_>>()
        .join("; ")
}
