//! Writing to the store: a run (its rows, stats, latency samples, failed images, skipped
//! settings) or a published table, each in one `BEGIN IMMEDIATE` transaction. Every value is
//! written from its type; nothing stored is parsed back out of another stored value.

use detbench_bench::results::{
    Accuracy, DETECTION_STAT_NAMES, KEYPOINT_STAT_NAMES, LatencyReport, ModelResult, RunResults,
};
use detbench_env::Environment;
use detbench_eval::IouType;
use rusqlite::{TransactionBehavior, params};
use serde::Serialize;

use super::{END_TO_END, ErrorContext, PublishedImport, PublishedRow, RunId, Store, StoreError};

impl Store {
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
            Some(&run.environment),
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
        let now = detbench_env::now_rfc3339();
        let run_id = insert_run(
            &tx,
            &now,
            detbench_env::DETBENCH_VERSION,
            detbench_bench::results::RESULTS_SCHEMA_VERSION,
            &import.command_line,
            None,
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
}

/// The `runs` row; `environment` is `None` for an import.
fn insert_run(
    tx: &rusqlite::Transaction<'_>,
    started_at: &str,
    detbench_version: &str,
    results_schema_version: u32,
    command_line: &[String],
    environment: Option<&Environment>,
) -> rusqlite::Result<RunId> {
    tx.execute(
        "INSERT INTO runs (started_at, recorded_at, detbench_version, results_schema_version,
                           command_line, environment, hostname)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            started_at,
            detbench_env::now_rfc3339(),
            detbench_version,
            results_schema_version,
            json_text(&command_line),
            json_text(&environment),
            environment.and_then(|e| e.hostname.as_deref()),
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// One model result: its `results` row and the rows that hang off it.
fn insert_model_result(
    tx: &rusqlite::Transaction<'_>,
    run_id: RunId,
    position: usize,
    model: &ModelResult,
) -> rusqlite::Result<()> {
    let result_id = insert_result_row(tx, run_id, position, model)?;
    for (iou_type, accuracy, names) in [
        (IouType::Bbox, &model.bbox, &DETECTION_STAT_NAMES[..]),
        (IouType::Segm, &model.segm, &DETECTION_STAT_NAMES[..]),
        (
            IouType::Keypoints,
            &model.keypoints,
            &KEYPOINT_STAT_NAMES[..],
        ),
    ] {
        if let Some(accuracy) = accuracy {
            insert_accuracy(tx, result_id, iou_type, accuracy, names)?;
        }
    }
    if let Some(latency) = &model.latency {
        insert_latency(tx, result_id, latency)?;
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

/// The `results` row of a model result; returns its id.
fn insert_result_row(
    tx: &rusqlite::Transaction<'_>,
    run_id: RunId,
    position: usize,
    model: &ModelResult,
) -> rusqlite::Result<i64> {
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
            model.status.to_string(),
            model.family,
            (!model.input.is_empty()).then_some(model.input.as_str()),
            model.model.file,
            model.model.sha256,
            backend.map(|b| b.engine.name()),
            backend.map(|b| b.engine_version.as_str()),
            backend.map(|b| b.device.to_string()),
            backend.map(|b| b.precision.as_str()),
            backend.and_then(|b| b.threads).map(|t| t as i64),
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
    Ok(tx.last_insert_rowid())
}

/// The `latency` row and one `latency_stages` row per stage, end to end first.
fn insert_latency(
    tx: &rusqlite::Transaction<'_>,
    result_id: i64,
    latency: &LatencyReport,
) -> rusqlite::Result<()> {
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
    Ok(())
}

fn insert_accuracy(
    tx: &rusqlite::Transaction<'_>,
    result_id: i64,
    iou_type: IouType,
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
        stmt.execute(params![
            result_id,
            iou_type.as_str(),
            name,
            position as i64,
            value
        ])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO class_ap (result_id, iou_type, category_id, name, ap)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for class in &accuracy.per_class {
        stmt.execute(params![
            result_id,
            iou_type.as_str(),
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
        (IouType::Bbox, row.box_ap),
        (IouType::Segm, row.mask_ap),
        (IouType::Keypoints, row.keypoint_ap),
    ] {
        if let Some(ap) = ap {
            // Published tables print AP in percent; the store holds pycocotools' fraction.
            tx.execute(
                "INSERT INTO stats (result_id, iou_type, stat, position, value)
                 VALUES (?1, ?2, 'AP', 0, ?3)",
                params![result_id, iou_type.as_str(), ap / 100.0],
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

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serde_json::Value and plain structs serialise")
}

/// Samples as little-endian f64, 8 bytes each.
pub fn samples_to_blob(samples: &[f64]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
