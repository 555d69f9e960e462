//! What a run produces, as written to `results.json` and stored in the results database.
//! These types are the contract between the harness, the CLI's output files and the report
//! crate; the README documents the JSON they serialise to.

use detbench_backends::BackendDescription;
use detbench_env::Environment;
use detbench_train::TrainResults;
use serde::{Deserialize, Serialize};

pub use crate::mlperf::record::{Headline, ScenarioRecord, SutDescription};
use crate::shard::{ModelSharding, RunSharding};
use crate::sut::Stage;

/// Version of the results layout below; bump it when a field changes meaning.
pub const RESULTS_SCHEMA_VERSION: u32 = 1;

/// The names of the 12 bbox/segm stats, in pycocotools' `COCOeval.stats` order.
pub const DETECTION_STAT_NAMES: [&str; 12] = [
    "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
];
/// The names of the 10 keypoint stats, in pycocotools' order.
pub const KEYPOINT_STAT_NAMES: [&str; 10] = [
    "AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl",
];

/// One `detbench run` invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub schema_version: u32,
    /// `git describe` of the build, or the crate version.
    pub detbench_version: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub command_line: Vec<String>,
    pub environment: Environment,
    pub models: Vec<ModelResult>,
    /// Model x batch-size combinations that were not run, with why (e.g. a fixed batch).
    #[serde(default)]
    pub skipped: Vec<SkippedRun>,
    /// The run was stopped early (Ctrl-C): `models` holds the rows finished before, and the
    /// rest are in `skipped`.
    #[serde(default)]
    pub interrupted: bool,
    /// Training runs (`detbench train`), one per model x batch x precision, each with its
    /// per-step records; a run that stopped early keeps its steps and says why (`stopped`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub training: Vec<TrainResults>,
    /// Set for a run merged from shards (`detbench merge`, `detbench run --devices`): how it was
    /// split, which shards were merged, and where each ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<RunSharding>,
}

/// A model x batch size the run did not measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedRun {
    pub name: String,
    pub batch_size: usize,
    pub reason: String,
}

/// One model (at one setting) within a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Zoo name.
    pub name: String,
    /// Recorded as `"ok"` or `"failed: <reason>"`.
    pub status: Status,
    /// The pipeline family, as the zoo names it.
    pub family: String,
    /// Network input size `WxH` (e.g. "416x416"), or the zoo's description of the input for a
    /// model that resizes inside.
    #[serde(default)]
    pub input: String,
    pub model: ModelFile,
    pub backend: Option<BackendDescription>,
    pub batch_size: usize,
    pub dataset: DatasetIdentity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<Accuracy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segm: Option<Accuracy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Accuracy>,
    pub latency: Option<LatencyReport>,
    /// Detections per image over the timed images.
    pub detections_per_image: Option<Summary>,
    /// Images that could not be read or decoded, or on which the pipeline failed.
    pub failed_images: Vec<FailedImage>,
    /// How closely the detections agree with the model's reference detections
    /// (`reference/<model>/detections_subset.json`), when a reference exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_agreement: Option<ReferenceAgreement>,
    /// Pipeline settings (preprocessing, thresholds, engine options) as the pipeline reports them.
    pub provenance: serde_json::Value,
    /// A row run under an MLPerf LoadGen scenario (`detbench run --scenario`): LoadGen's verdict,
    /// statistics and settings. Such a row has no `latency` (its latencies are LoadGen's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<ScenarioRecord>,
    /// Set for a row merged from shards: each shard's own latency, and the scaling over
    /// devices of a `--devices` row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<ModelSharding>,
}

impl ModelResult {
    pub fn is_ok(&self) -> bool {
        self.status.is_ok()
    }

    /// The table label of a row: the zoo name, with the LoadGen scenario of a scenario row, else
    /// the batch size when it is not 1, and the device count of a row measured on several devices
    /// at once.
    pub fn label(&self) -> String {
        let mut label = self.name.clone();
        let mut extra = Vec::new();
        if let Some(scenario) = &self.scenario {
            extra.push(scenario.label());
        } else if self.batch_size != 1 {
            extra.push(format!("batch {}", self.batch_size));
        }
        if let Some(devices) = self.sharding.as_ref().and_then(|s| s.devices) {
            extra.push(format!("{devices} devices"));
        }
        if !extra.is_empty() {
            label.push_str(&format!(" ({})", extra.join(", ")));
        }
        label
    }
}

/// Whether a row was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Nothing was measured, for this reason.
    Failed(String),
}

impl Status {
    pub fn is_ok(&self) -> bool {
        matches!(self, Status::Ok)
    }

    /// The reason of a failed row.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Status::Ok => None,
            Status::Failed(reason) => Some(reason),
        }
    }
}

/// How a status is written: `ok`, or `failed: <reason>`.
const FAILED_PREFIX: &str = "failed: ";

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::Failed(reason) => write!(f, "{FAILED_PREFIX}{reason}"),
        }
    }
}

/// Text that is not a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a status: expected `ok` or `failed: <reason>`")]
pub struct BadStatus(pub String);

impl std::str::FromStr for Status {
    type Err = BadStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ok" => Ok(Status::Ok),
            _ => s
                .strip_prefix(FAILED_PREFIX)
                .map(|reason| Status::Failed(reason.to_owned()))
                .ok_or_else(|| BadStatus(s.to_owned())),
        }
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub file: String,
    pub sha256: Option<String>,
}

/// Which images and which ground truth a result was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetIdentity {
    pub image_dir: String,
    /// `None` for a speed-only run on a folder of images.
    pub annotation_file: Option<String>,
    pub annotation_sha256: Option<String>,
    /// Images in the run (after `--limit`).
    pub images: usize,
}

/// COCO accuracy for one IoU type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// pycocotools' `stats`, full precision (12 for bbox/segm, 10 for keypoints).
    pub stats: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassAp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    pub category_id: u64,
    pub name: String,
    /// AP@[.50:.95], area all, maxDets 100; `None` where the class has no ground truth (-1 in
    /// pycocotools).
    pub ap: Option<f64>,
}

/// Agreement of a run's detections with reference detections of the same model, matched per
/// image and category as `../shared/tools/reference/compare_dets.py` does (reference detections
/// in descending score order each take the unused candidate of highest IoU), restricted to the
/// images of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceAgreement {
    pub reference_file: String,
    pub kind: AgreementKind,
    /// Boxes: a pair matches at IoU >= this.
    pub iou_threshold: f64,
    /// Keypoints: a pair matches when every joint is within this many pixels.
    pub max_joint_distance: f64,
    /// A matched pair agrees fully when the scores differ by at most this.
    pub score_tolerance: f64,
    /// Reference detections on the images of this run.
    pub reference_detections: usize,
    pub detections: usize,
    /// Reference detections with a geometric match, whatever the scores.
    pub matched_geometry: usize,
    /// Of those, the ones whose scores agree within `score_tolerance`.
    pub matched: usize,
    /// `matched / reference_detections` (the acceptance target is >= 0.99).
    pub matched_fraction: f64,
    /// Boxes: mean IoU of the matched pairs.
    pub mean_iou_matched: Option<f64>,
    /// Keypoints: mean joint distance (pixels) of the matched pairs.
    pub mean_joint_distance_matched: Option<f64>,
    /// Keypoints: fraction of the reference joints within `max_joint_distance` of the joints of
    /// the nearest detection, matched or not (one joint jumping to another heatmap peak fails a
    /// whole detection's match but only one joint here).
    #[serde(default)]
    pub joint_fraction: Option<f64>,
    pub max_score_difference: f64,
    /// Boxes: largest coordinate difference of a matched pair (pixels); keypoints: largest
    /// joint distance.
    pub max_coordinate_difference: f64,
    /// Per image: this run's detection count minus the reference's.
    pub count_difference_per_image: Option<Summary>,
    pub images_with_equal_count: usize,
    pub images: usize,
}

detbench_backends::named_enum! {
    /// What a reference agreement compares.
    pub enum AgreementKind as "agreement kind" {
        /// Boxes, matched by IoU.
        Boxes = "boxes",
        /// Keypoints, matched by joint distance.
        Keypoints = "keypoints",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedImage {
    pub file: String,
    pub reason: String,
}

/// Latency of a run: per-stage and end-to-end summaries, with the raw samples they came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// How percentiles are computed, e.g. "nearest-rank (MLPerf LoadGen)".
    pub percentile_definition: String,
    pub warmup_iterations: usize,
    pub batch_size: usize,
    /// Images timed (excluding warm-up).
    pub timed_images: usize,
    pub total_seconds: f64,
    pub images_per_second: f64,
    /// Per image: preprocess + inference + postprocess (+ decode when `includes_decode`).
    pub end_to_end: Summary,
    pub includes_decode: bool,
    pub stages: Vec<StageLatency>,
    /// End-to-end samples in milliseconds, one per timed call, in run order.
    pub end_to_end_samples_ms: Vec<f64>,
    /// Whether the measurement can be trusted, with the reasons when it cannot
    /// (too few samples, failures, ...).
    pub valid: bool,
    pub validity_notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageLatency {
    pub stage: Stage,
    pub summary: Summary,
    /// Samples in milliseconds, one per timed call, in run order.
    pub samples_ms: Vec<f64>,
}

/// Summary statistics of a sample, in milliseconds (or counts, for detections per image).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Population standard deviation.
    pub std: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}
