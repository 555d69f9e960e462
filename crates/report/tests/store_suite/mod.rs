//! The store's test suite, written once and run against both backends (`store_backends.rs`
//! instantiates every function here for SQLite and for PostgreSQL): schema, round trip,
//! migration of an old store, merged runs, training runs ([`training`]), concurrent writers
//! (threads, and 8 processes x 50 results), foreign and newer-schema databases refused and left
//! untouched.

pub mod training;

use crate::common::db::{Backend, TestDb, count, int};
use crate::common::{Synth, run};
use detbench_backends::{EngineKind, Precision};
use detbench_bench::Stage;
use detbench_bench::results::{ModelResult, RunResults};
use detbench_eval::IouType;
use detbench_report::schema::SCHEMA_VERSION;
use detbench_report::store::{Filter, OpenOptions, ResultRecord, RunId, Store, StoreError, Value};

pub fn all() -> Filter {
    Filter {
        include_published: true,
        include_failed: true,
        ..Filter::default()
    }
}

pub const TABLES: [&str; 15] = [
    "class_ap",
    "failed_images",
    "latency",
    "latency_stages",
    "published_latency",
    "result_shards",
    "results",
    "run_shards",
    "runs",
    "scenario_results",
    "skipped",
    "sources",
    "stats",
    "training_runs",
    "training_steps",
];

pub fn creates_the_current_schema(db: &TestDb) {
    let store = Store::connect(&db.location).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 5);
    assert_eq!(db.tables(), TABLES);
    drop(store);
    // Reopening an up-to-date store changes nothing.
    let store = Store::connect(&db.location).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(db.tables(), TABLES);
}

pub fn a_run_round_trips_with_stats_latency_samples_and_failures(db: &TestDb) {
    let mut store = Store::connect(&db.location).unwrap();
    let mut fp16 = Synth::new("yolox_nano", 0.255, 12.5);
    fp16.precision = "fp16";
    let input = run(&[Synth::new("yolox_nano", 0.2581, 25.0), fp16]);
    let run_id = store.record_run(&input).unwrap();

    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(r.run_id, run_id);
    assert_eq!(r.model, "yolox_nano");
    assert_eq!(r.engine, Some(EngineKind::Ort));
    assert_eq!(r.engine_version.as_deref(), Some("1.31.1"));
    assert_eq!(r.threads, Some(2));
    assert_eq!(r.batch_size, Some(1));
    assert_eq!(r.dataset_images, Some(206));
    assert_eq!((r.devices, r.partial), (None, false));
    assert_eq!(r.stat(IouType::Bbox, "AP"), Some(0.2581));
    assert_eq!(
        r.accuracy[&IouType::Bbox]
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        detbench_bench::results::DETECTION_STAT_NAMES
    );
    let model = &input.models[0];
    let latency = model.latency.as_ref().unwrap();
    assert_eq!(r.latency.as_ref().unwrap().end_to_end, latency.end_to_end);
    assert_eq!(r.stages.len(), 4);
    assert_eq!(r.stages[2].stage, Stage::Inference);
    assert_eq!(r.stages[2].summary, latency.stages[2].summary);
    assert_eq!(r.failed_images, 1);
    assert_eq!(records[1].precision, Some(Precision::Fp16));

    assert_samples_class_ap_and_failures_round_trip(&store, r, model);
    assert_result_json_is_the_result_without_samples(&store, r, model);
    let skipped = &store
        .query("SELECT model, batch_size, reason FROM skipped", &[])
        .unwrap()[0];
    assert_eq!(
        (
            skipped.text(0).unwrap(),
            skipped.i64(1).unwrap(),
            skipped.text(2).unwrap()
        ),
        ("fixed_batch_model".into(), 8, "fixed batch 1".into())
    );
    let env = store.run_environment(run_id).unwrap();
    assert_eq!(env, Some(input.environment.clone()));
    assert_filters_and_find_run(&store, &input, run_id);
}

/// Raw samples come back bit for bit, and so do the per-class APs and the failed images.
fn assert_samples_class_ap_and_failures_round_trip(
    store: &Store,
    r: &ResultRecord,
    model: &ModelResult,
) {
    let latency = model.latency.as_ref().unwrap();
    assert_eq!(
        store.latency_samples(r.result_id, "end_to_end").unwrap(),
        latency.end_to_end_samples_ms
    );
    assert_eq!(
        store.latency_samples(r.result_id, "inference").unwrap(),
        latency.stages[2].samples_ms
    );
    assert_eq!(
        store.class_ap(r.result_id, IouType::Bbox).unwrap(),
        vec![
            (1, "person".to_owned(), Some(0.2581 * 1.2)),
            (12, "stop sign".to_owned(), None)
        ]
    );
    assert_eq!(
        store.failed_images(r.result_id).unwrap(),
        vec![(
            "000000000139.jpg".to_owned(),
            "synthetic failure".to_owned()
        )]
    );
}

/// The full result is kept as JSON, samples removed.
fn assert_result_json_is_the_result_without_samples(
    store: &Store,
    r: &ResultRecord,
    model: &ModelResult,
) {
    let json = store
        .query(
            "SELECT result_json FROM results WHERE id = ?1",
            &[int(r.result_id)],
        )
        .unwrap()[0]
        .text(0)
        .unwrap();
    let mut expected = model.clone();
    let l = expected.latency.as_mut().unwrap();
    l.end_to_end_samples_ms.clear();
    l.stages.iter_mut().for_each(|s| s.samples_ms.clear());
    // The JSON keeps the results.json layout, where the thread count is an engine option (the
    // `threads` column above holds it typed).
    expected.backend.as_mut().unwrap().threads = None;
    let stored: ModelResult = serde_json::from_str(&json).unwrap();
    assert_eq!(stored, expected);
}

/// Filters by precision, engine and batch size select the rows they name, and the run is found
/// again by its content (and another start time is another run).
fn assert_filters_and_find_run(store: &Store, input: &RunResults, run_id: RunId) {
    let filtered = |filter: Filter| store.results(&filter).unwrap().len();
    let precisions = vec![Precision::Fp16];
    assert_eq!(
        filtered(Filter {
            precisions,
            ..all()
        }),
        1
    );
    let engines = vec![EngineKind::Torch];
    assert_eq!(filtered(Filter { engines, ..all() }), 0);
    let engines = vec![EngineKind::Ort];
    assert_eq!(filtered(Filter { engines, ..all() }), 2);
    let batch_sizes = vec![1, 4];
    assert_eq!(
        filtered(Filter {
            batch_sizes,
            ..all()
        }),
        2
    );
    assert_eq!(store.find_run(input).unwrap(), Some(run_id));
    let mut other = input.clone();
    other.started_at = "2025-01-02T00:00:00Z".into();
    assert_eq!(store.find_run(&other).unwrap(), None);
}

/// A version-1 store (as the first release wrote it, with data) is upgraded in place to the
/// current schema, keeping its runs.
pub fn migrates_a_version_1_store_with_data(db: &TestDb) {
    write_version_1_store(db);
    let mut store = Store::connect(&db.location).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(db.tables(), TABLES);
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!((r.result_id, r.model.as_str()), (700, "nanodet_m_320"));
    assert_eq!(r.stat(IouType::Bbox, "AP"), Some(0.2311));
    assert_eq!(r.latency_mean_ms(), Some(10.0));
    assert_eq!(r.published, None);
    assert_eq!(
        store.latency_samples(700, "end_to_end").unwrap(),
        vec![9.0, 11.0]
    );
    // Later versions' columns exist, empty or at their default for old rows.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM results WHERE source_id IS NULL AND devices IS NULL"
        ),
        1
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM runs WHERE partial = 0"),
        1
    );
    assert_new_rows_land_beside_the_migrated_ones(&mut store);
}

/// Writes a version-1 store with one run (id 100) and one result (id 700) with a box AP, a
/// latency summary and two raw samples, as the first release did.
fn write_version_1_store(db: &TestDb) {
    let options = OpenOptions {
        migrate_to: Some(1),
        ..OpenOptions::default()
    };
    let store = Store::connect_with(&db.location, &options).unwrap();
    assert_eq!(store.schema_version().unwrap(), 1);
    let text = |s: &str| Value::Text(s.to_owned());
    // Explicit ids well above what the identity columns hand out next.
    store
        .execute(
            "INSERT INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &[
                int(100),
                text("2024-12-01T10:00:00Z"),
                text("2024-12-01T10:05:00Z"),
                text("v0.1.0"),
                int(1),
                text(r#"["detbench","run"]"#),
                text(r#"{"hostname":"old-box"}"#),
                text("old-box"),
            ],
        )
        .unwrap();
    store
        .execute(
            "INSERT INTO results (id, run_id, position, model, status, family, model_file,
                 engine, engine_version, device, precision, batch_size, dataset_images,
                 provenance, result_json)
             VALUES (700, 100, 0, 'nanodet_m_320', 'ok', 'nanodet', 'models/n.onnx',
                 'onnxruntime', '1.20.0', 'cpu', 'fp32', 1, 206, '{}', '{}')",
            &[],
        )
        .unwrap();
    store
        .execute_batch(
            "INSERT INTO stats VALUES (700, 'bbox', 'AP', 0, 0.2311);
             INSERT INTO latency VALUES (700, 'nearest-rank', 10, 1, 100, 1.0, 100.0, 1, 1, '[]');",
        )
        .unwrap();
    let samples: Vec<u8> = [9.0f64, 11.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    store
        .execute(
            "INSERT INTO latency_stages VALUES (700, 'end_to_end', 0, 2, 10.0, 10.0, 9.0,
                 11.0, 1.0, 11.0, 11.0, 11.0, ?1)",
            &[Value::Blob(samples)],
        )
        .unwrap();
}

/// A published import and a new run land beside the migrated result, each found by content.
fn assert_new_rows_land_beside_the_migrated_ones(store: &mut Store) {
    store
        .record_published(&detbench_report::PublishedImport {
            source: "Example".into(),
            file: "zoo.md".into(),
            file_sha256: "00".repeat(32),
            device_label: Some("V100".into()),
            command_line: vec!["detbench".into(), "import-md".into()],
            rows: vec![detbench_report::PublishedRow {
                model: "nanodet_m_320".into(),
                box_ap: Some(20.6),
                latency_ms: Some(8.0),
                latency_column: "Speed (ms)".into(),
                extra: serde_json::json!({}),
                ..Default::default()
            }],
        })
        .unwrap();
    store
        .record_run(&run(&[Synth::new("yolox_nano", 0.25, 10.0)]))
        .unwrap();
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 3);
    // (Ids: SQLite hands out the next after the largest, PostgreSQL its identity sequence,
    // which the explicit ids above did not move; so find the rows by content.)
    let published = records.iter().find(|r| r.is_published()).unwrap();
    assert_eq!(
        published.published_label().as_deref(),
        Some("published: Example (V100)")
    );
    assert!((published.stat(IouType::Bbox, "AP").unwrap() - 0.206).abs() < 1e-12);
    assert_eq!(published.latency_mean_ms(), Some(8.0));
    assert!(
        records
            .iter()
            .any(|r| r.model == "yolox_nano" && r.latency.is_some())
    );
}

pub fn concurrent_threads_all_land(db: &TestDb) {
    Store::connect(&db.location).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let location = db.location.clone();
            std::thread::spawn(move || {
                let mut store = Store::connect(&location).unwrap();
                for i in 0..5 {
                    let mut s = Synth::new("yolox_nano", 0.25, 10.0 + (t * 10 + i) as f64);
                    s.batch = t + 1;
                    store.record_run(&run(&[s.clone(), s])).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::connect(&db.location).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 30);
    assert_eq!(count(&store, "SELECT count(*) FROM results"), 60);
    assert_eq!(count(&store, "SELECT count(*) FROM latency_stages"), 300);
}

/// The store on a database that is not detbench's is refused, and the database left as it was.
pub fn refuses_another_programs_database(db: &TestDb) {
    db.raw("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);");
    let before = db.tables();
    let err = Store::connect(&db.location).err().unwrap();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(err.to_string().contains("not a detbench store"), "{err}");
    assert_eq!(db.tables(), before);
}

pub fn refuses_a_newer_schema(db: &TestDb) {
    Store::connect(&db.location).unwrap();
    match db.backend {
        Backend::Sqlite => db.raw("PRAGMA user_version = 99;"),
        Backend::Postgres => db.raw("UPDATE detbench_store SET schema_version = 99;"),
    }
    let err = Store::connect(&db.location).err().unwrap();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => assert_eq!((*found, *supported), (99, SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("use a newer detbench"), "{err}");
    assert_eq!(db.tables(), TABLES);
}

/// A merged run: its shards (present and missing), each result's per-shard summaries and the
/// device count come back.
pub fn a_merged_run_keeps_its_shards(db: &TestDb) {
    let mut store = Store::connect(&db.location).unwrap();
    let mut merged = run(&[Synth::new("yolox_nano", 0.25, 10.0)]);
    let environment = merged.environment.clone();
    let origins: Vec<serde_json::Value> = [0, 2]
        .iter()
        .map(|&i| {
            serde_json::json!({
                "shard": i, "started_at": "2025-01-01T00:00:00Z",
                "command_line": ["detbench", "run", "--shard", format!("{i}/3")],
                "environment": environment, "images": 69
            })
        })
        .collect();
    merged.sharding = Some(
        serde_json::from_value(serde_json::json!({
            "partition": detbench_bench::shard::PARTITION,
            "count": 3, "present": [0, 2], "missing": [1], "partial": true,
            "shards": origins
        }))
        .unwrap(),
    );
    let latency = merged.models[0].latency.clone().unwrap();
    let shard_latencies: Vec<serde_json::Value> = [0, 2]
        .iter()
        .map(|&i| {
            serde_json::json!({
                "shard": i, "device": format!("cuda:{}", i / 2), "hostname": "node",
                "images": 69, "timed_images": 69, "total_seconds": 1.0,
                "images_per_second": 69.0, "end_to_end": latency.end_to_end,
                "started_unix_s": 1.0e9, "ended_unix_s": 1.0e9 + 1.0,
                "valid": false, "validity_notes": ["only 69 timed calls"]
            })
        })
        .collect();
    merged.models[0].sharding = Some(
        serde_json::from_value(serde_json::json!({
            "devices": 2, "wall_seconds": 1.5, "sum_of_shard_images_per_second": 130.0,
            "shards": shard_latencies
        }))
        .unwrap(),
    );
    let run_id = store.record_run(&merged).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!((runs[0].shard_count, runs[0].partial), (Some(3), true));
    let r = &store.results(&all()).unwrap()[0];
    assert_eq!((r.devices, r.partial), (Some(2), true));
    let shards = store
        .query(
            "SELECT shard, present, images FROM run_shards WHERE run_id = ?1 ORDER BY shard",
            &[int(run_id)],
        )
        .unwrap();
    let shards: Vec<(i64, bool, Option<i64>)> = shards
        .iter()
        .map(|s| (s.i64(0).unwrap(), s.bool(1).unwrap(), s.opt_i64(2).unwrap()))
        .collect();
    assert_eq!(
        shards,
        vec![(0, true, Some(69)), (1, false, None), (2, true, Some(69))]
    );
    let per_shard = store
        .query(
            "SELECT device, p99, valid FROM result_shards WHERE result_id = ?1 ORDER BY shard",
            &[int(r.result_id)],
        )
        .unwrap();
    assert_eq!(per_shard.len(), 2);
    assert_eq!(per_shard[1].text(0).unwrap(), "cuda:1");
    assert_eq!(per_shard[1].f64(1).unwrap(), latency.end_to_end.p99);
    assert!(!per_shard[1].bool(2).unwrap());
}

/// Child entry point: records 50 runs of one result each, numbered by `$CHILD_INDEX`.
pub fn child_records_runs(db: &detbench_report::StoreLocation, child: usize) {
    let mut store = Store::connect(db).unwrap();
    for i in 0..50 {
        let mut input = run(&[Synth::new("nanodet_m_416", 0.23, 5.0 + i as f64)]);
        input.command_line = vec!["child".into(), child.to_string(), i.to_string()];
        store.record_run(&input).unwrap();
    }
}

/// Child entry point: commits one run, then writes a second one and waits inside its
/// transaction to be killed.
pub fn child_killed_in_transaction(db: &detbench_report::StoreLocation) {
    let mut store = Store::connect(db).unwrap();
    store
        .record_run(&run(&[Synth::new("committed_model", 0.3, 10.0)]))
        .unwrap();
    let mut big = Synth::new("killed_model", 0.2, 20.0);
    big.samples = 22_000;
    store
        .record_run_observed(&run(&[big.clone(), big]), &mut |i| {
            if i == 0 {
                println!("INSIDE-TRANSACTION");
                std::thread::sleep(std::time::Duration::from_secs(600));
            }
        })
        .unwrap();
}

/// After the writer was killed: the committed run whole, nothing of the other.
pub fn check_killed_writer(db: &TestDb) {
    let store = Store::connect(&db.location).unwrap();
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model, "committed_model");
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM results"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM latency_stages"), 5);
    assert_eq!(count(&store, "SELECT count(*) FROM stats"), 12);
    // The store takes the next run as usual.
    let mut store = store;
    store
        .record_run(&run(&[Synth::new("after", 0.3, 10.0)]))
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM runs"), 2);
}

/// After 8 children recorded 50 runs each: every one landed exactly once, complete.
pub fn check_children(db: &TestDb, children: usize) {
    let store = Store::connect(&db.location).unwrap();
    assert_eq!(
        count(&store, "SELECT count(*) FROM runs"),
        50 * children as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM results"),
        50 * children as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM latency_stages"),
        5 * 50 * children as i64
    );
    let mut seen: Vec<Vec<String>> = store
        .runs()
        .unwrap()
        .into_iter()
        .map(|r| r.command_line)
        .collect();
    seen.sort();
    let mut expected: Vec<Vec<String>> = (0..children)
        .flat_map(|c| (0..50).map(move |i| vec!["child".into(), c.to_string(), i.to_string()]))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
}
