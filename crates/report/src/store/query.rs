//! Reading the store: runs, results matching a [`Filter`] with their accuracy and latency
//! summaries, raw samples, per-class AP and failed images. Stored names (engine, device,
//! precision, status, stage) are parsed into their types as they are read; a name this build
//! does not know is an error naming the store and the column.

use std::collections::BTreeMap;
use std::str::FromStr;

use detbench_bench::results::Summary;
use detbench_env::Environment;
use detbench_eval::IouType;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::{
    END_TO_END, Filter, LatencySummary, PublishedSource, ResultRecord, RunId, RunSummary,
    StageSummary, Store, StoreError, samples_from_blob,
};

/// A stored name read back into its type (an unknown name fails the read, saying which).
struct Parsed<T>(T);

impl<T> FromSql for Parsed<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map(Parsed)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// `Option<Parsed<T>>` as `Option<T>`.
fn parsed<T>(value: Option<Parsed<T>>) -> Option<T> {
    value.map(|Parsed(v)| v)
}

/// The columns [`Store::results`] reads, in order (the row mapping reads them by position).
const RESULT_COLUMNS: &str = "x.id, x.run_id, r.started_at, r.detbench_version, x.model, \
     x.status, x.family, x.model_sha256, x.engine, x.engine_version, x.device, x.precision, \
     x.threads, x.batch_size, x.dataset_images, x.dataset_annotation_sha256, s.name, s.file, \
     s.device_label, pl.latency_ms, \
     (SELECT count(*) FROM failed_images f WHERE f.result_id = x.id)";

impl Store {
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

    /// The stored environment of a run (`None` for an import).
    pub fn run_environment(&self, run: RunId) -> Result<Option<Environment>, StoreError> {
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
        let (sql, values) = results_query(filter);
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(self.err("querying results"))?;
        let mut records = stmt
            .query_map(rusqlite::params_from_iter(values), result_record)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("querying results"))?;
        for record in &mut records {
            self.load_accuracy(record)?;
            self.load_latency(record)?;
        }
        Ok(records)
    }

    fn load_accuracy(&self, record: &mut ResultRecord) -> Result<(), StoreError> {
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
                    r.get::<_, Parsed<IouType>>(0)?.0,
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
        Ok(())
    }

    fn load_latency(&self, record: &mut ResultRecord) -> Result<(), StoreError> {
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
        let rows = stmt
            .query_map([record.result_id], |r| {
                Ok((r.get::<_, String>(0)?, stored_summary(r)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.err("reading latency stages"))?;
        let mut end_to_end = None;
        for (stage, summary) in rows {
            if stage == END_TO_END {
                end_to_end = Some(summary);
                continue;
            }
            let stage = stage.parse().map_err(|e: detbench_backends::UnknownName| {
                StoreError::BadValue {
                    path: self.path.display().to_string(),
                    result: record.result_id,
                    what: "latency stage",
                    value: stage.clone(),
                    reason: e.to_string(),
                }
            })?;
            record.stages.push(StageSummary { stage, summary });
        }
        if let (Some((ips, timed, includes_decode, valid, notes, definition)), Some(e2e)) =
            (header, end_to_end)
        {
            record.latency = Some(LatencySummary {
                end_to_end: e2e,
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
        iou_type: IouType,
    ) -> Result<Vec<(u64, String, Option<f64>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT category_id, name, ap FROM class_ap
                 WHERE result_id = ?1 AND iou_type = ?2 ORDER BY category_id",
            )
            .map_err(self.err("reading per-class AP"))?;
        stmt.query_map(params![result_id, iou_type.as_str()], |r| {
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
    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

/// The SQL of [`Store::results`] for `filter`, with its parameters. Settings filters apply to
/// measured results; published rows have no settings and stay in unless published rows are
/// excluded.
fn results_query(filter: &Filter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut sql = format!(
        "SELECT {RESULT_COLUMNS}
         FROM results x
         JOIN runs r ON r.id = x.run_id
         LEFT JOIN sources s ON s.id = x.source_id
         LEFT JOIN published_latency pl ON pl.result_id = x.id
         WHERE 1 = 1"
    );
    let mut values: Vec<Value> = Vec::new();
    let text = |items: Vec<String>| -> Vec<Value> { items.into_iter().map(Value::Text).collect() };
    let names = |items: &[_]| text(items.iter().map(ToString::to_string).collect());
    push_any_of(
        &mut sql,
        &mut values,
        "x.model",
        text(filter.models.clone()),
        false,
    );
    let runs = filter.runs.iter().map(|&id| Value::Integer(id)).collect();
    push_any_of(&mut sql, &mut values, "x.run_id", runs, false);
    let engines = text(filter.engines.iter().map(|e| e.name().to_owned()).collect());
    push_any_of(&mut sql, &mut values, "x.engine", engines, true);
    push_any_of(
        &mut sql,
        &mut values,
        "x.device",
        names(&filter.devices),
        true,
    );
    let precisions = text(filter.precisions.iter().map(|p| p.to_string()).collect());
    push_any_of(&mut sql, &mut values, "x.precision", precisions, true);
    let batches = filter
        .batch_sizes
        .iter()
        .map(|&b| Value::Integer(b as i64))
        .collect();
    push_any_of(&mut sql, &mut values, "x.batch_size", batches, true);
    if !filter.include_published {
        sql.push_str(" AND x.source_id IS NULL");
    }
    if !filter.include_failed {
        sql.push_str(" AND x.status = 'ok'");
    }
    sql.push_str(" ORDER BY x.run_id, x.position");
    (sql, values)
}

/// One row of [`RESULT_COLUMNS`] (accuracy and latency are loaded after).
fn result_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResultRecord> {
    let source_name: Option<String> = r.get(16)?;
    Ok(ResultRecord {
        result_id: r.get(0)?,
        run_id: r.get(1)?,
        started_at: r.get(2)?,
        detbench_version: r.get(3)?,
        model: r.get(4)?,
        status: r.get::<_, Parsed<_>>(5)?.0,
        family: r.get(6)?,
        model_sha256: r.get(7)?,
        engine: parsed(r.get(8)?),
        engine_version: r.get(9)?,
        device: parsed(r.get(10)?),
        precision: parsed(r.get(11)?),
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
}

/// The summary columns `count, mean, median, min, max, std, p90, p95, p99` from column 1 on.
fn stored_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        count: r.get::<_, i64>(1)? as usize,
        mean: r.get(2)?,
        median: r.get(3)?,
        min: r.get(4)?,
        max: r.get(5)?,
        std: r.get(6)?,
        p90: r.get(7)?,
        p95: r.get(8)?,
        p99: r.get(9)?,
    })
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
