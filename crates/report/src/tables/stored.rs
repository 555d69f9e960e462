//! Tables of stored results in the layouts the published benchmarks use: one row per model and
//! setting (like torchvision's weights table or the TF2 Model Zoo table), and the per-stage
//! latency table.

use detbench_bench::Stage;
use detbench_eval::IouType;

use super::{Cell, Table};
use crate::store::ResultRecord;

/// A pycocotools stat (fraction) as published tables print it: percent, one decimal.
pub(super) fn ap_cell(value: Option<f64>) -> Cell {
    // pycocotools prints -1 where there is no ground truth; that is "no value", not -100.
    Cell::number(value.filter(|v| *v >= 0.0).map(|v| v * 100.0), 1)
}

pub(super) fn ms_cell(value: Option<f64>) -> Cell {
    Cell::number(value, 2)
}

/// The results table: one row per stored result, published rows labelled as such.
pub fn results_table(records: &[ResultRecord]) -> Table {
    let has = |iou: IouType| records.iter().any(|r| r.accuracy.contains_key(&iou));
    let (has_segm, has_kp) = (has(IouType::Segm), has(IouType::Keypoints));
    let mut columns: Vec<String> = [
        "Model",
        "Backend",
        "Device",
        "Precision",
        "Batch",
        "Threads",
        "Box AP",
        "AP50",
    ]
    .map(String::from)
    .to_vec();
    if has_segm {
        columns.push("Mask AP".into());
    }
    if has_kp {
        columns.push("Keypoint AP".into());
    }
    columns.extend(
        [
            "Latency mean (ms)",
            "Latency p99 (ms)",
            "Throughput (img/s)",
            "Images",
            "Run",
        ]
        .map(String::from),
    );
    let rows = records
        .iter()
        .map(|r| results_row(r, has_segm, has_kp))
        .collect();
    let notes = results_notes(records);
    Table {
        title: "Results".to_owned(),
        columns,
        rows,
        notes,
    }
}

/// One row of the results table: a published row has no backend settings of its own.
fn results_row(r: &ResultRecord, has_segm: bool, has_kp: bool) -> Vec<Cell> {
    let mut row = vec![Cell::text(r.model_label())];
    match r.published_label() {
        Some(label) => {
            row.push(Cell::text(label));
            row.push(Cell::text(
                r.published
                    .as_ref()
                    .and_then(|p| p.device_label.clone())
                    .unwrap_or_default(),
            ));
            row.push(Cell::Empty);
            row.push(Cell::Empty);
            row.push(Cell::Empty);
        }
        None => {
            row.push(Cell::text(r.backend_label()));
            row.push(Cell::text(r.device_label()));
            row.push(Cell::text(option_text(r.precision)));
            row.push(Cell::number(r.batch_size.map(|b| b as f64), 0));
            row.push(Cell::number(r.threads.map(|t| t as f64), 0));
        }
    }
    row.push(ap_cell(r.stat(IouType::Bbox, "AP")));
    row.push(ap_cell(r.stat(IouType::Bbox, "AP50")));
    if has_segm {
        row.push(ap_cell(r.stat(IouType::Segm, "AP")));
    }
    if has_kp {
        row.push(ap_cell(r.stat(IouType::Keypoints, "AP")));
    }
    row.push(ms_cell(r.latency_mean_ms()));
    row.push(ms_cell(r.latency_p99_ms()));
    row.push(Cell::number(
        r.latency.as_ref().map(|l| l.images_per_second),
        1,
    ));
    row.push(Cell::number(r.dataset_images.map(|n| n as f64), 0));
    row.push(Cell::number(Some(r.run_id as f64), 0));
    row
}

/// The results table's notes: what its numbers are, then one line per result whose latency is
/// not valid.
fn results_notes(records: &[ResultRecord]) -> Vec<String> {
    let mut notes = vec![
        "AP in percent (pycocotools AP@[.50:.95], maxDets 100). Latency end to end per call \
         (one batch: per image at batch 1) as measured by detbench; published rows show the \
         source's own figure (per image). Throughput is images per second at the row's batch."
            .to_owned(),
    ];
    // One line per result, so that a long list stays readable.
    notes.extend(
        records
            .iter()
            .filter(|r| r.latency.as_ref().is_some_and(|l| !l.valid))
            .map(|r| {
                let why = &r.latency.as_ref().expect("filtered").validity_notes;
                format!(
                    "Latency not valid for run {} {}: {}.",
                    r.run_id,
                    r.model,
                    why.join("; ")
                )
            }),
    );
    notes
}

/// Per-stage latency means, one row per measured result.
pub fn stages_table(records: &[ResultRecord]) -> Table {
    let mut columns: Vec<String> = [
        "Model",
        "Backend",
        "Device",
        "Precision",
        "Batch",
        "Threads",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(Stage::ALL.iter().map(|s| format!("{s} (ms)")));
    columns.push("End to end (ms)".to_owned());
    columns.push("Run".to_owned());
    let rows = records
        .iter()
        .filter(|r| !r.is_published() && r.latency.is_some())
        .map(|r| {
            let mut row = vec![
                Cell::text(&r.model),
                Cell::text(r.backend_label()),
                Cell::text(option_text(r.device)),
                Cell::text(option_text(r.precision)),
                Cell::number(r.batch_size.map(|b| b as f64), 0),
                Cell::number(r.threads.map(|t| t as f64), 0),
            ];
            row.extend(Stage::ALL.iter().map(|s| ms_cell(r.stage_mean_ms(*s))));
            row.push(ms_cell(r.latency_mean_ms()));
            row.push(Cell::number(Some(r.run_id as f64), 0));
            row
        })
        .collect();
    Table {
        title: "Latency by stage (mean per call)".to_owned(),
        columns,
        rows,
        notes: vec![
            "Stages and end to end are timed per call (per batch); end to end includes decode \
             only when the run decoded on the timed thread."
                .to_owned(),
        ],
    }
}

/// Which images a result was measured on: the image count and the annotation file's sha256
/// prefix, e.g. `206 images, ann 3f2a9c01`.
pub(super) fn dataset_label(r: &ResultRecord) -> String {
    let images = r
        .dataset_images
        .map_or_else(|| "? images".to_owned(), |n| format!("{n} images"));
    match &r.annotation_sha256 {
        Some(sha) => format!("{images}, ann {}", &sha[..sha.len().min(8)]),
        None => images,
    }
}

/// A setting's text, or empty when the record has none (a published row).
pub(super) fn option_text(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}
