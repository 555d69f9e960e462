//! MLPerf LoadGen's scenarios (SingleStream, MultiStream, Server, Offline) over any
//! [`Detector`], through `detbench-loadgen`: the dataset becomes a query sample library of
//! decoded images ([`qsl`]), the model a pool of workers completing LoadGen's samples
//! ([`sut`]), and each test a row whose [`record::ScenarioRecord`] holds LoadGen's verdict,
//! statistics, settings and raw latencies. Accuracy mode keeps each sample's detections and
//! scores them with the COCO evaluator, as a plain `detbench run` does.
//!
//! Like LoadGen, this never knows the model: it talks to the [`Detector`] trait.

pub mod qsl;
pub mod record;
pub mod sut;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_eval::{Detection, EvalParams, EvalSummary, Evaluator, GroundTruth};
use detbench_loadgen::{
    HarnessOptions, TestMode, TestOutcome, TestSettings, check_log_dir, start_test,
};

use crate::batch_run::{scored_iou_types, set_accuracy};
use crate::cache::DatasetCache;
use crate::contention::{CpuSnapshot, OTHER_CPU_SHARE_LIMIT};
use crate::dataset::Dataset;
use crate::prefetch::{DecodeFn, decode_one};
use crate::results::{ModelResult, SkippedRun, Status};
use crate::runner::{RunFailure, WarmUp, check_batch, warm_up};
use crate::scenario::{ModelOutcome, ModelSpec, Observer, failed_row};
use crate::sut::{Detector, DetectorError};
use crate::timing::summarize;
use qsl::ImageQsl;
use record::{ScenarioRecord, SutDescription};
use sut::{Batching, DetectorSut, SUT_WORK, SutReport};

/// Images the query sample library holds for a performance run unless LoadGen's
/// `performance_sample_count_override` says otherwise: the memory of `detbench run`'s default
/// decode chunk (about 0.9 MB per COCO image).
pub const DEFAULT_PERFORMANCE_SAMPLE_COUNT: usize = 512;

/// How each model is run under LoadGen.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// LoadGen's settings after defaults, config files and flags.
    pub settings: TestSettings,
    /// Where the settings came from, lowest precedence first (recorded with each row).
    pub settings_sources: Vec<String>,
    /// One test per entry: Offline and MultiStream take `--batch` sizes, Server its
    /// `--max-batch` with a timeout, SingleStream batch 1.
    pub batchings: Vec<Batching>,
    /// SUT worker threads, each with its own opened model.
    pub workers: usize,
    /// Untimed calls per worker before each test.
    pub warmup: usize,
    /// Images the query sample library holds for a performance run.
    pub performance_sample_count: usize,
    /// Threads decoding the images LoadGen loads.
    pub decode_threads: usize,
    /// LoadGen's logs go to `log_root/<row>/` (written by `detbench_assets::write_atomic`).
    pub log_root: PathBuf,
    pub harness: HarnessOptions,
}

/// Whether a mode scores accuracy.
fn scores_accuracy(mode: TestMode) -> bool {
    matches!(mode, TestMode::AccuracyOnly | TestMode::SubmissionRun)
}

/// Runs one model under LoadGen, one test per batching of `options`. `open` is called once per
/// worker; a model that cannot be opened gets one failed row per batching.
pub fn run_model_loadgen(
    spec: &ModelSpec,
    open: &dyn Fn() -> Result<Box<dyn Detector>, DetectorError>,
    datasets: &mut DatasetCache,
    decode: &Arc<DecodeFn>,
    options: &LoadgenOptions,
    observer: &dyn Observer,
) -> (Vec<ModelOutcome>, Vec<SkippedRun>) {
    let fail_all = |dataset: Option<&Dataset>, reason: &str| {
        let rows = options
            .batchings
            .iter()
            .map(|b| ModelOutcome::failed(spec, b.max_batch, dataset, reason))
            .collect();
        (rows, Vec::new())
    };
    let dataset = match datasets.dataset(spec.ground_truth) {
        Ok(dataset) => dataset,
        Err(e) => return fail_all(None, &format!("dataset: {e}")),
    };
    let ground_truth = if scores_accuracy(options.settings.mode) {
        match datasets.ground_truth(spec.ground_truth) {
            Ok(gt) => gt,
            Err(e) => return fail_all(Some(&dataset), &format!("ground truth: {e}")),
        }
    } else {
        None
    };
    let mut detectors = Vec::new();
    for _ in 0..options.workers.max(1) {
        match open() {
            Ok(detector) => detectors.push(detector),
            Err(e) => {
                let reason = e.to_string();
                observer.message(&format!("{}: failed to open: {reason}", spec.name));
                return fail_all(Some(&dataset), &reason);
            }
        }
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for &batching in &options.batchings {
        if let Err(why) = check_batch(detectors[0].batch_support(), batching.max_batch) {
            let reason = match why {
                RunFailure::BatchFixed { fixed, .. } => format!(
                    "model's batch is fixed at {fixed}; skipping batch {}",
                    batching.max_batch
                ),
                other => format!("{other}; skipping batch {}", batching.max_batch),
            };
            observer.message(&format!("{}: {reason}", spec.name));
            skipped.push(SkippedRun {
                name: spec.name.clone(),
                batch_size: batching.max_batch,
                reason,
            });
            continue;
        }
        let test = Test {
            spec,
            dataset: &dataset,
            ground_truth: ground_truth.clone(),
            decode,
            options,
            observer,
            batching,
        };
        rows.push(test.run(&mut detectors));
        if detectors.len() < options.workers.max(1) {
            // A worker thread died (calls are guarded, so this is a bug): stop here.
            observer.message(&format!("{}: a SUT worker was lost", spec.name));
            break;
        }
    }
    (rows, skipped)
}

/// One LoadGen test of one model at one batching.
struct Test<'a> {
    spec: &'a ModelSpec,
    dataset: &'a Arc<Dataset>,
    ground_truth: Option<Arc<GroundTruth>>,
    decode: &'a Arc<DecodeFn>,
    options: &'a LoadgenOptions,
    observer: &'a dyn Observer,
    batching: Batching,
}

/// What a finished test hands to [`Test::row`].
struct Finished {
    outcome: TestOutcome,
    report: SutReport,
    qsl: Arc<ImageQsl>,
    log_dir: PathBuf,
    elapsed: Duration,
    other_cpu_share: Option<f64>,
    warm: WarmUp,
}

impl Test<'_> {
    fn failed(&self, reason: &str) -> ModelOutcome {
        self.observer
            .message(&format!("{}: failed: {reason}", self.spec.name));
        ModelOutcome::failed(
            self.spec,
            self.batching.max_batch,
            Some(self.dataset),
            reason,
        )
    }

    /// Prepares the logs folder, warms the workers up, runs LoadGen, builds the row.
    fn run(self, detectors: &mut Vec<Box<dyn Detector>>) -> ModelOutcome {
        let settings = &self.options.settings;
        let mut dir = format!("{}-{}", self.spec.name, settings.scenario);
        if self.batching.max_batch > 1 {
            dir.push_str(&format!("-b{}", self.batching.max_batch));
        }
        let log_dir = self.options.log_root.join(dir);
        // Before anything is timed: a folder that cannot take the logs fails the row now.
        if let Err(e) = std::fs::create_dir_all(&log_dir)
            .map_err(|e| e.to_string())
            .and_then(|()| check_log_dir(&log_dir).map_err(|e| e.to_string()))
        {
            return self.failed(&format!("LoadGen logs folder {}: {e}", log_dir.display()));
        }
        let warm = match self.warm_up(detectors) {
            Ok(warm) => warm,
            Err(e) => return self.failed(&e.to_string()),
        };
        let qsl = Arc::new(ImageQsl::new(
            format!(
                "{} ({} images)",
                self.dataset.image_dir.display(),
                self.dataset.images.len()
            ),
            Arc::new(self.dataset.images.clone()),
            self.decode.clone(),
            self.options.performance_sample_count,
            self.options.decode_threads,
        ));
        let backend = detectors[0].backend().map(|b| b.label());
        let name = format!(
            "{} on {}; per sample: preprocess + inference + postprocess",
            self.spec.name,
            backend.as_deref().unwrap_or("its own engine")
        );
        self.observer.message(&format!(
            "{}: LoadGen {} {}, {} images ({} held for performance), {}; logs in {}",
            self.spec.name,
            settings.scenario,
            settings.mode,
            self.dataset.images.len(),
            settings.performance_sample_count(qsl_performance(&qsl)),
            describe(self.batching, detectors.len()),
            log_dir.display()
        ));
        let sut = DetectorSut::start(name, std::mem::take(detectors), qsl.clone(), self.batching);
        let cpu_before = CpuSnapshot::now();
        let started = Instant::now();
        let outcome = start_test(&sut, qsl.as_ref(), settings, &self.options.harness);
        let elapsed = started.elapsed();
        let other_cpu_share = cpu_before
            .zip(CpuSnapshot::now())
            .and_then(|(before, after)| before.other_share_since(&after));
        let (returned, report) = sut.stop();
        *detectors = returned;
        match outcome {
            Err(e) => self.failed(&format!("LoadGen: {e}")),
            Ok(outcome) => self.row(
                Finished {
                    outcome,
                    report,
                    qsl,
                    log_dir,
                    elapsed,
                    other_cpu_share,
                    warm,
                },
                detectors.first().map(|d| d.as_ref()),
            ),
        }
    }

    /// `warmup` untimed calls per worker at the test's batch size, on the first images.
    fn warm_up(&self, detectors: &mut [Box<dyn Detector>]) -> Result<WarmUp, RunFailure> {
        let warmup = self.options.warmup;
        let head: Vec<_> = self
            .dataset
            .images
            .iter()
            .take(warmup.max(self.batching.max_batch))
            .enumerate()
            .map(|(i, image)| decode_one(i, image, self.decode.as_ref()))
            .collect();
        let mut total = WarmUp {
            calls: 0,
            failures: 0,
        };
        for detector in detectors.iter_mut() {
            let warm = warm_up(detector.as_mut(), &head, warmup, self.batching.max_batch)?;
            total.calls += warm.calls;
            total.failures += warm.failures;
        }
        Ok(total)
    }

    /// The row of a test LoadGen finished: its record, the accuracy when scored, the logs.
    fn row(&self, mut done: Finished, detector: Option<&dyn Detector>) -> ModelOutcome {
        // The SUT's calls over the test's wall time without LoadGen's sample loading.
        let serving = done.elapsed.saturating_sub(done.qsl.load_wall_time());
        let calls = std::mem::take(&mut done.report.calls).finish(
            self.options.warmup,
            self.batching.max_batch,
            serving,
            false,
        );
        let sut = SutDescription {
            work_per_sample: SUT_WORK.to_owned(),
            workers: self.options.workers.max(1),
            batching: self.batching,
            warmup_calls: self.options.warmup,
            performance_sample_count: qsl_performance(&done.qsl),
        };
        let mut record = ScenarioRecord::new(
            &done.outcome,
            self.options.settings_sources.clone(),
            sut,
            &done.report,
            calls,
            &done.qsl.decode_times_ms(),
        );
        record.log_dir = done.log_dir.display().to_string();
        record.notes = self.notes(&done, &record);
        let mut status = Status::Ok;
        let mut write = |path: &Path, bytes: &[u8]| {
            detbench_assets::write_atomic(path, bytes).map_err(std::io::Error::other)
        };
        match done.outcome.write_logs(&done.log_dir, &mut write) {
            Ok(paths) => record.log_files = paths.iter().map(|p| p.display().to_string()).collect(),
            Err(e) => status = Status::Failed(format!("LoadGen logs: {e}")),
        }
        let mut result = failed_row(self.spec, self.batching.max_batch, Some(self.dataset), "");
        result.status = status;
        result.backend = detector
            .and_then(|d| d.backend())
            .or_else(|| self.spec.requested_backend.clone());
        result.failed_images = std::mem::take(&mut done.report.failed_images);
        result.provenance = serde_json::json!({
            "pipeline": detector.map(|d| d.provenance()),
            "harness": {
                "loadgen": format!("detbench-loadgen (MLPerf LoadGen {})", LOADGEN_VERSION),
                "warmup_iterations": self.options.warmup,
                "warmup_failures": done.warm.failures,
                "decode": {"mode": "loadgen-qsl", "threads": self.options.decode_threads},
                "other_processes_cpu_share": done.other_cpu_share,
                "test_seconds": done.elapsed.as_secs_f64(),
            },
        });
        let mut detections = Vec::new();
        if record.scores_accuracy() {
            let lists = std::mem::take(&mut done.report.detections);
            let counts: Vec<f64> = lists.iter().flatten().map(|l| l.len() as f64).collect();
            result.detections_per_image = summarize(&counts);
            detections = lists.into_iter().flatten().flatten().collect();
            self.score(detector, &detections, &mut result);
        }
        self.observer
            .message(&verdict(&self.spec.name, &record, &result));
        result.scenario = Some(record);
        ModelOutcome {
            result,
            detections,
            // A scenario run is scored here, never sharded (`--scenario` with `--shard` is
            // refused), so no merge needs them.
            iou_types: Vec::new(),
        }
    }

    /// Scores the accuracy test's detections over every image of the dataset, as `detbench
    /// run` does (images without detections count as misses).
    fn score(
        &self,
        detector: Option<&dyn Detector>,
        detections: &[Detection],
        row: &mut ModelResult,
    ) {
        let (Some(gt), Some(detector)) = (&self.ground_truth, detector) else {
            return;
        };
        let images: Vec<(u64, &[Detection])> = detections
            .chunk_by(|a, b| a.image_id == b.image_id)
            .map(|image| (image[0].image_id, image))
            .collect();
        let summaries: Result<Vec<EvalSummary>, _> =
            scored_iou_types(detector, self.spec.ground_truth)
                .into_iter()
                .map(|iou_type| {
                    let mut params = EvalParams::new(iou_type);
                    params.image_ids = Some(self.dataset.images.iter().map(|i| i.id).collect());
                    let mut evaluator = Evaluator::new(gt.clone(), params)?;
                    evaluator.add_images_parallel(&images)?;
                    evaluator.finish()
                })
                .collect();
        match summaries {
            Ok(summaries) => set_accuracy(row, &summaries),
            Err(e) => row.status = Status::Failed(format!("evaluation: {e}")),
        }
    }

    /// What makes the test's numbers less trustworthy.
    fn notes(&self, done: &Finished, record: &ScenarioRecord) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(share) = done.other_cpu_share
            && share > OTHER_CPU_SHARE_LIMIT
        {
            notes.push(format!(
                "other processes used {:.0}% of the machine's CPU during the test",
                share * 100.0
            ));
        }
        if record.failed_samples > 0 {
            notes.push(format!(
                "{} sample completions failed (completed empty; their latencies are in LoadGen's \
                 statistics)",
                record.failed_samples
            ));
        }
        if done.warm.failures > 0 {
            notes.push(format!(
                "{} of {} warm-up calls failed",
                done.warm.failures, done.warm.calls
            ));
        }
        if record.scores_accuracy() && self.ground_truth.is_none() {
            notes.push("no ground truth: accuracy not scored".into());
        }
        notes
    }
}

/// The LoadGen release `detbench-loadgen` ports.
pub const LOADGEN_VERSION: &str = "6.0.17";

fn qsl_performance(qsl: &ImageQsl) -> usize {
    use detbench_loadgen::QuerySampleLibrary;
    qsl.performance_sample_count()
}

/// `1 worker, batch 1`, `2 workers, batch up to 4 waiting up to 2 ms`.
fn describe(batching: Batching, workers: usize) -> String {
    let workers = if workers == 1 {
        "1 worker".to_owned()
    } else {
        format!("{workers} workers")
    };
    if batching.timeout.is_zero() {
        format!("{workers}, batch up to {}", batching.max_batch)
    } else {
        format!(
            "{workers}, batch up to {} waiting up to {} ms",
            batching.max_batch,
            crate::timing::millis(batching.timeout)
        )
    }
}

/// `yolox_nano: Server: Completed samples per second = 41.2; VALID`.
fn verdict(name: &str, record: &ScenarioRecord, row: &ModelResult) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &record.headline {
        parts.push(format!("{} = {}", h.metric, h.value));
    }
    if let Some(v) = record.validity {
        parts.push(if v == detbench_loadgen::Validity::Valid {
            "VALID".to_owned()
        } else {
            "INVALID".to_owned()
        });
    }
    if let Some(qps) = record.peak_qps {
        parts.push(format!("peak QPS {qps}"));
    }
    if let Some(bbox) = &row.bbox {
        parts.push(format!("bbox AP {:.4}", bbox.stats[0]));
    }
    format!("{name}: {}: {}", record.label(), parts.join("; "))
}
