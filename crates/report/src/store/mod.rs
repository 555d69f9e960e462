//! The results store: every run with its provenance, and published records beside them, in an
//! SQLite file (the embedded default, `detbench.db` in the platform data folder) or a PostgreSQL database a team shares
//! (`--db postgres://...`).
//!
//! One store API over two backends with the same tables, queries and migrations
//! ([`crate::schema`]): [`backend::Db`] hands each statement to [`sqlite`] or [`postgres`], and
//! [`sql`] holds the little that differs between the dialects. An SQLite store is one file
//! (default `detbench.db` in the platform data folder, see [`resolve_path`]) in WAL mode with a
//! busy timeout, so that several `detbench run` processes can record at once. Each run is
//! written in one transaction: a process killed midway leaves nothing behind. A database that
//! is not a detbench
//! store, is corrupt, is locked for longer than the timeout or has a newer schema than this
//! build gives an error naming it and is never modified.
//!
//! This module opens, checks and migrates a store; [`write`] records runs and published
//! tables, [`query`] reads them back into the typed [`record`]s ([`training`] and [`scenario`]
//! do both for training runs and LoadGen scenario results) (`docs/STORE.md` has the
//! schema).

mod backend;
mod location;
mod postgres;
mod query;
mod record;
mod scenario;
mod sql;
mod sqlite;
mod training;
mod write;

pub use backend::Identity;
pub use location::{LocationError, PostgresUrl, StoreLocation, redact};
pub use record::{
    Filter, LatencySummary, PublishedImport, PublishedRow, PublishedSource, ResultRecord,
    RunSummary, StageSummary, samples_from_blob,
};
pub use scenario::{latencies_from_blob, latencies_to_blob};
pub use sql::{DbError, Dialect, Row, Value};
pub use training::TrainingRecord;
pub use write::samples_to_blob;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::schema::{APPLICATION_ID, SCHEMA_VERSION, migration};
use backend::Db;

/// Environment variable naming the store (overridden by `--db`): a file path or a
/// `postgres://` URL.
pub const DB_ENV: &str = "DETBENCH_DB";
/// The file name of the default store, in the platform data folder ([`default_path`]).
pub const DEFAULT_DB_NAME: &str = "detbench.db";
/// How long a writer waits for another process's transaction before giving up (SQLite).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub type RunId = i64;

/// What went wrong with a store. `path` is the store's file or its URL, password hidden.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} is not a SQLite database (or is corrupt); it was left untouched: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(
        "{path} is a database but not a detbench store (application_id {application_id:#x}, \
         {tables} tables); it was left untouched"
    )]
    NotAStore {
        path: String,
        application_id: i64,
        tables: i64,
    },
    #[error(
        "{path} has store schema version {found}, newer than this build understands ({supported}); \
         use a newer detbench. The store was left untouched"
    )]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error(
        "{path} stayed locked by another process for more than {timeout:?} while {operation}; \
         nothing was written"
    )]
    Locked {
        path: String,
        operation: &'static str,
        timeout: Duration,
    },
    #[error("cannot create the folder for {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a folder, expected a database file")]
    IsADirectory { path: String },
    #[error("cannot reach the PostgreSQL results store {url}: {source}")]
    Unreachable { url: String, source: DbError },
    #[error(
        "{url}: no schema to create the store in (the URL's search_path names a schema that \
         does not exist; create it, or leave search_path out to use `public`)"
    )]
    NoSchema { url: String },
    #[error("{path}: while {operation}: {source}")]
    Database {
        path: String,
        operation: &'static str,
        source: DbError,
    },
    #[error("{path}: run {run} not found")]
    RunNotFound { path: String, run: RunId },
    #[error("{path}: result {result}: stored {what} is not valid JSON: {source}")]
    BadJson {
        path: String,
        result: i64,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "{path}: result {result}: stored {what} `{value}` is not one this build knows: {reason}"
    )]
    BadValue {
        path: String,
        result: i64,
        what: &'static str,
        value: String,
        reason: String,
    },
}

/// Options for [`Store::open_with`] and [`Store::connect_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// SQLite: how long to wait for another process's lock.
    pub busy_timeout: Duration,
    /// Migrate only up to this schema version (tests of migrations build old stores with it);
    /// `None`: the current [`SCHEMA_VERSION`].
    pub migrate_to: Option<u32>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            migrate_to: None,
        }
    }
}

/// The results database.
pub struct Store {
    db: RefCell<Db>,
    dialect: Dialect,
    location: StoreLocation,
    /// The location as errors show it.
    shown: String,
    busy_timeout: Duration,
}

/// Where the store came from: the one place a command's store is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSource {
    Option,
    Environment,
    Default,
}

impl StoreSource {
    /// How `detbench env` says it.
    pub fn describe(self) -> &'static str {
        match self {
            StoreSource::Option => "--db",
            StoreSource::Environment => "$DETBENCH_DB",
            StoreSource::Default => "default",
        }
    }
}

/// The SQLite path a command should use: `--db` if given, else `$DETBENCH_DB`, else
/// [`default_path`]. Every command resolves its store here ([`StoreLocation::resolve`] also
/// takes PostgreSQL URLs).
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    resolve(cli).0
}

/// [`resolve_path`] and where the path came from.
pub fn resolve(cli: Option<&Path>) -> (PathBuf, StoreSource) {
    if let Some(path) = cli {
        return (path.to_path_buf(), StoreSource::Option);
    }
    if let Some(value) = std::env::var_os(DB_ENV).filter(|v| !v.is_empty()) {
        return (PathBuf::from(value), StoreSource::Environment);
    }
    (default_path(), StoreSource::Default)
}

/// `detbench.db` in the platform data folder (`directories`' `ProjectDirs::data_dir`:
/// `$XDG_DATA_HOME/detbench`, else `~/.local/share/detbench` on Linux; `~/Library/Application
/// Support/detbench` on macOS), so that runs from any folder land in one store; `runs/` in
/// the current folder when no home folder is known.
pub fn default_path() -> PathBuf {
    directories::ProjectDirs::from("", "", "detbench")
        .map(|dirs| dirs.data_dir().join(DEFAULT_DB_NAME))
        .unwrap_or_else(|| Path::new("runs").join(DEFAULT_DB_NAME))
}

/// What a database error is reported against, detached from `Store` so that it can be used
/// while the connection is borrowed.
pub(crate) struct ErrorContext {
    shown: String,
    dialect: Dialect,
    timeout: Duration,
}

impl ErrorContext {
    pub(crate) fn at(&self, operation: &'static str) -> impl Fn(DbError) -> StoreError + '_ {
        move |source| match self.dialect {
            Dialect::Sqlite => sqlite::classify(&self.shown, operation, self.timeout, source),
            Dialect::Postgres => postgres::classify(&self.shown, operation, source),
        }
    }
}

impl Store {
    /// Opens (creating it and its folder if needed) and upgrades the SQLite store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, &OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Store, StoreError> {
        Store::connect_with(&StoreLocation::Sqlite(path.as_ref().to_path_buf()), options)
    }

    /// Opens (creating the file, or the tables in the PostgreSQL schema, if needed) and
    /// upgrades the store at `location`.
    pub fn connect(location: &StoreLocation) -> Result<Store, StoreError> {
        Store::connect_with(location, &OpenOptions::default())
    }

    pub fn connect_with(
        location: &StoreLocation,
        options: &OpenOptions,
    ) -> Result<Store, StoreError> {
        let db = match location {
            StoreLocation::Sqlite(path) => {
                Db::Sqlite(sqlite::SqliteDb::open(path, options.busy_timeout)?)
            }
            StoreLocation::Postgres(url) => {
                Db::Postgres(Box::new(postgres::PostgresDb::connect(url)?))
            }
        };
        let store = Store {
            dialect: db.dialect(),
            db: RefCell::new(db),
            shown: location.to_string(),
            location: location.clone(),
            busy_timeout: options.busy_timeout,
        };
        store.prepare(options.migrate_to.unwrap_or(SCHEMA_VERSION))?;
        Ok(store)
    }

    /// Where the store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The SQLite file, or the redacted URL as a path-like name (for messages).
    pub fn path(&self) -> &Path {
        match &self.location {
            StoreLocation::Sqlite(path) => path,
            StoreLocation::Postgres(_) => Path::new(&self.shown),
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn context(&self) -> ErrorContext {
        ErrorContext {
            shown: self.shown.clone(),
            dialect: self.dialect,
            timeout: self.busy_timeout,
        }
    }

    pub(crate) fn err(&self, operation: &'static str) -> impl Fn(DbError) -> StoreError + '_ {
        move |source| self.context().at(operation)(source)
    }

    /// Checks what the database is before anything is written to it, configures the
    /// connection, and applies missing migrations up to `target`.
    fn prepare(&self, target: u32) -> Result<(), StoreError> {
        let identity = self
            .db
            .borrow_mut()
            .identity()
            .map_err(self.err("reading the schema version"))?;
        self.check_identity(&identity)?;
        if let Db::Sqlite(db) = &mut *self.db.borrow_mut() {
            db.configure().map_err(self.err("switching to WAL"))?;
        }
        if identity.version < target {
            self.migrate(target)?;
        }
        Ok(())
    }

    fn check_identity(&self, identity: &Identity) -> Result<(), StoreError> {
        let path = self.shown.clone();
        let application_id = identity.application_id.unwrap_or(0);
        let foreign = application_id != i64::from(APPLICATION_ID)
            && (application_id != 0 || identity.tables > 0);
        if foreign {
            return Err(StoreError::NotAStore {
                path,
                application_id,
                tables: identity.tables,
            });
        }
        if identity.version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found: identity.version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Applies the missing migrations up to `target` in one schema transaction. The identity is
    /// read again inside it, so two processes opening an old or new store at once migrate it
    /// once, and a store another build upgraded meanwhile is refused if it is now newer.
    fn migrate(&self, target: u32) -> Result<(), StoreError> {
        let context = self.context();
        let err = |operation| context.at(operation);
        let mut db = self.db.borrow_mut();
        db.begin_schema_change()
            .map_err(err("starting the schema upgrade"))?;
        let result = (|| {
            let identity = db.identity().map_err(err("reading the schema version"))?;
            self.check_identity(&identity)?;
            let dialect = db.dialect();
            for index in identity.version..target {
                db.execute_batch(&migration(dialect, index as usize))
                    .map_err(err("applying a schema migration"))?;
            }
            if identity.version < target {
                db.set_identity(target, i64::from(APPLICATION_ID))
                    .map_err(err("recording the schema version"))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => db.commit().map_err(err("committing the schema upgrade")),
            Err(e) => {
                let _ = db.rollback();
                Err(e)
            }
        }
    }

    /// The schema version of the open store (the target version after `open`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .db
            .borrow_mut()
            .identity()
            .map_err(self.err("reading the schema version"))?
            .version)
    }

    /// Runs `f` in one write transaction: committed when it returns `Ok`, rolled back otherwise.
    pub(crate) fn write<T>(
        &self,
        starting: &'static str,
        f: impl FnOnce(&mut Db, &ErrorContext) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let context = self.context();
        let mut db = self.db.borrow_mut();
        db.begin_write().map_err(context.at(starting))?;
        match f(&mut db, &context) {
            Ok(value) => {
                if let Err(e) = db.commit() {
                    let _ = db.rollback();
                    return Err(context.at("committing")(e));
                }
                Ok(value)
            }
            Err(e) => {
                let _ = db.rollback();
                Err(e)
            }
        }
    }

    /// Runs ad-hoc SQL (placeholders `?1`, `?2`) on either backend; returns the rows changed.
    /// For maintenance and tests: the store's own writes go through `record_*`.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.db
            .borrow_mut()
            .execute(sql, params)
            .map_err(self.err("running a statement"))
    }

    /// Several statements without parameters, on either backend.
    pub fn execute_batch(&self, sql: &str) -> Result<(), StoreError> {
        self.db
            .borrow_mut()
            .execute_batch(sql)
            .map_err(self.err("running statements"))
    }

    /// Runs an ad-hoc query (placeholders `?1`, `?2`) on either backend.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.db
            .borrow_mut()
            .query(sql, params)
            .map_err(self.err("running a query"))
    }

    /// A single integer (`SELECT count(*) ...`), on either backend.
    pub fn query_i64(&self, sql: &str, params: &[Value]) -> Result<i64, StoreError> {
        let row = self
            .db
            .borrow_mut()
            .query_opt(sql, params)
            .and_then(|row| row.ok_or(DbError::NoRow))
            .map_err(self.err("running a query"))?;
        row.i64(0).map_err(self.err("running a query"))
    }

    /// The SQLite connection, for SQLite-only checks (pragmas, integrity); `None` for
    /// PostgreSQL.
    pub fn sqlite_connection(&self) -> Option<std::cell::Ref<'_, rusqlite::Connection>> {
        std::cell::Ref::filter_map(self.db.borrow(), |db| match db {
            Db::Sqlite(db) => Some(db.connection()),
            Db::Postgres(_) => None,
        })
        .ok()
    }
}

/// The stage name under which the end-to-end latency of a call (one batch) is stored.
pub const END_TO_END: &str = "end_to_end";
