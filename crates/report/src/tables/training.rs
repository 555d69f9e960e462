//! Training tables in the layout of NVIDIA's Mask R-CNN training tables (DeepLearningExamples,
//! the seed of issue 14): throughput per model x batch per GPU x precision with the TF32 and AMP
//! speed-ups over FP32, and one row per run with the step-time percentiles, the data-loading
//! wait and the peak GPU memory. `detbench train` prints them (and writes them into results.md),
//! `detbench report` renders them from the store, beside the inference tables.

use std::collections::BTreeMap;

use detbench_backends::Device;
use detbench_bench::timing::summarize;
use detbench_train::{ModelKind, Precision, TrainResults};

use super::{Alignment, Cell, Table, markdown_grid};
use crate::store::TrainingRecord;

/// A training run as the tables show it: its results and, read back from the store, its run id.
#[derive(Debug, Clone, Copy)]
pub struct TrainingEntry<'a> {
    pub results: &'a TrainResults,
    pub run: Option<i64>,
}

impl<'a> TrainingEntry<'a> {
    /// The runs of one results file (no run ids).
    pub fn of_run(training: &'a [TrainResults]) -> Vec<TrainingEntry<'a>> {
        training
            .iter()
            .map(|results| TrainingEntry { results, run: None })
            .collect()
    }

    /// The training runs read back from the store, each with its run id.
    pub fn of_records(records: &'a [TrainingRecord]) -> Vec<TrainingEntry<'a>> {
        records
            .iter()
            .map(|r| TrainingEntry {
                results: &r.results,
                run: Some(r.run_id),
            })
            .collect()
    }

    /// Images per second over all processes after the warm-up; `None` when no step was timed.
    pub fn images_per_s(&self) -> Option<f64> {
        self.results
            .throughput
            .as_ref()
            .map(|t| t.global_images_per_s)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// One row per run: throughput, step-time mean and percentiles, data wait, peak memory.
pub fn training_runs_table(entries: &[TrainingEntry]) -> Table {
    let with_runs = entries.iter().any(|e| e.run.is_some());
    let mut columns: Vec<String> = [
        "Model",
        "Device",
        "Precision",
        "Batch/GPU",
        "GPUs",
        "Images/s",
        "Step mean (ms)",
        "Step p50 (ms)",
        "Step p90 (ms)",
        "Step p99 (ms)",
        "Data wait mean (ms)",
        "Data wait (%)",
        "Peak memory (GiB)",
        "Timed steps",
        "Last loss",
    ]
    .map(String::from)
    .to_vec();
    if with_runs {
        columns.push("Run".to_owned());
    }
    let rows = entries
        .iter()
        .map(|e| {
            let r = e.results;
            let t = r.throughput.as_ref();
            let mut row = vec![
                Cell::text(model_label(r)),
                Cell::text(r.config.device.to_string()),
                Cell::text(r.config.precision.as_str()),
                Cell::count(r.config.batch),
                Cell::count(r.world_size),
                Cell::number(e.images_per_s(), 2),
                Cell::number(t.map(|t| t.step.mean_ms), 1),
                Cell::number(t.map(|t| t.step.p50_ms), 1),
                Cell::number(t.map(|t| t.step.p90_ms), 1),
                Cell::number(t.map(|t| t.step.p99_ms), 1),
                Cell::number(t.map(|t| t.data_wait.mean_ms), 2),
                Cell::number(t.map(|t| 100.0 * t.data_wait_fraction), 1),
                Cell::number(
                    r.peak_memory
                        .as_ref()
                        .map(|m| m.allocated_bytes as f64 / GIB),
                    2,
                ),
                Cell::number(t.map(|t| t.timed_steps as f64), 0),
                Cell::number(r.steps.last().map(|s| s.total_loss), 4),
            ];
            if with_runs {
                row.push(Cell::number(e.run.map(|id| id as f64), 0));
            }
            row
        })
        .collect();
    let mut notes = vec![
        "Images/s over the timed steps after the warm-up, all GPUs together (per GPU: divide by \
         GPUs); step times include the data wait and end after a device synchronise; \
         percentiles nearest-rank as MLPerf LoadGen. Peak memory: the CUDA caching allocator's \
         peak allocated bytes (GPU runs only). Last loss: the summed loss of the last step."
            .to_owned(),
    ];
    notes.extend(entries.iter().filter_map(|e| {
        let reason = e.results.stopped.as_ref()?;
        Some(format!(
            "{}{} stopped after {} step(s): {reason}",
            e.results.label(),
            e.run.map(|id| format!(" (run {id})")).unwrap_or_default(),
            e.results.steps.len()
        ))
    }));
    Table {
        title: "Training runs".to_owned(),
        columns,
        rows,
        notes,
    }
}

/// A stopped run is marked in its model cell.
fn model_label(r: &TrainResults) -> String {
    match r.stopped {
        Some(_) => format!("{} (stopped)", r.config.model),
        None => r.config.model.to_string(),
    }
}

/// The setting a speed-up compares across precisions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Setting {
    model: ModelKind,
    device: Device,
    world_size: usize,
    batch: usize,
}

/// Throughput per model x GPUs x batch per GPU, one column per precision, and the TF32 and AMP
/// speed-ups over FP32 (as NVIDIA's "Throughput speedup (FP32 - mixed precision)"). Several runs
/// of one setting count with their median. `None` when no setting was run at more than one
/// precision.
pub fn training_speedup_table(entries: &[TrainingEntry]) -> Option<Table> {
    let mut samples: BTreeMap<Setting, BTreeMap<Precision, Vec<f64>>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.results.stopped.is_none()) {
        let Some(images_per_s) = e.images_per_s() else {
            continue;
        };
        let c = &e.results.config;
        let setting = Setting {
            model: c.model,
            device: c.device,
            world_size: e.results.world_size,
            batch: c.batch,
        };
        samples
            .entry(setting)
            .or_default()
            .entry(c.precision)
            .or_default()
            .push(images_per_s);
    }
    if samples.values().all(|by_precision| by_precision.len() < 2) {
        return None;
    }
    let precisions: Vec<Precision> = Precision::ALL
        .iter()
        .copied()
        .filter(|p| samples.values().any(|by| by.contains_key(p)))
        .collect();
    let mut columns: Vec<String> = ["Model", "Device", "GPUs", "Batch/GPU"]
        .map(String::from)
        .to_vec();
    columns.extend(precisions.iter().map(|p| format!("{} (img/s)", p.as_str())));
    columns.extend(["TF32 speed-up", "AMP speed-up"].map(String::from));
    let rows = samples
        .iter()
        .map(|(setting, by_precision)| {
            let median = |p: Precision| {
                by_precision
                    .get(&p)
                    .and_then(|v| summarize(v))
                    .map(|s| s.median)
            };
            let mut row = vec![
                Cell::text(setting.model.as_str()),
                Cell::text(setting.device.to_string()),
                Cell::count(setting.world_size),
                Cell::count(setting.batch),
            ];
            row.extend(precisions.iter().map(|&p| Cell::number(median(p), 2)));
            let over_fp32 = |p: Precision| match (median(p), median(Precision::Fp32)) {
                (Some(v), Some(base)) if base > 0.0 => Cell::Ratio(v / base),
                _ => Cell::Empty,
            };
            row.push(over_fp32(Precision::Tf32));
            row.push(over_fp32(Precision::Amp));
            row
        })
        .collect();
    Some(Table {
        title: "Training throughput by precision".to_owned(),
        columns,
        rows,
        notes: vec![
            "Images/s of all GPUs together after the warm-up (the median where a setting ran \
             several times). Speed-ups: TF32 and AMP images/s over FP32 images/s of the same \
             model, GPUs and batch per GPU (fp32 runs with TF32 off for matmul and cuDNN)."
                .to_owned(),
        ],
    })
}

/// The training tables of a set of runs: the speed-up table (when precisions were compared),
/// then the runs table. Empty for no runs.
pub fn training_tables(entries: &[TrainingEntry]) -> Vec<Table> {
    if entries.is_empty() {
        return Vec::new();
    }
    training_speedup_table(entries)
        .into_iter()
        .chain([training_runs_table(entries)])
        .collect()
}

/// The `## Training` part of a run's results.md: the data trained on, then the training tables.
pub fn training_markdown(training: &[TrainResults]) -> String {
    let mut doc = String::new();
    let Some(first) = training.first() else {
        return doc;
    };
    doc.push_str(&format!(
        "\n## Training\n\n- data: {} training images from {} in {} (the file's images without \
         usable annotations, {} of them, removed as torchvision's reference removes them)\n",
        first.dataset_images,
        first.config.annotations.display(),
        first.config.images.display(),
        first.removed_images
    ));
    for table in training_tables(&TrainingEntry::of_run(training)) {
        let grid = markdown_grid(&table, Alignment::Plain);
        doc.push_str(&format!("\n### {}\n\n{grid}\n", table.title));
        for note in &table.notes {
            doc.push_str(&format!("\n{note}\n"));
        }
    }
    doc
}

/// One `training.csv` row per run, full precision.
pub fn training_csv_table(training: &[TrainResults]) -> Table {
    let columns: Vec<String> = [
        "model",
        "device",
        "precision",
        "batch_per_gpu",
        "world_size",
        "status",
        "images_per_second",
        "images_per_second_per_gpu",
        "nvidia_pytorch_images_per_second",
        "warmup_steps",
        "timed_steps",
        "steps",
        "step_mean_ms",
        "step_p50_ms",
        "step_p90_ms",
        "step_p99_ms",
        "step_min_ms",
        "step_max_ms",
        "data_wait_mean_ms",
        "data_wait_p50_ms",
        "data_wait_p90_ms",
        "data_wait_p99_ms",
        "data_wait_fraction",
        "peak_allocated_bytes",
        "peak_reserved_bytes",
        "last_total_loss",
        "dataset_images",
        "model_file",
    ]
    .map(String::from)
    .to_vec();
    let rows = training.iter().map(training_csv_row).collect();
    Table {
        title: String::new(),
        columns,
        rows,
        notes: Vec::new(),
    }
}

fn training_csv_row(r: &TrainResults) -> Vec<Cell> {
    let full = |v: Option<f64>| Cell::number(v, 0);
    let t = r.throughput.as_ref();
    let status = match &r.stopped {
        Some(reason) => format!("stopped: {reason}"),
        None => "ok".to_owned(),
    };
    let mut row = vec![
        Cell::text(r.config.model.as_str()),
        Cell::text(r.config.device.to_string()),
        Cell::text(r.config.precision.as_str()),
        Cell::count(r.config.batch),
        Cell::count(r.world_size),
        Cell::text(status),
        full(t.map(|t| t.global_images_per_s)),
        full(t.map(|t| t.images_per_s)),
        full(t.map(|t| t.nvidia_pytorch_images_per_s)),
        full(t.map(|t| t.skipped_steps as f64)),
        full(t.map(|t| t.timed_steps as f64)),
        Cell::count(r.steps.len()),
    ];
    row.extend(
        [
            t.map(|t| t.step.mean_ms),
            t.map(|t| t.step.p50_ms),
            t.map(|t| t.step.p90_ms),
            t.map(|t| t.step.p99_ms),
            t.map(|t| t.step.min_ms),
            t.map(|t| t.step.max_ms),
            t.map(|t| t.data_wait.mean_ms),
            t.map(|t| t.data_wait.p50_ms),
            t.map(|t| t.data_wait.p90_ms),
            t.map(|t| t.data_wait.p99_ms),
            t.map(|t| t.data_wait_fraction),
            r.peak_memory.as_ref().map(|m| m.allocated_bytes as f64),
            r.peak_memory.as_ref().map(|m| m.reserved_bytes as f64),
            r.steps.last().map(|s| s.total_loss),
        ]
        .map(full),
    );
    row.push(Cell::count(r.dataset_images));
    row.push(Cell::text(r.config.model_path.display().to_string()));
    row
}

/// `training_steps.csv`: one row per step of every run (`training_index`: the run's place in
/// results.json's `training` list), each loss component in a column of its own (empty where a
/// model has no such component).
pub fn training_steps_csv_table(training: &[TrainResults]) -> Table {
    let mut loss_names: Vec<&str> = Vec::new();
    for r in training {
        for name in &r.loss_names {
            if !loss_names.contains(&name.as_str()) {
                loss_names.push(name);
            }
        }
    }
    let mut columns: Vec<String> = [
        "training_index",
        "model",
        "precision",
        "batch_per_gpu",
        "step",
        "epoch",
        "lr",
        "total_loss",
    ]
    .map(String::from)
    .to_vec();
    columns.extend(loss_names.iter().map(|n| n.to_string()));
    columns.extend(["step_ms", "data_wait_ms", "loss_scale", "skipped"].map(String::from));
    let mut rows = Vec::new();
    for (index, r) in training.iter().enumerate() {
        for s in &r.steps {
            let mut row = vec![
                Cell::count(index),
                Cell::text(r.config.model.as_str()),
                Cell::text(r.config.precision.as_str()),
                Cell::count(r.config.batch),
                Cell::count(s.step),
                Cell::count(s.epoch),
                Cell::number(Some(s.lr), 0),
                Cell::number(Some(s.total_loss), 0),
            ];
            row.extend(loss_names.iter().map(|name| {
                let value = r
                    .loss_names
                    .iter()
                    .position(|n| n == name)
                    .and_then(|i| s.losses.get(i).copied());
                Cell::number(value, 0)
            }));
            row.extend([
                Cell::number(Some(s.step_s * 1e3), 0),
                Cell::number(Some(s.data_wait_s * 1e3), 0),
                Cell::number(s.loss_scale, 0),
                Cell::text(s.skipped.to_string()),
            ]);
            rows.push(row);
        }
    }
    Table {
        title: String::new(),
        columns,
        rows,
        notes: Vec::new(),
    }
}
