//! The SQLite results store: every run with its provenance, and published records beside them.
//!
//! One database file (default `runs/detbench.db`) in WAL mode with a busy timeout, so that
//! several `detbench run` processes can record at once. Each run is written in one
//! transaction: a process killed midway leaves nothing behind. A file that is not a detbench
//! store, is corrupt, is locked for longer than the timeout or has a newer schema than this
//! build gives an error naming it and is never modified.

use crate::schema::{APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};
use detbench_bench::results::{
    Accuracy, DETECTION_STAT_NAMES, KEYPOINT_STAT_NAMES, ModelResult, RunResults, Summary,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::collections::BTreeMap;
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

    /// Records a run in one transaction and returns its id.
    pub fn record_run(&mut self, run: &RunResults) -> Result<RunId, StoreError> {
        self.record_run_observed(run, &mut |_| {})
    }

    /// [`Store::record_run`], calling `after_model(i)` inside the transaction once model `i`
    /// is written (for progress display; tests use it to kill a process mid-transaction).
    pub fn record_run_observed(
        &mut self,
        run: &RunResults,
        after_model: &mut dyn FnMut(usize),
    ) -> Result<RunId, StoreError> {
        let context = ErrorContext {
            path: self.path.clone(),
            timeout: self.busy_timeout,
        };
        let err = |operation| context.at(operation);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting to record a run"))?;
        let run_id = insert_run(
            &tx,
            &run.started_at,
            &run.detbench_version,
            run.schema_version,
            &run.command_line,
            &run.environment,
        )
        .map_err(err("recording a run"))?;
        for (position, skipped) in run.skipped.iter().enumerate() {
            tx.execute(
                "INSERT INTO skipped (run_id, position, model, batch_size, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    run_id,
                    position as i64,
                    skipped.name,
                    skipped.batch_size as i64,
                    skipped.reason
                ],
            )
            .map_err(err("recording a skipped model"))?;
        }
        for (position, model) in run.models.iter().enumerate() {
            insert_model_result(&tx, run_id, position, model)
                .map_err(err("recording a model result"))?;
            after_model(position);
        }
        tx.commit().map_err(err("committing a run"))?;
        Ok(run_id)
    }

    /// Records published rows (one `detbench import-md`) in one transaction and returns the
    /// run id they were filed under.
    pub fn record_published(&mut self, import: &PublishedImport) -> Result<RunId, StoreError> {
        let context = ErrorContext {
            path: self.path.clone(),
            timeout: self.busy_timeout,
        };
        let err = |operation| context.at(operation);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("starting to record published results"))?;
        let now = crate::environment::now_rfc3339();
        let run_id = insert_run(
            &tx,
            &now,
            crate::environment::DETBENCH_VERSION,
            detbench_bench::results::RESULTS_SCHEMA_VERSION,
            &import.command_line,
            &serde_json::Value::Null,
        )
        .map_err(err("recording an import"))?;
        tx.execute(
            "INSERT INTO sources (name, file, file_sha256, device_label, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                import.source,
                import.file,
                import.file_sha256,
                import.device_label,
                now
            ],
        )
        .map_err(err("recording a source"))?;
        let source_id = tx.last_insert_rowid();
        for (position, row) in import.rows.iter().enumerate() {
            insert_published_row(&tx, run_id, source_id, position, row)
                .map_err(err("recording a published row"))?;
        }
        tx.commit().map_err(err("committing published results"))?;
        Ok(run_id)
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.started_at, r.detbench_version, r.hostname, r.command_line,
                        (SELECT count(*) FROM results WHERE run_id = r.id),
                        (SELECT s.name FROM results x JOIN sources s ON s.id = x.source_id
                          WHERE x.run_id = r.id LIMIT 1)
                 FROM runs r ORDER BY r.id DESC",
            )
            .map_err(self.err("listing runs"))?;
        let rows = stmt
            .query_map([], |r| {
                let command_line: String = r.get(4)?;
                Ok(RunSummary {
                    id: r.get(0)?,
                    started_at: r.get(1)?,
                    detbench_version: r.get(2)?,
                    hostname: r.get(3)?,
                    command_line: serde_json::from_str(&command_line).unwrap_or_default(),
                    results: r.get(5)?,
                    published_source: r.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("listing runs"))?;
        Ok(rows)
    }

    /// The stored environment of a run (`null` for an import).
    pub fn run_environment(&self, run: RunId) -> Result<serde_json::Value, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT environment FROM runs WHERE id = ?1", [run], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("reading a run"))?;
        let text = text.ok_or_else(|| StoreError::RunNotFound {
            path: self.path.display().to_string(),
            run,
        })?;
        serde_json::from_str(&text).map_err(|source| StoreError::BadJson {
            path: self.path.display().to_string(),
            result: run,
            what: "environment",
            source,
        })
    }

    /// Results matching `filter`, oldest first, with their accuracy and latency summaries.
    pub fn results(&self, filter: &Filter) -> Result<Vec<ResultRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT x.id, x.run_id, r.started_at, r.detbench_version, x.model, x.status,
                    x.family, x.model_sha256, x.engine, x.engine_version, x.device, x.precision,
                    x.threads, x.batch_size, x.dataset_images, x.dataset_annotation_sha256,
                    s.name, s.file, s.device_label, pl.latency_ms,
                    (SELECT count(*) FROM failed_images f WHERE f.result_id = x.id)
             FROM results x
             JOIN runs r ON r.id = x.run_id
             LEFT JOIN sources s ON s.id = x.source_id
             LEFT JOIN published_latency pl ON pl.result_id = x.id
             WHERE 1 = 1",
        );
        let mut values: Vec<rusqlite::types::Value> = Vec::new();
        let text = |items: &[String]| -> Vec<rusqlite::types::Value> {
            items
                .iter()
                .map(|s| rusqlite::types::Value::Text(s.clone()))
                .collect()
        };
        push_any_of(
            &mut sql,
            &mut values,
            "x.model",
            text(&filter.models),
            false,
        );
        let runs = filter
            .runs
            .iter()
            .map(|&id| rusqlite::types::Value::Integer(id));
        push_any_of(&mut sql, &mut values, "x.run_id", runs.collect(), false);
        // Settings filters apply to measured results; published rows have no settings and
        // stay in unless published rows are excluded.
        let engines: Vec<String> = filter.engines.iter().map(|e| engine_alias(e)).collect();
        push_any_of(&mut sql, &mut values, "x.engine", text(&engines), true);
        push_any_of(
            &mut sql,
            &mut values,
            "x.device",
            text(&filter.devices),
            true,
        );
        push_any_of(
            &mut sql,
            &mut values,
            "x.precision",
            text(&filter.precisions),
            true,
        );
        let batches = filter
            .batch_sizes
            .iter()
            .map(|&b| rusqlite::types::Value::Integer(b as i64));
        push_any_of(
            &mut sql,
            &mut values,
            "x.batch_size",
            batches.collect(),
            true,
        );
        if !filter.include_published {
            sql.push_str(" AND x.source_id IS NULL");
        }
        if !filter.include_failed {
            sql.push_str(" AND x.status = 'ok'");
        }
        sql.push_str(" ORDER BY x.run_id, x.position");

        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(self.err("querying results"))?;
        let mut records = stmt
            .query_map(rusqlite::params_from_iter(values), |r| {
                let source_name: Option<String> = r.get(16)?;
                Ok(ResultRecord {
                    result_id: r.get(0)?,
                    run_id: r.get(1)?,
                    started_at: r.get(2)?,
                    detbench_version: r.get(3)?,
                    model: r.get(4)?,
                    status: r.get(5)?,
                    family: r.get(6)?,
                    model_sha256: r.get(7)?,
                    engine: r.get(8)?,
                    engine_version: r.get(9)?,
                    device: r.get(10)?,
                    precision: r.get(11)?,
                    threads: r.get(12)?,
                    batch_size: r.get(13)?,
                    dataset_images: r.get(14)?,
                    annotation_sha256: r.get(15)?,
                    published: match source_name {
                        Some(name) => Some(PublishedSource {
                            name,
                            file: r.get(17)?,
                            device_label: r.get(18)?,
                        }),
                        None => None,
                    },
                    published_latency_ms: r.get(19)?,
                    failed_images: r.get(20)?,
                    accuracy: BTreeMap::new(),
                    latency: None,
                    stages: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("querying results"))?;
        for record in &mut records {
            self.load_details(record)?;
        }
        Ok(records)
    }

    fn load_details(&self, record: &mut ResultRecord) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT iou_type, stat, value FROM stats WHERE result_id = ?1
                 ORDER BY iou_type, position",
            )
            .map_err(self.err("reading stats"))?;
        let stats = stmt
            .query_map([record.result_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading stats"))?;
        for (iou_type, stat, value) in stats {
            record
                .accuracy
                .entry(iou_type)
                .or_default()
                .push((stat, value));
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT images_per_second, timed_images, includes_decode, valid, validity_notes,
                        percentile_definition
                 FROM latency WHERE result_id = ?1",
            )
            .map_err(self.err("reading latency"))?;
        let header = stmt
            .query_row([record.result_id], |r| {
                Ok((
                    r.get::<_, f64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .optional()
            .map_err(self.err("reading latency"))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT stage, count, mean, median, min, max, std, p90, p95, p99
                 FROM latency_stages WHERE result_id = ?1 ORDER BY position",
            )
            .map_err(self.err("reading latency stages"))?;
        let stages = stmt
            .query_map([record.result_id], |r| {
                Ok(StageSummary {
                    stage: r.get(0)?,
                    summary: Summary {
                        count: r.get::<_, i64>(1)? as usize,
                        mean: r.get(2)?,
                        median: r.get(3)?,
                        min: r.get(4)?,
                        max: r.get(5)?,
                        std: r.get(6)?,
                        p90: r.get(7)?,
                        p95: r.get(8)?,
                        p99: r.get(9)?,
                    },
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading latency stages"))?;
        let (end_to_end, stages): (Vec<_>, Vec<_>) =
            stages.into_iter().partition(|s| s.stage == END_TO_END);
        record.stages = stages;
        if let (Some((ips, timed, includes_decode, valid, notes, definition)), Some(e2e)) =
            (header, end_to_end.into_iter().next())
        {
            record.latency = Some(LatencySummary {
                end_to_end: e2e.summary,
                images_per_second: ips,
                timed_images: timed as usize,
                includes_decode,
                valid,
                validity_notes: serde_json::from_str(&notes).map_err(|source| {
                    StoreError::BadJson {
                        path: self.path.display().to_string(),
                        result: record.result_id,
                        what: "validity_notes",
                        source,
                    }
                })?,
                percentile_definition: definition,
            });
        }
        Ok(())
    }

    /// The raw latency samples (ms, run order) of one stage of a result (`end_to_end` for the
    /// whole call).
    pub fn latency_samples(&self, result_id: i64, stage: &str) -> Result<Vec<f64>, StoreError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT samples_ms FROM latency_stages WHERE result_id = ?1 AND stage = ?2",
                params![result_id, stage],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading latency samples"))?;
        Ok(blob.map(|b| samples_from_blob(&b)).unwrap_or_default())
    }

    /// Per-class AP of one result for one IoU type: (category id, name, AP or `None`).
    pub fn class_ap(
        &self,
        result_id: i64,
        iou_type: &str,
    ) -> Result<Vec<(u64, String, Option<f64>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT category_id, name, ap FROM class_ap
                 WHERE result_id = ?1 AND iou_type = ?2 ORDER BY category_id",
            )
            .map_err(self.err("reading per-class AP"))?;
        stmt.query_map(params![result_id, iou_type], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(self.err("reading per-class AP"))
    }

    /// Failed images of one result: (file, reason).
    pub fn failed_images(&self, result_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT file, reason FROM failed_images WHERE result_id = ?1 ORDER BY position",
            )
            .map_err(self.err("reading failed images"))?;
        stmt.query_map([result_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading failed images"))
    }

    /// The underlying connection, for ad-hoc queries (read-only use is advised).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// Appends `AND column IN (?, ...)` (letting published rows through when `published_pass`).
fn push_any_of(
    sql: &mut String,
    values: &mut Vec<rusqlite::types::Value>,
    column: &str,
    items: Vec<rusqlite::types::Value>,
    published_pass: bool,
) {
    if items.is_empty() {
        return;
    }
    let marks = vec!["?"; items.len()].join(", ");
    if published_pass {
        sql.push_str(&format!(
            " AND (x.source_id IS NOT NULL OR {column} IN ({marks}))"
        ));
    } else {
        sql.push_str(&format!(" AND {column} IN ({marks})"));
    }
    values.extend(items);
}

/// The stage name under which the end-to-end latency of a call (one batch) is stored.
pub const END_TO_END: &str = "end_to_end";

/// `ort` and `torch` as the CLI spells engines, to the names engines report.
pub fn engine_alias(name: &str) -> String {
    match name {
        "ort" | "onnx" => "onnxruntime".to_owned(),
        "torch" | "tch" => "libtorch".to_owned(),
        other => other.to_owned(),
    }
}

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

/// Maps an SQLite error to what it means for the user, naming the file.
/// Whether SQLite refused because another connection holds a lock.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

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

fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    started_at: &str,
    detbench_version: &str,
    results_schema_version: u32,
    command_line: &[String],
    environment: &serde_json::Value,
) -> rusqlite::Result<RunId> {
    let hostname = environment
        .get("hostname")
        .and_then(|h| h.as_str())
        .map(str::to_owned);
    tx.execute(
        "INSERT INTO runs (started_at, recorded_at, detbench_version, results_schema_version,
                           command_line, environment, hostname)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            started_at,
            crate::environment::now_rfc3339(),
            detbench_version,
            results_schema_version,
            json_text(&command_line),
            json_text(environment),
            hostname,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn insert_model_result(
    tx: &rusqlite::Transaction<'_>,
    run_id: RunId,
    position: usize,
    model: &ModelResult,
) -> rusqlite::Result<()> {
    let backend = model.backend.as_ref();
    let options: serde_json::Map<String, serde_json::Value> = backend
        .map(|b| {
            b.options
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    // The full result for `result_json`, without the raw samples stored as BLOBs below.
    let mut without_samples = model.clone();
    if let Some(latency) = without_samples.latency.as_mut() {
        latency.end_to_end_samples_ms.clear();
        for stage in &mut latency.stages {
            stage.samples_ms.clear();
        }
    }
    tx.execute(
        "INSERT INTO results (run_id, position, model, status, family, input, model_file,
             model_sha256, engine, engine_version, device, precision, threads, backend_options,
             batch_size, dataset_image_dir, dataset_annotation_file, dataset_annotation_sha256,
             dataset_images, provenance, detections_per_image, reference_agreement, result_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23)",
        params![
            run_id,
            position as i64,
            model.name,
            model.status,
            model.family,
            (!model.input.is_empty()).then_some(model.input.as_str()),
            model.model.file,
            model.model.sha256,
            backend.map(|b| b.engine.as_str()),
            backend.map(|b| b.engine_version.as_str()),
            backend.map(|b| b.device.as_str()),
            backend.map(|b| b.precision.as_str()),
            backend.and_then(threads_option),
            backend.map(|_| json_text(&options)),
            model.batch_size as i64,
            model.dataset.image_dir,
            model.dataset.annotation_file,
            model.dataset.annotation_sha256,
            model.dataset.images as i64,
            json_text(&model.provenance),
            model.detections_per_image.as_ref().map(json_text),
            model.reference_agreement.as_ref().map(json_text),
            json_text(&without_samples),
        ],
    )?;
    let result_id = tx.last_insert_rowid();
    for (iou_type, accuracy, names) in [
        ("bbox", &model.bbox, &DETECTION_STAT_NAMES[..]),
        ("segm", &model.segm, &DETECTION_STAT_NAMES[..]),
        ("keypoints", &model.keypoints, &KEYPOINT_STAT_NAMES[..]),
    ] {
        if let Some(accuracy) = accuracy {
            insert_accuracy(tx, result_id, iou_type, accuracy, names)?;
        }
    }
    if let Some(latency) = &model.latency {
        tx.execute(
            "INSERT INTO latency (result_id, percentile_definition, warmup_iterations,
                 batch_size, timed_images, total_seconds, images_per_second, includes_decode,
                 valid, validity_notes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                result_id,
                latency.percentile_definition,
                latency.warmup_iterations as i64,
                latency.batch_size as i64,
                latency.timed_images as i64,
                latency.total_seconds,
                latency.images_per_second,
                latency.includes_decode,
                latency.valid,
                json_text(&latency.validity_notes),
            ],
        )?;
        let stages = std::iter::once((
            END_TO_END,
            &latency.end_to_end,
            &latency.end_to_end_samples_ms,
        ))
        .chain(
            latency
                .stages
                .iter()
                .map(|s| (s.stage.as_str(), &s.summary, &s.samples_ms)),
        );
        let mut stmt = tx.prepare_cached(
            "INSERT INTO latency_stages (result_id, stage, position, count, mean, median, min,
                 max, std, p90, p95, p99, samples_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for (position, (stage, s, samples)) in stages.enumerate() {
            stmt.execute(params![
                result_id,
                stage,
                position as i64,
                s.count as i64,
                s.mean,
                s.median,
                s.min,
                s.max,
                s.std,
                s.p90,
                s.p95,
                s.p99,
                samples_to_blob(samples),
            ])?;
        }
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO failed_images (result_id, position, file, reason) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (position, failed) in model.failed_images.iter().enumerate() {
        stmt.execute(params![
            result_id,
            position as i64,
            failed.file,
            failed.reason
        ])?;
    }
    Ok(())
}

fn insert_accuracy(
    tx: &rusqlite::Transaction<'_>,
    result_id: i64,
    iou_type: &str,
    accuracy: &Accuracy,
    names: &[&str],
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO stats (result_id, iou_type, stat, position, value)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, value) in accuracy.stats.iter().enumerate() {
        // A stats vector longer than pycocotools' is stored under positional names rather
        // than refused: the store keeps what the run produced.
        let name = names
            .get(position)
            .map_or_else(|| format!("stat{position}"), |n| (*n).to_owned());
        stmt.execute(params![result_id, iou_type, name, position as i64, value])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO class_ap (result_id, iou_type, category_id, name, ap)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for class in &accuracy.per_class {
        stmt.execute(params![
            result_id,
            iou_type,
            class.category_id as i64,
            class.name,
            class.ap
        ])?;
    }
    Ok(())
}

fn insert_published_row(
    tx: &rusqlite::Transaction<'_>,
    run_id: RunId,
    source_id: i64,
    position: usize,
    row: &PublishedRow,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO results (run_id, position, model, status, family, model_file, provenance,
                              result_json, source_id)
         VALUES (?1, ?2, ?3, 'ok', '', ?4, ?5, '{}', ?6)",
        params![
            run_id,
            position as i64,
            row.model,
            row.link.clone().unwrap_or_default(),
            json_text(&row.extra),
            source_id
        ],
    )?;
    let result_id = tx.last_insert_rowid();
    for (iou_type, ap) in [
        ("bbox", row.box_ap),
        ("segm", row.mask_ap),
        ("keypoints", row.keypoint_ap),
    ] {
        if let Some(ap) = ap {
            // Published tables print AP in percent; the store holds pycocotools' fraction.
            tx.execute(
                "INSERT INTO stats (result_id, iou_type, stat, position, value)
                 VALUES (?1, ?2, 'AP', 0, ?3)",
                params![result_id, iou_type, ap / 100.0],
            )?;
        }
    }
    if let Some(latency) = row.latency_ms {
        tx.execute(
            "INSERT INTO published_latency (result_id, latency_ms, column) VALUES (?1, ?2, ?3)",
            params![result_id, latency, row.latency_column],
        )?;
    }
    Ok(())
}

/// Intra-op threads from the engine options, under the names the engines use.
fn threads_option(backend: &detbench_backends::BackendDescription) -> Option<i64> {
    backend
        .options
        .iter()
        .find(|(k, _)| {
            matches!(
                k.as_str(),
                "threads" | "intra_op_threads" | "intra_threads" | "num_threads"
            )
        })
        .and_then(|(_, v)| v.parse().ok())
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serde_json::Value and plain structs serialise")
}

/// Samples as little-endian f64, 8 bytes each.
pub fn samples_to_blob(samples: &[f64]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

pub fn samples_from_blob(blob: &[u8]) -> Vec<f64> {
    blob.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
        .collect()
}

/// Which results a report covers. Empty lists mean "any".
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub models: Vec<String>,
    /// Engine names (`onnxruntime`/`ort`, `libtorch`/`torch`).
    pub engines: Vec<String>,
    pub devices: Vec<String>,
    pub precisions: Vec<String>,
    pub batch_sizes: Vec<usize>,
    pub runs: Vec<RunId>,
    pub include_published: bool,
    pub include_failed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub id: RunId,
    pub started_at: String,
    pub detbench_version: String,
    pub hostname: Option<String>,
    pub command_line: Vec<String>,
    pub results: i64,
    /// Set for a `detbench import-md` import.
    pub published_source: Option<String>,
}

/// A published source a record came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedSource {
    pub name: String,
    pub file: String,
    pub device_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageSummary {
    pub stage: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    pub end_to_end: Summary,
    pub images_per_second: f64,
    pub timed_images: usize,
    pub includes_decode: bool,
    pub valid: bool,
    pub validity_notes: Vec<String>,
    pub percentile_definition: String,
}

/// One stored result (a model at one setting in one run, or one published row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResultRecord {
    pub result_id: i64,
    pub run_id: RunId,
    pub started_at: String,
    pub detbench_version: String,
    pub model: String,
    pub status: String,
    pub family: String,
    pub model_sha256: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub device: Option<String>,
    pub precision: Option<String>,
    pub threads: Option<i64>,
    pub batch_size: Option<i64>,
    pub dataset_images: Option<i64>,
    pub annotation_sha256: Option<String>,
    /// Set for a published record.
    pub published: Option<PublishedSource>,
    pub published_latency_ms: Option<f64>,
    pub failed_images: i64,
    /// IoU type → (stat name, value) in pycocotools order.
    pub accuracy: BTreeMap<String, Vec<(String, f64)>>,
    pub latency: Option<LatencySummary>,
    /// Per-stage summaries (decode, preprocess, inference, postprocess), in run order.
    pub stages: Vec<StageSummary>,
}

impl ResultRecord {
    /// A pycocotools stat (a fraction) for an IoU type, e.g. `stat("bbox", "AP")`.
    pub fn stat(&self, iou_type: &str, stat: &str) -> Option<f64> {
        self.accuracy
            .get(iou_type)?
            .iter()
            .find(|(name, _)| name == stat)
            .map(|(_, v)| *v)
    }

    /// Mean end-to-end latency in ms: measured per call (one batch of `batch_size` images, so
    /// per image at batch 1), or the published figure (per image, as the sources give it).
    pub fn latency_mean_ms(&self) -> Option<f64> {
        self.latency
            .as_ref()
            .map(|l| l.end_to_end.mean)
            .or(self.published_latency_ms)
    }

    /// p99 of the end-to-end latency per call, in ms (measured results only).
    pub fn latency_p99_ms(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.end_to_end.p99)
    }

    pub fn stage_mean_ms(&self, stage: &str) -> Option<f64> {
        self.stages
            .iter()
            .find(|s| s.stage == stage)
            .map(|s| s.summary.mean)
    }

    pub fn is_published(&self) -> bool {
        self.published.is_some()
    }

    /// "published: TF2 Detection Model Zoo (Nvidia V100)" for a published record.
    pub fn published_label(&self) -> Option<String> {
        let source = self.published.as_ref()?;
        Some(match &source.device_label {
            Some(device) => format!("published: {} ({device})", source.name),
            None => format!("published: {}", source.name),
        })
    }
}

/// One `detbench import-md`: the rows of a published table and where they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedImport {
    /// A name for the source, e.g. "TF2 Detection Model Zoo".
    pub source: String,
    pub file: String,
    pub file_sha256: String,
    /// The hardware the source measured on, as it says.
    pub device_label: Option<String>,
    pub command_line: Vec<String>,
    pub rows: Vec<PublishedRow>,
}

/// One row of a published table. AP values are in percent, as published.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishedRow {
    pub model: String,
    /// The link the model name carried (download URL), if any.
    pub link: Option<String>,
    pub box_ap: Option<f64>,
    pub mask_ap: Option<f64>,
    pub keypoint_ap: Option<f64>,
    pub latency_ms: Option<f64>,
    /// The header the latency came from, e.g. "Speed (ms)".
    pub latency_column: String,
    /// Other columns (params, GFLOPS, outputs, ...) verbatim.
    pub extra: serde_json::Value,
}
