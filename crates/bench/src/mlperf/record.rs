//! What a LoadGen scenario row records (`ModelResult::scenario` in `results.json` and the store):
//! LoadGen's verdict and statistics ([`ScenarioResult`]), every effective setting, the headline
//! metric of the summary's result line, the raw latencies of the performance run, how the SUT
//! batched and what its calls cost, and where LoadGen's logs went.

use detbench_loadgen::{
    EffectiveSettings, PeakStep, Scenario, ScenarioResult, TestMode, TestOutcome, Validity,
};
use serde::{Deserialize, Serialize};

use super::sut::{Batching, SutReport};
use crate::results::{LatencyReport, Summary};
use crate::timing::summarize;

/// The summary's result line as a number: SingleStream and MultiStream the target-percentile
/// latency (ns), Server the completed samples per second, Offline the samples per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// The summary's own name for it (`90.0th percentile latency (ns)`, `Completed samples per
    /// second`, `Samples per second`).
    pub metric: String,
    pub value: f64,
}

impl Headline {
    /// The result line of `r`, named as `mlperf_log_summary.txt` names it.
    pub fn of(r: &ScenarioResult) -> Headline {
        match r.scenario {
            Scenario::SingleStream | Scenario::MultiStream => Headline {
                metric: format!(
                    "{:.1}th percentile latency (ns)",
                    r.target_latency_percentile * 100.0
                ),
                value: r.target_percentile_latency_ns.unwrap_or(0) as f64,
            },
            Scenario::Server => Headline {
                metric: "Completed samples per second".into(),
                value: r.completed_samples_per_second.unwrap_or(0.0),
            },
            Scenario::Offline => Headline {
                metric: "Samples per second".into(),
                value: r.samples_per_second.unwrap_or(0.0),
            },
        }
    }
}

/// How the system under test was built for the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SutDescription {
    /// What one sample's latency covers on the SUT's side.
    pub work_per_sample: String,
    /// Worker threads, each with its own opened model.
    pub workers: usize,
    pub batching: Batching,
    /// Untimed calls per worker before the test, at `batching.max_batch` images.
    pub warmup_calls: usize,
    /// Decoded images the query sample library holds for a performance run.
    pub performance_sample_count: usize,
}

/// One LoadGen test of one model: everything `mlperf_log_summary.txt` says, typed, and more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub scenario: Scenario,
    pub mode: TestMode,
    /// VALID/INVALID of the performance run; `None` for an accuracy-only test.
    pub validity: Option<Validity>,
    pub headline: Option<Headline>,
    /// FindPeakPerformance: the highest Server QPS that met the latency bound.
    pub peak_qps: Option<f64>,
    /// Where each setting came from, lowest precedence first (LoadGen's defaults, the built-in
    /// mlperf.conf, a user config, command-line flags).
    pub settings_sources: Vec<String>,
    /// Every effective setting (LoadGen's `TestSettingsInternal`, with the requested ones).
    pub settings: EffectiveSettings,
    /// The performance run's verdict and statistics (`None` in accuracy mode).
    pub performance: Option<ScenarioResult>,
    /// FindPeakPerformance: every run of the search, in order.
    pub peak_search: Vec<PeakStep>,
    /// Accuracy mode: samples issued (every sample at least once).
    pub accuracy_samples_issued: Option<u64>,
    pub sut: SutDescription,
    /// Every `detect` call of the test: end to end and per stage, per call (ms); its
    /// `total_seconds` is the test's wall time without LoadGen's sample loading (decoding).
    pub sut_calls: Option<LatencyReport>,
    /// Samples per `detect` call.
    pub samples_per_call: Option<Summary>,
    /// Decode time per image as the query sample library loaded it (ms, outside the timed
    /// section).
    pub decode_ms: Option<Summary>,
    /// Sample completions that failed (an image that did not decode, a call that failed).
    pub failed_samples: u64,
    /// LoadGen's runtime errors (the detail log's error records).
    pub errors: Vec<String>,
    /// Remarks that make the measurement less trustworthy.
    pub notes: Vec<String>,
    pub log_dir: String,
    pub log_files: Vec<String>,
    /// The performance run's per-sample latencies (ns), in issue order (LoadGen's
    /// `sample_latencies`).
    pub sample_latencies_ns: Vec<i64>,
    /// MultiStream: per-query latencies (ns).
    pub query_latencies_ns: Vec<i64>,
}

impl ScenarioRecord {
    /// The record of a finished test. `calls` is the SUT's per-call report, `decode_ms` the
    /// query sample library's decode times.
    pub fn new(
        outcome: &TestOutcome,
        settings_sources: Vec<String>,
        sut: SutDescription,
        report: &SutReport,
        calls: Option<LatencyReport>,
        decode_ms: &[f64],
    ) -> Self {
        let performance = outcome.performance.clone();
        let raw = outcome.performance_raw.as_ref();
        let peak_qps = (outcome.settings.mode == TestMode::FindPeakPerformance)
            .then(|| {
                performance
                    .as_ref()
                    .filter(|r| r.perf_constraints_met != Some(false))
                    .map(|r| r.settings.target_qps)
            })
            .flatten();
        ScenarioRecord {
            scenario: outcome.settings.scenario,
            mode: outcome.settings.requested.mode,
            validity: performance.as_ref().map(|r| r.validity),
            headline: performance.as_ref().map(Headline::of),
            peak_qps,
            settings_sources,
            settings: outcome.settings.clone(),
            peak_search: outcome.peak_search.clone(),
            accuracy_samples_issued: outcome.accuracy_samples_issued,
            sut,
            sut_calls: calls,
            samples_per_call: summarize(&report.call_sizes),
            decode_ms: summarize(decode_ms),
            failed_samples: report.failed_samples,
            errors: outcome
                .errors()
                .map(|d| {
                    d.value
                        .as_str()
                        .map_or_else(|| d.value.to_string(), str::to_owned)
                })
                .collect(),
            notes: Vec::new(),
            log_dir: String::new(),
            log_files: Vec::new(),
            sample_latencies_ns: raw.map(|r| r.sample_latencies.clone()).unwrap_or_default(),
            query_latencies_ns: raw.map(|r| r.query_latencies.clone()).unwrap_or_default(),
            performance,
        }
    }

    /// Whether the test scored accuracy (accuracy or submission mode).
    pub fn scores_accuracy(&self) -> bool {
        matches!(self.mode, TestMode::AccuracyOnly | TestMode::SubmissionRun)
    }

    /// The latency percentile reported beside the headline: the performance run's sample
    /// latency (MultiStream: query latency) at `p` of LoadGen's reported percentiles, ns.
    pub fn latency_ns(&self, p: f64) -> Option<i64> {
        let r = self.performance.as_ref()?;
        let stats = match (&r.query_latency, r.scenario) {
            (Some(q), Scenario::MultiStream) => q,
            _ => &r.sample_latency,
        };
        stats.reported(p)
    }

    /// The same record without the raw latencies (stored apart, as BLOBs).
    pub fn without_samples(&self) -> ScenarioRecord {
        let mut copy = self.clone();
        copy.sample_latencies_ns.clear();
        copy.query_latencies_ns.clear();
        if let Some(calls) = copy.sut_calls.as_mut() {
            calls.end_to_end_samples_ms.clear();
            for stage in &mut calls.stages {
                stage.samples_ms.clear();
            }
        }
        copy
    }

    /// The row label's scenario part: `Server`, `Offline, batch 8`, `Server, max batch 4`.
    pub fn label(&self) -> String {
        let b = self.sut.batching.max_batch;
        match (self.scenario, b) {
            (_, 1) => self.scenario.to_string(),
            (Scenario::Server, _) => format!("{}, max batch {b}", self.scenario),
            _ => format!("{}, batch {b}", self.scenario),
        }
    }
}
