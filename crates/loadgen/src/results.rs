//! A performance run's statistics and verdict: LoadGen's `PerformanceSummary` (`results.cc`,
//! 6.0.17) — percentiles by index into the sorted latencies, integer means, the per-scenario
//! rates, and the four validity checks (performance constraints, minimum duration, minimum
//! queries, early stopping) — turned into [`ScenarioResult`], the typed result a caller stores.

use serde::{Deserialize, Serialize};

use crate::early_stopping::{self, CONFIDENCE, MinPassingQueriesFinder, TOLERANCE};
use crate::effective::EffectiveSettings;
use crate::settings::{Scenario, TestMode};

/// What one run measured (`PerformanceResult`); times are seconds from the run's start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerformanceResult {
    /// Per sample, completion minus its query's scheduled time (ns).
    pub sample_latencies: Vec<i64>,
    /// MultiStream only: per query, last completion minus issue time (ns).
    pub query_latencies: Vec<i64>,
    pub queries_issued: u64,
    /// The largest sample latency (s).
    pub max_latency: f64,
    pub final_query_scheduled_time: f64,
    pub final_query_issued_time: f64,
    pub final_query_all_samples_done_time: f64,
    /// detbench's addition: per query, issue time minus scheduled time (ns).
    #[serde(default)]
    pub issue_delays: Vec<i64>,
}

/// The percentiles LoadGen reports besides the target one (`latency_percentiles`).
pub const REPORTED_PERCENTILES: [f64; 6] = [0.50, 0.90, 0.95, 0.97, 0.99, 0.999];

/// One percentile of a latency distribution.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PercentileLatency {
    pub percentile: f64,
    pub latency_ns: i64,
}

/// Min, max, integer mean and [`REPORTED_PERCENTILES`] of a latency set (ns).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub min_ns: i64,
    pub max_ns: i64,
    pub mean_ns: i64,
    pub percentiles: Vec<PercentileLatency>,
}

impl LatencyStats {
    /// LoadGen's way: sort, `v[n * p]` (truncated), integer mean of an integer sum.
    pub fn from_unsorted(mut v: Vec<i64>) -> LatencyStats {
        v.sort_unstable();
        LatencyStats::from_sorted(&v)
    }

    fn from_sorted(v: &[i64]) -> LatencyStats {
        if v.is_empty() {
            return LatencyStats::default();
        }
        let sum: i64 = v.iter().sum();
        LatencyStats {
            count: v.len() as u64,
            min_ns: v[0],
            max_ns: v[v.len() - 1],
            mean_ns: sum / v.len() as i64,
            percentiles: REPORTED_PERCENTILES
                .iter()
                .map(|&p| PercentileLatency {
                    percentile: p,
                    latency_ns: at_percentile(v, p),
                })
                .collect(),
        }
    }

    /// The latency at `p` of [`REPORTED_PERCENTILES`], if reported.
    pub fn reported(&self, p: f64) -> Option<i64> {
        self.percentiles
            .iter()
            .find(|x| x.percentile == p)
            .map(|x| x.latency_ns)
    }
}

/// `sorted[size * percentile]`, as `ProcessLatencies` indexes.
pub fn at_percentile(sorted: &[i64], percentile: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = (sorted.len() as f64 * percentile) as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `VALID` or `INVALID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Validity {
    Valid,
    Invalid,
}

/// The early-stopping verdict and estimates (SingleStream, MultiStream, Server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingResult {
    pub met: bool,
    /// The summary's lines under "Early Stopping Result:".
    pub lines: Vec<String>,
    /// SingleStream: the target-percentile estimate (`early_stopping_latency_ss`); MultiStream:
    /// the target-percentile query-latency estimate (`early_stopping_latency_ms`).
    pub estimate_ns: Option<i64>,
    /// SingleStream only: the 99th-percentile estimate (`early_stopping_latency_ms`).
    pub estimate_p99_ns: Option<i64>,
    /// Server only: queries over the latency bound, and the fewest queries under it needed.
    pub overlatency_queries: Option<i64>,
    pub min_passing_queries: Option<i64>,
}

/// One performance run, judged: everything `mlperf_log_summary.txt` says, typed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub sut_name: String,
    pub scenario: Scenario,
    pub mode: TestMode,
    pub validity: Validity,
    /// Server only.
    pub perf_constraints_met: Option<bool>,
    pub min_duration_met: bool,
    pub min_queries_met: bool,
    pub early_stopping_met: bool,
    /// The summary's "Recommendations:" lines, without their " * ".
    pub recommendations: Vec<String>,
    pub early_stopping: Option<EarlyStoppingResult>,
    pub target_latency_percentile: f64,
    /// SingleStream and Server: the sample latency at the target percentile; MultiStream: the
    /// query latency there; Offline: none.
    pub target_percentile_latency_ns: Option<i64>,
    /// Offline: samples / max latency.
    pub samples_per_second: Option<f64>,
    /// Server: (samples - 1) / final completion time, and / final scheduled time.
    pub completed_samples_per_second: Option<f64>,
    pub scheduled_samples_per_second: Option<f64>,
    /// SingleStream: (samples - 1) / final issue time, and 1 / mean latency.
    pub qps_with_loadgen_overhead: Option<f64>,
    pub qps_without_loadgen_overhead: Option<f64>,
    pub sample_count: u64,
    pub query_count: u64,
    /// Server: samples over the latency bound.
    pub overlatency_query_count: Option<u64>,
    pub sample_latency: LatencyStats,
    /// MultiStream: per-query latencies.
    pub query_latency: Option<LatencyStats>,
    /// Server (detbench's addition): issue time minus scheduled time per query.
    pub issue_delay: Option<LatencyStats>,
    pub max_latency_s: f64,
    pub final_query_scheduled_time_s: f64,
    pub final_query_issued_time_s: f64,
    pub final_query_all_samples_done_time_s: f64,
    /// The effective settings ("Test Parameters Used").
    pub settings: EffectiveSettings,
}

/// `PerformanceSummary::LogSummary`'s computations, without the printing.
pub fn evaluate(
    sut_name: &str,
    settings: &EffectiveSettings,
    pr: &PerformanceResult,
) -> ScenarioResult {
    let mut sorted = pr.sample_latencies.clone();
    sorted.sort_unstable();
    let sample_latency = LatencyStats::from_sorted(&sorted);
    let sample_count = sorted.len() as u64;
    let ms = settings.scenario == Scenario::MultiStream;
    let mut sorted_queries = pr.query_latencies.clone();
    sorted_queries.sort_unstable();
    let query_latency = ms.then(|| LatencyStats::from_sorted(&sorted_queries));
    let target_p = settings.target_latency_percentile;
    let target_percentile_latency_ns = match settings.scenario {
        Scenario::SingleStream | Scenario::Server => Some(at_percentile(&sorted, target_p)),
        Scenario::MultiStream => Some(at_percentile(&sorted_queries, target_p)),
        Scenario::Offline => None,
    };
    let server = settings.scenario == Scenario::Server;
    let overlatency = sorted
        .iter()
        .filter(|&&l| l > settings.target_latency_ns)
        .count() as u64;

    let (min_duration_met, duration_rec) = min_duration_met(settings, pr);
    let min_queries_met =
        pr.queries_issued >= settings.min_query_count && sample_count >= settings.min_sample_count;
    let early = early_stopping(settings, pr.queries_issued as i64, &sorted, &sorted_queries);
    let perf_met =
        !server || target_percentile_latency_ns.unwrap_or(0) <= settings.target_latency_ns;
    let valid =
        min_duration_met && min_queries_met && perf_met && early.as_ref().is_none_or(|e| e.met);

    let mut recommendations = Vec::new();
    if !valid {
        if !perf_met {
            recommendations.push("Reduce target QPS to improve latency.".to_string());
        }
        if let Some(r) = duration_rec {
            recommendations.push(r.to_string());
        }
        if !min_queries_met {
            recommendations.push(
                "The test exited early, before enough queries were issued.\n   See the detailed \
                 log for why this may have occurred."
                    .to_string(),
            );
        }
    }
    let n_minus_1 = sample_count as f64 - 1.0;
    ScenarioResult {
        sut_name: sut_name.to_string(),
        scenario: settings.scenario,
        mode: settings.mode,
        validity: if valid {
            Validity::Valid
        } else {
            Validity::Invalid
        },
        perf_constraints_met: server.then_some(perf_met),
        min_duration_met,
        min_queries_met,
        early_stopping_met: early.as_ref().is_none_or(|e| e.met),
        recommendations,
        early_stopping: early,
        target_latency_percentile: target_p,
        target_percentile_latency_ns,
        samples_per_second: (settings.scenario == Scenario::Offline)
            .then(|| sample_count as f64 / pr.max_latency),
        completed_samples_per_second: server
            .then(|| n_minus_1 / pr.final_query_all_samples_done_time),
        scheduled_samples_per_second: server.then(|| n_minus_1 / pr.final_query_scheduled_time),
        qps_with_loadgen_overhead: (settings.scenario == Scenario::SingleStream)
            .then(|| n_minus_1 / pr.final_query_issued_time),
        qps_without_loadgen_overhead: (settings.scenario == Scenario::SingleStream)
            .then(|| 1.0 / (sample_latency.mean_ns as f64 / 1e9)),
        sample_count,
        query_count: pr.queries_issued,
        overlatency_query_count: server.then_some(overlatency),
        sample_latency,
        query_latency,
        issue_delay: server.then(|| LatencyStats::from_unsorted(pr.issue_delays.clone())),
        max_latency_s: pr.max_latency,
        final_query_scheduled_time_s: pr.final_query_scheduled_time,
        final_query_issued_time_s: pr.final_query_issued_time,
        final_query_all_samples_done_time_s: pr.final_query_all_samples_done_time,
        settings: settings.clone(),
    }
}

/// `MinDurationMet`: which clock counts depends on the scenario.
fn min_duration_met(s: &EffectiveSettings, pr: &PerformanceResult) -> (bool, Option<&'static str>) {
    let min_duration = s.min_duration_ms as f64 / 1000.0;
    let (met, rec) = match s.scenario {
        Scenario::Offline => (
            pr.max_latency >= min_duration,
            "Increase expected QPS so the loadgen pre-generates a larger (coalesced) query.",
        ),
        Scenario::Server => (
            pr.final_query_scheduled_time >= min_duration,
            "Increase the target QPS so the loadgen pre-generates more queries.",
        ),
        Scenario::SingleStream | Scenario::MultiStream => (
            pr.final_query_issued_time >= min_duration,
            "Decrease the expected latency so the loadgen pre-generates more queries.",
        ),
    };
    (met, (!met).then_some(rec))
}

/// `PerformanceSummary::EarlyStopping`; `None` for Offline.
pub fn early_stopping(
    s: &EffectiveSettings,
    queries_issued: i64,
    sorted_samples: &[i64],
    sorted_queries: &[i64],
) -> Option<EarlyStoppingResult> {
    let mut finder = MinPassingQueriesFinder::new();
    let mut r = EarlyStoppingResult {
        met: true,
        lines: Vec::new(),
        estimate_ns: None,
        estimate_p99_ns: None,
        overlatency_queries: None,
        min_passing_queries: None,
    };
    match s.scenario {
        Scenario::Offline => return None,
        Scenario::Server => {
            server_early_stopping(s, &mut finder, queries_issued, sorted_samples, &mut r)
        }
        Scenario::SingleStream | Scenario::MultiStream => {
            let latencies = if s.scenario == Scenario::SingleStream {
                sorted_samples
            } else {
                sorted_queries
            };
            latency_early_stopping(s, &mut finder, queries_issued, latencies, &mut r);
        }
    }
    Some(r)
}

/// Server: with `t` queries over the bound, the run needs `h(t)` queries under it.
fn server_early_stopping(
    s: &EffectiveSettings,
    finder: &mut MinPassingQueriesFinder,
    queries_issued: i64,
    sorted_samples: &[i64],
    r: &mut EarlyStoppingResult,
) {
    let p = s.target_latency_percentile;
    let t = sorted_samples
        .iter()
        .filter(|&&l| l > s.target_latency_ns)
        .count() as i64;
    let h = finder.find(t, p, TOLERANCE, CONFIDENCE);
    r.overlatency_queries = Some(t);
    r.min_passing_queries = Some(h);
    if queries_issued >= h + t {
        r.lines.push(" * Run successful.".into());
        return;
    }
    r.met = false;
    r.lines.extend([
        " * Run unsuccessful.".to_string(),
        format!(" * Processed {queries_issued} queries."),
        format!(
            " * Would need to run at least {} more queries,",
            h + t - queries_issued
        ),
        " with the run being successful if every additional".to_string(),
        " query were under latency.".to_string(),
    ]);
}

/// SingleStream and MultiStream: the percentile estimate, and for SingleStream also the 99th
/// percentile's (used to infer MultiStream from SingleStream).
fn latency_early_stopping(
    s: &EffectiveSettings,
    finder: &mut MinPassingQueriesFinder,
    queries_issued: i64,
    latencies: &[i64],
    r: &mut EarlyStoppingResult,
) {
    let p = s.target_latency_percentile;
    let estimate = |t: i64| {
        latencies
            .get((queries_issued - t) as usize)
            .copied()
            .unwrap_or(0)
    };
    let (h_min, rank) = early_stopping::latency_estimate_rank(finder, queries_issued, p);
    let Some(t) = rank else {
        r.met = false;
        r.lines
            .push(format!(" * Only processed {queries_issued} queries."));
        r.lines.push(format!(
            " * Need to process at least {} queries for early stopping.",
            h_min + 1
        ));
        return;
    };
    r.estimate_ns = Some(estimate(t));
    r.lines.extend([
        format!(
            " * Processed at least {} queries ({queries_issued}).",
            h_min + 1
        ),
        format!(" * Would discard {} highest latency queries.", t - 1),
        format!(
            " * Early stopping {:.1}th percentile estimate: {}",
            p * 100.0,
            estimate(t)
        ),
    ]);
    if s.scenario != Scenario::SingleStream {
        return;
    }
    let (h_min, rank) = early_stopping::latency_estimate_rank(finder, queries_issued, 0.99);
    match rank {
        None => r.lines.extend([
            " * Not enough queries processed for 99.0th percentile".to_string(),
            " early stopping estimate (would need to process at".to_string(),
            format!(" least {} total queries).", h_min + 1),
        ]),
        Some(t) => {
            r.estimate_p99_ns = Some(estimate(t));
            r.lines.push(format!(
                " * Early stopping 99.0th percentile estimate: {}",
                estimate(t)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TestSettings;

    #[test]
    fn percentiles_index_the_sorted_latencies() {
        let v: Vec<i64> = (1..=10).rev().collect();
        let stats = LatencyStats::from_unsorted(v);
        assert_eq!(stats.min_ns, 1);
        assert_eq!(stats.max_ns, 10);
        assert_eq!(stats.mean_ns, 5); // 55 / 10, integer division
        assert_eq!(stats.reported(0.50), Some(6)); // v[5]
        assert_eq!(stats.reported(0.90), Some(10)); // v[9]
        assert_eq!(stats.reported(0.999), Some(10));
    }

    #[test]
    fn server_verdict_follows_the_latency_bound() {
        let mut req = TestSettings::new(Scenario::Server);
        req.min_duration_ms = 1000;
        req.min_query_count = 10;
        req.server_target_latency_ns = 1000;
        let s = EffectiveSettings::new(&req, 10, 10);
        let pr = PerformanceResult {
            sample_latencies: vec![500; 1000],
            queries_issued: 1000,
            max_latency: 500e-9,
            final_query_scheduled_time: 1.5,
            final_query_issued_time: 1.5,
            final_query_all_samples_done_time: 1.6,
            ..PerformanceResult::default()
        };
        let r = evaluate("t", &s, &pr);
        assert_eq!(r.validity, Validity::Valid, "{r:?}");
        let mut slow = pr.clone();
        for l in slow.sample_latencies.iter_mut().take(20) {
            *l = 2000;
        }
        let r = evaluate("t", &s, &slow);
        assert_eq!(r.validity, Validity::Invalid);
        assert_eq!(r.perf_constraints_met, Some(false));
        assert_eq!(r.overlatency_query_count, Some(20));
        assert!(!r.early_stopping_met);
    }
}
