//! The results store: schema, round trip, migration from version 1, concurrent writers
//! (threads and processes), a writer killed inside its transaction, and the files it must
//! refuse (corrupt, not a store, newer schema, locked).

mod common;

use common::{Synth, run};
use detbench_backends::{EngineKind, Precision};
use detbench_bench::Stage;
use detbench_eval::IouType;
use detbench_report::schema::{APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};
use detbench_report::store::{Filter, OpenOptions, Store, StoreError};
use rusqlite::Connection;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set in a child process to make one of the `child_*` entry points act.
const CHILD_ENV: &str = "DETBENCH_STORE_TEST_CHILD";
const CHILD_DB_ENV: &str = "DETBENCH_STORE_TEST_DB";

fn all() -> Filter {
    Filter {
        include_published: true,
        include_failed: true,
        ..Filter::default()
    }
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn creates_the_current_schema_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/runs/detbench.db");
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 2);
    let conn = store.connection();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "class_ap",
            "failed_images",
            "latency",
            "latency_stages",
            "published_latency",
            "results",
            "runs",
            "skipped",
            "sources",
            "stats"
        ]
    );
    drop(store);
    // Reopening an up-to-date store changes nothing.
    assert_eq!(Store::open(&db).unwrap().schema_version().unwrap(), 2);
}

#[test]
fn a_run_round_trips_with_stats_latency_samples_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.db")).unwrap();
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

    // Raw samples come back bit for bit.
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
    let conn = store.connection();
    // The full result is kept as JSON, samples removed.
    let json: String = conn
        .query_row(
            "SELECT result_json FROM results WHERE id = ?1",
            [r.result_id],
            |row| row.get(0),
        )
        .unwrap();
    let mut expected = model.clone();
    let l = expected.latency.as_mut().unwrap();
    l.end_to_end_samples_ms.clear();
    l.stages.iter_mut().for_each(|s| s.samples_ms.clear());
    // The JSON keeps the results.json layout, where the thread count is an engine option (the
    // `threads` column above holds it typed).
    expected.backend.as_mut().unwrap().threads = None;
    let stored: detbench_bench::results::ModelResult = serde_json::from_str(&json).unwrap();
    assert_eq!(stored, expected);
    let skipped: (String, i64, String) = conn
        .query_row("SELECT model, batch_size, reason FROM skipped", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert_eq!(
        skipped,
        ("fixed_batch_model".into(), 8, "fixed batch 1".into())
    );
    let env = store.run_environment(run_id).unwrap();
    assert_eq!(env, Some(input.environment.clone()));

    // Filters.
    let fp16_only = Filter {
        precisions: vec![Precision::Fp16],
        ..all()
    };
    assert_eq!(store.results(&fp16_only).unwrap().len(), 1);
    let torch_only = Filter {
        engines: vec![EngineKind::Torch],
        ..all()
    };
    assert_eq!(store.results(&torch_only).unwrap().len(), 0);
    let ort_alias = Filter {
        engines: vec![EngineKind::Ort],
        ..all()
    };
    assert_eq!(store.results(&ort_alias).unwrap().len(), 2);
}

/// A version-1 store (as the first release wrote it, with data) is upgraded in place to the
/// current schema, keeping its runs.
#[test]
fn migrates_a_version_1_store_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute_batch(
            r#"
            INSERT INTO runs VALUES (1, '2024-12-01T10:00:00Z', '2024-12-01T10:05:00Z', 'v0.1.0',
                1, '["detbench","run"]', '{"hostname":"old-box"}', 'old-box');
            INSERT INTO results (id, run_id, position, model, status, family, model_file,
                engine, engine_version, device, precision, batch_size, dataset_images,
                provenance, result_json)
            VALUES (7, 1, 0, 'nanodet_m_320', 'ok', 'nanodet', 'models/nanodet_m_320.onnx',
                'onnxruntime', '1.20.0', 'cpu', 'fp32', 1, 206, '{}', '{}');
            INSERT INTO stats VALUES (7, 'bbox', 'AP', 0, 0.2311);
            INSERT INTO latency VALUES (7, 'nearest-rank', 10, 1, 100, 1.0, 100.0, 1, 1, '[]');
            INSERT INTO latency_stages VALUES (7, 'end_to_end', 0, 2, 10.0, 10.0, 9.0, 11.0, 1.0,
                11.0, 11.0, 11.0, x'00000000000022400000000000002640');
            "#,
        )
        .unwrap();
    }
    let mut store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!((r.result_id, r.model.as_str()), (7, "nanodet_m_320"));
    assert_eq!(r.stat(IouType::Bbox, "AP"), Some(0.2311));
    assert_eq!(r.latency_mean_ms(), Some(10.0));
    assert_eq!(r.published, None);
    assert_eq!(
        store.latency_samples(7, "end_to_end").unwrap(),
        vec![9.0, 11.0]
    );
    // The version-2 column exists and is NULL for old rows; version-2 tables work.
    assert_eq!(
        count(&db, "SELECT count(*) FROM results WHERE source_id IS NULL"),
        1
    );
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
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].published_label().as_deref(),
        Some("published: Example (V100)")
    );
    assert!((records[1].stat(IouType::Bbox, "AP").unwrap() - 0.206).abs() < 1e-12);
    assert_eq!(records[1].latency_mean_ms(), Some(8.0));
}

#[test]
fn concurrent_threads_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    Store::open(&db).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&db).unwrap();
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
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 30);
    assert_eq!(count(&db, "SELECT count(*) FROM results"), 60);
    assert_eq!(count(&db, "SELECT count(*) FROM latency_stages"), 300);
}

#[test]
fn concurrent_processes_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_records_runs", "--nocapture"])
                .env(CHILD_ENV, "record")
                .env(CHILD_DB_ENV, &db)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 20);
    assert_eq!(count(&db, "SELECT count(*) FROM results"), 20);
}

/// Child entry point for `concurrent_processes_all_land`: records 5 runs.
#[test]
fn child_records_runs() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("record") {
        return;
    }
    let db = std::env::var(CHILD_DB_ENV).unwrap();
    let mut store = Store::open(&db).unwrap();
    for i in 0..5 {
        store
            .record_run(&run(&[Synth::new("nanodet_m_416", 0.23, 5.0 + i as f64)]))
            .unwrap();
    }
}

/// A writer killed (SIGKILL) inside its transaction, after part of a large run has reached
/// the WAL file, leaves no trace of that run: the committed run before it is intact and no
/// result, stat or sample of the killed one is visible.
#[test]
fn a_run_killed_midway_leaves_no_partial_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_killed_in_transaction", "--nocapture"])
        .env(CHILD_ENV, "kill")
        .env(CHILD_DB_ENV, &db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut inside = false;
    for line in stdout.lines() {
        if line.unwrap().contains("INSIDE-TRANSACTION") {
            inside = true;
            break;
        }
    }
    assert!(
        inside,
        "the child never reported being inside its transaction"
    );
    // The uncommitted pages really are on disk (spilled to the WAL), not just in memory.
    let wal = std::fs::metadata(dir.path().join("k.db-wal"))
        .unwrap()
        .len();
    assert!(wal > 4 << 20, "WAL holds only {wal} bytes");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(&db).unwrap();
    let records = store.results(&all()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].model, "committed_model");
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM results"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM latency_stages"), 5);
    assert_eq!(count(&db, "SELECT count(*) FROM stats"), 12);
    let check: String = store
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Child entry point for `a_run_killed_midway_leaves_no_partial_record`: commits one small
/// run, then starts a large one and waits to be killed after its first model is written.
#[test]
fn child_killed_in_transaction() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("kill") {
        return;
    }
    let db = std::env::var(CHILD_DB_ENV).unwrap();
    let mut store = Store::open(&db).unwrap();
    store
        .record_run(&run(&[Synth::new("committed_model", 0.3, 10.0)]))
        .unwrap();
    // 5 stages x 220,000 samples x 8 bytes ≈ 8.8 MB per model: more than SQLite's page cache,
    // so the transaction spills pages to the WAL before it commits.
    let mut big = Synth::new("killed_model", 0.2, 20.0);
    big.samples = 220_000;
    store
        .record_run_observed(&run(&[big.clone(), big]), &mut |i| {
            if i == 0 {
                println!("INSIDE-TRANSACTION");
                std::thread::sleep(Duration::from_secs(600));
            }
        })
        .unwrap();
}

fn assert_untouched(path: &Path, before: &[u8]) {
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "{} was modified",
        path.display()
    );
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let err = Store::open(&db).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(message.contains("left untouched"), "{message}");
    assert_untouched(&db, &garbage);
    assert!(!dir.path().join("garbage.db-wal").exists());
}

#[test]
fn reports_a_corrupt_store_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("corrupt.db");
    {
        let mut store = Store::open(&db).unwrap();
        store
            .record_run(&run(&[Synth::new("yolox_nano", 0.25, 10.0)]))
            .unwrap();
        // Fold the WAL into the main file so the damage below hits the data.
        store
            .connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > 4 * page);
    for b in &mut bytes[page..] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let err = Store::open(&db)
        .and_then(|store| store.results(&all()).map(|_| ()))
        .expect_err("a damaged store must not read as fine");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("corrupt.db"), "{err}");
    assert_untouched(&db, &bytes);
}

#[test]
fn refuses_another_programs_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("other.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);")
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(&db).err().unwrap();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
    assert!(err.to_string().contains("other.db"));
    assert_untouched(&db, &before);
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("newer.db");
    Store::open(&db).unwrap();
    {
        let conn = Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = Store::open(&db).err().unwrap();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => assert_eq!((*found, *supported), (99, SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("newer.db"));
    assert_untouched(&db, &before);
}

#[test]
fn a_locked_store_times_out_with_a_clear_error_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    Store::open(&db).unwrap();
    let holder = Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let options = OpenOptions {
        busy_timeout: Duration::from_millis(300),
    };
    let mut store = Store::open_with(&db, &options).unwrap();
    let started = std::time::Instant::now();
    let err = store
        .record_run(&run(&[Synth::new("yolox_nano", 0.25, 10.0)]))
        .err()
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("locked.db") && message.contains("300ms"),
        "{message}"
    );

    // An old store that needs migrating while locked fails the same way, unmodified.
    let old = dir.path().join("old.db");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
    }
    let old_holder = Connection::open(&old).unwrap();
    old_holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = Store::open_with(&old, &options).err().unwrap();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    old_holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(count(&old, "PRAGMA user_version"), 1);

    holder.execute_batch("ROLLBACK").unwrap();
    store
        .record_run(&run(&[Synth::new("yolox_nano", 0.25, 10.0)]))
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 1);
}
