//! The requested test settings: LoadGen's `TestSettings` (`test_settings.h`, 6.0.17), the same
//! field names and defaults, plus the checks that turn a setting LoadGen would accept silently
//! (and then hang, crash or mis-measure on) into an error naming the setting.
//!
//! Settings come from three places, applied in this order by the caller: the defaults here,
//! LoadGen config files ([`crate::conf`]), then explicit values (command-line flags). They are
//! turned into [`crate::EffectiveSettings`] once the query sample library's size is known.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SettingsError;

/// Gives a LoadGen enum its name (`as_str`, `Display`) and a `FromStr` that takes the name or an
/// alias with case, `-`, `_` and spaces ignored, else an error naming the setting.
macro_rules! loadgen_names {
    (
        $(#[$doc:meta])*
        $ty:ident as $setting:literal, $expected:literal {
            $( $variant:ident = $name:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        impl $ty {
            $(#[$doc])*
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $ty::$variant => $name, )+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = SettingsError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let folded: String = s
                    .chars()
                    .filter(|c| !matches!(c, '-' | '_' | ' '))
                    .collect::<String>()
                    .to_ascii_lowercase();
                $(
                    if folded == $name.to_ascii_lowercase() $(|| folded == $alias)* {
                        return Ok($ty::$variant);
                    }
                )+
                Err(SettingsError::new($setting, s, $expected))
            }
        }
    };
}

/// LoadGen's `TestScenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scenario {
    /// One 1-sample query at a time; the next is issued when the last completes.
    SingleStream,
    /// Queries of `multi_stream_samples_per_query` contiguous samples, back to back.
    MultiStream,
    /// 1-sample queries with Poisson arrivals at `server_target_qps`.
    Server,
    /// One query holding every sample.
    Offline,
}

impl Scenario {
    /// All four, in LoadGen's enum order.
    pub const ALL: [Scenario; 4] = [
        Scenario::SingleStream,
        Scenario::MultiStream,
        Scenario::Server,
        Scenario::Offline,
    ];
}

loadgen_names! {
    /// LoadGen's name (`ToString(TestScenario)` with the new logging format), also the scenario
    /// field of config keys; parsing also takes command-line spellings (`single-stream`).
    Scenario as "scenario", "one of single-stream, multi-stream, server, offline" {
        SingleStream = "SingleStream",
        MultiStream = "MultiStream",
        Server = "Server",
        Offline = "Offline",
    }
}

/// LoadGen's `TestMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TestMode {
    /// Accuracy mode, then performance mode.
    SubmissionRun,
    /// Every sample once; responses go to the accuracy log.
    AccuracyOnly,
    /// The scenario's timed traffic.
    PerformanceOnly,
    /// Server only: search for the highest `server_target_qps` meeting the latency bound.
    FindPeakPerformance,
}

loadgen_names! {
    /// LoadGen's name (`ToString(TestMode)`, new logging format); parsing also takes
    /// `performance`, `accuracy`, `submission`, `find-peak`.
    TestMode as "mode", "one of performance, accuracy, submission, find-peak" {
        SubmissionRun = "SubmissionRun" | "submission",
        AccuracyOnly = "AccuracyOnly" | "accuracy",
        PerformanceOnly = "PerformanceOnly" | "performance",
        FindPeakPerformance = "FindPeakPerformance" | "findpeak" | "findpeakqps",
    }
}

/// LoadGen's `TestSettings`, field for field (`test_settings.h`), with LoadGen's defaults.
///
/// The LLM-only token-latency settings are kept as flags so a config that turns them on is
/// refused rather than ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestSettings {
    pub scenario: Scenario,
    pub mode: TestMode,
    /// A hint used to pre-generate enough SingleStream queries for `min_duration`.
    pub single_stream_expected_latency_ns: f64,
    pub single_stream_target_latency_percentile: f64,
    /// A hint used to pre-generate enough MultiStream queries for `min_duration`.
    pub multi_stream_expected_latency_ns: f64,
    pub multi_stream_target_latency_percentile: f64,
    pub multi_stream_samples_per_query: u64,
    pub server_target_qps: f64,
    pub server_target_latency_ns: u64,
    pub server_target_latency_percentile: f64,
    pub server_coalesce_queries: bool,
    pub server_find_peak_qps_decimals_of_precision: i32,
    pub server_find_peak_qps_boundary_step_size: f64,
    /// 0: no limit.
    pub server_max_async_queries: u64,
    /// 0: issue from one dedicated thread; N: from N issuing threads, query `i` on thread
    /// `i % N` (LoadGen's `IssueQueriesInternal` stride).
    pub server_num_issue_query_threads: u64,
    pub offline_expected_qps: f64,
    pub sample_concatenate_permutation: bool,
    pub min_duration_ms: u64,
    /// 0: no limit.
    pub max_duration_ms: u64,
    pub min_query_count: u64,
    /// 0: no limit.
    pub max_query_count: u64,
    pub qsl_rng_seed: u64,
    pub sample_index_rng_seed: u64,
    pub schedule_rng_seed: u64,
    pub accuracy_log_rng_seed: u64,
    pub accuracy_log_probability: f64,
    pub accuracy_log_sampling_target: u64,
    pub test05: bool,
    pub test05_qsl_rng_seed: u64,
    pub test05_sample_index_rng_seed: u64,
    pub test05_schedule_rng_seed: u64,
    pub print_timestamps: bool,
    pub performance_issue_unique: bool,
    pub performance_issue_same: bool,
    pub performance_issue_same_index: u64,
    /// 0: the QSL's own performance sample count.
    pub performance_sample_count_override: u64,
    /// 0: the QSL's total sample count.
    pub accuracy_sample_count_override: u64,
    /// LLM token latencies: not supported here; `true` is refused by [`TestSettings::validate`].
    pub use_token_latencies: bool,
    /// LLM inferred token latencies: not supported here either.
    pub infer_token_latencies: bool,
}

impl Default for TestSettings {
    fn default() -> Self {
        TestSettings {
            scenario: Scenario::SingleStream,
            mode: TestMode::PerformanceOnly,
            single_stream_expected_latency_ns: 1_000_000.0,
            single_stream_target_latency_percentile: 0.90,
            multi_stream_expected_latency_ns: 8_000_000.0,
            multi_stream_target_latency_percentile: 0.99,
            multi_stream_samples_per_query: 8,
            server_target_qps: 1.0,
            server_target_latency_ns: 100_000_000,
            server_target_latency_percentile: 0.99,
            server_coalesce_queries: false,
            server_find_peak_qps_decimals_of_precision: 1,
            server_find_peak_qps_boundary_step_size: 1.0,
            server_max_async_queries: 0,
            server_num_issue_query_threads: 0,
            offline_expected_qps: 1.0,
            sample_concatenate_permutation: false,
            min_duration_ms: 10_000,
            max_duration_ms: 0,
            min_query_count: 100,
            max_query_count: 0,
            qsl_rng_seed: 0,
            sample_index_rng_seed: 0,
            schedule_rng_seed: 0,
            accuracy_log_rng_seed: 0,
            accuracy_log_probability: 0.0,
            accuracy_log_sampling_target: 0,
            test05: false,
            test05_qsl_rng_seed: 0,
            test05_sample_index_rng_seed: 0,
            test05_schedule_rng_seed: 0,
            print_timestamps: false,
            performance_issue_unique: false,
            performance_issue_same: false,
            performance_issue_same_index: 0,
            performance_sample_count_override: 0,
            accuracy_sample_count_override: 0,
            use_token_latencies: false,
            infer_token_latencies: false,
        }
    }
}

/// The most samples one Offline query may hold (each costs a few dozen bytes of bookkeeping).
pub const MAX_OFFLINE_SAMPLES: u64 = 1 << 28;

impl TestSettings {
    /// Settings for `scenario` with LoadGen's defaults.
    pub fn new(scenario: Scenario) -> Self {
        TestSettings {
            scenario,
            ..TestSettings::default()
        }
    }

    /// Checks what LoadGen leaves unchecked, given the query sample library's sizes. LoadGen
    /// logs some of these as errors and runs anyway (a negative QPS becomes 1), and crashes or
    /// hangs on others (a MultiStream query larger than the sample set reads past the loaded
    /// set; a zero Server QPS never schedules its second query).
    pub fn validate(&self, qsl_total: usize, qsl_performance: usize) -> Result<(), SettingsError> {
        self.validate_scenario_fields()?;
        self.validate_common()?;
        let psc = self.performance_sample_count(qsl_performance);
        if qsl_total == 0 {
            return Err(SettingsError::new(
                "total_sample_count",
                "0",
                "a query sample library with at least one sample",
            ));
        }
        if psc == 0 {
            return Err(SettingsError::new(
                "performance_sample_count",
                "0",
                "at least 1 (the QSL reports 0 and no override is set)",
            ));
        }
        if psc > qsl_total as u64 {
            return Err(SettingsError::new(
                "performance_sample_count_override",
                psc,
                format!("at most the QSL's {qsl_total} samples"),
            ));
        }
        if self.accuracy_sample_count_override > qsl_total as u64 {
            return Err(SettingsError::new(
                "accuracy_sample_count_override",
                self.accuracy_sample_count_override,
                format!("at most the QSL's {qsl_total} samples"),
            ));
        }
        if self.scenario == Scenario::MultiStream && self.multi_stream_samples_per_query > psc {
            return Err(SettingsError::new(
                "multi_stream_samples_per_query",
                self.multi_stream_samples_per_query,
                format!("at most the {psc} samples of the performance sample set"),
            ));
        }
        if self.performance_issue_same && self.performance_issue_same_index >= psc {
            return Err(SettingsError::new(
                "performance_issue_same_index",
                self.performance_issue_same_index,
                format!("below the performance sample count {psc}"),
            ));
        }
        Ok(())
    }

    /// `performance_sample_count_override`, or the QSL's count when it is 0.
    pub fn performance_sample_count(&self, qsl_performance: usize) -> u64 {
        if self.performance_sample_count_override == 0 {
            qsl_performance as u64
        } else {
            self.performance_sample_count_override
        }
    }

    fn validate_scenario_fields(&self) -> Result<(), SettingsError> {
        match self.scenario {
            Scenario::SingleStream => {
                positive(
                    "single_stream_expected_latency_ns",
                    self.single_stream_expected_latency_ns,
                )?;
                check_percentile(
                    "single_stream_target_latency_percentile",
                    self.single_stream_target_latency_percentile,
                )
            }
            Scenario::MultiStream => {
                positive(
                    "multi_stream_expected_latency_ns",
                    self.multi_stream_expected_latency_ns,
                )?;
                check_percentile(
                    "multi_stream_target_latency_percentile",
                    self.multi_stream_target_latency_percentile,
                )?;
                if self.multi_stream_samples_per_query == 0 {
                    return Err(SettingsError::new(
                        "multi_stream_samples_per_query",
                        0,
                        "at least 1",
                    ));
                }
                Ok(())
            }
            Scenario::Server => self.validate_server(),
            Scenario::Offline => {
                if !(self.offline_expected_qps.is_finite() && self.offline_expected_qps >= 0.0) {
                    return Err(SettingsError::new(
                        "offline_expected_qps",
                        self.offline_expected_qps,
                        "a finite number of samples per second, 0 or more",
                    ));
                }
                let wanted =
                    1.1 * (self.min_duration_ms as f64 / 1000.0) * self.offline_expected_qps;
                if wanted > MAX_OFFLINE_SAMPLES as f64 || self.min_query_count > MAX_OFFLINE_SAMPLES
                {
                    return Err(SettingsError::new(
                        "offline_expected_qps",
                        self.offline_expected_qps,
                        format!(
                            "a value for which 1.1 x min_duration x offline_expected_qps and \
                             min_query_count stay within {MAX_OFFLINE_SAMPLES} samples"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    fn validate_server(&self) -> Result<(), SettingsError> {
        positive("server_target_qps", self.server_target_qps)?;
        check_percentile(
            "server_target_latency_percentile",
            self.server_target_latency_percentile,
        )?;
        if self.server_find_peak_qps_boundary_step_size.is_nan()
            || self.server_find_peak_qps_boundary_step_size <= 0.0
        {
            return Err(SettingsError::new(
                "server_find_peak_qps_boundary_step_size",
                self.server_find_peak_qps_boundary_step_size,
                "a fraction of the QPS above 0",
            ));
        }
        if !(0..=9).contains(&self.server_find_peak_qps_decimals_of_precision) {
            return Err(SettingsError::new(
                "server_find_peak_qps_decimals_of_precision",
                self.server_find_peak_qps_decimals_of_precision,
                "0 to 9 decimal places",
            ));
        }
        if self.server_num_issue_query_threads > 64 {
            return Err(SettingsError::new(
                "server_num_issue_query_threads",
                self.server_num_issue_query_threads,
                "at most 64 issuing threads",
            ));
        }
        Ok(())
    }

    fn validate_common(&self) -> Result<(), SettingsError> {
        if self.mode == TestMode::FindPeakPerformance && self.scenario != Scenario::Server {
            return Err(SettingsError::new(
                "mode",
                "FindPeakPerformance",
                "the Server scenario (LoadGen: \"Finding peak performance is only supported in \
                 Server scenarios.\")",
            ));
        }
        if self.min_duration_ms == 0 && self.min_query_count == 0 {
            return Err(SettingsError::new(
                "min_duration_ms",
                0,
                "a minimum duration above 0 when min_query_count is 0 too (the run would issue \
                 no query)",
            ));
        }
        if !(0.0..=1.0).contains(&self.accuracy_log_probability) {
            return Err(SettingsError::new(
                "accuracy_log_probability",
                self.accuracy_log_probability,
                "a probability between 0 and 1",
            ));
        }
        if self.performance_issue_unique && self.performance_issue_same {
            return Err(SettingsError::new(
                "performance_issue_same",
                true,
                "false when performance_issue_unique is true (LoadGen: both cannot be true at \
                 the same time)",
            ));
        }
        if self.use_token_latencies || self.infer_token_latencies {
            let key = if self.use_token_latencies {
                "use_token_latencies"
            } else {
                "infer_token_latencies"
            };
            return Err(SettingsError::new(
                key,
                1,
                "0: token latencies are LoadGen's LLM metrics, not supported by detbench",
            ));
        }
        Ok(())
    }
}

fn positive(key: &'static str, v: f64) -> Result<(), SettingsError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(SettingsError::new(key, v, "a finite number above 0"))
    }
}

fn check_percentile(key: &'static str, v: f64) -> Result<(), SettingsError> {
    if v.is_finite() && v > 0.0 && v < 1.0 {
        Ok(())
    } else {
        Err(SettingsError::new(
            key,
            v,
            "a fraction between 0 and 1, exclusive (0.99 for 99%)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loadgens() {
        let s = TestSettings::default();
        assert_eq!(s.scenario, Scenario::SingleStream);
        assert_eq!(s.min_duration_ms, 10_000);
        assert_eq!(s.min_query_count, 100);
        assert_eq!(s.multi_stream_samples_per_query, 8);
        assert_eq!(s.server_target_latency_ns, 100_000_000);
        assert_eq!(s.single_stream_target_latency_percentile, 0.90);
    }

    #[test]
    fn scenario_and_mode_names_parse() {
        assert_eq!(
            "single-stream".parse::<Scenario>().unwrap(),
            Scenario::SingleStream
        );
        assert_eq!(
            "MultiStream".parse::<Scenario>().unwrap(),
            Scenario::MultiStream
        );
        assert_eq!(
            "find-peak".parse::<TestMode>().unwrap(),
            TestMode::FindPeakPerformance
        );
        let err = "batch".parse::<Scenario>().unwrap_err().to_string();
        assert!(err.contains("scenario") && err.contains("batch"), "{err}");
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let mut s = TestSettings::new(Scenario::Server);
        s.server_target_qps = -5.0;
        let err = s.validate(100, 100).unwrap_err();
        assert_eq!(err.key, "server_target_qps");
        assert!(err.to_string().contains("-5"), "{err}");

        let mut s = TestSettings::new(Scenario::MultiStream);
        s.multi_stream_samples_per_query = 65;
        let err = s.validate(100, 64).unwrap_err();
        assert_eq!(err.key, "multi_stream_samples_per_query");

        let mut s = TestSettings::new(Scenario::SingleStream);
        s.min_duration_ms = 0;
        s.min_query_count = 0;
        assert_eq!(s.validate(10, 10).unwrap_err().key, "min_duration_ms");

        let mut s = TestSettings::new(Scenario::Offline);
        s.mode = TestMode::FindPeakPerformance;
        assert_eq!(s.validate(10, 10).unwrap_err().key, "mode");

        let s = TestSettings::new(Scenario::Offline);
        assert_eq!(
            s.validate(10, 0).unwrap_err().key,
            "performance_sample_count"
        );
        assert!(
            TestSettings::new(Scenario::Offline)
                .validate(10, 10)
                .is_ok()
        );
    }
}
