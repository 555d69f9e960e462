//! LoadGen scenario rows in the store (schema 3, `scenario_results`) and in the run's tables: the
//! headline columns, the record and the raw latencies round-trip; `result_json` keeps the record
//! without its raw latencies; the Markdown gets a scenario table.

mod common;

use std::time::Duration;

use common::{Synth, run};
use detbench_bench::mlperf::sut::{Batching, SUT_WORK};
use detbench_bench::results::{Headline, ScenarioRecord, SutDescription};
use detbench_loadgen::results::{PerformanceResult, evaluate};
use detbench_loadgen::{EffectiveSettings, Scenario, TestMode, TestSettings, Validity};
use detbench_report::run_files::{console_summary, markdown_report};
use detbench_report::store::{Filter, Store};

/// A Server record judged by LoadGen's rules from a made-up latency sequence.
fn server_record() -> ScenarioRecord {
    let mut requested = TestSettings::new(Scenario::Server);
    requested.server_target_qps = 50.0;
    requested.min_duration_ms = 1000;
    requested.min_query_count = 100;
    let settings = EffectiveSettings::new(&requested, 64, 206);
    let latencies: Vec<i64> = (0..1000).map(|i| 5_000_000 + i * 1_000).collect();
    let raw = PerformanceResult {
        sample_latencies: latencies.clone(),
        queries_issued: 1000,
        max_latency: 0.007,
        final_query_scheduled_time: 4.0,
        final_query_issued_time: 4.0,
        final_query_all_samples_done_time: 4.01,
        ..PerformanceResult::default()
    };
    let result = evaluate("fake", &settings, &raw);
    assert_eq!(result.validity, Validity::Valid, "{result:?}");
    ScenarioRecord {
        scenario: Scenario::Server,
        mode: TestMode::PerformanceOnly,
        validity: Some(result.validity),
        headline: Some(Headline::of(&result)),
        peak_qps: None,
        settings_sources: vec![
            "LoadGen 6.0.17 defaults".into(),
            "flags: --target-qps 50".into(),
        ],
        settings,
        performance: Some(result),
        peak_search: Vec::new(),
        accuracy_samples_issued: None,
        sut: SutDescription {
            work_per_sample: SUT_WORK.into(),
            workers: 1,
            batching: Batching {
                max_batch: 4,
                timeout: Duration::from_millis(2),
            },
            warmup_calls: 10,
            performance_sample_count: 64,
        },
        sut_calls: None,
        samples_per_call: None,
        decode_ms: None,
        failed_samples: 0,
        errors: Vec::new(),
        notes: vec!["a note".into()],
        log_dir: "/tmp/logs/fake-Server-b4".into(),
        log_files: Vec::new(),
        sample_latencies_ns: latencies,
        query_latencies_ns: Vec::new(),
    }
}

#[test]
fn a_scenario_row_round_trips_with_its_raw_latencies() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.db")).unwrap();
    let mut input = run(&[Synth::new("yolox_nano", 0.25, 10.0)]);
    let record = server_record();
    let mut row = input.models[0].clone();
    row.latency = None;
    row.bbox = None;
    row.scenario = Some(record.clone());
    input.models.push(row);
    store.record_run(&input).unwrap();

    let results = store
        .results(&Filter {
            include_failed: true,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(store.scenario_record(results[0].result_id).unwrap(), None);
    let back = store
        .scenario_record(results[1].result_id)
        .unwrap()
        .unwrap();
    assert_eq!(back, record);

    let conn = store.sqlite_connection().unwrap();
    let (scenario, validity, metric, value, p99, target_latency, count, settings): (
        String,
        String,
        String,
        f64,
        i64,
        i64,
        i64,
        String,
    ) = conn
        .query_row(
            "SELECT scenario, validity, metric, metric_value, p99_ns, target_latency_ns,
                    sample_count, settings
             FROM scenario_results",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .unwrap();
    assert_eq!((scenario.as_str(), validity.as_str()), ("Server", "VALID"));
    assert_eq!(metric, "Completed samples per second");
    assert_eq!(value, 999.0 / 4.01);
    // sorted[floor(1000 * 0.99)] = sorted[990].
    assert_eq!(p99, 5_000_000 + 990 * 1_000);
    assert_eq!(target_latency, 100_000_000, "LoadGen's default bound");
    assert_eq!(count, 1000);
    let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(settings["target_qps"], 50.0);
    assert_eq!(settings["requested"]["min_duration_ms"], 1000);

    // result_json holds the record without the raw latencies (they are the BLOB).
    let json: String = conn
        .query_row(
            "SELECT result_json FROM results WHERE id = ?1",
            [results[1].result_id],
            |r| r.get(0),
        )
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["scenario"]["scenario"], "Server");
    assert_eq!(
        json["scenario"]["sample_latencies_ns"],
        serde_json::json!([])
    );
}

#[test]
fn the_run_tables_get_a_scenario_row_and_its_notes() {
    let mut input = run(&[Synth::new("yolox_nano", 0.25, 10.0)]);
    let mut row = input.models[0].clone();
    row.latency = None;
    row.bbox = None;
    row.scenario = Some(server_record());
    input.models = vec![row];
    let text = console_summary(&input);
    assert!(
        text.contains("| yolox_nano (Server, max batch 4) |")
            && text.contains("| Server, max batch 4 | PerformanceOnly | VALID |")
            && text.contains("Completed samples per second: 249.13"),
        "{text}"
    );
    // p50 = sorted[500] = 5.50 ms, p90 = sorted[900] = 5.90 ms, p99 = sorted[990] = 5.99 ms.
    assert!(text.contains("| 5.50 | 5.90 | 5.99 |"), "{text}");
    assert!(text.contains("yolox_nano (Server, max batch 4): a note"));
    assert!(text.contains("LoadGen logs in /tmp/logs/fake-Server-b4"));
    // A performance-only scenario row has no accuracy: the main table is left out.
    assert!(!text.contains("| AP | AP50 |"), "{text}");
    let md = markdown_report(&input);
    assert!(md.contains("## MLPerf LoadGen scenarios"), "{md}");
}
