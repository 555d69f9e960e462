//! The SQLite store's own guarantees: WAL mode, a writer killed inside its transaction, and the
//! files it must refuse byte for byte untouched (corrupt, not a store, newer schema, locked).
//! What both backends share is tested on both by `store_backends.rs`.

mod common;

use common::{Synth, run};
use detbench_report::schema::{APPLICATION_ID, SCHEMA_VERSION, migration};
use detbench_report::store::{Dialect, Filter, OpenOptions, Store, StoreError};
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

/// What only SQLite has: WAL mode and the application id in the file header (the schema itself
/// is checked on both backends by `store_backends.rs`).
#[test]
fn creates_the_store_in_wal_mode_with_its_application_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/runs/detbench.db");
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = store.sqlite_connection().unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let app: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    assert_eq!(app, APPLICATION_ID);
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
        .sqlite_connection()
        .unwrap()
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
            .sqlite_connection()
            .unwrap()
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
        ..OpenOptions::default()
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
        conn.execute_batch(&migration(Dialect::Sqlite, 0)).unwrap();
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
