//! The SQLite backend: one database file in WAL mode with a busy timeout, so that several
//! processes can record at once. Its identity is SQLite's own header fields: `PRAGMA
//! application_id` ("DETB") and `PRAGMA user_version` (the number of migrations applied).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::sql::{DbError, Row, Value};
use super::{Identity, StoreError};

/// An open SQLite store file.
pub struct SqliteDb {
    conn: Connection,
    busy_timeout: Duration,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

fn value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl SqliteDb {
    /// Opens (creating it and its folder if needed) the file at `path`; nothing is read or
    /// written yet.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<SqliteDb, StoreError> {
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
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| classify(&shown, "opening", busy_timeout, e.into()))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| classify(&shown, "setting the busy timeout", busy_timeout, e.into()))?;
        Ok(SqliteDb { conn, busy_timeout })
    }

    /// Schema version, application id and table count, read in one read transaction: another
    /// process creating the schema at the same moment must not be seen half-way (its tables
    /// without its application id). Reading the header is the first access to the file, so a
    /// file that is no database fails here.
    pub fn identity(&mut self) -> Result<Identity, DbError> {
        // Inside the schema transaction the reads are consistent already.
        let tx = match self.conn.is_autocommit() {
            true => Some(self.conn.unchecked_transaction()?),
            false => None,
        };
        let version: u32 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let application_id: i32 = self
            .conn
            .pragma_query_value(None, "application_id", |r| r.get(0))?;
        let tables: i64 = self.conn.query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if let Some(tx) = tx {
            tx.commit()?;
        }
        Ok(Identity {
            version,
            application_id: (application_id != 0).then_some(i64::from(application_id)),
            tables,
        })
    }

    /// Switches to WAL and sets the pragmas every connection needs (after the identity check,
    /// so a foreign file is never touched).
    ///
    /// WAL lets readers run beside one writer, and a killed writer's uncommitted frames are
    /// ignored on the next open; synchronous=FULL makes a committed run durable. Switching needs
    /// an exclusive lock, and SQLite answers SQLITE_BUSY at once, without its busy handler, when
    /// another process holds a lock this one would otherwise wait on forever (several processes
    /// opening a new store together; seen in CI). So the switch is retried until the busy
    /// timeout has passed.
    pub fn configure(&mut self) -> Result<(), DbError> {
        let started = Instant::now();
        let mode: String = loop {
            match self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            {
                Err(e) if is_busy(&e) && started.elapsed() < self.busy_timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result => break result?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError::Sqlite(rusqlite::Error::InvalidQuery));
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        Ok(())
    }

    /// Records the schema version and detbench's application id (inside the schema transaction).
    pub fn set_identity(&mut self, version: u32, application_id: i64) -> Result<(), DbError> {
        self.conn
            .pragma_update(None, "user_version", i64::from(version))?;
        self.conn
            .pragma_update(None, "application_id", application_id)?;
        Ok(())
    }

    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                (0..columns)
                    .map(|i| r.get_ref(i).map(value))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(Row)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let columns = stmt.column_count();
        Ok(stmt
            .query_row(rusqlite::params_from_iter(params), |r| {
                (0..columns)
                    .map(|i| r.get_ref(i).map(value))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(Row)
            })
            .optional()?)
    }

    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn.execute_batch(sql)?)
    }

    /// The connection, for SQLite-only checks (pragmas, integrity).
    pub fn connection(&self) -> &Connection {
        &self.conn
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
pub(crate) fn classify(
    path: &str,
    operation: &'static str,
    timeout: Duration,
    source: DbError,
) -> StoreError {
    let path = path.to_owned();
    if let DbError::Sqlite(e) = &source {
        if is_busy(e) {
            return StoreError::Locked {
                path,
                operation,
                timeout,
            };
        }
        if let Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) = e.sqlite_error_code() {
            return StoreError::Corrupt {
                path,
                detail: e.to_string(),
            };
        }
    }
    StoreError::Database {
        path,
        operation,
        source,
    }
}
