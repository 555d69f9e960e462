//! What the store hands back: runs, results with their accuracy and latency summaries, and the
//! published imports it is given, all typed as the run recorded them.

use std::collections::BTreeMap;

use detbench_backends::{Device, EngineKind, Precision};
use detbench_bench::Stage;
use detbench_bench::results::{Status, Summary};
use detbench_eval::IouType;
use serde::Serialize;

use super::RunId;

/// Which results a report covers. Empty lists mean "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub models: Vec<String>,
    pub engines: Vec<EngineKind>,
    pub devices: Vec<Device>,
    pub precisions: Vec<Precision>,
    pub batch_sizes: Vec<usize>,
    pub runs: Vec<RunId>,
    pub include_published: bool,
    pub include_failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub started_at: String,
    pub detbench_version: String,
    pub hostname: Option<String>,
    pub command_line: Vec<String>,
    pub results: i64,
    /// Set for a `detbench import-md` import.
    pub published_source: Option<String>,
    /// Shards a merged run was split into (`detbench merge`).
    pub shard_count: Option<i64>,
    /// A merge with shards missing (`--allow-partial`).
    pub partial: bool,
    /// Training results (`detbench train`: one per process).
    pub training: i64,
}

/// A published source a record came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedSource {
    pub name: String,
    pub file: String,
    pub device_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: Stage,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub end_to_end: Summary,
    pub images_per_second: f64,
    pub timed_images: usize,
    pub includes_decode: bool,
    pub valid: bool,
    pub validity_notes: Vec<String>,
    pub percentile_definition: String,
}

/// One stored result (a model at one setting in one run, or one published row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRecord {
    pub result_id: i64,
    pub run_id: RunId,
    pub started_at: String,
    pub detbench_version: String,
    pub model: String,
    pub status: Status,
    pub family: String,
    pub model_sha256: Option<String>,
    pub engine: Option<EngineKind>,
    pub engine_version: Option<String>,
    pub device: Option<Device>,
    pub precision: Option<Precision>,
    pub threads: Option<i64>,
    pub batch_size: Option<i64>,
    pub dataset_images: Option<i64>,
    pub annotation_sha256: Option<String>,
    /// Set for a published record.
    pub published: Option<PublishedSource>,
    pub published_latency_ms: Option<f64>,
    pub failed_images: i64,
    /// Devices measured at once (`detbench run --devices`); `None`: one.
    pub devices: Option<i64>,
    /// From a merge with shards missing: the accuracy covers part of the dataset.
    pub partial: bool,
    /// IoU type → (stat name, value) in pycocotools order.
    pub accuracy: BTreeMap<IouType, Vec<(String, f64)>>,
    pub latency: Option<LatencySummary>,
    /// Per-stage summaries (decode, preprocess, inference, postprocess), in run order.
    pub stages: Vec<StageSummary>,
}

impl ResultRecord {
    /// A pycocotools stat (a fraction) for an IoU type, e.g. `stat(IouType::Bbox, "AP")`.
    pub fn stat(&self, iou_type: IouType, stat: &str) -> Option<f64> {
        self.accuracy
            .get(&iou_type)?
            .iter()
            .find(|(name, _)| name == stat)
            .map(|(_, v)| *v)
    }

    /// Mean end-to-end latency in ms: measured per call (one batch of `batch_size` images, so
    /// per image at batch 1), or the published figure (per image, as the sources give it).
    pub fn latency_mean_ms(&self) -> Option<f64> {
        self.latency
            .as_ref()
            .map(|l| l.end_to_end.mean)
            .or(self.published_latency_ms)
    }

    /// p99 of the end-to-end latency per call, in ms (measured results only).
    pub fn latency_p99_ms(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.end_to_end.p99)
    }

    pub fn stage_mean_ms(&self, stage: Stage) -> Option<f64> {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .map(|s| s.summary.mean)
    }

    pub fn is_published(&self) -> bool {
        self.published.is_some()
    }

    /// The device as tables show it: `cpu`, `cuda:0`, or `2x cuda` for a result measured on
    /// several devices at once (`detbench run --devices`).
    pub fn device_label(&self) -> String {
        let device = self.device.map(|d| d.to_string()).unwrap_or_default();
        match self.devices.filter(|n| *n > 1) {
            Some(n) => {
                let kind = device.split(':').next().unwrap_or_default();
                format!("{n}x {kind}")
            }
            None => device,
        }
    }

    /// The model as tables show it, marked when it comes from a partial merge.
    pub fn model_label(&self) -> String {
        match self.partial {
            true => format!("{} (partial)", self.model),
            false => self.model.clone(),
        }
    }

    /// "onnxruntime 1.31.1": the engine and its version, or what is known of them.
    pub fn backend_label(&self) -> String {
        self.engine.map_or_else(String::new, |engine| {
            engine.with_version(self.engine_version.as_deref().unwrap_or_default())
        })
    }

    /// "published: TF2 Detection Model Zoo (Nvidia V100)" for a published record.
    pub fn published_label(&self) -> Option<String> {
        let source = self.published.as_ref()?;
        Some(match &source.device_label {
            Some(device) => format!("published: {} ({device})", source.name),
            None => format!("published: {}", source.name),
        })
    }
}

/// One `detbench import-md`: the rows of a published table and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedImport {
    /// A name for the source, e.g. "TF2 Detection Model Zoo".
    pub source: String,
    pub file: String,
    pub file_sha256: String,
    /// The hardware the source measured on, as it says.
    pub device_label: Option<String>,
    pub command_line: Vec<String>,
    pub rows: Vec<PublishedRow>,
}

/// One row of a published table. AP values are in percent, as published.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishedRow {
    pub model: String,
    /// The link the model name carried (download URL), if any.
    pub link: Option<String>,
    pub box_ap: Option<f64>,
    pub mask_ap: Option<f64>,
    pub keypoint_ap: Option<f64>,
    pub latency_ms: Option<f64>,
    /// The header the latency came from, e.g. "Speed (ms)".
    pub latency_column: String,
    /// Other columns (params, GFLOPS, outputs, ...) verbatim.
    pub extra: serde_json::Value,
}

pub fn samples_from_blob(blob: &[u8]) -> Vec<f64> {
    blob.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect()
}
