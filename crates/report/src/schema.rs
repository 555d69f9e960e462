//! The store's SQL schema as an ordered list of migrations, written once for both backends.
//! A store's version is the number of migrations applied (SQLite: `PRAGMA user_version`;
//! PostgreSQL: `detbench_store.schema_version`); a store is upgraded by applying the missing
//! ones in one transaction. docs/STORE.md describes every table.
//!
//! Each migration is a template in the SQL both databases share, with the column types they
//! spell differently as tokens ([`Dialect::ddl`]): `{id}` (an auto-numbered 64-bit primary
//! key), `{int}`, `{real}` (a double), `{text}`, `{blob}`, `{without_rowid}`. Identifiers that
//! are keywords in either dialect are quoted (`"column"`).
//!
//! Never edit a migration that has shipped: add a new one (docs/STORE.md, "Adding a table").

use crate::store::Dialect;

/// The application id of a detbench store ("DETB"): SQLite's `PRAGMA application_id`, and
/// `detbench_store.application_id` in PostgreSQL, so that another program's database is
/// recognised and left alone.
pub const APPLICATION_ID: i32 = 0x4445_5442;

/// Migration `i` (1-based) takes a store from version `i - 1` to version `i`.
pub const MIGRATIONS: &[&str] = &[
    MIGRATION_1,
    MIGRATION_2,
    MIGRATION_3,
    MIGRATION_4,
    MIGRATION_5,
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Migration `index` (0-based: the one that takes a store from version `index` to
/// `index + 1`) in `dialect`.
pub fn migration(dialect: Dialect, index: usize) -> String {
    dialect.ddl(MIGRATIONS[index])
}

/// Version 1: measured runs.
const MIGRATION_1: &str = r#"
CREATE TABLE runs (
    id                     {id},
    started_at             {text}    NOT NULL,  -- RFC 3339 UTC, from RunResults
    recorded_at            {text}    NOT NULL,  -- RFC 3339 UTC, when the store received it
    detbench_version       {text}    NOT NULL,
    results_schema_version {int} NOT NULL,
    command_line           {text}    NOT NULL,  -- JSON array of strings
    environment            {text}    NOT NULL,  -- JSON (environment::Environment)
    hostname               {text}               -- copied out of the environment for filtering
);

CREATE TABLE results (
    id                        {id},
    run_id                    {int} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position                  {int} NOT NULL,  -- order within the run
    model                     {text}    NOT NULL,
    status                    {text}    NOT NULL,  -- "ok" or "failed: <reason>"
    family                    {text}    NOT NULL,
    input                     {text},              -- network input as the zoo describes it
    model_file                {text}    NOT NULL,
    model_sha256              {text},
    engine                    {text},              -- onnxruntime | libtorch
    engine_version            {text},
    device                    {text},              -- cpu | cuda:0 | ...
    precision                 {text},              -- fp32 | fp16 | int8
    threads                   {int},
    backend_options           {text},              -- JSON object of the engine options
    batch_size                {int},
    dataset_image_dir         {text},
    dataset_annotation_file   {text},
    dataset_annotation_sha256 {text},
    dataset_images            {int},
    provenance                {text}    NOT NULL,  -- JSON, as the pipeline reports it
    detections_per_image      {text},              -- JSON Summary
    reference_agreement       {text},              -- JSON, agreement with reference detections
    -- The whole ModelResult as the harness produced it, raw latency samples removed (they are
    -- in latency_stages): nothing the harness reports is lost, even fields without a column.
    result_json               {text}    NOT NULL,
    UNIQUE (run_id, position)
);
CREATE INDEX results_by_model ON results(model);

-- pycocotools COCOeval.stats, one row per stat: WHERE iou_type = 'bbox' AND stat = 'AP'.
CREATE TABLE stats (
    result_id {int} NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    iou_type  {text}    NOT NULL,  -- bbox | segm | keypoints
    stat      {text}    NOT NULL,  -- AP, AP50, ..., in DETECTION_STAT_NAMES / KEYPOINT_STAT_NAMES
    position  {int} NOT NULL,  -- index in COCOeval.stats
    value     {real}    NOT NULL,  -- as pycocotools computes it (a fraction; -1 = no ground truth)
    PRIMARY KEY (result_id, iou_type, stat)
) {without_rowid};

CREATE TABLE class_ap (
    result_id   {int} NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    iou_type    {text}    NOT NULL,
    category_id {int} NOT NULL,
    name        {text}    NOT NULL,
    ap          {real},              -- NULL where the class has no ground truth
    PRIMARY KEY (result_id, iou_type, category_id)
) {without_rowid};

CREATE TABLE latency (
    result_id             {int} PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    percentile_definition {text}    NOT NULL,
    warmup_iterations     {int} NOT NULL,
    batch_size            {int} NOT NULL,
    timed_images          {int} NOT NULL,
    total_seconds         {real}    NOT NULL,
    images_per_second     {real}    NOT NULL,
    includes_decode       {int} NOT NULL,  -- 0 | 1
    valid                 {int} NOT NULL,  -- 0 | 1
    validity_notes        {text}    NOT NULL   -- JSON array of strings
);

-- Summaries in milliseconds, per call (one batch of batch_size images); stage 'end_to_end' is the whole call.
CREATE TABLE latency_stages (
    result_id  {int} NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    stage      {text}    NOT NULL,  -- end_to_end | decode | preprocess | inference | postprocess
    position   {int} NOT NULL,
    count      {int} NOT NULL,
    mean       {real}    NOT NULL,
    median     {real}    NOT NULL,
    min        {real}    NOT NULL,
    max        {real}    NOT NULL,
    std        {real}    NOT NULL,
    p90        {real}    NOT NULL,
    p95        {real}    NOT NULL,
    p99        {real}    NOT NULL,
    samples_ms {blob}    NOT NULL,  -- the raw samples, little-endian f64, in run order
    PRIMARY KEY (result_id, stage)
) {without_rowid};

-- Model x batch-size combinations a run did not measure, with why.
CREATE TABLE skipped (
    run_id     {int} NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position   {int} NOT NULL,
    model      {text}    NOT NULL,
    batch_size {int} NOT NULL,
    reason     {text}    NOT NULL,
    PRIMARY KEY (run_id, position)
) {without_rowid};

CREATE TABLE failed_images (
    result_id {int} NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    position  {int} NOT NULL,
    file      {text}    NOT NULL,
    reason    {text}    NOT NULL,
    PRIMARY KEY (result_id, position)
) {without_rowid};
"#;

/// Version 2: published records (`detbench import-md`), so that published numbers can sit
/// beside measured ones in comparisons. A result with a `source_id` was not measured by
/// detbench; its latency, when the source gives one, is in `published_latency` because a
/// published "Speed (ms)" is a single number of unknown definition, not a sample summary.
const MIGRATION_2: &str = r#"
CREATE TABLE sources (
    id           {id},
    name         {text} NOT NULL,  -- e.g. "TF2 Detection Model Zoo"
    file         {text} NOT NULL,  -- the Markdown file imported
    file_sha256  {text} NOT NULL,
    device_label {text},           -- the hardware the source names, e.g. "Nvidia V100"
    imported_at  {text} NOT NULL
);

ALTER TABLE results ADD COLUMN source_id {int} REFERENCES sources(id);
CREATE INDEX results_by_source ON results(source_id);

CREATE TABLE published_latency (
    result_id  {int} PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    latency_ms {real} NOT NULL,
    "column"   {text} NOT NULL     -- the header it was read from, e.g. "Speed (ms)"
);
"#;

/// Version 3: runs split into shards and merged (`detbench merge`), and runs over several
/// devices at once (`detbench run --devices`). A merged result's pooled latency is in
/// `latency` / `latency_stages` as for any run; each shard's own summary is in `result_shards`,
/// and where each shard ran in `run_shards`.
const MIGRATION_3: &str = r#"
ALTER TABLE runs ADD COLUMN shard_count {int};                -- NULL: not sharded
ALTER TABLE runs ADD COLUMN partial {int} NOT NULL DEFAULT 0; -- 1: merged with shards missing
ALTER TABLE results ADD COLUMN devices {int};                 -- devices measured at once; NULL: one

CREATE TABLE run_shards (
    run_id       {int}  NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    shard        {int}  NOT NULL,  -- 0-based index
    present      {int}  NOT NULL,  -- 0: missing from a partial merge (the columns below NULL)
    hostname     {text},
    started_at   {text},           -- RFC 3339 UTC
    images       {int},            -- images of the shard (of its first dataset)
    command_line {text},           -- JSON array of strings
    environment  {text},           -- JSON, as runs.environment
    PRIMARY KEY (run_id, shard)
) {without_rowid};

CREATE TABLE result_shards (
    result_id         {int}  NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    shard             {int}  NOT NULL,
    device            {text},
    hostname          {text},
    timed_images      {int}  NOT NULL,
    total_seconds     {real} NOT NULL,
    images_per_second {real} NOT NULL,
    started_unix_s    {real},         -- wall clock of the shard's timed pass
    ended_unix_s      {real},
    count             {int}  NOT NULL,  -- end-to-end summary of the shard's own samples (ms)
    mean              {real} NOT NULL,
    median            {real} NOT NULL,
    min               {real} NOT NULL,
    max               {real} NOT NULL,
    std               {real} NOT NULL,
    p90               {real} NOT NULL,
    p95               {real} NOT NULL,
    p99               {real} NOT NULL,
    valid             {int}  NOT NULL,
    PRIMARY KEY (result_id, shard)
) {without_rowid};
"#;

/// Version 4: MLPerf LoadGen scenario results (`detbench run --scenario`). One row per result
/// that ran under a scenario; the headline columns are for queries, `record` holds everything
/// (`ScenarioRecord` without its raw latencies, which are the BLOBs). Self-contained: nothing
/// else changed, so a store without scenario runs reads as before.
const MIGRATION_4: &str = r#"
CREATE TABLE scenario_results (
    result_id                    {int}  PRIMARY KEY REFERENCES results(id) ON DELETE CASCADE,
    scenario                     {text} NOT NULL,  -- SingleStream | MultiStream | Server | Offline
    mode                         {text} NOT NULL,  -- PerformanceOnly | AccuracyOnly | SubmissionRun | FindPeakPerformance
    validity                     {text},  -- VALID | INVALID; NULL for an accuracy-only test
    metric                       {text},  -- the summary's result line, e.g. "90.0th percentile latency (ns)"
    metric_value                 {real},
    peak_qps                     {real},  -- FindPeakPerformance: the highest passing QPS
    target_qps                   {real},  -- effective (Server: the schedule's rate)
    target_latency_ns            {int},  -- Server's bound; 0 elsewhere
    target_latency_percentile    {real},  -- a fraction, e.g. 0.9
    target_percentile_latency_ns {int},  -- sample latency (MultiStream: query latency) there
    early_stopping_estimate_ns   {int},  -- SingleStream/MultiStream
    p50_ns                       {int},
    p90_ns                       {int},
    p99_ns                       {int},
    samples_per_second           {real},  -- Offline: samples/s; Server: completed samples/s; SingleStream: QPS w/ loadgen overhead
    sample_count                 {int},
    query_count                  {int},
    duration_s                   {real},  -- the performance run's last completion
    failed_samples               {int}  NOT NULL,
    settings                     {text} NOT NULL,  -- JSON: every effective setting (EffectiveSettings)
    record                       {text} NOT NULL,  -- JSON: the ScenarioRecord without raw latencies
    sample_latencies_ns          {blob} NOT NULL,  -- little-endian i64, issue order
    query_latencies_ns           {blob} NOT NULL  -- MultiStream: per query, little-endian i64
);
CREATE INDEX scenario_results_by_scenario ON scenario_results(scenario);
"#;

/// Version 5: training runs (`detbench train`, `RunResults.training`). One `training_runs` row
/// per process's results, its headline numbers as columns for queries and `result_json` holding
/// the whole `TrainResults` without its steps, which are the `training_steps` rows (one per
/// optimiser step). Self-contained: a store without training runs reads as before.
const MIGRATION_5: &str = r#"
CREATE TABLE training_runs (
    id                    {id},
    run_id                {int}  NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position              {int}  NOT NULL,  -- order within the run's training results
    model                 {text} NOT NULL,  -- maskrcnn_resnet50_fpn | fasterrcnn_resnet50_fpn | ...
    precision             {text} NOT NULL,  -- fp32 | tf32 | amp | bf16
    batch_size            {int}  NOT NULL,  -- images per step on one process (per GPU)
    device                {text} NOT NULL,  -- cpu | cuda:0 | ...
    world_size            {int}  NOT NULL,  -- processes training together (1: no data parallelism)
    process_rank          {int}  NOT NULL,  -- this process's rank
    dataset_images        {int}  NOT NULL,  -- after the reference's filtering
    step_count            {int}  NOT NULL,  -- steps run (rows in training_steps)
    timed_steps           {int},            -- steps timed after the warm-up; NULL: none
    images_per_s          {real},           -- this process, timed steps
    global_images_per_s   {real},           -- all processes
    nvidia_images_per_s   {real},           -- NVIDIA's PyTorch convention: every step, warm-up included
    step_mean_ms          {real},
    step_p50_ms           {real},
    step_p90_ms           {real},
    step_p99_ms           {real},
    data_wait_mean_ms     {real},
    data_wait_fraction    {real},           -- share of the timed steps' time spent waiting for data
    peak_allocated_bytes  {int},            -- CUDA caching allocator; NULL on CPU
    peak_reserved_bytes   {int},
    final_loss_scale      {real},           -- amp: the loss scale of the last step; NULL otherwise
    skipped_optimizer_steps {int} NOT NULL, -- amp: steps the scaler skipped (inf/NaN gradients)
    stopped               {text},           -- why the run stopped early; NULL: it ran every step
    wall_s                {real} NOT NULL,
    -- The whole TrainResults without its steps (they are training_steps): nothing is lost.
    result_json           {text} NOT NULL,
    UNIQUE (run_id, position)
);
CREATE INDEX training_runs_by_model ON training_runs(model);

CREATE TABLE training_steps (
    training_id {int}  NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    position    {int}  NOT NULL,  -- index in the run's steps
    step        {int}  NOT NULL,  -- 0-based over the run
    epoch       {int}  NOT NULL,
    lr          {real} NOT NULL,
    total_loss  {real} NOT NULL,
    step_s      {real} NOT NULL,  -- wall time of the step, data wait included
    data_wait_s {real} NOT NULL,
    loss_scale  {real},           -- amp: the scale the step used; NULL otherwise
    skipped     {int}  NOT NULL,  -- 1: the scaler skipped the optimiser step
    losses      {text} NOT NULL,  -- JSON array of the components, in result_json's loss_names order
    PRIMARY KEY (training_id, position)
) {without_rowid};
"#;
