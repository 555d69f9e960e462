//! A run's results out: the tables on stdout, `results.md`/`.csv`/`.json` in the output folder,
//! the detections as COCO results files (`--save-detections`), and the record in the store.

use std::path::Path;

use anyhow::Context;
use detbench_bench::results::RunResults;
use detbench_eval::Detection;
use detbench_report::run_files;
use detbench_report::store::StoreLocation;

use super::plan::{Run, RunPlan};

pub fn export(plan: &RunPlan, run: &Run) -> anyhow::Result<()> {
    if let Some(shard) = plan.shard {
        super::shard::write(plan, run, shard)?;
        return Ok(());
    }
    write_results(
        &plan.out_dir,
        &run.results,
        plan.save_detections.as_deref(),
        &run.detections,
        plan.store.as_ref(),
    )
}

/// What a run (or a merge) leaves: the tables on stdout, results.md/.csv/.json in `out_dir`,
/// the detections when asked, and the record in the store. The files come first, so that a
/// store that cannot be reached loses nothing.
pub fn write_results(
    out_dir: &Path,
    results: &RunResults,
    save: Option<&Path>,
    detections: &[(String, usize, Vec<Detection>)],
    store: Option<&StoreLocation>,
) -> anyhow::Result<()> {
    println!("{}", run_files::console_summary(results));
    let written = run_files::write_run_files(out_dir, results)
        .with_context(|| format!("writing results to {}", out_dir.display()))?;
    eprintln!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = save {
        save_detections(path, detections)?;
    }
    if let Some(location) = store {
        crate::cmd::store::record(location, results, &out_dir.join("results.json"))?;
    }
    Ok(())
}

/// Writes each row's detections as a COCO results file: `path` itself for a single row, else
/// `<stem>.<model>[.b<batch>].<ext>` beside it.
pub fn save_detections(
    path: &Path,
    rows: &[(String, usize, Vec<Detection>)],
) -> anyhow::Result<()> {
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
