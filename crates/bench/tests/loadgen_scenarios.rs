//! `run_model_loadgen` end to end with a fake detector of controlled latency on the shipped
//! val2017 subset, one test per LoadGen scenario: the fake returns the ground truth (so an
//! accuracy test must score AP exactly 1), sleeps a known time per call, counts overlapping
//! calls and call sizes, and can fail on one image.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use detbench_bench::dataset::{DatasetOptions, GroundTruthKind};
use detbench_bench::mlperf::sut::Batching;
use detbench_bench::mlperf::{LoadgenOptions, run_model_loadgen};
use detbench_bench::prefetch::image_decoder;
use detbench_bench::results::{ModelFile, ModelResult, ScenarioRecord, Status};
use detbench_bench::scenario::{DatasetCache, ModelSpec, Quiet};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
use detbench_eval::{Detection, IouType};
use detbench_loadgen::{HarnessOptions, Scenario, TestMode, TestSettings, Validity};

/// What the fake saw, readable by the test after the run.
#[derive(Default)]
struct Seen {
    /// Calls running right now, and the most ever at once.
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// Images per call, in call order (warm-up calls included).
    call_sizes: Mutex<Vec<usize>>,
}

/// Returns each image's ground-truth boxes after sleeping `per_call` (+ `per_image` per image).
struct Fake {
    boxes: Arc<HashMap<u64, Vec<Detection>>>,
    support: BatchSupport,
    per_call: Duration,
    per_image: Duration,
    fail_on: Option<u64>,
    seen: Arc<Seen>,
}

impl Detector for Fake {
    fn name(&self) -> &str {
        "fake"
    }
    fn batch_support(&self) -> BatchSupport {
        self.support
    }
    fn iou_types(&self) -> Vec<IouType> {
        vec![IouType::Bbox]
    }
    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({"fake": true})
    }
    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        let now = self.seen.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.seen.max_running.fetch_max(now, Ordering::SeqCst);
        self.seen.call_sizes.lock().unwrap().push(batch.len());
        let sleep = self.per_call + self.per_image * batch.len() as u32;
        clock.time(Stage::Inference, || std::thread::sleep(sleep));
        self.seen.running.fetch_sub(1, Ordering::SeqCst);
        if batch.iter().any(|i| Some(i.image_id) == self.fail_on) {
            return Err("the fake refuses this image".into());
        }
        Ok(batch
            .iter()
            .map(|i| self.boxes.get(&i.image_id).cloned().unwrap_or_default())
            .collect())
    }
}

/// Ground-truth boxes (non-crowd) by image id, straight from the annotation file.
fn ground_truth_boxes(path: &Path) -> HashMap<u64, Vec<Detection>> {
    let gt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut by_image: HashMap<u64, Vec<Detection>> = HashMap::new();
    for ann in gt["annotations"].as_array().unwrap() {
        if ann["iscrowd"].as_u64() == Some(1) {
            continue;
        }
        let b: Vec<f64> = ann["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let image_id = ann["image_id"].as_u64().unwrap();
        by_image.entry(image_id).or_default().push(Detection {
            image_id,
            category_id: ann["category_id"].as_u64().unwrap(),
            bbox: [b[0], b[1], b[2], b[3]],
            score: 1.0,
            mask: None,
            keypoints: None,
        });
    }
    by_image
}

struct Setup {
    settings: TestSettings,
    batching: Batching,
    workers: usize,
    per_call_ms: u64,
    per_image_ms: u64,
    support: BatchSupport,
    fail_on: Option<u64>,
    limit: Option<usize>,
}

impl Setup {
    fn new(scenario: Scenario) -> Self {
        let mut settings = TestSettings::new(scenario);
        settings.min_duration_ms = 300;
        settings.min_query_count = 64;
        Setup {
            settings,
            batching: Batching {
                max_batch: 1,
                timeout: Duration::ZERO,
            },
            workers: 1,
            per_call_ms: 2,
            per_image_ms: 0,
            support: BatchSupport::Dynamic { max: None },
            fail_on: None,
            limit: Some(40),
        }
    }

    /// Runs the fake under LoadGen; returns the row, its detections and what the fake saw.
    fn run(self) -> (ModelResult, Vec<Detection>, Arc<Seen>) {
        let source = DatasetOptions {
            limit: self.limit,
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let mut cache = DatasetCache::new(source);
        let boxes = Arc::new(ground_truth_boxes(
            &detbench_assets::shared::instances_subset().unwrap(),
        ));
        let seen = Arc::new(Seen::default());
        let logs = tempfile::tempdir().unwrap();
        let options = LoadgenOptions {
            settings: self.settings,
            settings_sources: vec!["test".into()],
            batchings: vec![self.batching],
            workers: self.workers,
            warmup: 1,
            performance_sample_count: 512,
            decode_threads: 2,
            log_root: logs.path().to_path_buf(),
            harness: HarnessOptions::default(),
        };
        let spec = ModelSpec {
            name: "fake".into(),
            family: "Test".into(),
            input: "any".into(),
            file: ModelFile {
                file: "none".into(),
                sha256: None,
            },
            ground_truth: GroundTruthKind::Instances,
            requested_backend: None,
        };
        let open = || -> Result<Box<dyn Detector>, DetectorError> {
            Ok(Box::new(Fake {
                boxes: boxes.clone(),
                support: self.support,
                per_call: Duration::from_millis(self.per_call_ms),
                per_image: Duration::from_millis(self.per_image_ms),
                fail_on: self.fail_on,
                seen: seen.clone(),
            }))
        };
        let (mut rows, skipped) =
            run_model_loadgen(&spec, &open, &mut cache, &image_decoder(), &options, &Quiet);
        assert!(skipped.is_empty());
        assert_eq!(rows.len(), 1);
        let outcome = rows.remove(0);
        let row = outcome.result;
        let record = row.scenario.as_ref().expect("a scenario row");
        // LoadGen's three files are in the row's folder.
        for name in [
            "mlperf_log_summary.txt",
            "mlperf_log_detail.txt",
            "mlperf_log_accuracy.json",
        ] {
            assert!(
                Path::new(&record.log_dir).join(name).is_file(),
                "{name} in {}",
                record.log_dir
            );
        }
        (row, outcome.detections, seen)
    }
}

fn record(row: &ModelResult) -> &ScenarioRecord {
    row.scenario.as_ref().unwrap()
}

#[test]
fn single_stream_issues_one_sample_at_a_time_and_measures_the_call() {
    let mut setup = Setup::new(Scenario::SingleStream);
    setup.per_call_ms = 3;
    let (row, detections, seen) = setup.run();
    assert_eq!(row.status, Status::Ok, "{row:?}");
    let s = record(&row);
    let r = s.performance.as_ref().unwrap();
    assert_eq!(s.validity, Some(Validity::Valid), "{:?}", r.recommendations);
    assert!(r.query_count >= 64 && r.sample_count == r.query_count);
    // Never two calls at once, one image per call.
    assert_eq!(seen.max_running.load(Ordering::SeqCst), 1);
    assert!(seen.call_sizes.lock().unwrap().iter().all(|&n| n == 1));
    // Every sample took at least the fake's 3 ms, and LoadGen's p90 is a sample latency.
    assert!(
        r.sample_latency.min_ns >= 3_000_000,
        "{:?}",
        r.sample_latency
    );
    let p90 = r.target_percentile_latency_ns.unwrap();
    assert!(s.sample_latencies_ns.contains(&p90));
    assert_eq!(s.headline.as_ref().unwrap().value, p90 as f64);
    assert_eq!(s.sample_latencies_ns.len() as u64, r.sample_count);
    // Every call of the test is in the SUT's call report (no warm-up calls).
    let calls = s.sut_calls.as_ref().unwrap();
    assert_eq!(calls.end_to_end.count as u64, r.sample_count);
    assert!(calls.end_to_end.min >= 3.0);
    // Performance mode keeps no detections and scores nothing.
    assert!(detections.is_empty() && row.bbox.is_none());
    assert_eq!(s.mode, TestMode::PerformanceOnly);
}

#[test]
fn multi_stream_batches_each_query_into_one_call() {
    let mut setup = Setup::new(Scenario::MultiStream);
    setup.settings.min_query_count = 20;
    setup.batching.max_batch = 8;
    let (row, _, seen) = setup.run();
    let s = record(&row);
    let r = s.performance.as_ref().unwrap();
    assert_eq!(r.sample_count, 8 * r.query_count);
    // Each 8-sample query is one call of 8 (after the warm-up call of 8).
    let sizes = seen.call_sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| n == 8), "{sizes:?}");
    assert_eq!(sizes.len() as u64, r.query_count + 1);
    // The headline is the p99 of the query latencies.
    let q = r.query_latency.as_ref().unwrap();
    assert_eq!(r.target_percentile_latency_ns, q.reported(0.99));
    assert_eq!(s.query_latencies_ns.len() as u64, r.query_count);
    // Early stopping needs 662 queries at p99; 20 are not enough, so the run says INVALID.
    assert_eq!(s.validity, Some(Validity::Invalid));
    assert!(!r.early_stopping_met);
}

#[test]
fn offline_accuracy_covers_every_image_and_scores_ap_one() {
    let mut setup = Setup::new(Scenario::Offline);
    setup.settings.mode = TestMode::AccuracyOnly;
    setup.batching.max_batch = 4;
    setup.workers = 2;
    setup.per_call_ms = 0;
    setup.limit = None;
    let (row, detections, seen) = setup.run();
    assert_eq!(row.status, Status::Ok, "{row:?}");
    let s = record(&row);
    assert_eq!(s.accuracy_samples_issued, Some(206));
    assert!(s.validity.is_none() && s.performance.is_none());
    let stats = &row.bbox.as_ref().expect("accuracy is scored").stats;
    for i in [0, 1, 2, 8] {
        assert_eq!(stats[i], 1.0, "stat {i}: {stats:?}");
    }
    // Every image's ground truth came back, in image order.
    let ids: Vec<u64> = detections.iter().map(|d| d.image_id).collect();
    assert!(ids.is_sorted());
    assert_eq!(row.detections_per_image.as_ref().unwrap().count, 206);
    // Two workers took calls of at most 4 images.
    let sizes = seen.call_sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    assert_eq!(
        sizes.iter().sum::<usize>(),
        206 + 2 * 4,
        "206 samples + 2 warm-ups"
    );
}

#[test]
fn offline_performance_reports_samples_per_second_of_the_one_query() {
    let mut setup = Setup::new(Scenario::Offline);
    setup.settings.offline_expected_qps = 200.0;
    setup.settings.min_duration_ms = 500;
    setup.batching.max_batch = 4;
    setup.per_call_ms = 2;
    setup.per_image_ms = 1;
    let (row, _, seen) = setup.run();
    let s = record(&row);
    let r = s.performance.as_ref().unwrap();
    // LoadGen's query: max(min_query_count, 1.1 * 0.5 s * 200/s) = 110 samples in one query.
    assert_eq!((r.query_count, r.sample_count), (1, 110));
    let sizes = seen.call_sizes.lock().unwrap().clone();
    assert_eq!(sizes[1..].iter().sum::<usize>(), 110);
    assert!(
        sizes[1..].iter().all(|&n| n == 4 || n == 110 % 4),
        "{sizes:?}"
    );
    // 28 calls of at least 2 + 4 ms: the rate is below 4 / 6 ms = 667 samples/s.
    let rate = r.samples_per_second.unwrap();
    assert!(rate > 0.0 && rate < 667.0, "{rate}");
    assert_eq!(s.headline.as_ref().unwrap().value, rate);
}

#[test]
fn server_batches_dynamically_and_judges_the_latency_bound() {
    let mut setup = Setup::new(Scenario::Server);
    setup.settings.server_target_qps = 100.0;
    setup.settings.min_duration_ms = 1000;
    setup.settings.min_query_count = 100;
    setup.batching = Batching {
        max_batch: 4,
        timeout: Duration::from_millis(5),
    };
    setup.per_call_ms = 2;
    let (row, _, seen) = setup.run();
    let s = record(&row);
    let r = s.performance.as_ref().unwrap();
    assert!(r.perf_constraints_met.is_some());
    let sizes = seen.call_sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| (1..=4).contains(&n)), "{sizes:?}");
    // At 100 QPS a 5 ms wait gathers more than one sample into some calls.
    assert!(sizes[1..].iter().any(|&n| n > 1), "{sizes:?}");
    // No sample is faster than the fake's call.
    assert!(r.sample_latency.min_ns >= 2_000_000);

    // An overloaded server: 20 ms per call at 200 QPS misses a 50 ms bound.
    let mut setup = Setup::new(Scenario::Server);
    setup.settings.server_target_qps = 200.0;
    setup.settings.server_target_latency_ns = 50_000_000;
    setup.settings.min_duration_ms = 500;
    setup.settings.min_query_count = 50;
    setup.per_call_ms = 20;
    let (row, _, _) = setup.run();
    let r = record(&row).performance.as_ref().unwrap();
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.perf_constraints_met, Some(false));
    assert!(r.overlatency_query_count.unwrap() > 0);
}

#[test]
fn find_peak_qps_lands_below_the_fakes_capacity() {
    let mut setup = Setup::new(Scenario::Server);
    setup.settings.mode = TestMode::FindPeakPerformance;
    setup.settings.server_target_qps = 10.0;
    setup.settings.server_target_latency_ns = 25_000_000;
    setup.settings.server_find_peak_qps_decimals_of_precision = 0;
    setup.settings.min_duration_ms = 1000;
    setup.settings.min_query_count = 10;
    setup.per_call_ms = 10; // one worker: fewer than 100 samples/s
    let (row, _, _) = setup.run();
    let s = record(&row);
    let peak = s.peak_qps.expect("the base QPS passes");
    assert!(
        (10.0..=100.0).contains(&peak),
        "{peak}: {:?}",
        s.peak_search
    );
    assert!(s.peak_search.len() >= 3);
    assert!(s.peak_search.iter().any(|step| !step.perf_constraints_met));
}

#[test]
fn a_failing_image_completes_its_sample_and_is_recorded() {
    let mut setup = Setup::new(Scenario::Offline);
    setup.settings.mode = TestMode::AccuracyOnly;
    setup.per_call_ms = 0;
    setup.limit = Some(10);
    // The fourth image of the subset, by id.
    let source = DatasetOptions::default().resolve().unwrap();
    let fourth = DatasetCache::new(source)
        .dataset(GroundTruthKind::Instances)
        .unwrap()
        .images[3]
        .clone();
    setup.fail_on = Some(fourth.id);
    let (row, detections, _) = setup.run();
    assert_eq!(row.status, Status::Ok);
    let s = record(&row);
    assert_eq!(s.failed_samples, 1);
    assert_eq!(row.failed_images.len(), 1);
    assert_eq!(row.failed_images[0].file, fourth.file_name);
    assert!(row.failed_images[0].reason.contains("the fake refuses"));
    assert!(detections.iter().all(|d| d.image_id != fourth.id));
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("1 sample completions failed"))
    );
    // The image's objects count as misses: recall below 1.
    assert!(row.bbox.as_ref().unwrap().stats[8] < 1.0);
}

#[test]
fn a_fixed_batch_model_skips_other_batch_sizes() {
    let mut setup = Setup::new(Scenario::Offline);
    setup.support = BatchSupport::Fixed(1);
    setup.batching.max_batch = 2;
    let source = DatasetOptions {
        limit: Some(4),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let options = LoadgenOptions {
        settings: setup.settings,
        settings_sources: Vec::new(),
        batchings: vec![setup.batching],
        workers: 1,
        warmup: 0,
        performance_sample_count: 4,
        decode_threads: 1,
        log_root: logs.path().to_path_buf(),
        harness: HarnessOptions::default(),
    };
    let spec = ModelSpec {
        name: "fake".into(),
        family: "Test".into(),
        input: "any".into(),
        file: ModelFile {
            file: "none".into(),
            sha256: None,
        },
        ground_truth: GroundTruthKind::Instances,
        requested_backend: None,
    };
    let open = || -> Result<Box<dyn Detector>, DetectorError> {
        Ok(Box::new(Fake {
            boxes: Arc::new(HashMap::new()),
            support: BatchSupport::Fixed(1),
            per_call: Duration::ZERO,
            per_image: Duration::ZERO,
            fail_on: None,
            seen: Arc::new(Seen::default()),
        }))
    };
    let (rows, skipped) = run_model_loadgen(
        &spec,
        &open,
        &mut DatasetCache::new(source),
        &image_decoder(),
        &options,
        &Quiet,
    );
    assert!(rows.is_empty());
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].reason.contains("fixed at 1"), "{:?}", skipped[0]);
}
