//! A run's results out: the tables on stdout, `results.md`/`.csv`/`.json` in the output folder,
//! the detections as COCO results files (`--save-detections`), and the record in the store.
//!
//! Each output is written on its own: one that fails (a full disk, a folder gone, a store that
//! cannot be reached) does not stop the others, and the error at the end names what is missing
//! and where the measurement still is. When neither the results files nor the store could take
//! the run, `results.json` goes to the temporary folder, so that no measurement is lost. A merge
//! (`detbench merge`) and a `--devices` run leave their results the same way.

use std::path::{Path, PathBuf};

use anyhow::bail;
use detbench_bench::results::RunResults;
use detbench_eval::Detection;
use detbench_report::run_files;
use detbench_report::store::StoreLocation;

use super::outputs;
use super::plan::{Run, RunPlan};

pub fn export(plan: &RunPlan, run: &Run) -> anyhow::Result<()> {
    if let Some(shard) = plan.shard {
        super::shard::write(plan, run, shard)?;
        return Ok(());
    }
    let detections: Vec<(PathBuf, &[Detection])> = run
        .detections
        .iter()
        .filter_map(|(name, batch, detections)| {
            plan.detections_file(name, *batch)
                .map(|target| (target, detections.as_slice()))
        })
        .collect();
    write_results(
        &plan.out_dir,
        &run.results,
        plan.saves_detections(),
        &detections,
        plan.store.as_ref(),
    )
}

/// The detections files of merged rows (`--save-detections` of `detbench merge`): `base` for a
/// single row, else one file per row beside it ([`outputs::detections_file`]).
pub fn detections_targets<'a>(
    base: Option<&Path>,
    rows: &'a [(String, usize, Vec<Detection>)],
) -> Vec<(PathBuf, &'a [Detection])> {
    let Some(base) = base else {
        return Vec::new();
    };
    rows.iter()
        .map(|(name, batch, detections)| {
            let target = outputs::detections_file(base, name, *batch, rows.len() == 1);
            (target, detections.as_slice())
        })
        .collect()
}

/// What a run (or a merge) leaves: the tables on stdout, results.md/.csv/.json in `out_dir`,
/// the detections when asked (`saves_detections`; one target file per row), and the record in
/// the store. Every output is attempted; the error lists those that failed.
pub fn write_results(
    out_dir: &Path,
    results: &RunResults,
    saves_detections: bool,
    detections: &[(PathBuf, &[Detection])],
    store: Option<&StoreLocation>,
) -> anyhow::Result<()> {
    println!("{}", run_files::console_summary(results));
    let mut missing: Vec<String> = Vec::new();
    let files_written = match run_files::write_run_files(out_dir, results) {
        Ok(written) => {
            eprintln!(
                "wrote {}",
                written
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            true
        }
        Err(e) => {
            missing.push(format!(
                "results.md, results.csv and results.json in {} ({e})",
                out_dir.display()
            ));
            false
        }
    };
    if saves_detections && detections.is_empty() {
        eprintln!("--save-detections: no successful rows, nothing written");
    }
    for (target, rows) in detections {
        if let Err(e) = save_detections(target, rows) {
            missing.push(format!("the detections file {} ({e})", target.display()));
        }
    }
    let recorded = match store {
        Some(location) => {
            match crate::cmd::store::record(location, results, &out_dir.join("results.json")) {
                Ok(()) => true,
                Err(e) => {
                    missing.push(format!("the record in the results store ({e:#})"));
                    false
                }
            }
        }
        None => false,
    };
    if missing.is_empty() {
        return Ok(());
    }
    if !files_written && !recorded {
        missing.push(rescue(results));
    }
    bail!("some outputs were not written:\n  {}", missing.join("\n  "))
}

/// The last resort when neither the results files nor the store took the run: `results.json`
/// in the temporary folder. Returns the line that says where it went (or that it could not).
fn rescue(results: &RunResults) -> String {
    let stamp: String = results
        .started_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let path: PathBuf = std::env::temp_dir()
        .join(format!("detbench-{stamp}"))
        .join("results.json");
    let json = serde_json::to_vec_pretty(results).expect("run results serialise to JSON");
    match detbench_report::write_atomic(&path, &json) {
        Ok(()) => format!("the measurement is kept in {}", path.display()),
        Err(e) => format!("the measurement could not be kept anywhere: {e}"),
    }
}

/// Writes one row's detections as a COCO results file.
fn save_detections(target: &Path, detections: &[Detection]) -> anyhow::Result<()> {
    let json = serde_json::to_vec(&run_files::coco_results_json(detections))?;
    detbench_report::write_atomic(target, &json)?;
    eprintln!(
        "wrote {} detections to {}",
        detections.len(),
        target.display()
    );
    Ok(())
}
