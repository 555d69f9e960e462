//! The PostgreSQL backend, for a results store a team shares: the same tables, queries and
//! migrations as the SQLite file, in the schema the connection's `search_path` selects (the
//! database's `public` schema unless the URL says `options=-c search_path=...`).
//!
//! Its identity lives in a one-row table, `detbench_store (application_id, schema_version)`,
//! the counterpart of SQLite's header fields. Schema upgrades run in one transaction holding a
//! transaction-scoped advisory lock, so processes opening a new or old store at once migrate it
//! once; runs are recorded in one transaction each (PostgreSQL's default isolation, READ
//! COMMITTED: concurrent writers only insert, and identity columns never collide).
//!
//! The client is the synchronous `postgres` crate without TLS: connect over a Unix socket or a
//! trusted network, or through a TLS-terminating proxy (docs/CLUSTER.md).

use std::collections::HashMap;
use std::error::Error as StdError;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::sql::{DbError, Dialect, Row, Value};
use super::{Identity, PostgresUrl, StoreError};

/// How long connecting may take when the URL does not say (`connect_timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Advisory-lock key held while the schema is created or upgraded ("DETB").
const SCHEMA_LOCK: i64 = 0x4445_5442;

/// An open connection to a PostgreSQL store.
pub struct PostgresDb {
    client: Client,
    /// Prepared statements by their SQL text (after placeholder translation).
    statements: HashMap<String, Statement>,
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(v), &Type::INT8) => v.to_sql(ty, out),
            (Value::Int(v), &Type::INT4) => i32::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::INT2) => i16::try_from(*v)?.to_sql(ty, out),
            (Value::Int(v), &Type::BOOL) => (*v != 0).to_sql(ty, out),
            (Value::Int(v), &Type::FLOAT8) => (*v as f64).to_sql(ty, out),
            (Value::Real(v), &Type::FLOAT8) => v.to_sql(ty, out),
            (Value::Text(v), _) => v.as_str().to_sql(ty, out),
            (Value::Blob(v), &Type::BYTEA) => v.as_slice().to_sql(ty, out),
            (value, ty) => Err(format!("cannot store {value:?} in a {ty} column").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column of a result row as a [`Value`].
fn column(row: &postgres::Row, index: usize) -> Result<Value, DbError> {
    let ty = row.columns()[index].type_().clone();
    let value = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|v| Value::Real(v.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
        _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

impl PostgresDb {
    /// Connects; a server that cannot be reached is [`StoreError::Unreachable`].
    pub fn connect(url: &PostgresUrl) -> Result<PostgresDb, StoreError> {
        let mut config = (*url.config).clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("detbench");
        }
        let client = config
            .connect(NoTls)
            .map_err(|source| StoreError::Unreachable {
                url: url.to_string(),
                source: source.into(),
            })?;
        Ok(PostgresDb {
            client,
            statements: HashMap::new(),
        })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&Dialect::Postgres.statement(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        Ok(self.client.execute(&statement, &refs)?)
    }

    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let statement = self.statement(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        self.client
            .query(&statement, &refs)?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| column(row, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Row)
            })
            .collect()
    }

    pub fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.client.batch_execute(sql)?)
    }

    /// The identity of the schema the connection writes to: detbench's version and
    /// application id when `detbench_store` is there, and how many tables the schema holds.
    pub fn identity(&mut self) -> Result<Identity, DbError> {
        let rows = self.query(
            "SELECT current_schema(),
                    (SELECT count(*) FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'),
                    (SELECT count(*) FROM information_schema.tables
                      WHERE table_schema = current_schema() AND table_name = 'detbench_store')",
            &[],
        )?;
        let row = rows.first().ok_or(DbError::NoRow)?;
        if row.opt_text(0)?.is_none() {
            return Err(DbError::NoSchema);
        }
        let tables = row.i64(1)?;
        if row.i64(2)? == 0 {
            return Ok(Identity {
                version: 0,
                application_id: None,
                tables,
            });
        }
        let rows = self.query(
            "SELECT application_id, schema_version FROM detbench_store",
            &[],
        )?;
        let (application_id, version) = match rows.first() {
            Some(row) => (row.opt_i64(0)?, row.i64(1)?),
            None => (None, 0),
        };
        Ok(Identity {
            version: u32::try_from(version).unwrap_or(u32::MAX),
            application_id,
            tables,
        })
    }

    /// Opens the schema transaction: `BEGIN` and the advisory lock every migrating process
    /// waits on.
    pub fn begin_schema_change(&mut self) -> Result<(), DbError> {
        self.client.batch_execute("BEGIN")?;
        self.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        Ok(())
    }

    /// Records the schema version and detbench's application id (inside the schema
    /// transaction).
    pub fn set_identity(&mut self, version: u32, application_id: i64) -> Result<(), DbError> {
        self.client.batch_execute(
            "CREATE TABLE IF NOT EXISTS detbench_store (
                 application_id BIGINT NOT NULL,
                 schema_version BIGINT NOT NULL,
                 updated_at     TEXT   NOT NULL
             );
             DELETE FROM detbench_store;",
        )?;
        self.client.execute(
            "INSERT INTO detbench_store (application_id, schema_version, updated_at)
             VALUES ($1, $2, $3)",
            &[
                &application_id,
                &i64::from(version),
                &detbench_env::now_rfc3339(),
            ],
        )?;
        // The schema changed: statements prepared before it may name old row types.
        self.statements.clear();
        Ok(())
    }
}

/// Maps a PostgreSQL error to what it means for the user, naming the store.
pub(crate) fn classify(url: &str, operation: &'static str, source: DbError) -> StoreError {
    match source {
        DbError::Postgres(e) if e.is_closed() => StoreError::Unreachable {
            url: url.to_owned(),
            source: e.into(),
        },
        DbError::NoSchema => StoreError::NoSchema {
            url: url.to_owned(),
        },
        source => StoreError::Database {
            path: url.to_owned(),
            operation,
            source,
        },
    }
}
