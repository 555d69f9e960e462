//! `detbench import results.json`: records a run's results file in the store, for a run whose
//! store was unreachable when it finished (or to copy runs into a team's PostgreSQL store). A
//! run already in the store (same start time, command line and host) is not recorded twice.

use std::path::PathBuf;

use anyhow::Context;
use detbench_bench::results::RunResults;
use detbench_report::store::{Store, StoreLocation};

#[derive(clap::Args)]
pub struct Args {
    /// `results.json` files written by `detbench run`, `detbench merge` or `detbench train` (or
    /// their folders).
    #[arg(required = true)]
    files: Vec<PathBuf>,

    /// Results store: a file, or a postgres:// URL [default: $DETBENCH_DB, else
    /// detbench.db in the platform data folder].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<StoreLocation>,

    /// Record a run even when the store holds it already.
    #[arg(long)]
    again: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let location = super::store::resolve(args.db.as_ref())?;
    let runs = args
        .files
        .iter()
        .map(|given| {
            let path = if given.is_dir() {
                given.join("results.json")
            } else {
                given.clone()
            };
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let run: RunResults = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a detbench results.json (written by `detbench run` or `detbench \
                     merge`)",
                    path.display()
                )
            })?;
            Ok((path, run))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut store = Store::connect(&location)?;
    let mut skipped = Vec::new();
    for (path, run) in &runs {
        if !args.again
            && let Some(existing) = store.find_run(run)?
        {
            skipped.push(format!("{} (run {existing})", path.display()));
            continue;
        }
        let id = store
            .record_run(run)
            .with_context(|| format!("recording {} in {location}", path.display()))?;
        let training = match run.training.len() {
            0 => String::new(),
            n => format!(", {n} training results"),
        };
        eprintln!(
            "recorded {} ({} rows{training}) as run {id} in {location}",
            path.display(),
            run.models.len()
        );
    }
    if !skipped.is_empty() {
        eprintln!(
            "already in {location}, not recorded again (--again records them anyway): {}",
            skipped.join(", ")
        );
    }
    Ok(())
}
