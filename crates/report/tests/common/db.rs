//! A fresh, empty store on each backend for the store test suite: an SQLite file in a temporary
//! folder, or a new schema on the PostgreSQL server `$DETBENCH_TEST_POSTGRES` names
//! (scripts/test.sh starts a throwaway one). Without that variable the PostgreSQL tests say they
//! were skipped, unless `$DETBENCH_TEST_REQUIRE_POSTGRES=1` (set by scripts/test.sh), which
//! makes a missing server a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

use detbench_report::store::{StoreLocation, Value};

/// The admin URL of the test server (a database the tests may create schemas in).
pub const POSTGRES_ENV: &str = "DETBENCH_TEST_POSTGRES";
/// Set to 1 to fail, not skip, when [`POSTGRES_ENV`] is missing.
pub const REQUIRE_ENV: &str = "DETBENCH_TEST_REQUIRE_POSTGRES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An empty store location, and what keeps it alive.
pub struct TestDb {
    pub backend: Backend,
    pub location: StoreLocation,
    /// PostgreSQL: the schema the store lives in.
    pub schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb::sqlite()),
            Backend::Postgres => TestDb::postgres(),
        }
    }

    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            backend: Backend::Sqlite,
            location: StoreLocation::Sqlite(dir.path().join("store.db")),
            schema: None,
            _dir: Some(dir),
        }
    }

    /// A new schema on the test server, or `None` (skipped) when there is no server.
    pub fn postgres() -> Option<TestDb> {
        let Some(admin) = std::env::var(POSTGRES_ENV).ok().filter(|v| !v.is_empty()) else {
            assert!(
                std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                "${REQUIRE_ENV}=1 but ${POSTGRES_ENV} names no PostgreSQL server"
            );
            eprintln!(
                "skipped: no PostgreSQL server (${POSTGRES_ENV}); scripts/test.sh starts one"
            );
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let schema = format!(
            "t{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("${POSTGRES_ENV}: cannot connect: {e}"));
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let separator = if admin.contains('?') { '&' } else { '?' };
        let url = format!("{admin}{separator}options=-c%20search_path%3D{schema}");
        Some(TestDb {
            backend: Backend::Postgres,
            location: url.parse().unwrap(),
            schema: Some(schema),
            _dir: None,
        })
    }

    /// Runs SQL straight on the database, without the store (to make foreign or damaged
    /// stores).
    pub fn raw(&self, sql: &str) {
        match &self.location {
            StoreLocation::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            StoreLocation::Postgres(url) => {
                let mut client =
                    postgres::Client::connect(url.as_secret_str(), postgres::NoTls).unwrap();
                client.batch_execute(sql).unwrap();
            }
        }
    }

    /// Tables of the store (PostgreSQL: of its schema), sorted, without PostgreSQL's
    /// `detbench_store` identity table; read without opening the store.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.location {
            StoreLocation::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap(),
            StoreLocation::Postgres(url) => {
                postgres::Client::connect(url.as_secret_str(), postgres::NoTls)
                    .unwrap()
                    .query(
                        "SELECT table_name::text FROM information_schema.tables
                         WHERE table_schema = current_schema() AND table_name <> 'detbench_store'",
                        &[],
                    )
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            }
        };
        names.sort();
        names
    }
}

/// `count(*)`-style single integers through the store.
pub fn count(store: &detbench_report::Store, sql: &str) -> i64 {
    store.query_i64(sql, &[]).unwrap()
}

pub fn int(v: i64) -> Value {
    Value::Int(v)
}
