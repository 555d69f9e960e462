//! The one connection type the store's code talks to, whichever database is behind it: every
//! statement, transaction and identity check goes through [`Db`], which hands it to the SQLite
//! or the PostgreSQL backend. Adding a table never touches this file: its migration goes into
//! `crate::schema` and its statements into `write`/`query`, written once for both.

use super::postgres::PostgresDb;
use super::sql::{DbError, Dialect, Row, Value};
use super::sqlite::SqliteDb;

/// What a database says it is, read before anything is written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// Migrations applied (0 for an empty database).
    pub version: u32,
    /// detbench's application id when the database carries one.
    pub application_id: Option<i64>,
    /// Tables present (the schema's, for PostgreSQL).
    pub tables: i64,
}

/// An open store database.
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(Box<PostgresDb>),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(db) => db.execute(sql, params),
            Db::Postgres(db) => db.execute(sql, params),
        }
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(db) => db.query(sql, params),
            Db::Postgres(db) => db.query(sql, params),
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        match self {
            Db::Sqlite(db) => db.query_opt(sql, params),
            Db::Postgres(db) => Ok(db.query(sql, params)?.into_iter().next()),
        }
    }

    /// An `INSERT ... RETURNING id`: the new row's id.
    pub fn insert(&mut self, sql: &str, params: &[Value]) -> Result<i64, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)?.i64(0)
    }

    /// Several statements without parameters (migrations).
    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(db) => db.execute_batch(sql),
            Db::Postgres(db) => db.execute_batch(sql),
        }
    }

    /// Starts a write transaction. SQLite takes its write lock now (`BEGIN IMMEDIATE`), so a
    /// busy store fails before anything is written rather than at commit.
    pub fn begin_write(&mut self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(db) => db.execute_batch("BEGIN IMMEDIATE"),
            Db::Postgres(db) => db.execute_batch("BEGIN"),
        }
    }

    /// Starts the transaction a schema change runs in, excluding every other process that
    /// wants to change the schema.
    pub fn begin_schema_change(&mut self) -> Result<(), DbError> {
        match self {
            Db::Sqlite(db) => db.execute_batch("BEGIN IMMEDIATE"),
            Db::Postgres(db) => db.begin_schema_change(),
        }
    }

    pub fn commit(&mut self) -> Result<(), DbError> {
        self.execute_batch("COMMIT")
    }

    pub fn rollback(&mut self) -> Result<(), DbError> {
        self.execute_batch("ROLLBACK")
    }

    pub fn identity(&mut self) -> Result<Identity, DbError> {
        match self {
            Db::Sqlite(db) => db.identity(),
            Db::Postgres(db) => db.identity(),
        }
    }

    pub fn set_identity(&mut self, version: u32, application_id: i64) -> Result<(), DbError> {
        match self {
            Db::Sqlite(db) => db.set_identity(version, application_id),
            Db::Postgres(db) => db.set_identity(version, application_id),
        }
    }
}
