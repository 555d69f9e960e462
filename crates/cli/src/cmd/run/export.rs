//! A run's results out: the tables on stdout, `results.md`/`.csv`/`.json` in the output folder,
//! the detections as COCO results files (`--save-detections`), and the record in the store.

use std::path::Path;

use anyhow::Context;
use detbench_eval::Detection;
use detbench_report::run_files;

use super::plan::{Run, RunPlan};

pub fn export(plan: &RunPlan, run: &Run) -> anyhow::Result<()> {
    println!("{}", run_files::console_summary(&run.results));
    let written = run_files::write_run_files(&plan.out_dir, &run.results)
        .with_context(|| format!("writing results to {}", plan.out_dir.display()))?;
    eprintln!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &plan.save_detections {
        save_detections(path, &run.detections)?;
    }
    if let Some(db) = &plan.store {
        let mut store = detbench_report::Store::open(db)
            .with_context(|| format!("opening the results store {}", db.display()))?;
        store
            .record_run(&run.results)
            .with_context(|| format!("recording the run in {}", db.display()))?;
        eprintln!("recorded in {}", db.display());
    }
    Ok(())
}

/// Writes each row's detections as a COCO results file: `path` itself for a single row, else
/// `<stem>.<model>[.b<batch>].<ext>` beside it.
fn save_detections(path: &Path, rows: &[(String, usize, Vec<Detection>)]) -> anyhow::Result<()> {
    if rows.is_empty() {
        eprintln!("--save-detections: no successful rows, nothing written");
        return Ok(());
    }
    for (name, batch, detections) in rows {
        let target = if rows.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or("json".into());
            let batch = if *batch == 1 {
                String::new()
            } else {
                format!(".b{batch}")
            };
            path.with_file_name(format!("{stem}.{name}{batch}.{ext}"))
        };
        let json = serde_json::to_vec(&run_files::coco_results_json(detections))?;
        detbench_report::write_atomic(&target, &json)
            .with_context(|| format!("writing detections to {}", target.display()))?;
        eprintln!(
            "wrote {} detections to {}",
            detections.len(),
            target.display()
        );
    }
    Ok(())
}
