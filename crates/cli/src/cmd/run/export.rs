//! A run's results out: the tables on stdout, `results.md`/`.csv`/`.json` in the output folder,
//! the detections as COCO results files (`--save-detections`), and the record in the store.
//!
//! Each output is written on its own: one that fails (a full disk, a folder gone) does not stop
//! the others, and the error at the end names what is missing and where the measurement still
//! is. When neither the results files nor the store could take the run, `results.json` goes to
//! the temporary folder, so that no measurement is lost.

use std::path::PathBuf;

use anyhow::bail;
use detbench_eval::Detection;
use detbench_report::run_files;

use super::plan::{Run, RunPlan};

pub fn export(plan: &RunPlan, run: &Run) -> anyhow::Result<()> {
    println!("{}", run_files::console_summary(&run.results));
    let mut missing: Vec<String> = Vec::new();
    let files_written = match run_files::write_run_files(&plan.out_dir, &run.results) {
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
                plan.out_dir.display()
            ));
            false
        }
    };
    if plan.saves_detections() && run.detections.is_empty() {
        eprintln!("--save-detections: no successful rows, nothing written");
    }
    for (name, batch, detections) in &run.detections {
        if let Some(target) = plan.detections_file(name, *batch)
            && let Err(e) = save_detections(&target, detections)
        {
            missing.push(format!("the detections of {name} ({e})"));
        }
    }
    let recorded = match &plan.store {
        Some(db) => match record(db, run) {
            Ok(()) => true,
            Err(e) => {
                missing.push(format!("the record in the results store ({e:#})"));
                false
            }
        },
        None => false,
    };
    if missing.is_empty() {
        return Ok(());
    }
    if !files_written && !recorded {
        missing.push(rescue(run));
    }
    bail!("some outputs were not written:\n  {}", missing.join("\n  "))
}

/// Records the run in the store and says where.
fn record(db: &std::path::Path, run: &Run) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut store = detbench_report::Store::open(db)
        .with_context(|| format!("opening the results store {}", db.display()))?;
    let id = store
        .record_run(&run.results)
        .with_context(|| format!("recording the run in {}", db.display()))?;
    eprintln!("recorded in the results store {} as run {id}", db.display());
    Ok(())
}

/// The last resort when neither the results files nor the store took the run: `results.json`
/// in the temporary folder. Returns the line that says where it went (or that it could not).
fn rescue(run: &Run) -> String {
    let stamp: String = run
        .results
        .started_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let path: PathBuf = std::env::temp_dir()
        .join(format!("detbench-{stamp}"))
        .join("results.json");
    let json = serde_json::to_vec_pretty(&run.results).expect("run results serialise to JSON");
    match detbench_report::write_atomic(&path, &json) {
        Ok(()) => format!("the measurement is kept in {}", path.display()),
        Err(e) => format!("the measurement could not be kept anywhere: {e}"),
    }
}

/// Writes one row's detections as a COCO results file.
fn save_detections(target: &std::path::Path, detections: &[Detection]) -> anyhow::Result<()> {
    let json = serde_json::to_vec(&run_files::coco_results_json(detections))?;
    detbench_report::write_atomic(target, &json)?;
    eprintln!(
        "wrote {} detections to {}",
        detections.len(),
        target.display()
    );
    Ok(())
}
