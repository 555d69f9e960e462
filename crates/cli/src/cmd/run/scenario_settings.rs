//! The `--scenario` flags applied over LoadGen's settings, one flag per `TestSettings` key (a flag
//! of another scenario is an error), the LoadGen errors reworded with the flag that sets the key,
//! and the check of the settings against each dataset's sample counts.

use anyhow::bail;
use detbench_bench::mlperf::LoadgenOptions;
use detbench_loadgen::{Scenario, SettingsError, TestMode, TestSettings};

use super::scenario::ScenarioArgs;

/// Which flag sets each LoadGen key, for error messages.
const FLAG_OF_KEY: &[(&str, &str)] = &[
    ("mode", "--mode / --find-peak-qps"),
    ("min_duration_ms", "--min-duration-ms"),
    ("max_duration_ms", "--max-duration-ms"),
    ("min_query_count", "--min-query-count"),
    ("max_query_count", "--max-query-count"),
    ("server_target_qps", "--target-qps"),
    ("offline_expected_qps", "--target-qps"),
    ("server_target_latency_ns", "--target-latency-ms"),
    ("single_stream_expected_latency_ns", "--expected-latency-ms"),
    ("multi_stream_expected_latency_ns", "--expected-latency-ms"),
    (
        "single_stream_target_latency_percentile",
        "--latency-percentile",
    ),
    (
        "multi_stream_target_latency_percentile",
        "--latency-percentile",
    ),
    ("server_target_latency_percentile", "--latency-percentile"),
    ("multi_stream_samples_per_query", "--samples-per-query"),
    (
        "performance_sample_count_override",
        "--performance-sample-count",
    ),
    ("performance_sample_count", "--performance-sample-count"),
    ("accuracy_sample_count_override", "--accuracy-sample-count"),
    ("accuracy_log_probability", "--accuracy-log-probability"),
    ("server_num_issue_query_threads", "--issue-threads"),
    (
        "server_find_peak_qps_decimals_of_precision",
        "--find-peak-decimals",
    ),
    (
        "server_find_peak_qps_boundary_step_size",
        "--find-peak-step",
    ),
    ("performance_issue_same", "--performance-issue-same"),
    (
        "performance_issue_same_index",
        "--performance-issue-same-index",
    ),
];

/// A LoadGen settings error with the flag that sets the key.
pub fn explain(e: &SettingsError) -> String {
    match FLAG_OF_KEY.iter().find(|(key, _)| *key == e.key) {
        Some((_, flag)) => format!(
            "bad setting {} = {} ({flag}, or its key in a LoadGen config): expected {}",
            e.key, e.value, e.expected
        ),
        None => e.to_string(),
    }
}

/// Sets `$target` from `$value` when the flag was given, noting it in `$given`.
macro_rules! set {
    ($given:ident, $flag:literal, $value:expr => $target:expr) => {
        if let Some(v) = $value {
            $target = v;
            $given.push(format!("{} {}", $flag, v));
        }
    };
}

impl ScenarioArgs {
    /// Applies the flags given over `s`; returns them as given (for the record).
    pub(super) fn apply_flags(
        &self,
        s: &mut TestSettings,
        scenario: Scenario,
    ) -> anyhow::Result<Vec<String>> {
        let mut given: Vec<String> = Vec::new();
        if let Some(mode) = self.mode {
            s.mode = mode;
            given.push(format!("--mode {mode}"));
        }
        if self.find_peak_qps {
            only(scenario, "--find-peak-qps", &[Scenario::Server])?;
            s.mode = TestMode::FindPeakPerformance;
            given.push("--find-peak-qps".into());
        }
        set!(given, "--min-duration-ms", self.min_duration_ms => s.min_duration_ms);
        set!(given, "--max-duration-ms", self.max_duration_ms => s.max_duration_ms);
        set!(given, "--min-query-count", self.min_query_count => s.min_query_count);
        set!(given, "--max-query-count", self.max_query_count => s.max_query_count);
        set!(given, "--performance-sample-count", self.performance_sample_count => s.performance_sample_count_override);
        set!(given, "--accuracy-sample-count", self.accuracy_sample_count => s.accuracy_sample_count_override);
        set!(given, "--qsl-rng-seed", self.qsl_rng_seed => s.qsl_rng_seed);
        set!(given, "--sample-index-rng-seed", self.sample_index_rng_seed => s.sample_index_rng_seed);
        set!(given, "--schedule-rng-seed", self.schedule_rng_seed => s.schedule_rng_seed);
        set!(given, "--accuracy-log-rng-seed", self.accuracy_log_rng_seed => s.accuracy_log_rng_seed);
        set!(given, "--accuracy-log-sampling-target", self.accuracy_log_sampling_target => s.accuracy_log_sampling_target);
        set!(given, "--performance-issue-same-index", self.performance_issue_same_index => s.performance_issue_same_index);
        for (on, flag, field) in [
            (
                self.performance_issue_unique,
                "--performance-issue-unique",
                &mut s.performance_issue_unique,
            ),
            (
                self.performance_issue_same,
                "--performance-issue-same",
                &mut s.performance_issue_same,
            ),
            (
                self.sample_concatenate_permutation,
                "--sample-concatenate-permutation",
                &mut s.sample_concatenate_permutation,
            ),
        ] {
            if on {
                *field = true;
                given.push(flag.into());
            }
        }
        if let Some(p) = self.accuracy_log_probability {
            if !(0.0..=100.0).contains(&p) {
                bail!("--accuracy-log-probability {p}: expected a percentage from 0 to 100");
            }
            s.accuracy_log_probability = p / 100.0;
            given.push(format!("--accuracy-log-probability {p}"));
        }
        self.apply_scenario_flags(s, scenario, &mut given)?;
        self.apply_server_flags(s, scenario, &mut given)?;
        Ok(given)
    }

    /// The flags whose LoadGen key depends on the scenario.
    fn apply_scenario_flags(
        &self,
        s: &mut TestSettings,
        scenario: Scenario,
        given: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        use Scenario::*;
        if let Some(qps) = self.target_qps {
            only(scenario, "--target-qps", &[Server, Offline])?;
            match scenario {
                Server => s.server_target_qps = qps,
                _ => s.offline_expected_qps = qps,
            }
            given.push(format!("--target-qps {qps}"));
        }
        if let Some(ms) = self.expected_latency_ms {
            only(
                scenario,
                "--expected-latency-ms",
                &[SingleStream, MultiStream],
            )?;
            if !(ms.is_finite() && ms > 0.0) {
                bail!("--expected-latency-ms {ms}: expected a time in ms above 0");
            }
            match scenario {
                SingleStream => s.single_stream_expected_latency_ns = ms * 1e6,
                _ => s.multi_stream_expected_latency_ns = ms * 1e6,
            }
            given.push(format!("--expected-latency-ms {ms}"));
        }
        if let Some(pct) = self.latency_percentile {
            only(
                scenario,
                "--latency-percentile",
                &[SingleStream, MultiStream, Server],
            )?;
            if !(pct > 1.0 && pct < 100.0) {
                bail!(
                    "--latency-percentile {pct}: expected a percentage between 1 and 100, \
                     exclusive (99 for the 99th percentile)"
                );
            }
            let p = pct / 100.0;
            match scenario {
                SingleStream => s.single_stream_target_latency_percentile = p,
                MultiStream => s.multi_stream_target_latency_percentile = p,
                _ => s.server_target_latency_percentile = p,
            }
            given.push(format!("--latency-percentile {pct}"));
        }
        if let Some(n) = self.samples_per_query {
            only(scenario, "--samples-per-query", &[MultiStream])?;
            s.multi_stream_samples_per_query = n;
            given.push(format!("--samples-per-query {n}"));
        }
        Ok(())
    }

    /// The Server-only flags.
    fn apply_server_flags(
        &self,
        s: &mut TestSettings,
        scenario: Scenario,
        given: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let server = [Scenario::Server];
        if let Some(ms) = self.target_latency_ms {
            only(scenario, "--target-latency-ms", &server)?;
            if !(ms.is_finite() && ms > 0.0) {
                bail!("--target-latency-ms {ms}: expected a latency bound in ms above 0");
            }
            s.server_target_latency_ns = (ms * 1e6).round() as u64;
            given.push(format!("--target-latency-ms {ms}"));
        }
        if self.coalesce_queries {
            only(scenario, "--coalesce-queries", &server)?;
            s.server_coalesce_queries = true;
            given.push("--coalesce-queries".into());
        }
        if let Some(n) = self.max_async_queries {
            only(scenario, "--max-async-queries", &server)?;
            s.server_max_async_queries = n;
            given.push(format!("--max-async-queries {n}"));
        }
        if let Some(n) = self.issue_threads {
            only(scenario, "--issue-threads", &server)?;
            s.server_num_issue_query_threads = n;
            given.push(format!("--issue-threads {n}"));
        }
        if let Some(d) = self.find_peak_decimals {
            only(scenario, "--find-peak-decimals", &server)?;
            s.server_find_peak_qps_decimals_of_precision = d;
            given.push(format!("--find-peak-decimals {d}"));
        }
        if let Some(step) = self.find_peak_step {
            only(scenario, "--find-peak-step", &server)?;
            s.server_find_peak_qps_boundary_step_size = step;
            given.push(format!("--find-peak-step {step}"));
        }
        if self.max_batch.is_some() {
            only(scenario, "--max-batch", &server)?;
        }
        Ok(())
    }
}

/// An error unless `scenario` is one of `allowed`.
fn only(scenario: Scenario, flag: &str, allowed: &[Scenario]) -> anyhow::Result<()> {
    if !allowed.contains(&scenario) {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        bail!(
            "{flag} applies to the {} scenario{}, not {scenario}",
            names.join(" and "),
            if names.len() > 1 { "s" } else { "" }
        );
    }
    Ok(())
}

/// Checks the LoadGen settings against each dataset the models run on (sample counts), before
/// anything runs: a `samples_per_query` larger than the sample set, say, is an error here
/// rather than a failed row.
pub fn validate(
    options: &LoadgenOptions,
    entries: &[detbench_models::ZooEntry],
    datasets: &mut detbench_bench::scenario::DatasetCache,
) -> anyhow::Result<()> {
    let mut kinds = Vec::new();
    for entry in entries {
        if !kinds.contains(&entry.ground_truth()) {
            kinds.push(entry.ground_truth());
        }
    }
    for kind in kinds {
        let Ok(dataset) = datasets.dataset(kind) else {
            continue; // reported already; its models get failed rows
        };
        let total = dataset.images.len();
        let performance = options.performance_sample_count.min(total);
        options
            .settings
            .validate(total, performance)
            .map_err(|e| anyhow::anyhow!("{} (dataset of {total} images)", explain(&e)))?;
    }
    Ok(())
}
