//! The SQLite results store: every run with its provenance, and published records beside them.
//!
//! One database file (default `runs/detbench.db`) in WAL mode with a busy timeout, so that
//! several `detbench run` processes can record at once. Each run is written in one
//! transaction: a process killed midway leaves nothing behind. A file that is not a detbench
//! store, is corrupt, is locked for longer than the timeout or has a newer schema than this
//! build gives an error naming it and is never modified.
//!
//! This module opens, checks and migrates the file; [`write`] records runs and published
//! tables, [`query`] reads them back into the typed [`record`]s (`docs/STORE.md` has the
//! schema).

mod query;
mod record;
mod write;

pub use record::{
    Filter, LatencySummary, PublishedImport, PublishedRow, PublishedSource, ResultRecord,
    RunSummary, StageSummary, samples_from_blob,
};
pub use write::samples_to_blob;

use crate::schema::{APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the store (overridden by `--db`).
pub const DB_ENV: &str = "DETBENCH_DB";
/// The store used when neither `--db` nor `$DETBENCH_DB` is given, relative to the current
/// directory.
pub const DEFAULT_DB: &str = "runs/detbench.db";
/// How long a writer waits for another process's transaction before giving up.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub type RunId = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} is not a SQLite database (or is corrupt); it was left untouched: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(
        "{path} is a SQLite database but not a detbench store (application_id {application_id:#x}, \
         {tables} tables); it was left untouched"
    )]
    NotAStore {
        path: String,
        application_id: i32,
        tables: i64,
    },
    #[error(
        "{path} has store schema version {found}, newer than this build understands ({supported}); \
         use a newer detbench. The file was left untouched"
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
    #[error("{path}: while {operation}: {source}")]
    Sqlite {
        path: String,
        operation: &'static str,
        source: rusqlite::Error,
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

/// Options for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// The results database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    busy_timeout: Duration,
}

/// The store path a command should use: `--db` if given, else `$DETBENCH_DB`, else
/// [`DEFAULT_DB`].
pub fn resolve_path(cli: Option<&Path>) -> PathBuf {
    cli.map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(DB_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

impl Store {
    /// Opens (creating it and its folder if needed) and upgrades the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open_with(path, &OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(StoreError::IsADirectory { path: shown });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: shown.clone(),
                source,
            })?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| classify(&path, "opening", options.busy_timeout, source))?;
        let mut store = Store {
            conn,
            path,
            busy_timeout: options.busy_timeout,
        };
        store.prepare()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| classify(&self.path, operation, self.busy_timeout, source)
    }

    /// Checks what the file is before anything is written to it, then switches to WAL and
    /// applies missing migrations.
    fn prepare(&mut self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(self.busy_timeout)
            .map_err(self.err("setting the busy timeout"))?;
        // Reading the header is the first access to the file: a non-database fails here.
        let (version, application_id, tables) = self.identify("reading the schema version")?;
        self.check_identity(version, application_id, tables)?;
        // WAL lets readers run beside one writer, and a killed writer's uncommitted frames are
        // ignored on the next open. synchronous=FULL makes a committed run durable.
        //
        // Switching needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
        // its busy handler, when another process holds a lock this one would otherwise wait on
        // forever (several processes opening a new store together; seen in CI). So the switch
        // is retried here until the busy timeout has passed.
        let started = std::time::Instant::now();
        let mode: String = loop {
            match self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            {
                Err(e) if is_busy(&e) && started.elapsed() < self.busy_timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result => break result.map_err(self.err("switching to WAL"))?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Sqlite {
                path: self.path.display().to_string(),
                operation: "switching to WAL",
                source: rusqlite::Error::InvalidQuery,
            });
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(self.err("setting pragmas"))?;
        if version < SCHEMA_VERSION {
            self.migrate()?;
        }
        Ok(())
    }

    /// Schema version, application id and table count, read in one read transaction: another
    /// process creating the schema at the same moment must not be seen half-way (its tables
    /// without its application id).
    fn identify(&self, operation: &'static str) -> Result<(u32, i32, i64), StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err(operation))?;
        let version: u32 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.err(operation))?;
        let application_id: i32 = tx
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(self.err(operation))?;
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err(operation))?;
        tx.commit().map_err(self.err(operation))?;
        Ok((version, application_id, tables))
    }

    fn check_identity(
        &self,
        version: u32,
        application_id: i32,
        tables: i64,
    ) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let foreign = application_id != APPLICATION_ID && (application_id != 0 || tables > 0);
        if foreign {
            return Err(StoreError::NotAStore {
                path,
                application_id,
                tables,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }

    /// Applies the missing migrations in one IMMEDIATE transaction. The version is read again
    /// inside it, so two processes opening an old store at once migrate it once.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let context = ErrorContext {
            path: self.path.clone(),
            timeout: self.busy_timeout,
        };
        let err = |operation| context.at(operation);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting the schema upgrade"))?;
        let version: u32 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err("reading the schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: context.path.display().to_string(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(err("applying a schema migration"))?;
            tx.pragma_update(None, "user_version", (index + 1) as i64)
                .map_err(err("recording the schema version"))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(err("recording the application id"))?;
        tx.commit().map_err(err("committing the schema upgrade"))
    }

    /// The schema version of the open store (always [`SCHEMA_VERSION`] after `open`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.err("reading the schema version"))
    }
}

/// The stage name under which the end-to-end latency of a call (one batch) is stored.
pub const END_TO_END: &str = "end_to_end";

/// What an SQLite error is reported against, detached from `Store` so that it can be used while
/// a transaction borrows the connection.
struct ErrorContext {
    path: PathBuf,
    timeout: Duration,
}

impl ErrorContext {
    fn at(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| classify(&self.path, operation, self.timeout, source)
    }
}

/// Whether SQLite refused because another connection holds a lock.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Maps an SQLite error to what it means for the user, naming the file.
fn classify(
    path: &Path,
    operation: &'static str,
    timeout: Duration,
    source: rusqlite::Error,
) -> StoreError {
    let path = path.display().to_string();
    if is_busy(&source) {
        return StoreError::Locked {
            path,
            operation,
            timeout,
        };
    }
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path,
            detail: source.to_string(),
        },
        _ => StoreError::Sqlite {
            path,
            operation,
            source,
        },
    }
}
