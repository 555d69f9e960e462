//! Writing to the store: a run (its rows, stats, latency samples, failed images, skipped
//! settings, shards, training results) or a published table, each in one transaction, with the
//! same statements on both backends. Every value is written from its type; nothing stored is
//! parsed back out of another stored value.

use detbench_bench::results::{
    Accuracy, DETECTION_STAT_NAMES, KEYPOINT_STAT_NAMES, LatencyReport, ModelResult, RunResults,
};
use detbench_bench::shard::RunSharding;
use detbench_env::Environment;
use detbench_eval::IouType;
use serde::Serialize;

use super::backend::Db;
use super::sql::DbError;
use super::{END_TO_END, ErrorContext, PublishedImport, PublishedRow, RunId, Store, StoreError};
use crate::sql_params;

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
        self.write("starting to record a run", |db, context| {
            let err = |operation| context.at(operation);
            let run_id = insert_run(
                db,
                &RunRow {
                    started_at: &run.started_at,
                    detbench_version: &run.detbench_version,
                    results_schema_version: run.schema_version,
                    command_line: &run.command_line,
                    environment: Some(&run.environment),
                    sharding: run.sharding.as_ref(),
                },
            )
            .map_err(err("recording a run"))?;
            for (position, skipped) in run.skipped.iter().enumerate() {
                db.execute(
                    "INSERT INTO skipped (run_id, position, model, batch_size, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    &sql_params![
                        run_id,
                        position,
                        &skipped.name,
                        skipped.batch_size,
                        &skipped.reason
                    ],
                )
                .map_err(err("recording a skipped model"))?;
            }
            if let Some(sharding) = &run.sharding {
                insert_run_shards(db, run_id, sharding)
                    .map_err(err("recording the run's shards"))?;
            }
            for (position, model) in run.models.iter().enumerate() {
                insert_model_result(db, run_id, position, model)
                    .map_err(err("recording a model result"))?;
                after_model(position);
            }
            for (position, training) in run.training.iter().enumerate() {
                super::training::insert_training(db, run_id, position, training)
                    .map_err(err("recording a training run"))?;
            }
            Ok(run_id)
        })
    }

    /// Records published rows (one `detbench import-md`) in one transaction and returns the
    /// run id they were filed under.
    pub fn record_published(&mut self, import: &PublishedImport) -> Result<RunId, StoreError> {
        self.write(
            "starting to record published results",
            |db, context: &ErrorContext| {
                let err = |operation| context.at(operation);
                let now = detbench_env::now_rfc3339();
                let command_line = &import.command_line;
                let run_id = insert_run(
                    db,
                    &RunRow {
                        started_at: &now,
                        detbench_version: detbench_env::DETBENCH_VERSION,
                        results_schema_version: detbench_bench::results::RESULTS_SCHEMA_VERSION,
                        command_line,
                        environment: None,
                        sharding: None,
                    },
                )
                .map_err(err("recording an import"))?;
                let source_id = db
                    .insert(
                        "INSERT INTO sources (name, file, file_sha256, device_label, imported_at)
                         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                        &sql_params![
                            &import.source,
                            &import.file,
                            &import.file_sha256,
                            import.device_label.as_deref(),
                            &now
                        ],
                    )
                    .map_err(err("recording a source"))?;
                for (position, row) in import.rows.iter().enumerate() {
                    insert_published_row(db, run_id, source_id, position, row)
                        .map_err(err("recording a published row"))?;
                }
                Ok(run_id)
            },
        )
    }

    /// The id of an already recorded run with the same start time, command line and host
    /// (`detbench import` of a results file that is in the store already), if any.
    pub fn find_run(&self, run: &RunResults) -> Result<Option<RunId>, StoreError> {
        let rows = self.query(
            "SELECT id FROM runs WHERE started_at = ?1 AND command_line = ?2
                 AND hostname IS NOT DISTINCT FROM ?3
             ORDER BY id",
            &sql_params![
                &run.started_at,
                json_text(&run.command_line),
                run.environment.hostname.as_deref()
            ],
        )?;
        rows.first()
            .map(|row| row.i64(0))
            .transpose()
            .map_err(self.err("looking a run up"))
    }
}

/// The `runs` row's values.
struct RunRow<'a> {
    started_at: &'a str,
    detbench_version: &'a str,
    results_schema_version: u32,
    command_line: &'a [String],
    /// `None` for an import.
    environment: Option<&'a Environment>,
    sharding: Option<&'a RunSharding>,
}

fn insert_run(db: &mut Db, run: &RunRow<'_>) -> Result<RunId, DbError> {
    db.insert(
        "INSERT INTO runs (started_at, recorded_at, detbench_version, results_schema_version,
                           command_line, environment, hostname, shard_count, partial)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        &sql_params![
            run.started_at,
            detbench_env::now_rfc3339(),
            run.detbench_version,
            run.results_schema_version,
            json_text(&run.command_line),
            json_text(&run.environment),
            run.environment.and_then(|e| e.hostname.as_deref()),
            run.sharding.map(|s| s.count),
            run.sharding.is_some_and(|s| s.partial),
        ],
    )
}

/// One `run_shards` row per shard of the run, present or missing.
fn insert_run_shards(db: &mut Db, run_id: RunId, sharding: &RunSharding) -> Result<(), DbError> {
    for shard in 0..sharding.count {
        let origin = sharding.shards.iter().find(|o| o.shard == shard);
        db.execute(
            "INSERT INTO run_shards (run_id, shard, present, hostname, started_at, images,
                                     command_line, environment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &sql_params![
                run_id,
                shard,
                origin.is_some(),
                origin.and_then(|o| o.environment.hostname.as_deref()),
                origin.map(|o| o.started_at.as_str()),
                origin.map(|o| o.images),
                origin.map(|o| json_text(&o.command_line)),
                origin.map(|o| json_text(&o.environment)),
            ],
        )?;
    }
    Ok(())
}

/// One model result: its `results` row and the rows that hang off it.
fn insert_model_result(
    db: &mut Db,
    run_id: RunId,
    position: usize,
    model: &ModelResult,
) -> Result<(), DbError> {
    let result_id = insert_result_row(db, run_id, position, model)?;
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
            insert_accuracy(db, result_id, iou_type, accuracy, names)?;
        }
    }
    if let Some(latency) = &model.latency {
        insert_latency(db, result_id, latency)?;
    }
    if let Some(scenario) = &model.scenario {
        super::scenario::insert_scenario(db, result_id, scenario)?;
    }
    for (position, failed) in model.failed_images.iter().enumerate() {
        db.execute(
            "INSERT INTO failed_images (result_id, position, file, reason) VALUES (?1, ?2, ?3, ?4)",
            &sql_params![result_id, position, &failed.file, &failed.reason],
        )?;
    }
    insert_result_shards(db, result_id, model)
}

/// The `results` row of a model result; returns its id.
fn insert_result_row(
    db: &mut Db,
    run_id: RunId,
    position: usize,
    model: &ModelResult,
) -> Result<i64, DbError> {
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
    if let Some(scenario) = without_samples.scenario.as_mut() {
        *scenario = scenario.without_samples();
    }
    db.insert(
        "INSERT INTO results (run_id, position, model, status, family, input, model_file,
             model_sha256, engine, engine_version, device, precision, threads, backend_options,
             batch_size, dataset_image_dir, dataset_annotation_file, dataset_annotation_sha256,
             dataset_images, provenance, detections_per_image, reference_agreement, result_json,
             devices)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24)
         RETURNING id",
        &sql_params![
            run_id,
            position,
            &model.name,
            model.status.to_string(),
            &model.family,
            (!model.input.is_empty()).then_some(model.input.as_str()),
            &model.model.file,
            model.model.sha256.as_deref(),
            backend.map(|b| b.engine.name()),
            backend.map(|b| b.engine_version.as_str()),
            backend.map(|b| b.device.to_string()),
            backend.map(|b| b.precision.as_str()),
            backend.and_then(|b| b.threads),
            backend.map(|_| json_text(&options)),
            model.batch_size,
            &model.dataset.image_dir,
            model.dataset.annotation_file.as_deref(),
            model.dataset.annotation_sha256.as_deref(),
            model.dataset.images,
            json_text(&model.provenance),
            model.detections_per_image.as_ref().map(json_text),
            model.reference_agreement.as_ref().map(json_text),
            json_text(&without_samples),
            model.sharding.as_ref().and_then(|s| s.devices),
        ],
    )
}

/// The `latency` row and one `latency_stages` row per stage, end to end first.
fn insert_latency(db: &mut Db, result_id: i64, latency: &LatencyReport) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO latency (result_id, percentile_definition, warmup_iterations,
             batch_size, timed_images, total_seconds, images_per_second, includes_decode,
             valid, validity_notes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        &sql_params![
            result_id,
            &latency.percentile_definition,
            latency.warmup_iterations,
            latency.batch_size,
            latency.timed_images,
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
    for (position, (stage, s, samples)) in stages.enumerate() {
        db.execute(
            "INSERT INTO latency_stages (result_id, stage, position, count, mean, median, min,
                 max, std, p90, p95, p99, samples_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            &sql_params![
                result_id,
                stage,
                position,
                s.count,
                s.mean,
                s.median,
                s.min,
                s.max,
                s.std,
                s.p90,
                s.p95,
                s.p99,
                samples_to_blob(samples),
            ],
        )?;
    }
    Ok(())
}

/// One `result_shards` row per shard of a merged result.
fn insert_result_shards(db: &mut Db, result_id: i64, model: &ModelResult) -> Result<(), DbError> {
    let Some(sharding) = &model.sharding else {
        return Ok(());
    };
    for shard in &sharding.shards {
        let s = &shard.end_to_end;
        db.execute(
            "INSERT INTO result_shards (result_id, shard, device, hostname, timed_images,
                 total_seconds, images_per_second, started_unix_s, ended_unix_s, count, mean,
                 median, min, max, std, p90, p95, p99, valid)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19)",
            &sql_params![
                result_id,
                shard.shard,
                shard.device.map(|d| d.to_string()),
                shard.hostname.as_deref(),
                shard.timed_images,
                shard.total_seconds,
                shard.images_per_second,
                shard.started_unix_s,
                shard.ended_unix_s,
                s.count,
                s.mean,
                s.median,
                s.min,
                s.max,
                s.std,
                s.p90,
                s.p95,
                s.p99,
                shard.valid,
            ],
        )?;
    }
    Ok(())
}

fn insert_accuracy(
    db: &mut Db,
    result_id: i64,
    iou_type: IouType,
    accuracy: &Accuracy,
    names: &[&str],
) -> Result<(), DbError> {
    for (position, value) in accuracy.stats.iter().enumerate() {
        // A stats vector longer than pycocotools' is stored under positional names rather
        // than refused: the store keeps what the run produced.
        let name = names
            .get(position)
            .map_or_else(|| format!("stat{position}"), |n| (*n).to_owned());
        db.execute(
            "INSERT INTO stats (result_id, iou_type, stat, position, value)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &sql_params![result_id, iou_type.as_str(), name, position, *value],
        )?;
    }
    for class in &accuracy.per_class {
        db.execute(
            "INSERT INTO class_ap (result_id, iou_type, category_id, name, ap)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &sql_params![
                result_id,
                iou_type.as_str(),
                class.category_id,
                &class.name,
                class.ap
            ],
        )?;
    }
    Ok(())
}

fn insert_published_row(
    db: &mut Db,
    run_id: RunId,
    source_id: i64,
    position: usize,
    row: &PublishedRow,
) -> Result<(), DbError> {
    let result_id = db.insert(
        "INSERT INTO results (run_id, position, model, status, family, model_file, provenance,
                              result_json, source_id)
         VALUES (?1, ?2, ?3, 'ok', '', ?4, ?5, '{}', ?6) RETURNING id",
        &sql_params![
            run_id,
            position,
            &row.model,
            row.link.clone().unwrap_or_default(),
            json_text(&row.extra),
            source_id
        ],
    )?;
    for (iou_type, ap) in [
        (IouType::Bbox, row.box_ap),
        (IouType::Segm, row.mask_ap),
        (IouType::Keypoints, row.keypoint_ap),
    ] {
        if let Some(ap) = ap {
            // Published tables print AP in percent; the store holds pycocotools' fraction.
            db.execute(
                "INSERT INTO stats (result_id, iou_type, stat, position, value)
                 VALUES (?1, ?2, 'AP', 0, ?3)",
                &sql_params![result_id, iou_type.as_str(), ap / 100.0],
            )?;
        }
    }
    if let Some(latency) = row.latency_ms {
        db.execute(
            "INSERT INTO published_latency (result_id, latency_ms, \"column\") VALUES (?1, ?2, ?3)",
            &sql_params![result_id, latency, &row.latency_column],
        )?;
    }
    Ok(())
}

pub(crate) fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("serde_json::Value and plain structs serialise")
}

/// Samples as little-endian f64, 8 bytes each.
pub fn samples_to_blob(samples: &[f64]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}
