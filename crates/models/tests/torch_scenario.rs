//! LoadGen scenarios on the libtorch backend (CPU): D2Go int8 (TorchScript) driven by
//! `run_model_loadgen` as `detbench run --scenario` drives it. In Offline accuracy mode every
//! image's detections are exactly those of calling the pipeline directly on the same image
//! (same engine, same thread count), and a SingleStream performance test measures every query;
//! MultiStream, Server and the Server peak-QPS search (LoadGen's FindPeakPerformance) run on it
//! too, with LoadGen's accounting checked.
//!
//! Needs `scripts/setup.sh --torch` and `LD_LIBRARY_PATH=.deps/torch/torch/lib`; run with
//! `--release`.
#![cfg(feature = "torch")]

use std::time::Duration;

use detbench_backends::{BackendConfig, EngineKind};
use detbench_bench::dataset::{DatasetOptions, GroundTruthKind};
use detbench_bench::mlperf::sut::Batching;
use detbench_bench::mlperf::{LoadgenOptions, run_model_loadgen};
use detbench_bench::prefetch::image_decoder;
use detbench_bench::results::ScenarioRecord;
use detbench_bench::results::Status;
use detbench_bench::scenario::{DatasetCache, ModelSpec, Quiet};
use detbench_bench::{Detector, DetectorError, ImageInput, StageClock};
use detbench_loadgen::{HarnessOptions, Scenario, TestMode, TestSettings};

const MODEL: &str = "d2go_fasterrcnn_fbnetv3a_int8";
const IMAGES: usize = 12;

fn config() -> BackendConfig {
    BackendConfig {
        engine: EngineKind::Torch,
        threads: Some(2),
        ..Default::default()
    }
}

fn options(settings: TestSettings, logs: &std::path::Path) -> LoadgenOptions {
    LoadgenOptions {
        settings,
        settings_sources: vec!["test".into()],
        batchings: vec![Batching {
            max_batch: 1,
            timeout: Duration::ZERO,
        }],
        workers: 1,
        warmup: 1,
        performance_sample_count: IMAGES,
        decode_threads: 2,
        log_root: logs.to_path_buf(),
        harness: HarnessOptions::default(),
    }
}

/// D2Go's spec, its opener and a dataset cache of the first [`IMAGES`] images.
fn d2go() -> (
    ModelSpec,
    impl Fn() -> Result<Box<dyn Detector>, DetectorError>,
    DatasetCache,
) {
    let entry = detbench_models::entry(MODEL).unwrap();
    let model_dir = detbench_models::model_dir(None).unwrap();
    let spec = detbench_models::model_spec(entry, &model_dir, &config()).spec;
    let open = move || -> Result<Box<dyn Detector>, DetectorError> {
        Ok(detbench_models::open_detector(
            entry,
            Some(&model_dir),
            &config(),
        )?)
    };
    let source = DatasetOptions {
        limit: Some(IMAGES),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    (spec, open, DatasetCache::new(source))
}

/// The scenario record of a LoadGen test of D2Go with `settings`.
fn run(settings: TestSettings) -> ScenarioRecord {
    let (spec, open, mut cache) = d2go();
    let logs = tempfile::tempdir().unwrap();
    let (rows, _) = run_model_loadgen(
        &spec,
        &open,
        &mut cache,
        &image_decoder(),
        &options(settings, logs.path()),
        &Quiet,
    );
    assert_eq!(rows[0].result.status, Status::Ok, "{:?}", rows[0].result);
    rows[0].result.scenario.clone().unwrap()
}

#[test]
fn d2go_on_libtorch_runs_multi_stream_queries_of_several_samples() {
    let mut settings = TestSettings::new(Scenario::MultiStream);
    settings.multi_stream_samples_per_query = 2;
    settings.min_duration_ms = 200;
    settings.min_query_count = 4;
    let record = run(settings);
    let r = record.performance.as_ref().unwrap();
    assert!(r.query_count >= 4);
    assert_eq!(r.sample_count, 2 * r.query_count);
    // MultiStream's result is a query latency: each query's covers its slowest sample.
    let query = r
        .query_latency
        .as_ref()
        .expect("MultiStream reports query latency");
    assert_eq!(query.count, r.query_count);
    assert!(query.max_ns >= r.sample_latency.max_ns);
}

#[test]
fn d2go_on_libtorch_serves_poisson_queries_and_finds_a_peak_qps() {
    let mut server = TestSettings::new(Scenario::Server);
    server.server_target_qps = 1.0;
    server.server_target_latency_ns = 5_000_000_000;
    server.min_duration_ms = 1000;
    server.min_query_count = 4;
    let record = run(server.clone());
    let r = record.performance.as_ref().unwrap();
    assert!(r.query_count >= 4 && r.sample_count == r.query_count);
    assert_eq!(r.perf_constraints_met, Some(true), "{r:?}");

    let mut peak = server;
    peak.mode = TestMode::FindPeakPerformance;
    peak.server_find_peak_qps_decimals_of_precision = 0;
    peak.server_target_latency_ns = 2_000_000_000;
    peak.min_duration_ms = 500;
    let record = run(peak);
    let found = record.peak_qps.expect("1 QPS meets a 2 s bound on D2Go");
    assert!(found >= 1.0, "{:?}", record.peak_search);
    // The search went past the peak: some step failed the latency bound.
    assert!(
        record
            .peak_search
            .iter()
            .any(|step| !step.perf_constraints_met)
    );
}

#[test]
fn d2go_on_libtorch_runs_offline_accuracy_and_single_stream() {
    let (spec, open, mut cache) = d2go();
    let logs = tempfile::tempdir().unwrap();

    let mut accuracy = TestSettings::new(Scenario::Offline);
    accuracy.mode = TestMode::AccuracyOnly;
    let (rows, _) = run_model_loadgen(
        &spec,
        &open,
        &mut cache,
        &image_decoder(),
        &options(accuracy, logs.path()),
        &Quiet,
    );
    let outcome = &rows[0];
    assert_eq!(outcome.result.status, Status::Ok, "{:?}", outcome.result);
    let backend = outcome.result.backend.as_ref().unwrap();
    assert_eq!(backend.engine, EngineKind::Torch);
    assert!(outcome.result.bbox.is_some());

    // The same images through the pipeline directly.
    let mut direct = open().unwrap();
    let dataset = cache.dataset(GroundTruthKind::Instances).unwrap();
    let mut clock = StageClock::new();
    let mut expected = Vec::new();
    for image in &dataset.images {
        let decoded = detbench_imgproc::decode_file(&image.path).unwrap();
        let input = ImageInput {
            image_id: image.id,
            image: &decoded,
        };
        expected.extend(direct.detect(&[input], &mut clock).unwrap().remove(0));
    }
    assert!(!expected.is_empty());
    assert_eq!(outcome.detections, expected);

    let mut single = TestSettings::new(Scenario::SingleStream);
    single.min_duration_ms = 200;
    single.min_query_count = 16;
    let (rows, _) = run_model_loadgen(
        &spec,
        &open,
        &mut cache,
        &image_decoder(),
        &options(single, logs.path()),
        &Quiet,
    );
    let record = rows[0].result.scenario.as_ref().unwrap();
    let r = record.performance.as_ref().unwrap();
    assert!(r.query_count >= 16 && r.sample_count == r.query_count);
    let calls = record.sut_calls.as_ref().unwrap();
    assert_eq!(calls.end_to_end.count as u64, r.sample_count);
    // LoadGen's latency of a sample covers its call.
    assert!(r.sample_latency.min_ns as f64 / 1e6 >= calls.end_to_end.min);
}
