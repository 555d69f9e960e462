//! What a run writes for people and programs: the results table in the published benchmarks'
//! format, the mask, keypoint, per-stage latency and reference-agreement tables, failures and
//! timing notes (`results.md`, and the same on the console), one row per model and batch size
//! in `results.csv`, everything in `results.json`, and detections as COCO results files. A
//! training run (`detbench train`) adds its tables ([`crate::tables::training`]) to results.md,
//! one row per run in `training.csv` and one per step in `training_steps.csv`. The tables are
//! [`Table`]s rendered by [`crate::tables`]; the files are written as one set
//! ([`crate::write_atomic_set`]).

use std::path::{Path, PathBuf};

use detbench_bench::Stage;
use detbench_bench::results::{
    Accuracy, DETECTION_STAT_NAMES, KEYPOINT_STAT_NAMES, ModelResult, RunResults, Summary,
};
use detbench_eval::{CocoResult, Detection};

use crate::shard_tables;
use crate::tables::training::{
    TrainingEntry, training_csv_table, training_markdown, training_steps_csv_table, training_tables,
};
use crate::tables::{Alignment, Cell, Table, csv_grid, markdown_grid};
use crate::{WriteError, write_atomic_set};

/// Writes `results.md`, `results.csv` (inference rows) and `results.json` into `dir` (created
/// if needed), and `training.csv` and `training_steps.csv` when the run trained, as a set
/// ([`write_atomic_set`]): all are new, or none is.
pub fn write_run_files(dir: &Path, results: &RunResults) -> Result<Vec<PathBuf>, WriteError> {
    let json = serde_json::to_vec_pretty(results).expect("run results serialise to JSON");
    let mut files = vec![("results.md", markdown_report(results).into_bytes())];
    if has_inference(results) {
        files.push(("results.csv", csv_report(results).into_bytes()));
    }
    if !results.training.is_empty() {
        let runs = training_csv_table(&results.training);
        let steps = training_steps_csv_table(&results.training);
        files.push(("training.csv", csv_grid(&runs).into_bytes()));
        files.push(("training_steps.csv", csv_grid(&steps).into_bytes()));
    }
    files.push(("results.json", json));
    let files: Vec<(PathBuf, Vec<u8>)> = files
        .into_iter()
        .map(|(name, bytes)| (dir.join(name), bytes))
        .collect();
    write_atomic_set(&files)?;
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// The detections as a COCO results file (a JSON array of `image_id`, `category_id`, `bbox`,
/// `score`, plus `segmentation` as compressed RLE and `keypoints` when present), the format
/// `pycocotools.COCO.loadRes` and `detbench eval` read.
pub fn coco_results_json(detections: &[Detection]) -> serde_json::Value {
    let results: Vec<CocoResult> = detections.iter().map(CocoResult::from).collect();
    serde_json::to_value(results).expect("COCO results serialise to JSON")
}

/// A stat in AP points (x100), one decimal, as published tables show them; `-1` (no ground
/// truth in that area range) shows as `-`.
fn points(v: f64) -> Cell {
    Cell::number((v >= 0.0).then_some(v * 100.0), 1)
}

fn ms(v: f64) -> Cell {
    Cell::number(Some(v), 2)
}

fn backend_cell(m: &ModelResult) -> Cell {
    m.backend
        .as_ref()
        .map_or(Cell::Empty, |b| Cell::text(b.label()))
}

/// The main table: `Model | Input | Backend/precision | AP AP50 AP75 APs APm APl AR1 AR10 AR100
/// ARs ARm ARl | images/s | p99 ms | total s | mean ms | median ms | min ms`. Stats are bbox, in
/// points; latencies are per call (per image at batch 1), end to end. A speed-only run (no
/// ground truth for any row) has no stat columns. A LoadGen scenario row is here only when it
/// scored accuracy (its timing is in the scenario table).
pub fn main_table(results: &RunResults) -> Table {
    let with_stats = results
        .models
        .iter()
        .any(|m| m.dataset.annotation_file.is_some());
    let mut columns = vec!["Model", "Input", "Backend/precision"];
    if with_stats {
        columns.extend(DETECTION_STAT_NAMES);
    }
    columns.extend([
        "images/s",
        "p99 ms",
        "total s",
        "mean ms",
        "median ms",
        "min ms",
    ]);
    let width = columns.len();
    let rows = results
        .models
        .iter()
        .filter(|m| m.scenario.is_none() || (m.is_ok() && m.bbox.is_some()))
        .map(|m| {
            let mut cells = vec![Cell::text(m.label()), Cell::text(&m.input), backend_cell(m)];
            if !m.is_ok() {
                cells.push(Cell::text(m.status.to_string()));
                cells.resize(width, Cell::Empty);
                return cells;
            }
            if with_stats {
                match &m.bbox {
                    Some(acc) => cells.extend(acc.stats.iter().map(|&v| points(v))),
                    None => cells.extend(std::iter::repeat_n(Cell::text("n/a"), 12)),
                }
            }
            match &m.latency {
                Some(l) => cells.extend([
                    Cell::number(Some(l.images_per_second), 1),
                    ms(l.end_to_end.p99),
                    Cell::number(Some(l.total_seconds), 2),
                    ms(l.end_to_end.mean),
                    ms(l.end_to_end.median),
                    ms(l.end_to_end.min),
                ]),
                None => cells.resize(width, Cell::Empty),
            }
            cells
        })
        .collect();
    untitled(columns, rows)
}

/// A table of a run's files: no title or notes (the document has its own headings).
fn untitled(columns: Vec<&str>, rows: Vec<Vec<Cell>>) -> Table {
    Table {
        title: String::new(),
        columns: columns.into_iter().map(str::to_owned).collect(),
        rows,
        notes: Vec::new(),
    }
}

/// Keypoint stats (points) of the rows that have them, or `None`.
pub fn keypoint_table(results: &RunResults) -> Option<Table> {
    stats_table(results, |m| m.keypoints.as_ref(), &KEYPOINT_STAT_NAMES)
}

/// Mask (segm) stats (points) of the rows that have them, or `None`.
pub fn mask_table(results: &RunResults) -> Option<Table> {
    stats_table(results, |m| m.segm.as_ref(), &DETECTION_STAT_NAMES)
}

/// `Model | <stat names>` for the rows where `accuracy` gives stats, or `None` when none does.
fn stats_table(
    results: &RunResults,
    accuracy: impl Fn(&ModelResult) -> Option<&Accuracy>,
    names: &[&str],
) -> Option<Table> {
    let rows: Vec<Vec<Cell>> = results
        .models
        .iter()
        .filter_map(|m| {
            let acc = accuracy(m)?;
            let mut cells = vec![Cell::text(m.label())];
            cells.extend(acc.stats.iter().map(|&v| points(v)));
            Some(cells)
        })
        .collect();
    let mut columns = vec!["Model"];
    columns.extend(names);
    (!rows.is_empty()).then(|| untitled(columns, rows))
}

fn mean_median_p99(s: &Summary) -> String {
    format!("{:.2} / {:.2} / {:.2}", s.mean, s.median, s.p99)
}

/// Per-stage latency (mean / median / p99 ms per call) of the rows that ran.
pub fn stage_table(results: &RunResults) -> Option<Table> {
    let rows: Vec<Vec<Cell>> = results
        .models
        .iter()
        .filter_map(|m| {
            let l = m.latency.as_ref()?;
            let mut cells = vec![Cell::text(m.label())];
            cells.extend(Stage::ALL.iter().map(|&stage| {
                l.stages
                    .iter()
                    .find(|s| s.stage == stage)
                    .map_or(Cell::Empty, |s| Cell::text(mean_median_p99(&s.summary)))
            }));
            let decode = if l.includes_decode {
                " (incl. decode)"
            } else {
                ""
            };
            cells.push(Cell::text(format!(
                "{}{decode}",
                mean_median_p99(&l.end_to_end)
            )));
            cells.push(Cell::text(if l.valid { "yes" } else { "no (see notes)" }));
            Some(cells)
        })
        .collect();
    let mut columns = vec!["Model"];
    columns.extend(Stage::ALL.iter().map(|s| s.as_str()));
    columns.extend(["end to end", "valid"]);
    (!rows.is_empty()).then(|| untitled(columns, rows))
}

/// Reference agreement of the rows that have one.
pub fn agreement_table(results: &RunResults) -> Option<Table> {
    let rows: Vec<Vec<Cell>> = results
        .models
        .iter()
        .filter_map(|m| {
            let a = m.reference_agreement.as_ref()?;
            let quality = match (a.mean_iou_matched, a.mean_joint_distance_matched) {
                (Some(iou), _) => format!("{iou:.5}"),
                (None, Some(px)) => format!("{px:.3} px (joints)"),
                _ => "-".into(),
            };
            let joints = a
                .joint_fraction
                .map(|f| format!(" (joints {:.2}%)", f * 100.0))
                .unwrap_or_default();
            Some(vec![
                Cell::text(m.label()),
                Cell::text(format!(
                    "{}/{} = {:.2}%{joints}",
                    a.matched,
                    a.reference_detections,
                    a.matched_fraction * 100.0
                )),
                Cell::text(a.matched_geometry.to_string()),
                Cell::text(quality),
                Cell::text(format!("{:.2e}", a.max_score_difference)),
                a.count_difference_per_image
                    .as_ref()
                    .map_or(Cell::Empty, |s| {
                        Cell::text(format!("{:+.2} / {:+} / {:+}", s.mean, s.min, s.max))
                    }),
                Cell::text(format!("{}/{}", a.images_with_equal_count, a.images)),
            ])
        })
        .collect();
    let columns = vec![
        "Model",
        "matched",
        "geometry only",
        "mean IoU (matched)",
        "max |score diff|",
        "count diff per image (mean / min / max)",
        "images with equal count",
    ];
    (!rows.is_empty()).then(|| untitled(columns, rows))
}

/// Failed images, skipped batch sizes and validity notes, as Markdown bullet lists.
pub fn notes(results: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    for m in &results.models {
        let label = m.label();
        if !m.failed_images.is_empty() {
            out.push(format!(
                "- {label}: {} failed image(s):",
                m.failed_images.len()
            ));
            for f in &m.failed_images {
                out.push(format!("  - {}: {}", f.file, f.reason));
            }
        }
        if let Some(l) = &m.latency {
            for note in &l.validity_notes {
                out.push(format!("- {label}: timing flagged: {note}"));
            }
        }
        out.extend(crate::scenario_table::scenario_notes(m));
    }
    for s in &results.skipped {
        out.push(format!("- {}: {}", s.name, s.reason));
    }
    if let Some(sharding) = results.sharding.as_ref().filter(|s| s.partial) {
        out.push(format!(
            "- PARTIAL: shards {:?} of {} are missing; the accuracy covers only the images of the \
             shards merged",
            sharding.missing, sharding.count
        ));
    }
    out
}

/// The tables after the main one, each with its heading for `results.md` and for the console.
fn sections(results: &RunResults) -> Vec<(&'static str, &'static str, Table)> {
    [
        (
            "## MLPerf LoadGen scenarios (latencies from the scheduled time to completion, ms)",
            "MLPerf LoadGen scenarios (latency from the scheduled time to completion, ms):",
            crate::scenario_table::scenario_table(results),
        ),
        ("## Masks", "Masks (points):", mask_table(results)),
        (
            "## Keypoints",
            "Keypoints (points):",
            keypoint_table(results),
        ),
        (
            "## Latency per stage (mean / median / p99 ms per call)",
            "Latency per stage, mean / median / p99 ms per call:",
            stage_table(results),
        ),
        (
            "## Agreement with the reference detections",
            "Agreement with the reference detections:",
            agreement_table(results),
        ),
        (
            "## Scaling over devices (images/s, against the first device alone)",
            "Scaling over devices:",
            shard_tables::scaling_table(results),
        ),
        (
            "## Each shard's own latency (end to end, ms per call)",
            "Each shard's own latency (end to end, ms per call):",
            shard_tables::shard_table(results),
        ),
    ]
    .into_iter()
    .filter_map(|(heading, caption, table)| Some((heading, caption, table?)))
    .collect()
}

fn grid(table: &Table) -> String {
    markdown_grid(table, Alignment::Plain)
}

/// Whether the run has inference rows to show (or nothing at all, which shows as the empty
/// inference table): a `detbench train` run has only training runs.
fn has_inference(results: &RunResults) -> bool {
    !results.models.is_empty() || results.training.is_empty()
}

/// What `detbench run` and `detbench train` print: the tables of [`markdown_report`] with short
/// captions, then the notes.
pub fn console_summary(results: &RunResults) -> String {
    let mut parts = Vec::new();
    let main = main_table(results);
    if has_inference(results) && !main.rows.is_empty() {
        parts.push(grid(&main));
    }
    for (_, caption, table) in sections(results) {
        parts.push(format!("{caption}\n{}", grid(&table)));
    }
    for table in training_tables(&TrainingEntry::of_run(&results.training)) {
        let notes = table.notes.join("\n");
        parts.push(format!("{}:\n{}\n{notes}", table.title, grid(&table)));
    }
    let notes = notes(results);
    if !notes.is_empty() {
        parts.push(notes.join("\n"));
    }
    parts.join("\n\n")
}

/// Everything above, as `results.md`.
pub fn markdown_report(results: &RunResults) -> String {
    let command = if has_inference(results) {
        "run"
    } else {
        "train"
    };
    let mut doc = format!(
        "# detbench {command}\n\n- started: {}\n- detbench: {}\n- command: `{}`\n",
        results.started_at,
        results.detbench_version,
        results.command_line.join(" ")
    );
    // One line per distinct dataset: a run of box and keypoint models reads two annotation files.
    let mut dataset_lines: Vec<String> = Vec::new();
    for m in &results.models {
        let line = format!(
            "- dataset: {} images from {}{}\n",
            m.dataset.images,
            m.dataset.image_dir,
            match (&m.dataset.annotation_file, &m.dataset.annotation_sha256) {
                (Some(f), Some(sha)) => format!(", ground truth {f} (sha256 {sha})"),
                _ => ", no ground truth (speed only)".to_owned(),
            }
        );
        if !dataset_lines.contains(&line) {
            dataset_lines.push(line);
        }
    }
    for line in dataset_lines {
        doc.push_str(&line);
    }
    for line in shard_tables::shard_lines(results) {
        doc.push_str(&line);
        doc.push('\n');
    }
    if let Some(harness) = results
        .models
        .iter()
        .find_map(|m| m.provenance.get("harness"))
    {
        doc.push_str(&format!(
            "- decode: {}; warm-up: {} calls; scoring: {}\n",
            harness["decode"], harness["warmup_iterations"], harness["evaluation"]
        ));
    }
    if has_inference(results) {
        doc.push_str(
            "\nAP/AR: COCO bbox stats in points (pycocotools definitions, hotcoco). Latency: end \
             to end per call (per image at batch 1), ms; percentiles nearest-rank as MLPerf \
             LoadGen.\n\n",
        );
    }
    let main = main_table(results);
    if has_inference(results) && !main.rows.is_empty() {
        doc.push_str(&grid(&main));
        doc.push('\n');
    }
    for (heading, _, table) in sections(results) {
        doc.push_str(&format!("\n{heading}\n\n{}\n", grid(&table)));
    }
    doc.push_str(&training_markdown(&results.training));
    let notes = notes(results);
    if !notes.is_empty() {
        doc.push_str("\n## Notes\n\n");
        doc.push_str(&notes.join("\n"));
        doc.push('\n');
    }
    doc
}

/// One row per model and batch size, full precision.
pub fn csv_report(results: &RunResults) -> String {
    let mut columns: Vec<String> = [
        "model",
        "batch_size",
        "status",
        "input",
        "engine",
        "engine_version",
        "device",
        "precision",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(DETECTION_STAT_NAMES.iter().map(|s| format!("bbox_{s}")));
    columns.extend(DETECTION_STAT_NAMES.iter().map(|s| format!("segm_{s}")));
    columns.extend(KEYPOINT_STAT_NAMES.iter().map(|s| format!("keypoints_{s}")));
    columns.extend(
        [
            "images_per_second",
            "total_s",
            "e2e_mean_ms",
            "e2e_median_ms",
            "e2e_min_ms",
            "e2e_max_ms",
            "e2e_std_ms",
            "e2e_p90_ms",
            "e2e_p95_ms",
            "e2e_p99_ms",
        ]
        .map(String::from),
    );
    columns.extend(Stage::ALL.iter().map(|s| format!("{s}_mean_ms")));
    columns.extend(
        [
            "timing_valid",
            "images",
            "failed_images",
            "annotation_sha256",
            "model_file",
            "model_sha256",
        ]
        .map(String::from),
    );
    let table = Table {
        title: String::new(),
        columns,
        rows: results.models.iter().map(csv_row).collect(),
        notes: Vec::new(),
    };
    csv_grid(&table)
}

/// One `results.csv` row (empty fields where there is no value).
fn csv_row(m: &ModelResult) -> Vec<Cell> {
    let b = m.backend.as_ref();
    let mut row = vec![
        Cell::text(&m.name),
        Cell::text(m.batch_size.to_string()),
        Cell::text(m.status.to_string()),
        Cell::text(&m.input),
        Cell::text(b.map(|b| b.engine.name()).unwrap_or_default()),
        Cell::text(b.map(|b| b.engine_version.as_str()).unwrap_or_default()),
        Cell::text(b.map(|b| b.device.to_string()).unwrap_or_default()),
        Cell::text(b.map(|b| b.precision.as_str()).unwrap_or_default()),
    ];
    let stats = |acc: Option<&Accuracy>, n: usize| -> Vec<Cell> {
        match acc {
            Some(a) => a.stats.iter().map(|&v| Cell::number(Some(v), 0)).collect(),
            None => vec![Cell::Empty; n],
        }
    };
    row.extend(stats(m.bbox.as_ref(), DETECTION_STAT_NAMES.len()));
    row.extend(stats(m.segm.as_ref(), DETECTION_STAT_NAMES.len()));
    row.extend(stats(m.keypoints.as_ref(), KEYPOINT_STAT_NAMES.len()));
    match &m.latency {
        Some(l) => {
            let e = &l.end_to_end;
            row.extend(
                [
                    l.images_per_second,
                    l.total_seconds,
                    e.mean,
                    e.median,
                    e.min,
                    e.max,
                    e.std,
                    e.p90,
                    e.p95,
                    e.p99,
                ]
                .map(|v| Cell::number(Some(v), 0)),
            );
            row.extend(Stage::ALL.iter().map(|&stage| {
                Cell::number(
                    l.stages
                        .iter()
                        .find(|s| s.stage == stage)
                        .map(|s| s.summary.mean),
                    0,
                )
            }));
            row.push(Cell::text(l.valid.to_string()));
        }
        None => row.extend(vec![Cell::Empty; 10 + Stage::ALL.len() + 1]),
    }
    row.extend([
        Cell::text(m.dataset.images.to_string()),
        Cell::text(m.failed_images.len().to_string()),
        Cell::text(m.dataset.annotation_sha256.clone().unwrap_or_default()),
        Cell::text(&m.model.file),
        Cell::text(m.model.sha256.clone().unwrap_or_default()),
    ]);
    row
}
