//! The store's side of training runs (schema version 5, `training_runs` and `training_steps`):
//! one row per process's [`TrainResults`] with its headline numbers as columns and the whole
//! results without their steps as JSON, and one row per optimiser step. Read back, they are the
//! `TrainResults` the run produced, bit for bit. Kept apart from the other tables so that it
//! moves as one piece.

use detbench_backends::EngineKind;
use detbench_train::{StepRecord, TrainResults};
use serde::Serialize;

use super::backend::Db;
use super::query::push_any_of;
use super::sql::{DbError, Row, Value};
use super::write::json_text;
use super::{Filter, RunId, Store, StoreError};
use crate::sql_params;

/// One stored training run: a process's results and where they were filed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingRecord {
    /// The `training_runs` row.
    pub training_id: i64,
    pub run_id: RunId,
    /// When the run started (RFC 3339 UTC).
    pub started_at: String,
    pub results: TrainResults,
}

/// The `training_runs` row of `results` (the `position`-th of run `run_id`) and its steps.
pub(super) fn insert_training(
    db: &mut Db,
    run_id: RunId,
    position: usize,
    results: &TrainResults,
) -> Result<(), DbError> {
    let c = &results.config;
    let t = results.throughput.as_ref();
    let peak = results.peak_memory.as_ref();
    let without_steps = TrainResults {
        steps: Vec::new(),
        ..results.clone()
    };
    let training_id = db.insert(
        "INSERT INTO training_runs (run_id, position, model, precision, batch_size, device,
             world_size, process_rank, dataset_images, step_count, timed_steps, images_per_s,
             global_images_per_s, nvidia_images_per_s, step_mean_ms, step_p50_ms, step_p90_ms,
             step_p99_ms, data_wait_mean_ms, data_wait_fraction, peak_allocated_bytes,
             peak_reserved_bytes, final_loss_scale, skipped_optimizer_steps, stopped, wall_s,
             result_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)
         RETURNING id",
        &sql_params![
            run_id,
            position,
            c.model.as_str(),
            c.precision.as_str(),
            c.batch,
            c.device.to_string(),
            results.world_size,
            results.rank,
            results.dataset_images,
            results.steps.len(),
            t.map(|t| t.timed_steps),
            t.map(|t| t.images_per_s),
            t.map(|t| t.global_images_per_s),
            t.map(|t| t.nvidia_pytorch_images_per_s),
            t.map(|t| t.step.mean_ms),
            t.map(|t| t.step.p50_ms),
            t.map(|t| t.step.p90_ms),
            t.map(|t| t.step.p99_ms),
            t.map(|t| t.data_wait.mean_ms),
            t.map(|t| t.data_wait_fraction),
            peak.map(|p| p.allocated_bytes),
            peak.map(|p| p.reserved_bytes),
            results.steps.last().and_then(|s| s.loss_scale),
            results.steps.iter().filter(|s| s.skipped).count(),
            results.stopped.as_deref(),
            results.wall_s,
            json_text(&without_steps),
        ],
    )?;
    for (position, s) in results.steps.iter().enumerate() {
        db.execute(
            "INSERT INTO training_steps (training_id, position, step, epoch, lr, total_loss,
                 step_s, data_wait_s, loss_scale, skipped, losses)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            &sql_params![
                training_id,
                position,
                s.step,
                s.epoch,
                s.lr,
                s.total_loss,
                s.step_s,
                s.data_wait_s,
                s.loss_scale,
                s.skipped,
                json_text(&s.losses),
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// Training runs matching `filter` (runs, models, devices, batch sizes, engines; precisions
    /// by name, so `fp32` matches training's fp32 too), oldest first, each with all its steps.
    pub fn training_runs(&self, filter: &Filter) -> Result<Vec<TrainingRecord>, StoreError> {
        let (sql, values) = training_query(filter);
        let rows = self.query(&sql, &values)?;
        let read = self.err("reading training runs");
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let training_id = row.i64(0).map_err(&read)?;
            let json = row.text(3).map_err(&read)?;
            let mut results: TrainResults =
                serde_json::from_str(&json).map_err(|source| self.bad_json(training_id, source))?;
            results.steps = self.training_steps(training_id)?;
            records.push(TrainingRecord {
                training_id,
                run_id: row.i64(1).map_err(&read)?,
                started_at: row.text(2).map_err(&read)?,
                results,
            });
        }
        Ok(records)
    }

    /// The steps of training run `training_id`, in run order.
    fn training_steps(&self, training_id: i64) -> Result<Vec<StepRecord>, StoreError> {
        let rows = self.query(
            "SELECT step, epoch, lr, total_loss, step_s, data_wait_s, loss_scale, skipped, losses
             FROM training_steps WHERE training_id = ?1 ORDER BY position",
            &sql_params![training_id],
        )?;
        let read = self.err("reading training steps");
        rows.iter()
            .map(|row| {
                let (mut record, losses) = step_record(row).map_err(&read)?;
                record.losses = serde_json::from_str(&losses)
                    .map_err(|source| self.bad_json(training_id, source))?;
                Ok(record)
            })
            .collect()
    }

    fn bad_json(&self, training_id: i64, source: serde_json::Error) -> StoreError {
        StoreError::BadJson {
            path: self.location().to_string(),
            result: training_id,
            what: "training results",
            source,
        }
    }
}

/// One `training_steps` row, its losses left empty and returned as their JSON text.
fn step_record(row: &Row) -> Result<(StepRecord, String), DbError> {
    let count = |i| row.i64(i).map(|v| v as usize);
    let record = StepRecord {
        step: count(0)?,
        epoch: count(1)?,
        lr: row.f64(2)?,
        losses: Vec::new(),
        total_loss: row.f64(3)?,
        step_s: row.f64(4)?,
        data_wait_s: row.f64(5)?,
        loss_scale: row.opt_f64(6)?,
        skipped: row.bool(7)?,
    };
    Ok((record, row.text(8)?))
}

/// The SQL of [`Store::training_runs`] for `filter`, with its parameters.
fn training_query(filter: &Filter) -> (String, Vec<Value>) {
    let mut sql = "SELECT t.id, t.run_id, r.started_at, t.result_json
         FROM training_runs t JOIN runs r ON r.id = t.run_id
         WHERE 1 = 1"
        .to_owned();
    let mut values = Vec::new();
    let text = |items: Vec<String>| -> Vec<Value> { items.into_iter().map(Value::Text).collect() };
    let runs = filter.runs.iter().map(|&id| Value::Int(id)).collect();
    push_any_of(&mut sql, &mut values, "t.run_id", runs, false);
    let models = text(filter.models.clone());
    push_any_of(&mut sql, &mut values, "t.model", models, false);
    let devices = text(filter.devices.iter().map(ToString::to_string).collect());
    push_any_of(&mut sql, &mut values, "t.device", devices, false);
    let precisions = text(filter.precisions.iter().map(ToString::to_string).collect());
    push_any_of(&mut sql, &mut values, "t.precision", precisions, false);
    let batches = filter.batch_sizes.iter().map(|&b| Value::from(b)).collect();
    push_any_of(&mut sql, &mut values, "t.batch_size", batches, false);
    // `detbench train` runs on libtorch: an engine filter without it leaves every training run out.
    if !filter.engines.is_empty() && !filter.engines.contains(&EngineKind::Torch) {
        sql.push_str(" AND 1 = 0");
    }
    sql.push_str(" ORDER BY t.run_id, t.position");
    (sql, values)
}
