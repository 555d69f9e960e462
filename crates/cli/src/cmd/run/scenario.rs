//! The options of `detbench run --scenario ...` (MLPerf LoadGen's scenarios), resolved once into
//! LoadGen's `TestSettings` with LoadGen's precedence: its defaults, then the built-in
//! `mlperf.conf` (`--mlperf`), then a user config (`--mlperf-conf user.conf`, read as LoadGen's
//! `FromConfig` reads it: `mlperf.conf` first, then the file), then the flags here. Each flag sets
//! one `TestSettings` key; bad values get an error naming the flag, the LoadGen key and what
//! was expected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use detbench_bench::mlperf::sut::Batching;
use detbench_bench::mlperf::{DEFAULT_PERFORMANCE_SAMPLE_COUNT, LoadgenOptions};
use detbench_loadgen::{HarnessOptions, Scenario, SettingsError, TestMode, TestSettings};

use super::scenario_settings::explain;

/// The help heading of these options.
const H: &str = "MLPerf LoadGen scenarios (--scenario)";

#[derive(clap::Args, Debug, Clone)]
// Numeric flags take `allow_negative_numbers`, so that `--min-duration-ms -3` reaches the value
// parser, whose error names the flag and the value, rather than clap's "unexpected argument".
pub struct ScenarioArgs {
    /// Run under an MLPerf LoadGen scenario: single-stream (p90 latency, one sample at a time),
    /// multi-stream (p99 latency of 8-sample queries), offline (samples/s of one large query) or
    /// server (Poisson arrivals at --target-qps; p99 under --target-latency-ms).
    #[arg(long, value_parser = parse_scenario, help_heading = H)]
    pub(super) scenario: Option<Scenario>,

    /// performance (timed traffic), accuracy (every image once, scored with COCO) or submission
    /// (accuracy, then performance) [default: performance, or the config's `mode`].
    #[arg(long, value_parser = parse_mode, requires = "scenario", help_heading = H)]
    pub(super) mode: Option<TestMode>,

    /// Server: search for the highest QPS whose latency percentile stays under the bound
    /// (LoadGen's FindPeakPerformance), starting from --target-qps.
    #[arg(long, requires = "scenario", conflicts_with = "mode", help_heading = H)]
    pub(super) find_peak_qps: bool,

    /// MLPerf's rules: LoadGen's built-in mlperf.conf (600 s minimum durations, MLPerf's seeds
    /// and percentiles, the detection entry's 100 ms Server bound) under the flags given.
    #[arg(long, requires = "scenario", help_heading = H)]
    pub(super) mlperf: bool,

    /// A LoadGen user config (`model.scenario.key = value`, `*` wildcards), applied over
    /// mlperf.conf as LoadGen's FromConfig does; flags still win.
    #[arg(long, value_name = "FILE", requires = "scenario", help_heading = H)]
    pub(super) mlperf_conf: Option<PathBuf>,

    /// The model name LoadGen's config lookups use (`retinanet`: MLPerf's detection entry, 64
    /// performance samples, Server bound 100 ms; `yolo`: the edge detection benchmark).
    #[arg(long, value_name = "NAME", default_value = "retinanet", requires = "scenario", help_heading = H)]
    pub(super) mlperf_model: String,

    /// Minimum test duration, ms (min_duration).
    #[arg(long, value_name = "MS", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) min_duration_ms: Option<u64>,

    /// Maximum test duration, ms; 0: no limit (max_duration).
    #[arg(long, value_name = "MS", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) max_duration_ms: Option<u64>,

    /// Minimum query count (min_query_count).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) min_query_count: Option<u64>,

    /// Maximum query count; 0: no limit (max_query_count).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) max_query_count: Option<u64>,

    /// Server: target queries per second; Offline: expected samples per second, which sizes the
    /// query (target_qps).
    #[arg(long, value_name = "QPS", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) target_qps: Option<f64>,

    /// Server: the latency bound, ms (target_latency) [default 100, LoadGen's detection value].
    #[arg(long, value_name = "MS", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) target_latency_ms: Option<f64>,

    /// SingleStream/MultiStream: the expected latency, ms, that sizes the pre-generated
    /// schedule (target_latency).
    #[arg(long, value_name = "MS", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) expected_latency_ms: Option<f64>,

    /// The target latency percentile, in percent, e.g. 90 or 99 (target_latency_percentile).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) latency_percentile: Option<f64>,

    /// MultiStream: samples per query [default 8] (samples_per_query).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) samples_per_query: Option<u64>,

    /// Decoded images held for a performance run (performance_sample_count_override)
    /// [default: the dataset, at most 512].
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) performance_sample_count: Option<u64>,

    /// Images an accuracy run covers; 0: all (accuracy_sample_count_override).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) accuracy_sample_count: Option<u64>,

    /// Seed of the loaded sample sets (qsl_rng_seed).
    #[arg(long, value_name = "SEED", requires = "scenario", help_heading = H)]
    pub(super) qsl_rng_seed: Option<u64>,

    /// Seed of the sample order (sample_index_rng_seed).
    #[arg(long, value_name = "SEED", requires = "scenario", help_heading = H)]
    pub(super) sample_index_rng_seed: Option<u64>,

    /// Seed of the Server arrival times (schedule_rng_seed).
    #[arg(long, value_name = "SEED", requires = "scenario", help_heading = H)]
    pub(super) schedule_rng_seed: Option<u64>,

    /// Seed of the accuracy-log sampling in performance mode (accuracy_log_rng_seed).
    #[arg(long, value_name = "SEED", requires = "scenario", help_heading = H)]
    pub(super) accuracy_log_rng_seed: Option<u64>,

    /// Performance mode: percent of responses written to mlperf_log_accuracy.json
    /// (accuracy_log_probability).
    #[arg(long, value_name = "PCT", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) accuracy_log_probability: Option<f64>,

    /// Performance mode: about this many responses in the accuracy log
    /// (accuracy_log_sampling_target).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) accuracy_log_sampling_target: Option<u64>,

    /// Server: issue queries that are due together as one (coalesce_queries).
    #[arg(long, requires = "scenario", help_heading = H)]
    pub(super) coalesce_queries: bool,

    /// Server: the most queries outstanding at once; 0: no limit (max_async_queries).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) max_async_queries: Option<u64>,

    /// Server: issuing threads; 0: one dedicated thread (server_num_issue_query_threads).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) issue_threads: Option<u64>,

    /// Server peak search: decimal places of the found QPS
    /// (server_find_peak_qps_decimals_of_precision).
    #[arg(long, value_name = "N", requires = "scenario", help_heading = H)]
    pub(super) find_peak_decimals: Option<i32>,

    /// Server peak search: widening step, a fraction of the QPS
    /// (server_find_peak_qps_boundary_step_size).
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) find_peak_step: Option<f64>,

    /// Issue every performance sample exactly once (performance_issue_unique; MLPerf's TEST04).
    #[arg(long, requires = "scenario", help_heading = H)]
    pub(super) performance_issue_unique: bool,

    /// Issue one sample, --performance-issue-same-index, every time (performance_issue_same).
    #[arg(long, requires = "scenario", help_heading = H)]
    pub(super) performance_issue_same: bool,

    /// The sample --performance-issue-same repeats (performance_issue_same_index).
    #[arg(long, value_name = "N", allow_negative_numbers = true, requires = "scenario", help_heading = H)]
    pub(super) performance_issue_same_index: Option<u64>,

    /// Equal-issue mode: issue whole permutations of the sample set
    /// (sample_concatenate_permutation).
    #[arg(long, requires = "scenario", help_heading = H)]
    pub(super) sample_concatenate_permutation: bool,

    /// Server: the most samples one call batches (dynamic batching; Offline and MultiStream use
    /// --batch).
    #[arg(long, value_name = "N", requires = "scenario", help_heading = H)]
    pub(super) max_batch: Option<usize>,

    /// Server: how long after a sample arrives a call may wait for more, ms [default 0: take
    /// what is queued].
    #[arg(long, value_name = "MS", allow_negative_numbers = true, requires = "max_batch", help_heading = H)]
    pub(super) batch_timeout: Option<f64>,

    /// SUT worker threads, each with its own opened model [default 1].
    #[arg(long, value_name = "N", requires = "scenario", help_heading = H)]
    pub(super) sut_workers: Option<usize>,
}

fn parse_scenario(s: &str) -> Result<Scenario, SettingsError> {
    s.parse()
}

fn parse_mode(s: &str) -> Result<TestMode, SettingsError> {
    s.parse()
}

/// What the rest of the run needs from the options besides them.
pub struct RunContext<'a> {
    pub batch_sizes: &'a [usize],
    pub warmup: usize,
    pub decode_threads: Option<usize>,
    pub out_dir: &'a Path,
}

impl ScenarioArgs {
    /// LoadGen's settings and the SUT's shape, or `None` without `--scenario`. Creates and
    /// checks the logs folder (`<out>/loadgen`) before anything runs.
    pub fn resolve(&self, ctx: &RunContext<'_>) -> anyhow::Result<Option<LoadgenOptions>> {
        let Some(scenario) = self.scenario else {
            return Ok(None);
        };
        let (settings, settings_sources) = self.settings(scenario)?;
        let batchings = self.batchings(scenario, ctx.batch_sizes)?;
        let workers = self.sut_workers.unwrap_or(1);
        if workers == 0 {
            bail!("--sut-workers 0: give at least 1");
        }
        let log_root = ctx.out_dir.join("loadgen");
        std::fs::create_dir_all(&log_root)
            .with_context(|| format!("creating the LoadGen logs folder {}", log_root.display()))?;
        detbench_loadgen::check_log_dir(&log_root)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Some(LoadgenOptions {
            settings,
            settings_sources,
            batchings,
            workers,
            warmup: ctx.warmup,
            performance_sample_count: DEFAULT_PERFORMANCE_SAMPLE_COUNT,
            decode_threads: ctx.decode_threads.unwrap_or(cores).max(1),
            log_root,
            harness: HarnessOptions::default(),
        }))
    }

    /// The settings with LoadGen's precedence, and where they came from.
    fn settings(&self, scenario: Scenario) -> anyhow::Result<(TestSettings, Vec<String>)> {
        let mut settings = TestSettings::new(scenario);
        let mut sources = vec![format!(
            "LoadGen {} defaults",
            detbench_bench::mlperf::LOADGEN_VERSION
        )];
        let model = self.mlperf_model.as_str();
        if let Some(path) = &self.mlperf_conf {
            let warnings = settings.apply_user_conf(path, model, scenario)?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            sources.push(format!(
                "mlperf.conf (built in) and {} for model {model}, {scenario}",
                path.display()
            ));
        } else if self.mlperf {
            settings.apply_mlperf_conf(model, scenario);
            sources.push(format!(
                "mlperf.conf (built in) for model {model}, {scenario}"
            ));
        }
        let given = self.apply_flags(&mut settings, scenario)?;
        if !given.is_empty() {
            sources.push(format!("flags: {}", given.join(" ")));
        }
        // What does not depend on the dataset is checked now; the sample counts once it is read.
        settings
            .validate(usize::MAX, usize::MAX)
            .map_err(|e| anyhow::anyhow!(explain(&e)))?;
        if settings.min_duration_ms == 0 {
            bail!(
                "bad setting min_duration_ms = 0 (--min-duration-ms, or `min_duration` in a \
                 LoadGen config): expected a minimum duration above 0 ms (for a run that ends on \
                 its query count, give 1 and --min-query-count)"
            );
        }
        Ok((settings, sources))
    }

    /// One test per batching: Offline and MultiStream take `--batch`; Server takes
    /// `--max-batch`/`--batch-timeout`; SingleStream issues one sample at a time.
    fn batchings(
        &self,
        scenario: Scenario,
        batch_sizes: &[usize],
    ) -> anyhow::Result<Vec<Batching>> {
        let plain = batch_sizes == [1];
        match scenario {
            Scenario::Offline | Scenario::MultiStream => {
                if self.max_batch.is_some() {
                    bail!("--max-batch is the Server's dynamic batching; {scenario} uses --batch");
                }
                Ok(batch_sizes
                    .iter()
                    .map(|&max_batch| Batching {
                        max_batch,
                        timeout: Duration::ZERO,
                    })
                    .collect())
            }
            Scenario::SingleStream => {
                if !plain || self.max_batch.is_some() {
                    bail!(
                        "SingleStream queries hold one sample: leave out --batch and --max-batch"
                    );
                }
                Ok(vec![Batching {
                    max_batch: 1,
                    timeout: Duration::ZERO,
                }])
            }
            Scenario::Server => {
                if !plain {
                    bail!(
                        "the Server scenario batches dynamically: use --max-batch N (and \
                         --batch-timeout MS) instead of --batch"
                    );
                }
                let max_batch = self.max_batch.unwrap_or(1);
                if max_batch == 0 {
                    bail!("--max-batch 0: give at least 1");
                }
                let timeout_ms = self.batch_timeout.unwrap_or(0.0);
                if !(timeout_ms.is_finite() && timeout_ms >= 0.0) {
                    bail!("--batch-timeout {timeout_ms}: expected a time in ms, 0 or more");
                }
                Ok(vec![Batching {
                    max_batch,
                    timeout: Duration::from_secs_f64(timeout_ms / 1e3),
                }])
            }
        }
    }
}
