//! The store's SQL schema as an ordered list of migrations. `PRAGMA user_version` holds the
//! number of migrations applied; a database is upgraded by applying the missing ones in one
//! transaction. docs/STORE.md describes every table.
//!
//! Never edit a migration that has shipped: add a new one.

/// `PRAGMA application_id` of a detbench store ("DETB"), so that another program's SQLite
/// file is recognised and left alone.
pub const APPLICATION_ID: i32 = 0x4445_5442;

/// Migration `i` (1-based) takes a database from version `i - 1` to version `i`.
pub const MIGRATIONS: &[&str] = &[MIGRATION_1, MIGRATION_2, MIGRATION_3];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 1: measured runs.
const MIGRATION_1: &str = r#"
CREATE TABLE runs (
    id                     INTEGER PRIMARY KEY,
    started_at             TEXT    NOT NULL,  -- RFC 3339 UTC, from RunResults
    recorded_at            TEXT    NOT NULL,  -- RFC 3339 UTC, when the store received it
    detbench_version       TEXT    NOT NULL,
    results_schema_version INTEGER NOT NULL,
    command_line           TEXT    NOT NULL,  -- JSON array of strings
    environment            TEXT    NOT NULL,  -- JSON (environment::Environment)
    hostname               TEXT               -- copied out of the environment for filtering
);

CREATE TABLE results (
    id                        INTEGER PRIMARY KEY,
    run_id                    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position                  INTEGER NOT NULL,  -- order within the run
    model                     TEXT    NOT NULL,
    status                    TEXT    NOT NULL,  -- "ok" or "failed: <reason>"
    family                    TEXT    NOT NULL,
    input                     TEXT,              -- network input as the zoo describes it
    model_file                TEXT    NOT NULL,
    model_sha256              TEXT,
    engine                    TEXT,              -- onnxruntime | libtorch
    engine_version            TEXT,
    device                    TEXT,              -- cpu | cuda:0 | ...
    precision                 TEXT,              -- fp32 | fp16 | int8
    threads                   INTEGER,
    backend_options           TEXT,              -- JSON object of the engine options
    batch_size                INTEGER,
    dataset_image_dir         TEXT,
    dataset_annotation_file   TEXT,
    dataset_annotation_sha256 TEXT,
    dataset_images            INTEGER,
    provenance                TEXT    NOT NULL,  -- JSON, as the pipeline reports it
    detections_per_image      TEXT,              -- JSON Summary
    reference_agreement       TEXT,              -- JSON, agreement with reference detections
    -- The whole ModelResult as the harness produced it, raw latency samples removed (they are
    -- in latency_stages): nothing the harness reports is lost, even fields without a column.
    result_json               TEXT    NOT NULL,
    UNIQUE (run_id, position)
);
CREATE INDEX results_by_model ON results(model);

-- pycocotools COCOeval.stats, one row per stat: WHERE iou_type = 'bbox' AND stat = 'AP'.
CREATE TABLE stats (
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    iou_type  TEXT    NOT NULL,  -- bbox | segm | keypoints
    stat      TEXT    NOT NULL,  -- AP, AP50, ..., in DETECTION_STAT_NAMES / KEYPOINT_STAT_NAMES
    position  INTEGER NOT NULL,  -- index in COCOeval.stats
    value     REAL    NOT NULL,  -- as pycocotools computes it (a fraction; -1 = no ground truth)
    PRIMARY KEY (result_id, iou_type, stat)
) WITHOUT ROWID;

CREATE TABLE class_ap (
    result_id   INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    iou_type    TEXT    NOT NULL,
    category_id INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    ap          REAL,              -- NULL where the class has no ground truth
    PRIMARY KEY (result_id, iou_type, category_id)
) WITHOUT ROWID;

CREATE TABLE latency (
    result_id             INTEGER PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    percentile_definition TEXT    NOT NULL,
    warmup_iterations     INTEGER NOT NULL,
    batch_size            INTEGER NOT NULL,
    timed_images          INTEGER NOT NULL,
    total_seconds         REAL    NOT NULL,
    images_per_second     REAL    NOT NULL,
    includes_decode       INTEGER NOT NULL,  -- 0 | 1
    valid                 INTEGER NOT NULL,  -- 0 | 1
    validity_notes        TEXT    NOT NULL   -- JSON array of strings
);

-- Summaries in milliseconds, per call (one batch of batch_size images); stage 'end_to_end' is the whole call.
CREATE TABLE latency_stages (
    result_id  INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    stage      TEXT    NOT NULL,  -- end_to_end | decode | preprocess | inference | postprocess
    position   INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    mean       REAL    NOT NULL,
    median     REAL    NOT NULL,
    min        REAL    NOT NULL,
    max        REAL    NOT NULL,
    std        REAL    NOT NULL,
    p90        REAL    NOT NULL,
    p95        REAL    NOT NULL,
    p99        REAL    NOT NULL,
    samples_ms BLOB    NOT NULL,  -- the raw samples, little-endian f64, in run order
    PRIMARY KEY (result_id, stage)
) WITHOUT ROWID;

-- Model x batch-size combinations a run did not measure, with why.
CREATE TABLE skipped (
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    model      TEXT    NOT NULL,
    batch_size INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;

CREATE TABLE failed_images (
    result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    file      TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    PRIMARY KEY (result_id, position)
) WITHOUT ROWID;
"#;

/// Version 2: published records (`detbench import-md`), so that published numbers can sit
/// beside measured ones in comparisons. A result with a `source_id` was not measured by
/// detbench; its latency, when the source gives one, is in `published_latency` because a
/// published "Speed (ms)" is a single number of unknown definition, not a sample summary.
const MIGRATION_2: &str = r#"
CREATE TABLE sources (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,  -- e.g. "TF2 Detection Model Zoo"
    file         TEXT NOT NULL,  -- the Markdown file imported
    file_sha256  TEXT NOT NULL,
    device_label TEXT,           -- the hardware the source names, e.g. "Nvidia V100"
    imported_at  TEXT NOT NULL
);

ALTER TABLE results ADD COLUMN source_id INTEGER REFERENCES sources(id);
CREATE INDEX results_by_source ON results(source_id);

CREATE TABLE published_latency (
    result_id  INTEGER PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    latency_ms REAL NOT NULL,
    column     TEXT NOT NULL     -- the header it was read from, e.g. "Speed (ms)"
);
"#;

/// Version 3: MLPerf LoadGen scenario results (`detbench run --scenario`). One row per result
/// that ran under a scenario; the headline columns are for queries, `record` holds everything
/// (`ScenarioRecord` without its raw latencies, which are the BLOBs). Self-contained: nothing
/// else changed, so a store without scenario runs reads as before.
const MIGRATION_3: &str = r#"
CREATE TABLE scenario_results (
    result_id                    INTEGER PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    scenario                     TEXT    NOT NULL,  -- SingleStream | MultiStream | Server | Offline
    mode                         TEXT    NOT NULL,  -- PerformanceOnly | AccuracyOnly | SubmissionRun | FindPeakPerformance
    validity                     TEXT,              -- VALID | INVALID; NULL for an accuracy-only test
    metric                       TEXT,              -- the summary's result line, e.g. "90.0th percentile latency (ns)"
    metric_value                 REAL,
    peak_qps                     REAL,              -- FindPeakPerformance: the highest passing QPS
    target_qps                   REAL,              -- effective (Server: the schedule's rate)
    target_latency_ns            INTEGER,           -- Server's bound; 0 elsewhere
    target_latency_percentile    REAL,              -- a fraction, e.g. 0.9
    target_percentile_latency_ns INTEGER,           -- sample latency (MultiStream: query latency) there
    early_stopping_estimate_ns   INTEGER,           -- SingleStream/MultiStream
    p50_ns                       INTEGER,
    p90_ns                       INTEGER,
    p99_ns                       INTEGER,
    samples_per_second           REAL,              -- Offline: samples/s; Server: completed samples/s; SingleStream: QPS w/ loadgen overhead
    sample_count                 INTEGER,
    query_count                  INTEGER,
    duration_s                   REAL,              -- the performance run's last completion
    failed_samples               INTEGER NOT NULL,
    settings                     TEXT    NOT NULL,  -- JSON: every effective setting (EffectiveSettings)
    record                       TEXT    NOT NULL,  -- JSON: the ScenarioRecord without raw latencies
    sample_latencies_ns          BLOB    NOT NULL,  -- little-endian i64, issue order
    query_latencies_ns           BLOB    NOT NULL   -- MultiStream: per query, little-endian i64
);
CREATE INDEX scenario_results_by_scenario ON scenario_results(scenario);
"#;
