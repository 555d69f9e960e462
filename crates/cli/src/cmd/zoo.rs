//! `detbench zoo`: every catalogued model, whether its file is in the model folder, whether the
//! file's sha256 matches the catalogue, and how to get the files that are missing.

use std::path::PathBuf;

use detbench_models::{ModelFormat, Sha256, ShaCheck, ZooEntry};

#[derive(clap::Args)]
pub struct Args {
    /// Folder holding the model files [default: the shared models folder].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// Do not hash the files (faster with large models); only say whether they are present.
    #[arg(long)]
    no_verify: bool,

    /// Print the catalogue with the check results as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// What was found for one entry.
#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    entry: &'static ZooEntry,
    path: String,
    present: bool,
    /// `match`, `prefix match`, `MISMATCH (...)`, `not catalogued (...)`, `not checked`, or
    /// `-` when the file is absent.
    sha256_check: String,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let dir = detbench_models::model_dir(args.model_dir.as_deref())?;
    let rows: Vec<Row> = detbench_models::catalogue()
        .into_iter()
        .map(|entry| {
            let path = dir.join(entry.file_name);
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
            format(e.format),
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
            if let Some(url) = e.url {
                println!("  download: {url}");
            }
            match e.sha256 {
                Sha256::Full(sha) => println!("  expected sha256: {sha}"),
                Sha256::Prefix(prefix) => println!("  expected sha256 prefix: {prefix}"),
                Sha256::Unknown => {}
            }
        }
    }
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

fn format(f: ModelFormat) -> String {
    match f {
        ModelFormat::Onnx => "ONNX".to_owned(),
        ModelFormat::TorchScript => "TorchScript".to_owned(),
        ModelFormat::Other(what) => what.to_owned(),
    }
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
