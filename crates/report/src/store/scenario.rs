//! The store's side of LoadGen scenario results (schema version 4, `scenario_results`): one row
//! per result that ran under a scenario, its headline numbers as columns, the whole record as
//! JSON and the raw latencies as BLOBs. Kept apart from the other tables so that it moves as one
//! piece.

use super::backend::Db;
use super::sql::DbError;
use super::{Store, StoreError};
use crate::sql_params;
use detbench_bench::results::ScenarioRecord;
use detbench_loadgen::Validity;

/// Latencies as little-endian i64, 8 bytes each.
pub fn latencies_to_blob(ns: &[i64]) -> Vec<u8> {
    ns.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`latencies_to_blob`]; a trailing partial value is dropped.
pub fn latencies_from_blob(blob: &[u8]) -> Vec<i64> {
    blob.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// The `scenario_results` row of result `result_id`.
pub(super) fn insert_scenario(
    db: &mut Db,
    result_id: i64,
    record: &ScenarioRecord,
) -> Result<(), DbError> {
    let r = record.performance.as_ref();
    let es = r.and_then(|r| r.early_stopping.as_ref());
    let rate = r.and_then(|r| {
        r.samples_per_second
            .or(r.completed_samples_per_second)
            .or(r.qps_with_loadgen_overhead)
    });
    db.execute(
        "INSERT INTO scenario_results (result_id, scenario, mode, validity, metric, metric_value,
             peak_qps, target_qps, target_latency_ns, target_latency_percentile,
             target_percentile_latency_ns, early_stopping_estimate_ns, p50_ns, p90_ns, p99_ns,
             samples_per_second, sample_count, query_count, duration_s, failed_samples, settings,
             record, sample_latencies_ns, query_latencies_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22, ?23, ?24)",
        &sql_params![
            result_id,
            record.scenario.as_str(),
            record.mode.as_str(),
            record.validity.map(|v| match v {
                Validity::Valid => "VALID",
                Validity::Invalid => "INVALID",
            }),
            record.headline.as_ref().map(|h| h.metric.as_str()),
            record.headline.as_ref().map(|h| h.value),
            record.peak_qps,
            record.settings.target_qps,
            record.settings.target_latency_ns,
            record.settings.target_latency_percentile,
            r.and_then(|r| r.target_percentile_latency_ns),
            es.and_then(|e| e.estimate_ns),
            record.latency_ns(0.50),
            record.latency_ns(0.90),
            record.latency_ns(0.99),
            rate,
            r.map(|r| r.sample_count as i64),
            r.map(|r| r.query_count as i64),
            r.map(|r| r.final_query_all_samples_done_time_s),
            record.failed_samples as i64,
            json(&record.settings),
            json(&record.without_samples()),
            latencies_to_blob(&record.sample_latencies_ns),
            latencies_to_blob(&record.query_latencies_ns),
        ],
    )?;
    Ok(())
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain structs serialise")
}

impl Store {
    /// The scenario record of result `result_id` with its raw latencies, or `None` when that
    /// result did not run under a LoadGen scenario.
    pub fn scenario_record(&self, result_id: i64) -> Result<Option<ScenarioRecord>, StoreError> {
        let rows = self.query(
            "SELECT record, sample_latencies_ns, query_latencies_ns FROM scenario_results
             WHERE result_id = ?1",
            &sql_params![result_id],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let read = self.err("reading a scenario result");
        let text = row.text(0).map_err(&read)?;
        let samples = row.opt_blob(1).map_err(&read)?.unwrap_or_default();
        let queries = row.opt_blob(2).map_err(&read)?.unwrap_or_default();
        let mut record: ScenarioRecord =
            serde_json::from_str(&text).map_err(|source| StoreError::BadJson {
                path: self.location().to_string(),
                result: result_id,
                what: "scenario record",
                source,
            })?;
        record.sample_latencies_ns = latencies_from_blob(&samples);
        record.query_latencies_ns = latencies_from_blob(&queries);
        Ok(Some(record))
    }
}
