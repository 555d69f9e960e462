//! A model at one or more batch sizes, start to finish: open it, check its batch support, run
//! the timed pass, score its detections against the ground truth, and build the
//! [`ModelResult`] rows — `failed: <reason>` rows when something breaks, never zeros.
//!
//! The harness does not know the zoo: the caller describes the model ([`ModelSpec`]) and hands
//! over a function that opens it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_backends::BackendDescription;
use detbench_eval::{
    BackgroundEvaluator, Detection, EvalParams, EvalSummary, Evaluator, GroundTruth, IouType,
};

use crate::dataset::{Dataset, DatasetSource, GroundTruthKind};
use crate::prefetch::{DecodeFn, DecodePlan};
use crate::results::{Accuracy, ClassAp, DatasetIdentity, ModelFile, ModelResult, SkippedRun};
use crate::runner::{DetectorRun, RunFailure, RunOptions, check_batch, run_detector};
use crate::sut::Detector;

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

/// When detections are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalTiming {
    /// On a background thread while the model runs (overlaps inference; the thread competes
    /// with the model for CPU).
    Overlap,
    /// After the timed pass, on every core (no effect on any timing).
    AfterRun,
}

impl EvalTiming {
    pub fn as_str(self) -> &'static str {
        match self {
            EvalTiming::Overlap => "overlap",
            EvalTiming::AfterRun => "after-run",
        }
    }
}

/// How each model is run.
#[derive(Debug, Clone)]
pub struct ScenarioOptions {
    pub warmup: usize,
    /// Batch sizes to measure, in order (`--batch 1,2,4,8`).
    pub batch_sizes: Vec<usize>,
    pub decode: DecodePlan,
    pub evaluation: EvalTiming,
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
}

impl ModelOutcome {
    fn failed(spec: &ModelSpec, batch: usize, dataset: Option<&Dataset>, reason: &str) -> Self {
        ModelOutcome {
            result: failed_row(spec, batch, dataset, reason),
            detections: Vec::new(),
        }
    }
}

/// Datasets and ground truths, loaded once per kind and shared by every model of a run.
pub struct DatasetCache {
    source: DatasetSource,
    datasets: HashMap<GroundTruthKind, Result<Arc<Dataset>, String>>,
    ground_truths: HashMap<GroundTruthKind, Result<Arc<GroundTruth>, String>>,
    ground_truth_load: HashMap<GroundTruthKind, Duration>,
}

impl DatasetCache {
    pub fn new(source: DatasetSource) -> Self {
        DatasetCache {
            source,
            datasets: HashMap::new(),
            ground_truths: HashMap::new(),
            ground_truth_load: HashMap::new(),
        }
    }

    pub fn source(&self) -> &DatasetSource {
        &self.source
    }

    /// The dataset of `kind`, loaded on first use.
    pub fn dataset(&mut self, kind: GroundTruthKind) -> Result<Arc<Dataset>, String> {
        let source = &self.source;
        self.datasets
            .entry(kind)
            .or_insert_with(|| source.load(kind).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
    }

    /// The ground truth of `kind`, or `None` for a speed-only run.
    pub fn ground_truth(
        &mut self,
        kind: GroundTruthKind,
    ) -> Result<Option<Arc<GroundTruth>>, String> {
        let dataset = self.dataset(kind)?;
        let Some(path) = dataset.annotation_file.clone() else {
            return Ok(None);
        };
        let load_times = &mut self.ground_truth_load;
        self.ground_truths
            .entry(kind)
            .or_insert_with(|| {
                let start = Instant::now();
                let gt = GroundTruth::load(&path)
                    .map(Arc::new)
                    .map_err(|e| e.to_string());
                load_times.insert(kind, start.elapsed());
                gt
            })
            .clone()
            .map(Some)
    }

    /// How long loading the ground truth of `kind` took (once per run, shared by every model).
    pub fn ground_truth_load_time(&self, kind: GroundTruthKind) -> Option<Duration> {
        self.ground_truth_load.get(&kind).copied()
    }
}

/// Runs one model at every batch size of `options`. `open` is called once; a model that cannot
/// be opened gets one `failed` row per batch size. Returns the rows and the batch sizes skipped.
pub fn run_model(
    spec: &ModelSpec,
    open: impl FnOnce() -> Result<Box<dyn Detector>, String>,
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
    let dataset = match datasets.dataset(spec.ground_truth) {
        Ok(dataset) => dataset,
        Err(reason) => {
            let rows = batch_sizes
                .iter()
                .map(|&b| ModelOutcome::failed(spec, b, None, &format!("dataset: {reason}")))
                .collect();
            return (rows, Vec::new());
        }
    };
    let ground_truth = datasets.ground_truth(spec.ground_truth);
    let mut detector = match open() {
        Ok(detector) => detector,
        Err(reason) => {
            observer.message(&format!("{}: failed to open: {reason}", spec.name));
            let rows = batch_sizes
                .iter()
                .map(|&b| ModelOutcome::failed(spec, b, Some(&dataset), &reason))
                .collect();
            return (rows, Vec::new());
        }
    };
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &batch in &batch_sizes {
        if let Err(why) = check_batch(detector.batch_support(), batch) {
            let reason = match why {
                RunFailure::BatchFixed { fixed, .. } => {
                    format!("model's batch is fixed at {fixed}; skipping batch {batch}")
                }
                other => format!("{other}; skipping batch {batch}"),
            };
            observer.message(&format!("{}: {reason}", spec.name));
            skipped.push(SkippedRun {
                name: spec.name.clone(),
                batch_size: batch,
                reason,
            });
            continue;
        }
        let ground_truth = match &ground_truth {
            Ok(gt) => gt.clone(),
            Err(reason) => {
                rows.push(ModelOutcome::failed(
                    spec,
                    batch,
                    Some(&dataset),
                    &format!("ground truth: {reason}"),
                ));
                continue;
            }
        };
        let mut outcome = run_at_batch(
            spec,
            detector.as_mut(),
            &dataset,
            ground_truth,
            decode,
            options,
            batch,
            observer,
        );
        if let Some(load) = datasets.ground_truth_load_time(spec.ground_truth)
            && let Some(harness) = outcome.result.provenance.get_mut("harness")
        {
            harness["ground_truth_load_seconds"] = load.as_secs_f64().into();
        }
        rows.push(outcome);
    }
    (rows, skipped)
}

/// The IoU types a detector's results are scored with on a ground truth: what the detector
/// produces, less keypoints when the ground truth is not a keypoint file.
fn scored_iou_types(detector: &dyn Detector, kind: GroundTruthKind) -> Vec<IouType> {
    let mut types = detector.iou_types();
    types.sort();
    types.dedup();
    types.retain(|t| *t != IouType::Keypoints || kind == GroundTruthKind::Keypoints);
    types
}

#[allow(clippy::too_many_arguments)]
fn run_at_batch(
    spec: &ModelSpec,
    detector: &mut dyn Detector,
    dataset: &Arc<Dataset>,
    ground_truth: Option<Arc<GroundTruth>>,
    decode: &Arc<DecodeFn>,
    options: &ScenarioOptions,
    batch: usize,
    observer: &dyn Observer,
) -> ModelOutcome {
    let run_options = RunOptions {
        warmup: options.warmup,
        batch_size: batch,
        decode: options.decode.for_batch(batch),
    };
    let iou_types = scored_iou_types(detector, spec.ground_truth);
    let evaluators: Result<Vec<Evaluator>, String> = match &ground_truth {
        None => Ok(Vec::new()),
        Some(gt) => iou_types
            .iter()
            .map(|&t| {
                // Scored on the run's images only (pycocotools' `params.imgIds`), so that a
                // `--limit`ed run is not charged with the images it never saw; failed images
                // are among them and count as misses.
                let mut params = EvalParams::new(t);
                params.image_ids = Some(dataset.images.iter().map(|i| i.id).collect());
                Evaluator::new(gt.clone(), params).map_err(|e| e.to_string())
            })
            .collect(),
    };
    let evaluators = match evaluators {
        Ok(evaluators) => evaluators,
        Err(reason) => {
            return ModelOutcome::failed(
                spec,
                batch,
                Some(dataset),
                &format!("evaluation: {reason}"),
            );
        }
    };
    let mut scoring = Scoring::start(evaluators, options.evaluation);

    let label = if batch == 1 {
        spec.name.clone()
    } else {
        format!("{} (batch {batch})", spec.name)
    };
    observer.message(&format!(
        "{label}: {} images; decode {}",
        dataset.images.len(),
        run_options.decode.describe()
    ));
    observer.start_pass(&label, dataset.images.len());
    let images = Arc::new(dataset.images.clone());
    let run = run_detector(
        detector,
        images,
        decode.clone(),
        &run_options,
        &|n| observer.advance(n),
        &mut |image_id, detections| scoring.add_image(image_id, detections),
    );
    observer.finish_pass();
    let run = match run {
        Ok(run) => run,
        Err(failure) => {
            let reason = failure.to_string();
            observer.message(&format!("{label}: failed: {reason}"));
            let mut row = failed_row(spec, batch, Some(dataset), &reason);
            row.provenance = provenance(detector, &run_options, options.evaluation, None);
            row.backend = backend_of(detector).or(row.backend);
            return ModelOutcome {
                result: row,
                detections: Vec::new(),
            };
        }
    };
    let eval_start = Instant::now();
    let summaries = scoring.finish(&run.detections);
    // What evaluation adds to the run's wall time: all of it in after-run mode, the wait for
    // the background thread to catch up and accumulate in overlap mode.
    let eval_time = eval_start.elapsed();
    let mut result = ModelResult {
        name: spec.name.clone(),
        status: "ok".to_owned(),
        family: spec.family.clone(),
        input: spec.input.clone(),
        model: spec.file.clone(),
        backend: backend_of(detector).or_else(|| spec.requested_backend.clone()),
        batch_size: batch,
        dataset: dataset.identity(),
        bbox: None,
        segm: None,
        keypoints: None,
        latency: Some(run.latency.clone()),
        detections_per_image: run.detections_per_image.clone(),
        failed_images: run.failed_images.clone(),
        reference_agreement: None,
        provenance: provenance(
            detector,
            &run_options,
            options.evaluation,
            Some((&run, eval_time)),
        ),
    };
    match summaries {
        Ok(summaries) => {
            for summary in summaries {
                let accuracy = to_accuracy(&summary);
                match summary.iou_type {
                    IouType::Bbox => result.bbox = Some(accuracy),
                    IouType::Segm => result.segm = Some(accuracy),
                    IouType::Keypoints => result.keypoints = Some(accuracy),
                }
            }
        }
        Err(reason) => {
            result.status = format!("failed: evaluation: {reason}");
            observer.message(&format!("{label}: {}", result.status));
        }
    }
    ModelOutcome {
        result,
        detections: run.detections,
    }
}

/// Feeds the evaluators during the run (overlap) or after it.
enum Scoring {
    None,
    Overlap {
        background: BackgroundEvaluator,
        error: Option<String>,
    },
    AfterRun(Vec<Evaluator>),
}

impl Scoring {
    fn start(evaluators: Vec<Evaluator>, timing: EvalTiming) -> Self {
        if evaluators.is_empty() {
            return Scoring::None;
        }
        match timing {
            EvalTiming::Overlap => Scoring::Overlap {
                background: BackgroundEvaluator::spawn(evaluators),
                error: None,
            },
            EvalTiming::AfterRun => Scoring::AfterRun(evaluators),
        }
    }

    fn add_image(&mut self, image_id: u64, detections: &[Detection]) {
        if let Scoring::Overlap { background, error } = self
            && error.is_none()
            && let Err(e) = background.add_image(image_id, detections.to_vec())
        {
            *error = Some(e.to_string());
        }
    }

    /// The summaries, one per IoU type in evaluator order. `all` are the run's detections, in
    /// image order (used in after-run mode).
    fn finish(&mut self, all: &[Detection]) -> Result<Vec<EvalSummary>, String> {
        match std::mem::replace(self, Scoring::None) {
            Scoring::None => Ok(Vec::new()),
            Scoring::Overlap { background, .. } => background.finish().map_err(|e| e.to_string()),
            Scoring::AfterRun(mut evaluators) => {
                // The pass is over and nothing else runs: every core scores.
                let images: Vec<(u64, &[Detection])> = all
                    .chunk_by(|a, b| a.image_id == b.image_id)
                    .map(|image| (image[0].image_id, image))
                    .collect();
                for evaluator in &mut evaluators {
                    evaluator
                        .add_images_parallel(&images)
                        .map_err(|e| e.to_string())?;
                }
                evaluators
                    .into_iter()
                    .map(|e| e.finish().map_err(|e| e.to_string()))
                    .collect()
            }
        }
    }
}

fn to_accuracy(summary: &EvalSummary) -> Accuracy {
    Accuracy {
        stats: summary.stats.clone(),
        per_class: summary
            .per_class
            .iter()
            .map(|c| ClassAp {
                category_id: c.category_id,
                name: c.name.clone(),
                ap: c.ap,
            })
            .collect(),
    }
}

/// The engine description a pipeline reports in its provenance (`"backend"` key).
fn backend_of(detector: &dyn Detector) -> Option<BackendDescription> {
    let provenance = detector.provenance();
    serde_json::from_value(provenance.get("backend")?.clone()).ok()
}

/// `{"pipeline": <the detector's provenance>, "harness": <how it was driven>}`.
fn provenance(
    detector: &dyn Detector,
    run_options: &RunOptions,
    evaluation: EvalTiming,
    run: Option<(&DetectorRun, Duration)>,
) -> serde_json::Value {
    let mut harness = serde_json::json!({
        "warmup_iterations": run_options.warmup,
        "batch_size": run_options.batch_size,
        "decode": run_options.decode.to_json(),
        "evaluation": evaluation.as_str(),
    });
    if let Some((run, eval_time)) = run {
        harness["decode_wait_seconds"] = run.decode_wait.as_secs_f64().into();
        harness["other_processes_cpu_share"] = run.other_cpu_share.into();
        harness["warmup_failures"] = run.warmup_failures.into();
        harness["evaluation_seconds_after_pass"] = eval_time.as_secs_f64().into();
    }
    serde_json::json!({
        "pipeline": detector.provenance(),
        "harness": harness,
    })
}

/// A row for a model that produced nothing: status `failed: <reason>`, no stats, no latency.
pub fn failed_row(
    spec: &ModelSpec,
    batch: usize,
    dataset: Option<&Dataset>,
    reason: &str,
) -> ModelResult {
    ModelResult {
        name: spec.name.clone(),
        status: format!("failed: {reason}"),
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
    }
}
