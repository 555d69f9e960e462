//! `detbench import-md`: reads a published Markdown results table (TF2 Detection Model Zoo,
//! torchvision weights table, or detbench's own) into the results store as "published"
//! records, so that `detbench report --compare` can set them beside measured numbers.

use anyhow::{Context, bail};
use detbench_report::published::parse_published_markdown;
use detbench_report::store::{PublishedImport, Store, StoreLocation};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The Markdown file holding the table.
    file: PathBuf,

    /// Name of the source, shown in reports ("published: <source>") [default: the file name].
    #[arg(long)]
    source: Option<String>,

    /// The hardware the source measured its latency on, as it says (e.g. "Nvidia V100").
    #[arg(long)]
    device: Option<String>,

    /// Rename a published model to a detbench zoo name so that it lines up with measured
    /// rows: `--rename "SSD MobileNet v2 320x320=ssd_mobilenet_v2_320"` (repeatable).
    #[arg(long, value_name = "PUBLISHED=ZOO")]
    rename: Vec<String>,

    /// Results store: an SQLite file or a postgres:// URL [default: $DETBENCH_DB, else
    /// detbench.db in the platform data folder].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<StoreLocation>,
    /// Import the file even when the same content was imported before as the same source and
    /// device (its rows would then be listed twice).
    #[arg(long)]
    again: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let shown = args.file.display().to_string();
    let text =
        String::from_utf8(bytes.clone()).with_context(|| format!("{shown} is not UTF-8 text"))?;
    let mut rows = parse_published_markdown(&text, &shown)?;
    let renames = args
        .rename
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(from, to)| (from.trim().to_owned(), to.trim().to_owned()))
                .with_context(|| format!("--rename `{pair}`: expected PUBLISHED=ZOO"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (from, to) in &renames {
        let mut found = false;
        for row in rows.iter_mut().filter(|r| &r.model == from) {
            row.model = to.clone();
            found = true;
        }
        if !found {
            bail!("--rename: no row of {shown} is named `{from}`");
        }
    }
    let source = args.source.clone().unwrap_or_else(|| {
        args.file
            .file_name()
            .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned())
    });
    let import = PublishedImport {
        source: source.clone(),
        file: shown.clone(),
        file_sha256: detbench_assets::sha256_hex(&bytes),
        device_label: args.device.clone(),
        command_line: crate::cmd::command_line(),
        rows,
    };
    let db = super::store::resolve(args.db.as_ref())?;
    let mut store = Store::connect(&db)?;
    if !args.again
        && let Some((run, when)) = store.earlier_import(
            &import.file_sha256,
            &import.source,
            import.device_label.as_deref(),
        )?
    {
        bail!(
            "{shown} was already imported as \"published: {source}\"{} on {when}{}; importing it \
             again would list its rows twice (pass --again to import it anyway)",
            import
                .device_label
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default(),
            run.map(|r| format!(" (run {r})")).unwrap_or_default()
        );
    }
    let run = store.record_published(&import)?;
    println!(
        "imported {} published rows from {shown} as \"published: {source}\" (run {run}) into {db}",
        import.rows.len(),
    );
    Ok(())
}
