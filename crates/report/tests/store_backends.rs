//! The store test suite (`store_suite/`) against both backends: `sqlite::*` on a temporary
//! file, `postgres::*` on a fresh schema of the server `$DETBENCH_TEST_POSTGRES` names
//! (scripts/test.sh starts a throwaway PostgreSQL cluster and sets it). The same functions, the
//! same assertions.
//!
//! Concurrent writers: 8 processes (this test binary re-run with `--exact`) record 50 runs
//! each into one store; every run must land exactly once.

mod common;
mod store_suite;

use std::process::{Command, Stdio};

use common::db::{Backend, TestDb};

/// Set in a child process: the store location and the child's number (or `kill`).
const CHILD_DB_ENV: &str = "DETBENCH_STORE_SUITE_CHILD_DB";
const CHILD_INDEX_ENV: &str = "DETBENCH_STORE_SUITE_CHILD_INDEX";
const WRITERS: usize = 8;

/// A writer SIGKILLed inside its transaction leaves nothing of that run, on either backend.
fn a_writer_killed_mid_run_leaves_nothing(db: &TestDb, test_name: &str) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture"])
        .env(CHILD_DB_ENV, db.location.as_argument())
        .env(CHILD_INDEX_ENV, "kill")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let inside = std::io::BufRead::lines(stdout)
        .map_while(Result::ok)
        .any(|line| line.contains("INSIDE-TRANSACTION"));
    assert!(
        inside,
        "the child never reported being inside its transaction"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    store_suite::check_killed_writer(db);
}

fn concurrent_processes_lose_nothing(db: &TestDb, test_name: &str) {
    // Create the schema first, as a team's store would be; the children then race on writes.
    detbench_report::Store::connect(&db.location).unwrap();
    let children: Vec<_> = (0..WRITERS)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", test_name, "--nocapture"])
                .env(CHILD_DB_ENV, db.location.as_argument())
                .env(CHILD_INDEX_ENV, i.to_string())
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    store_suite::check_children(db, WRITERS);
}

/// In a child process (the variables set): record; else nothing.
fn child() -> bool {
    let Ok(location) = std::env::var(CHILD_DB_ENV) else {
        return false;
    };
    let location = location.parse().unwrap();
    match std::env::var(CHILD_INDEX_ENV).unwrap().as_str() {
        "kill" => store_suite::child_killed_in_transaction(&location),
        index => store_suite::child_records_runs(&location, index.parse().unwrap()),
    }
    true
}

macro_rules! suite {
    ($backend:ident, $kind:expr) => {
        mod $backend {
            use super::*;

            fn db() -> Option<TestDb> {
                TestDb::new($kind)
            }

            #[test]
            fn creates_the_current_schema() {
                if let Some(db) = db() {
                    store_suite::creates_the_current_schema(&db);
                }
            }
            #[test]
            fn a_run_round_trips() {
                if let Some(db) = db() {
                    {
                        store_suite::a_run_round_trips_with_stats_latency_samples_and_failures(&db)
                    };
                }
            }
            #[test]
            fn migrates_a_version_1_store_with_data() {
                if let Some(db) = db() {
                    store_suite::migrates_a_version_1_store_with_data(&db);
                }
            }
            #[test]
            fn a_training_run_round_trips_exactly() {
                if let Some(db) = db() {
                    store_suite::training::a_training_run_round_trips_exactly(&db);
                }
            }
            #[test]
            fn migrates_a_version_4_store_with_data() {
                if let Some(db) = db() {
                    store_suite::training::migrates_a_version_4_store_with_data(&db);
                }
            }
            #[test]
            fn concurrent_threads_all_land() {
                if let Some(db) = db() {
                    store_suite::concurrent_threads_all_land(&db);
                }
            }
            #[test]
            fn concurrent_processes_lose_nothing() {
                if child() {
                    return;
                }
                if let Some(db) = db() {
                    {
                        super::concurrent_processes_lose_nothing(
                            &db,
                            concat!(stringify!($backend), "::concurrent_processes_lose_nothing"),
                        )
                    };
                }
            }
            #[test]
            fn a_writer_killed_mid_run_leaves_nothing() {
                if child() {
                    return;
                }
                if let Some(db) = db() {
                    super::a_writer_killed_mid_run_leaves_nothing(
                        &db,
                        concat!(
                            stringify!($backend),
                            "::a_writer_killed_mid_run_leaves_nothing"
                        ),
                    );
                }
            }
            #[test]
            fn refuses_another_programs_database() {
                if let Some(db) = db() {
                    store_suite::refuses_another_programs_database(&db);
                }
            }
            #[test]
            fn refuses_a_newer_schema() {
                if let Some(db) = db() {
                    store_suite::refuses_a_newer_schema(&db);
                }
            }
            #[test]
            fn a_merged_run_keeps_its_shards() {
                if let Some(db) = db() {
                    store_suite::a_merged_run_keeps_its_shards(&db);
                }
            }
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);

/// A server that cannot be reached is a clear error naming the store (password hidden),
/// within the connect timeout.
#[test]
fn an_unreachable_postgres_server_is_named_without_its_password() {
    // Port 1 on localhost: nothing listens there.
    let location: detbench_report::StoreLocation =
        "postgresql://bench:s3cret@127.0.0.1:1/detbench?connect_timeout=5"
            .parse()
            .unwrap();
    let started = std::time::Instant::now();
    let err = detbench_report::Store::connect(&location).err().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let message = err.to_string();
    assert!(
        matches!(err, detbench_report::StoreError::Unreachable { .. }),
        "{err:?}"
    );
    assert!(
        message.contains(
            "cannot reach the PostgreSQL results store postgresql://bench:***@127.0.0.1:1/detbench"
        ),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}
