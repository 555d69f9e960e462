//! One model at one batch size: the evaluators for its ground truth, the timed pass, the
//! scoring (during the pass or after it) and the row, with the provenance of how it was driven.

use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_eval::{
    BackgroundEvaluator, Detection, EvalError, EvalParams, EvalSummary, Evaluator, GroundTruth,
    IouType,
};

use crate::dataset::{Dataset, GroundTruthKind};
use crate::prefetch::DecodeFn;
use crate::results::{Accuracy, ClassAp, ModelResult, Status};
use crate::runner::{DetectorRun, RunFailure, RunOptions, run_detector};
use crate::scenario::{EvalTiming, ModelOutcome, ModelSpec, Observer, ScenarioOptions, failed_row};
use crate::sut::Detector;

/// `provenance.harness.evaluation` of a shard's row: nothing is scored until the merge.
pub const DEFERRED_SCORING: &str = "deferred to detbench merge";

/// Everything one batch size of one model needs.
pub(crate) struct BatchRun<'a> {
    pub spec: &'a ModelSpec,
    pub detector: &'a mut dyn Detector,
    pub dataset: &'a Arc<Dataset>,
    /// `None` for a speed-only run.
    pub ground_truth: Option<Arc<GroundTruth>>,
    pub decode: &'a Arc<DecodeFn>,
    pub options: &'a ScenarioOptions,
    pub observer: &'a dyn Observer,
}

impl BatchRun<'_> {
    /// Runs the pass at `batch` and builds its row; `Err` when the run was interrupted
    /// ([`crate::interrupt`]) before the pass finished.
    pub fn run(mut self, batch: usize) -> Result<ModelOutcome, RunFailure> {
        let run_options = RunOptions {
            warmup: self.options.warmup,
            batch_size: batch,
            decode: self.options.decode,
        };
        let evaluators = match self.evaluators() {
            Ok(evaluators) => evaluators,
            Err(e) => {
                let reason = format!("evaluation: {e}");
                return Ok(ModelOutcome::failed(
                    self.spec,
                    batch,
                    Some(self.dataset),
                    &reason,
                ));
            }
        };
        let mut scoring = Scoring::start(evaluators, self.options.evaluation);
        let label = if batch == 1 {
            self.spec.name.clone()
        } else {
            format!("{} (batch {batch})", self.spec.name)
        };
        let images = self.dataset.images.len();
        self.observer.message(&format!(
            "{label}: {images} images; decode {}",
            run_options.decode.describe(batch)
        ));
        self.observer.start_pass(&label, images);
        let run = run_detector(
            self.detector,
            Arc::new(self.dataset.images.clone()),
            self.decode.clone(),
            &run_options,
            &|n| self.observer.advance(n),
            &mut |image_id, detections| scoring.add_image(image_id, detections),
        );
        self.observer.finish_pass();
        let warnings = self.take_warnings(&label);
        let run = match run {
            Ok(run) => run,
            Err(interrupted @ RunFailure::Interrupted { .. }) => return Err(interrupted),
            Err(failure) => {
                let mut outcome = self.failed_pass(&label, &run_options, failure);
                record_warnings(&mut outcome.result, warnings);
                return Ok(outcome);
            }
        };
        let eval_start = Instant::now();
        let summaries = scoring.finish(&run.detections);
        // What evaluation adds to the run's wall time: all of it in after-run mode, the wait for
        // the background thread to catch up and accumulate in overlap mode.
        let eval_time = eval_start.elapsed();
        let mut result = self.row(&run_options, &run, eval_time);
        record_warnings(&mut result, warnings);
        if self.options.defer_scoring
            && let Some(harness) = result.provenance.get_mut("harness")
        {
            harness["evaluation"] = DEFERRED_SCORING.into();
        }
        match summaries {
            Ok(summaries) => set_accuracy(&mut result, &summaries),
            Err(e) => {
                result.status = Status::Failed(format!("evaluation: {e}"));
                self.observer
                    .message(&format!("{label}: {}", result.status));
            }
        }
        Ok(ModelOutcome {
            result,
            detections: run.detections,
            iou_types: scored_iou_types(&*self.detector, self.spec.ground_truth),
        })
    }

    /// The detector's warnings of the pass (a quantized model that detects nothing), shown to
    /// the user as they are taken.
    fn take_warnings(&mut self, label: &str) -> Vec<String> {
        let warnings = self.detector.take_warnings();
        for warning in &warnings {
            self.observer
                .message(&format!("{label}: warning: {warning}"));
        }
        warnings
    }

    /// One evaluator per IoU type scored, on the run's images only (pycocotools'
    /// `params.imgIds`), so that a `--limit`ed run is not charged with the images it never saw;
    /// failed images are among them and count as misses.
    fn evaluators(&self) -> Result<Vec<Evaluator>, EvalError> {
        let Some(gt) = &self.ground_truth else {
            return Ok(Vec::new());
        };
        let image_ids: Vec<u64> = self.dataset.images.iter().map(|i| i.id).collect();
        evaluators(
            gt,
            &scored_iou_types(&*self.detector, self.spec.ground_truth),
            &image_ids,
        )
    }

    /// The row of a pass that produced nothing, with what is known of the engine.
    fn failed_pass(
        self,
        label: &str,
        run_options: &RunOptions,
        failure: RunFailure,
    ) -> ModelOutcome {
        let reason = failure.to_string();
        self.observer.message(&format!("{label}: failed: {reason}"));
        let mut row = failed_row(
            self.spec,
            run_options.batch_size,
            Some(self.dataset),
            &reason,
        );
        row.provenance = provenance(&*self.detector, run_options, self.options.evaluation, None);
        row.backend = self.detector.backend().or(row.backend);
        ModelOutcome {
            result: row,
            detections: Vec::new(),
            iou_types: Vec::new(),
        }
    }

    /// The row of a pass that ran (accuracy is added by the caller).
    fn row(&self, run_options: &RunOptions, run: &DetectorRun, eval_time: Duration) -> ModelResult {
        let spec = self.spec;
        ModelResult {
            name: spec.name.clone(),
            status: Status::Ok,
            family: spec.family.clone(),
            input: spec.input.clone(),
            model: spec.file.clone(),
            backend: self
                .detector
                .backend()
                .or_else(|| spec.requested_backend.clone()),
            batch_size: run_options.batch_size,
            dataset: self.dataset.identity(),
            bbox: None,
            segm: None,
            keypoints: None,
            latency: Some(run.latency.clone()),
            detections_per_image: run.detections_per_image.clone(),
            failed_images: run.failed_images.clone(),
            reference_agreement: None,
            provenance: provenance(
                &*self.detector,
                run_options,
                self.options.evaluation,
                Some((run, eval_time)),
            ),
            scenario: None,
            sharding: None,
        }
    }
}

/// Records a pass's warnings in its row's provenance (`"warnings"`, only when there are some).
fn record_warnings(result: &mut ModelResult, warnings: Vec<String>) {
    if !warnings.is_empty() {
        result.provenance["warnings"] = serde_json::json!(warnings);
    }
}

/// One evaluator per IoU type, restricted to `image_ids` (pycocotools' `params.imgIds`, in the
/// run's order).
pub(crate) fn evaluators(
    gt: &Arc<GroundTruth>,
    iou_types: &[IouType],
    image_ids: &[u64],
) -> Result<Vec<Evaluator>, EvalError> {
    iou_types
        .iter()
        .map(|&iou_type| {
            let mut params = EvalParams::new(iou_type);
            params.image_ids = Some(image_ids.to_vec());
            Evaluator::new(gt.clone(), params)
        })
        .collect()
}

/// Scores `all` (a run's detections, in image order) with every core: what a run does after
/// its timed pass, and what `detbench merge` does over the union of its shards.
pub(crate) fn score_after_run(
    mut evaluators: Vec<Evaluator>,
    all: &[Detection],
) -> Result<Vec<EvalSummary>, EvalError> {
    let images: Vec<(u64, &[Detection])> = all
        .chunk_by(|a, b| a.image_id == b.image_id)
        .map(|image| (image[0].image_id, image))
        .collect();
    for evaluator in &mut evaluators {
        evaluator.add_images_parallel(&images)?;
    }
    evaluators.into_iter().map(Evaluator::finish).collect()
}

/// The IoU types a detector's results are scored with on a ground truth: what the detector
/// produces, less keypoints when the ground truth is not a keypoint file.
pub(crate) fn scored_iou_types(detector: &dyn Detector, kind: GroundTruthKind) -> Vec<IouType> {
    let mut types = detector.iou_types();
    types.sort();
    types.dedup();
    types.retain(|t| *t != IouType::Keypoints || kind == GroundTruthKind::Keypoints);
    types
}

pub(crate) fn set_accuracy(result: &mut ModelResult, summaries: &[EvalSummary]) {
    for summary in summaries {
        let accuracy = Accuracy {
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
        };
        match summary.iou_type {
            IouType::Bbox => result.bbox = Some(accuracy),
            IouType::Segm => result.segm = Some(accuracy),
            IouType::Keypoints => result.keypoints = Some(accuracy),
        }
    }
}

/// Feeds the evaluators during the run (overlap) or after it.
enum Scoring {
    None,
    Overlap {
        background: BackgroundEvaluator,
        /// Set when the background thread refused an image; it reports why at `finish`.
        stopped: bool,
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
                stopped: false,
            },
            EvalTiming::AfterRun => Scoring::AfterRun(evaluators),
        }
    }

    fn add_image(&mut self, image_id: u64, detections: &[Detection]) {
        if let Scoring::Overlap {
            background,
            stopped,
        } = self
            && !*stopped
            && background.add_image(image_id, detections.to_vec()).is_err()
        {
            *stopped = true;
        }
    }

    /// The summaries, one per IoU type in evaluator order. `all` are the run's detections, in
    /// image order (used in after-run mode).
    fn finish(&mut self, all: &[Detection]) -> Result<Vec<EvalSummary>, EvalError> {
        match std::mem::replace(self, Scoring::None) {
            Scoring::None => Ok(Vec::new()),
            Scoring::Overlap { background, .. } => background.finish(),
            // The pass is over and nothing else runs: every core scores.
            Scoring::AfterRun(evaluators) => score_after_run(evaluators, all),
        }
    }
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
        "decode": run_options.decode.to_json(run_options.batch_size),
        "evaluation": evaluation.as_str(),
    });
    if let Some((run, eval_time)) = run {
        harness["decode_wait_seconds"] = run.decode_wait.as_secs_f64().into();
        harness["other_processes_cpu_share"] = run.other_cpu_share.into();
        harness["warmup_failures"] = run.warmup_failures.into();
        harness["evaluation_seconds_after_pass"] = eval_time.as_secs_f64().into();
        harness["timed_pass_started_unix_s"] = run.started_unix_s.into();
        harness["timed_pass_ended_unix_s"] = run.ended_unix_s.into();
    }
    serde_json::json!({
        "pipeline": detector.provenance(),
        "harness": harness,
    })
}
