//! The effective settings: LoadGen's `TestSettingsInternal` (`test_settings_internal.cc`,
//! constructor), which folds the scenario-specific requested settings into one set of values
//! (samples per query, target QPS, target latency, the Offline query size) once the query sample
//! library's counts are known. Its fields are what `mlperf_log_summary.txt` lists under "Test
//! Parameters Used".

use serde::{Deserialize, Serialize};

use crate::settings::{Scenario, TestMode, TestSettings};

/// LoadGen's `TestSettingsInternal`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectiveSettings {
    /// The settings as requested (after config files and flags, before this folding).
    pub requested: TestSettings,
    pub scenario: Scenario,
    pub mode: TestMode,
    pub samples_per_query: u64,
    pub target_qps: f64,
    pub target_latency_ns: i64,
    pub target_latency_percentile: f64,
    pub max_async_queries: u64,
    /// How long a schedule to pre-generate (ms); 0 for Offline.
    pub target_duration_ms: u64,
    pub min_duration_ms: u64,
    pub max_duration_ms: u64,
    pub min_query_count: u64,
    pub max_query_count: u64,
    pub min_sample_count: u64,
    pub qsl_rng_seed: u64,
    pub sample_index_rng_seed: u64,
    pub schedule_rng_seed: u64,
    pub accuracy_log_rng_seed: u64,
    pub accuracy_log_probability: f64,
    pub accuracy_log_sampling_target: u64,
    pub print_timestamps: bool,
    pub performance_issue_unique: bool,
    pub performance_issue_same: bool,
    pub performance_issue_same_index: u64,
    pub performance_sample_count: u64,
    pub accuracy_sample_count: u64,
    pub sample_concatenate_permutation: bool,
}

impl EffectiveSettings {
    /// `TestSettingsInternal::TestSettingsInternal(requested, qsl_performance_sample_count,
    /// qsl_total_sample_count)`, after `StartTest`'s test05 seed override. Call
    /// [`TestSettings::validate`] first: this is the plain port and assumes valid input.
    pub fn new(requested: &TestSettings, qsl_performance: usize, qsl_total: usize) -> Self {
        let mut req = requested.clone();
        if req.test05 {
            // StartTest: test05 forces performance mode and swaps in the test05 seeds.
            req.mode = TestMode::PerformanceOnly;
            req.qsl_rng_seed = req.test05_qsl_rng_seed;
            req.sample_index_rng_seed = req.test05_sample_index_rng_seed;
            req.schedule_rng_seed = req.test05_schedule_rng_seed;
        }
        let mut s = EffectiveSettings::initial(&req);
        s.fold_scenario(&req);
        s.performance_sample_count = req.performance_sample_count(qsl_performance);
        s.accuracy_sample_count = if req.accuracy_sample_count_override == 0 {
            qsl_total as u64
        } else {
            req.accuracy_sample_count_override
        };
        if req.scenario == Scenario::MultiStream {
            s.samples_per_query = req.multi_stream_samples_per_query;
        }
        if req.scenario == Scenario::Offline {
            // kSlack: generate 10% more samples than min_duration needs at the expected QPS.
            let target_sample_count =
                (1.1 * (s.target_duration_ms as f64 / 1000.0) * s.target_qps) as u64;
            s.samples_per_query = if req.performance_issue_unique {
                s.performance_sample_count
            } else {
                s.min_query_count.max(target_sample_count)
            };
            s.min_query_count = 1;
            s.target_duration_ms = 0;
        }
        if s.sample_concatenate_permutation && req.scenario == Scenario::SingleStream {
            // Equal-issue SingleStream: round min_query_count up to a multiple of the QSL's
            // performance sample count (LoadGen uses the QSL's count here, not the override).
            let expected_queries =
                (2.0 * (s.target_duration_ms as f64 / 1000.0) * s.target_qps) as u64;
            s.min_query_count = s.min_query_count.max(expected_queries);
            let qsl_psc = (qsl_performance as u64).max(1);
            s.min_query_count += qsl_psc - (s.min_query_count % qsl_psc);
        }
        s.min_sample_count = s.min_query_count * s.samples_per_query;
        s.requested = req;
        s
    }

    fn initial(req: &TestSettings) -> Self {
        EffectiveSettings {
            requested: req.clone(),
            scenario: req.scenario,
            mode: req.mode,
            samples_per_query: 1,
            target_qps: 1.0,
            target_latency_ns: 0,
            target_latency_percentile: 0.0,
            max_async_queries: 0,
            target_duration_ms: req.min_duration_ms,
            min_duration_ms: req.min_duration_ms,
            max_duration_ms: req.max_duration_ms,
            min_query_count: req.min_query_count,
            max_query_count: req.max_query_count,
            min_sample_count: 0,
            qsl_rng_seed: req.qsl_rng_seed,
            sample_index_rng_seed: req.sample_index_rng_seed,
            schedule_rng_seed: req.schedule_rng_seed,
            accuracy_log_rng_seed: req.accuracy_log_rng_seed,
            accuracy_log_probability: req.accuracy_log_probability,
            accuracy_log_sampling_target: req.accuracy_log_sampling_target,
            print_timestamps: req.print_timestamps,
            performance_issue_unique: req.performance_issue_unique,
            performance_issue_same: req.performance_issue_same,
            performance_issue_same_index: req.performance_issue_same_index,
            performance_sample_count: 0,
            accuracy_sample_count: 0,
            sample_concatenate_permutation: req.sample_concatenate_permutation,
        }
    }

    /// The constructor's scenario switch: target QPS, latency bound, percentile, async limit.
    fn fold_scenario(&mut self, req: &TestSettings) {
        match req.scenario {
            Scenario::SingleStream => {
                self.target_qps = 1e9 / req.single_stream_expected_latency_ns;
                self.max_async_queries = 1;
                self.target_latency_percentile = req.single_stream_target_latency_percentile;
            }
            Scenario::MultiStream => {
                self.target_qps = 1e9 / req.multi_stream_expected_latency_ns;
                self.max_async_queries = 1;
                self.target_latency_percentile = req.multi_stream_target_latency_percentile;
            }
            Scenario::Server => {
                // LoadGen keeps target_qps = 1 for a negative request (and logs an error);
                // validation refuses it before we get here.
                if req.server_target_qps >= 0.0 {
                    self.target_qps = req.server_target_qps;
                }
                self.target_latency_ns = req.server_target_latency_ns as i64;
                self.target_latency_percentile = req.server_target_latency_percentile;
                self.max_async_queries = req.server_max_async_queries;
            }
            Scenario::Offline => {
                // Not used in Offline; LoadGen sets 0.99 "to avoid garbage value".
                self.target_latency_percentile = 0.99;
                if req.offline_expected_qps >= 0.0 {
                    self.target_qps = req.offline_expected_qps;
                }
                self.max_async_queries = 1;
            }
        }
    }

    /// The settings with another Server target QPS (FindPeakPerformance's moves).
    pub(crate) fn with_target_qps(&self, qps: f64) -> Self {
        EffectiveSettings {
            target_qps: qps,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_query_size_follows_loadgen() {
        let mut req = TestSettings::new(Scenario::Offline);
        req.min_duration_ms = 10_000;
        req.offline_expected_qps = 200.0;
        let s = EffectiveSettings::new(&req, 64, 500);
        // 1.1 * 10 s * 200/s = 2200 > min_query_count 100.
        assert_eq!(s.samples_per_query, 2200);
        assert_eq!(s.min_query_count, 1);
        assert_eq!(s.min_sample_count, 2200);
        assert_eq!(s.target_duration_ms, 0);
        req.offline_expected_qps = 1.0;
        assert_eq!(EffectiveSettings::new(&req, 64, 500).samples_per_query, 100);
    }

    #[test]
    fn single_and_multi_stream_fold() {
        let ss = EffectiveSettings::new(&TestSettings::new(Scenario::SingleStream), 10, 10);
        assert_eq!(ss.target_qps, 1000.0);
        assert_eq!(ss.max_async_queries, 1);
        assert_eq!(ss.target_latency_ns, 0);
        let ms = EffectiveSettings::new(&TestSettings::new(Scenario::MultiStream), 10, 10);
        assert_eq!(ms.samples_per_query, 8);
        assert_eq!(ms.target_qps, 125.0);
        assert_eq!(ms.min_sample_count, 800);
        assert_eq!(ms.accuracy_sample_count, 10);
    }

    #[test]
    fn test05_swaps_seeds() {
        let mut req = TestSettings::new(Scenario::Server);
        req.test05 = true;
        req.mode = TestMode::AccuracyOnly;
        req.test05_schedule_rng_seed = 42;
        let s = EffectiveSettings::new(&req, 10, 10);
        assert_eq!(s.mode, TestMode::PerformanceOnly);
        assert_eq!(s.schedule_rng_seed, 42);
    }
}
