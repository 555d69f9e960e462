//! Reading the store: runs, results matching a [`Filter`] with their accuracy and latency
//! summaries, raw samples, per-class AP and failed images, with the same queries on both
//! backends. Stored names (engine, device, precision, status, stage) are parsed into their types
//! as they are read; a name this build does not know is an error naming the store and the
//! column.

use std::collections::BTreeMap;
use std::str::FromStr;

use detbench_bench::results::Summary;
use detbench_env::Environment;
use detbench_eval::IouType;

use super::sql::{DbError, Row, Value};
use super::{
    END_TO_END, Filter, LatencySummary, PublishedSource, ResultRecord, RunId, RunSummary,
    StageSummary, Store, StoreError, samples_from_blob,
};
use crate::sql_params;

/// The columns [`Store::results`] reads, in order (the row mapping reads them by position).
const RESULT_COLUMNS: &str = "x.id, x.run_id, r.started_at, r.detbench_version, x.model, \
     x.status, x.family, x.model_sha256, x.engine, x.engine_version, x.device, x.precision, \
     x.threads, x.batch_size, x.dataset_images, x.dataset_annotation_sha256, s.name, s.file, \
     s.device_label, pl.latency_ms, \
     (SELECT count(*) FROM failed_images f WHERE f.result_id = x.id), x.devices, r.partial";

impl Store {
    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        let rows = self.query(
            "SELECT r.id, r.started_at, r.detbench_version, r.hostname, r.command_line,
                    (SELECT count(*) FROM results WHERE run_id = r.id),
                    (SELECT s.name FROM results x JOIN sources s ON s.id = x.source_id
                      WHERE x.run_id = r.id LIMIT 1),
                    r.shard_count, r.partial,
                    (SELECT count(*) FROM training_runs WHERE run_id = r.id)
             FROM runs r ORDER BY r.id DESC",
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(RunSummary {
                    id: r.i64(0)?,
                    started_at: r.text(1)?,
                    detbench_version: r.text(2)?,
                    hostname: r.opt_text(3)?,
                    command_line: serde_json::from_str(&r.text(4)?).unwrap_or_default(),
                    results: r.i64(5)?,
                    published_source: r.opt_text(6)?,
                    shard_count: r.opt_i64(7)?,
                    partial: r.bool(8)?,
                    training: r.i64(9)?,
                })
            })
            .collect::<Result<_, DbError>>()
            .map_err(self.err("listing runs"))
    }

    /// The stored environment of a run (`None` for an import).
    pub fn run_environment(&self, run: RunId) -> Result<Option<Environment>, StoreError> {
        let rows = self.query(
            "SELECT environment FROM runs WHERE id = ?1",
            &sql_params![run],
        )?;
        let text = rows
            .first()
            .map(|r| r.text(0))
            .transpose()
            .map_err(self.err("reading a run"))?
            .ok_or_else(|| StoreError::RunNotFound {
                path: self.path().display().to_string(),
                run,
            })?;
        serde_json::from_str(&text).map_err(|source| StoreError::BadJson {
            path: self.path().display().to_string(),
            result: run,
            what: "environment",
            source,
        })
    }

    /// When the same file content was imported before as the same source and device: the run
    /// it was filed under (when it had rows) and when it was imported.
    pub fn earlier_import(
        &self,
        file_sha256: &str,
        source: &str,
        device_label: Option<&str>,
    ) -> Result<Option<(Option<RunId>, String)>, StoreError> {
        let rows = self.query(
            "SELECT (SELECT run_id FROM results WHERE source_id = s.id LIMIT 1), s.imported_at
             FROM sources s
             WHERE s.file_sha256 = ?1 AND s.name = ?2 AND s.device_label IS NOT DISTINCT FROM ?3
             ORDER BY s.id LIMIT 1",
            &sql_params![file_sha256, source, device_label],
        )?;
        let read = self.err("looking for an earlier import");
        rows.first()
            .map(|row| Ok((row.opt_i64(0).map_err(&read)?, row.text(1).map_err(&read)?)))
            .transpose()
    }

    /// Results matching `filter`, oldest first, with their accuracy and latency summaries.
    pub fn results(&self, filter: &Filter) -> Result<Vec<ResultRecord>, StoreError> {
        let (sql, values) = results_query(filter);
        let rows = self.query(&sql, &values)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut record = self.result_record(row)?;
            self.load_accuracy(&mut record)?;
            self.load_latency(&mut record)?;
            records.push(record);
        }
        Ok(records)
    }

    fn load_accuracy(&self, record: &mut ResultRecord) -> Result<(), StoreError> {
        let rows = self.query(
            "SELECT iou_type, stat, value FROM stats WHERE result_id = ?1
             ORDER BY iou_type, position",
            &sql_params![record.result_id],
        )?;
        for row in &rows {
            let read = || -> Result<(String, String, f64), DbError> {
                Ok((row.text(0)?, row.text(1)?, row.f64(2)?))
            };
            let (iou_type, stat, value) = read().map_err(self.err("reading stats"))?;
            let iou_type: IouType = self.parsed(record.result_id, "IoU type", &iou_type)?;
            record
                .accuracy
                .entry(iou_type)
                .or_default()
                .push((stat, value));
        }
        Ok(())
    }

    fn load_latency(&self, record: &mut ResultRecord) -> Result<(), StoreError> {
        let header = self.query(
            "SELECT images_per_second, timed_images, includes_decode, valid, validity_notes,
                    percentile_definition
             FROM latency WHERE result_id = ?1",
            &sql_params![record.result_id],
        )?;
        let stages = self.query(
            "SELECT stage, count, mean, median, min, max, std, p90, p95, p99
             FROM latency_stages WHERE result_id = ?1 ORDER BY position",
            &sql_params![record.result_id],
        )?;
        let mut end_to_end = None;
        for row in &stages {
            let (stage, summary) = (|| Ok((row.text(0)?, stored_summary(row)?)))()
                .map_err(self.err("reading latency stages"))?;
            if stage == END_TO_END {
                end_to_end = Some(summary);
                continue;
            }
            let stage = self.parsed(record.result_id, "latency stage", &stage)?;
            record.stages.push(StageSummary { stage, summary });
        }
        let (Some(row), Some(end_to_end)) = (header.first(), end_to_end) else {
            return Ok(());
        };
        let read = || -> Result<_, DbError> {
            Ok((
                row.f64(0)?,
                row.i64(1)?,
                row.bool(2)?,
                row.bool(3)?,
                row.text(4)?,
                row.text(5)?,
            ))
        };
        let (ips, timed, includes_decode, valid, notes, definition) =
            read().map_err(self.err("reading latency"))?;
        record.latency = Some(LatencySummary {
            end_to_end,
            images_per_second: ips,
            timed_images: timed as usize,
            includes_decode,
            valid,
            validity_notes: serde_json::from_str(&notes).map_err(|source| StoreError::BadJson {
                path: self.path().display().to_string(),
                result: record.result_id,
                what: "validity_notes",
                source,
            })?,
            percentile_definition: definition,
        });
        Ok(())
    }

    /// The raw latency samples (ms, run order) of one stage of a result (`end_to_end` for the
    /// whole call).
    pub fn latency_samples(&self, result_id: i64, stage: &str) -> Result<Vec<f64>, StoreError> {
        let rows = self.query(
            "SELECT samples_ms FROM latency_stages WHERE result_id = ?1 AND stage = ?2",
            &sql_params![result_id, stage],
        )?;
        let blob = rows
            .first()
            .map(|r| r.opt_blob(0))
            .transpose()
            .map_err(self.err("reading latency samples"))?
            .flatten();
        Ok(blob.map(|b| samples_from_blob(&b)).unwrap_or_default())
    }

    /// Per-class AP of one result for one IoU type: (category id, name, AP or `None`).
    pub fn class_ap(
        &self,
        result_id: i64,
        iou_type: IouType,
    ) -> Result<Vec<(u64, String, Option<f64>)>, StoreError> {
        let rows = self.query(
            "SELECT category_id, name, ap FROM class_ap
             WHERE result_id = ?1 AND iou_type = ?2 ORDER BY category_id",
            &sql_params![result_id, iou_type.as_str()],
        )?;
        rows.iter()
            .map(|r| Ok((r.i64(0)? as u64, r.text(1)?, r.opt_f64(2)?)))
            .collect::<Result<_, DbError>>()
            .map_err(self.err("reading per-class AP"))
    }

    /// Failed images of one result: (file, reason).
    pub fn failed_images(&self, result_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        let rows = self.query(
            "SELECT file, reason FROM failed_images WHERE result_id = ?1 ORDER BY position",
            &sql_params![result_id],
        )?;
        rows.iter()
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .collect::<Result<_, DbError>>()
            .map_err(self.err("reading failed images"))
    }

    /// A stored name read back into its type; an unknown name names the store and the column.
    fn parsed<T>(&self, result: i64, what: &'static str, value: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        value.parse().map_err(|e: T::Err| StoreError::BadValue {
            path: self.path().display().to_string(),
            result,
            what,
            value: value.to_owned(),
            reason: e.to_string(),
        })
    }

    fn parsed_opt<T>(
        &self,
        result: i64,
        what: &'static str,
        value: Option<String>,
    ) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        value.map(|v| self.parsed(result, what, &v)).transpose()
    }

    /// One row of [`RESULT_COLUMNS`] (accuracy and latency are loaded after).
    fn result_record(&self, r: &Row) -> Result<ResultRecord, StoreError> {
        let err = self.err("querying results");
        let id = r.i64(0).map_err(&err)?;
        let text = |i| r.opt_text(i).map_err(&err);
        let int = |i| r.opt_i64(i).map_err(&err);
        let status = r.text(5).map_err(&err)?;
        Ok(ResultRecord {
            result_id: id,
            run_id: r.i64(1).map_err(&err)?,
            started_at: r.text(2).map_err(&err)?,
            detbench_version: r.text(3).map_err(&err)?,
            model: r.text(4).map_err(&err)?,
            status: self.parsed(id, "status", &status)?,
            family: r.text(6).map_err(&err)?,
            model_sha256: text(7)?,
            engine: self.parsed_opt(id, "engine", text(8)?)?,
            engine_version: text(9)?,
            device: self.parsed_opt(id, "device", text(10)?)?,
            precision: self.parsed_opt(id, "precision", text(11)?)?,
            threads: int(12)?,
            batch_size: int(13)?,
            dataset_images: int(14)?,
            annotation_sha256: text(15)?,
            published: match text(16)? {
                Some(name) => Some(PublishedSource {
                    name,
                    file: r.text(17).map_err(&err)?,
                    device_label: text(18)?,
                }),
                None => None,
            },
            published_latency_ms: r.opt_f64(19).map_err(&err)?,
            failed_images: r.i64(20).map_err(&err)?,
            devices: int(21)?,
            partial: r.bool(22).map_err(&err)?,
            accuracy: BTreeMap::new(),
            latency: None,
            stages: Vec::new(),
        })
    }
}

/// The SQL of [`Store::results`] for `filter`, with its parameters. Settings filters apply to
/// measured results; published rows have no settings and stay in unless published rows are
/// excluded.
fn results_query(filter: &Filter) -> (String, Vec<Value>) {
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
    let runs = filter.runs.iter().map(|&id| Value::Int(id)).collect();
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
    let batches = filter.batch_sizes.iter().map(|&b| Value::from(b)).collect();
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

/// The summary columns `count, mean, median, min, max, std, p90, p95, p99` from column 1 on.
fn stored_summary(r: &Row) -> Result<Summary, DbError> {
    Ok(Summary {
        count: r.i64(1)? as usize,
        mean: r.f64(2)?,
        median: r.f64(3)?,
        min: r.f64(4)?,
        max: r.f64(5)?,
        std: r.f64(6)?,
        p90: r.f64(7)?,
        p95: r.f64(8)?,
        p99: r.f64(9)?,
    })
}

/// Appends `AND column IN (?, ...)` (letting published rows through when `published_pass`).
pub(super) fn push_any_of(
    sql: &mut String,
    values: &mut Vec<Value>,
    column: &str,
    items: Vec<Value>,
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
