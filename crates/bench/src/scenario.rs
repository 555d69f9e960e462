//! A model at one or more batch sizes, start to finish: open it, check its batch support, run
//! the timed pass, score its detections against the ground truth, and build the
//! [`ModelResult`] rows — failed rows ([`Status::Failed`]) when something breaks, never zeros.
//! One batch size is [`crate::batch_run`].
//!
//! The harness does not know the zoo: the caller describes the model ([`ModelSpec`]) and hands
//! over a function that opens it.

use std::sync::Arc;

use detbench_backends::BackendDescription;
use detbench_eval::{Detection, GroundTruth, IouType};

use crate::batch_run::BatchRun;
pub use crate::cache::DatasetCache;
use crate::dataset::{Dataset, GroundTruthKind};
use crate::prefetch::{DecodeFn, DecodeMode};
use crate::results::{DatasetIdentity, ModelFile, ModelResult, SkippedRun, Status};
use crate::runner::{RunFailure, check_batch};
use crate::sut::{BatchSupport, Detector, DetectorError};

/// What the harness knows of a model before opening it.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Zoo name.
    pub name: String,
    pub family: String,
    /// Network input as the zoo describes it.
    pub input: String,
    pub file: ModelFile,
    /// Which annotation file scores it (keypoint models need person keypoints).
    pub ground_truth: GroundTruthKind,
    /// The engine as requested, recorded on rows of a model that failed before it could say.
    pub requested_backend: Option<BackendDescription>,
}

detbench_backends::named_enum! {
    /// When detections are scored.
    pub enum EvalTiming as "evaluation timing" {
        /// On a background thread while the model runs (overlaps inference; the thread competes
        /// with the model for CPU).
        Overlap = "overlap",
        /// After the timed pass, on every core (no effect on any timing).
        AfterRun = "after-run",
    }
}

#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(EvalTiming);

/// How each model is run.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub warmup: usize,
    /// Batch sizes to measure, in order (`--batch 1,2,4,8`).
    pub batch_sizes: Vec<usize>,
    pub decode: DecodeMode,
    pub evaluation: EvalTiming,
    /// Leave scoring to `detbench merge` (a shard of a run): the ground truth is not loaded and
    /// rows carry no accuracy; their detections and [`ModelOutcome::iou_types`] are what the
    /// merge scores.
    pub defer_scoring: bool,
}

/// Hooks for a progress display; every method has a silent default.
pub trait Observer {
    /// A one-line message for the user (skipped batch sizes, failures).
    fn message(&self, _text: &str) {}
    /// A pass of `total` images starts.
    fn start_pass(&self, _label: &str, _total: usize) {}
    /// `n` more images are done.
    fn advance(&self, _n: usize) {}
    fn finish_pass(&self) {}
}

/// A silent observer.
pub struct Quiet;
impl Observer for Quiet {}

/// One measured row and the detections behind it.
#[derive(Debug)]
pub struct ModelOutcome {
    pub result: ModelResult,
    /// The timed pass's detections (empty for a failed row).
    pub detections: Vec<Detection>,
    /// The IoU types the detections are scored with (empty for a failed row).
    pub iou_types: Vec<IouType>,
}

impl ModelOutcome {
    pub(crate) fn failed(
        spec: &ModelSpec,
        batch: usize,
        dataset: Option<&Dataset>,
        reason: &str,
    ) -> Self {
        ModelOutcome {
            result: failed_row(spec, batch, dataset, reason),
            detections: Vec::new(),
            iou_types: Vec::new(),
        }
    }
}

/// Runs one model at every batch size of `options`. `open` is called once; a model that cannot
/// be opened gets one failed row per batch size. Returns the rows and the batch sizes skipped.
pub fn run_model(
    spec: &ModelSpec,
    open: impl FnOnce() -> Result<Box<dyn Detector>, DetectorError>,
    datasets: &mut DatasetCache,
    decode: &Arc<DecodeFn>,
    options: &ScenarioOptions,
    observer: &dyn Observer,
) -> (Vec<ModelOutcome>, Vec<SkippedRun>) {
    let batch_sizes = if options.batch_sizes.is_empty() {
        vec![1]
    } else {
        options.batch_sizes.clone()
    };
    let fail_all = |dataset: Option<&Dataset>, reason: &str| {
        batch_sizes
            .iter()
            .map(|&b| ModelOutcome::failed(spec, b, dataset, reason))
            .collect()
    };
    let dataset = match datasets.dataset(spec.ground_truth) {
        Ok(dataset) => dataset,
        Err(e) => return (fail_all(None, &format!("dataset: {e}")), Vec::new()),
    };
    let ground_truth = if options.defer_scoring {
        Ok(None)
    } else {
        datasets.ground_truth(spec.ground_truth)
    };
    if let Ok(Some(gt)) = &ground_truth
        && let Some(reason) = keypoints_missing(spec, gt)
    {
        observer.message(&format!("error: {}: {reason}", spec.name));
        return (fail_all(Some(&dataset), &reason), Vec::new());
    }
    let mut detector = match open() {
        Ok(detector) => detector,
        Err(e) => {
            let reason = e.to_string();
            observer.message(&format!("{}: failed to open: {reason}", spec.name));
            return (fail_all(Some(&dataset), &reason), Vec::new());
        }
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &batch in &batch_sizes {
        if crate::interrupt::requested() {
            skipped.push(skipped_run(spec, batch, crate::interrupt::NOT_MEASURED));
            continue;
        }
        if let Some(reason) = unsupported_batch(detector.batch_support(), batch) {
            observer.message(&format!("{}: {reason}", spec.name));
            skipped.push(skipped_run(spec, batch, &reason));
            continue;
        }
        let ground_truth = match &ground_truth {
            Ok(gt) => gt.clone(),
            Err(e) => {
                let reason = format!("ground truth: {e}");
                rows.push(ModelOutcome::failed(spec, batch, Some(&dataset), &reason));
                continue;
            }
        };
        let run = BatchRun {
            spec,
            detector: detector.as_mut(),
            dataset: &dataset,
            ground_truth,
            decode,
            options,
            observer,
        }
        .run(batch);
        let mut outcome = match run {
            Ok(outcome) => outcome,
            Err(interrupted) => {
                skipped.push(skipped_run(spec, batch, &interrupted.to_string()));
                continue;
            }
        };
        record_ground_truth_load(datasets, spec, &mut outcome);
        rows.push(outcome);
    }
    (rows, skipped)
}

/// Why a keypoint model cannot be scored on this ground truth (it has no keypoints), if so:
/// scored there, every keypoint stat would be -1 on a row marked ok.
fn keypoints_missing(spec: &ModelSpec, gt: &GroundTruth) -> Option<String> {
    (spec.ground_truth == GroundTruthKind::Keypoints && !gt.has_keypoints()).then(|| {
        format!(
            "{} has no annotation with keypoints (an instances file?); a keypoint model is \
             scored on a person-keypoint file: pass --keypoint-annotations \
             person_keypoints_*.json",
            gt.path().display()
        )
    })
}

/// Why the detector cannot run at `batch` (its batch is fixed or limited), if it cannot.
fn unsupported_batch(support: BatchSupport, batch: usize) -> Option<String> {
    match check_batch(support, batch) {
        Ok(()) => None,
        Err(RunFailure::BatchFixed { fixed, .. }) => Some(format!(
            "model's batch is fixed at {fixed}; skipping batch {batch}"
        )),
        Err(other) => Some(format!("{other}; skipping batch {batch}")),
    }
}

/// A batch size of this model that was not measured, and why.
fn skipped_run(spec: &ModelSpec, batch: usize, reason: &str) -> SkippedRun {
    SkippedRun {
        name: spec.name.clone(),
        batch_size: batch,
        reason: reason.to_owned(),
    }
}

/// Records in the row's harness provenance how long the ground truth took to load.
fn record_ground_truth_load(datasets: &DatasetCache, spec: &ModelSpec, outcome: &mut ModelOutcome) {
    if let Some(load) = datasets.ground_truth_load_time(spec.ground_truth)
        && let Some(harness) = outcome.result.provenance.get_mut("harness")
    {
        harness["ground_truth_load_seconds"] = load.as_secs_f64().into();
    }
}

/// A row for a model that produced nothing: [`Status::Failed`], no stats, no latency.
pub fn failed_row(
    spec: &ModelSpec,
    batch: usize,
    dataset: Option<&Dataset>,
    reason: &str,
) -> ModelResult {
    ModelResult {
        name: spec.name.clone(),
        status: Status::Failed(reason.to_owned()),
        family: spec.family.clone(),
        input: spec.input.clone(),
        model: spec.file.clone(),
        backend: spec.requested_backend.clone(),
        batch_size: batch,
        dataset: dataset.map(Dataset::identity).unwrap_or(DatasetIdentity {
            image_dir: String::new(),
            annotation_file: None,
            annotation_sha256: None,
            images: 0,
        }),
        bbox: None,
        segm: None,
        keypoints: None,
        latency: None,
        detections_per_image: None,
        failed_images: Vec::new(),
        reference_agreement: None,
        provenance: serde_json::Value::Null,
        scenario: None,
        sharding: None,
    }
}
