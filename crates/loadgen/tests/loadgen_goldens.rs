//! detbench-loadgen against the real LoadGen (mlcommons-loadgen 6.0.17): the fixtures in
//! `tests/data/loadgen_goldens.json` were made by `tools/loadgen/make_goldens.py`, which ran
//! LoadGen with a synthetic SUT and recorded its choices (loaded sample sets, generated query
//! counts and schedule lengths, the sample index of every issued sample), its per-sample
//! latencies (from its trace) and its summary.
//!
//! Two checks per case:
//! - generation: the same settings and seeds must give LoadGen's loaded sets, query counts,
//!   schedule end (ns) and sample sequence, draw for draw;
//! - statistics: LoadGen's own latencies fed into detbench-loadgen must give LoadGen's summary,
//!   line for line (every percentile, mean, early-stopping estimate and verdict), except the
//!   two rate lines that divide by a wall-clock time the trace gives only to the microsecond.

use detbench_loadgen::effective::EffectiveSettings;
use detbench_loadgen::qsl::generate_loadable_sets;
use detbench_loadgen::results::{PerformanceResult, evaluate};
use detbench_loadgen::schedule::{QueryPlan, SequenceGen, generate_queries};
use detbench_loadgen::summary::{performance_summary, warning_error_footer};
use detbench_loadgen::{Scenario, TestMode, TestSettings};
use serde_json::Value;

fn goldens() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/loadgen_goldens.json"
    );
    let text = std::fs::read_to_string(path).expect("reading the LoadGen goldens");
    serde_json::from_str(&text).expect("parsing the LoadGen goldens")
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_i64().expect("an integer"))
        .collect()
}

struct Case<'a> {
    name: &'a str,
    v: &'a Value,
    settings: EffectiveSettings,
    total: usize,
}

impl<'a> Case<'a> {
    fn new(name: &'a str, v: &'a Value) -> Self {
        let requested: TestSettings =
            serde_json::from_value(v["settings"].clone()).expect("LoadGen settings by name");
        let total = v["total_sample_count"].as_u64().unwrap() as usize;
        let perf = v["performance_sample_count"].as_u64().unwrap() as usize;
        requested.validate(total, perf).expect("valid settings");
        Case {
            name,
            v,
            settings: EffectiveSettings::new(&requested, perf, total),
            total,
        }
    }

    fn accuracy(&self) -> bool {
        self.settings.mode == TestMode::AccuracyOnly
    }

    /// Regenerates LoadGen's sets and queries, checking each against the fixture; returns the
    /// (last) plan.
    fn check_generation(&self) -> QueryPlan {
        let s = &self.settings;
        let (mode, count) = if self.accuracy() {
            (TestMode::AccuracyOnly, s.accuracy_sample_count)
        } else {
            (TestMode::PerformanceOnly, s.performance_sample_count)
        };
        let sets = generate_loadable_sets(s, self.total, count as usize);
        let expected_sets = self.v["loaded_qsl_set"].as_array().unwrap();
        let used = if self.accuracy() { sets.len() } else { 1 };
        assert_eq!(
            expected_sets.len(),
            used,
            "{}: number of loaded sets",
            self.name
        );
        let mut seq = SequenceGen::default();
        let mut issued_indices = Vec::new();
        let mut plan = QueryPlan::default();
        let issued_total = self.v["sample_idx"].as_array().unwrap().len();
        for (i, set) in sets.iter().take(used).enumerate() {
            let want: Vec<usize> = ints(&expected_sets[i])
                .iter()
                .map(|&x| x as usize)
                .collect();
            assert_eq!(set.set, want, "{}: loaded_qsl_set {i}", self.name);
            plan = generate_queries(s, mode, set, &mut seq);
            let count = self.v["generated_query_count"][i].as_u64().unwrap() as usize;
            assert_eq!(
                plan.len(),
                count,
                "{}: generated_query_count {i}",
                self.name
            );
            let duration = self.v["generated_query_duration"][i].as_i64().unwrap();
            assert_eq!(
                plan.generated_duration_ns, duration,
                "{}: generated_query_duration {i}",
                self.name
            );
            let issued = if self.accuracy() {
                plan.samples.len()
            } else {
                issued_total
            };
            issued_indices.extend(plan.samples[..issued].iter().map(|&x| x as i64));
        }
        assert_eq!(
            issued_indices,
            ints(&self.v["sample_idx"]),
            "{}: sample order",
            self.name
        );
        plan
    }

    /// LoadGen's measurements as a `PerformanceResult`.
    fn performance_result(&self, plan: &QueryPlan) -> PerformanceResult {
        let latencies = ints(&self.v["latency_ns"]);
        let sample_query = ints(&self.v["sample_query"]);
        let mut query_latencies: Vec<i64> = Vec::new();
        for (q, l) in sample_query.iter().zip(&latencies) {
            let q = (*q - sample_query[0]) as usize;
            if q == query_latencies.len() {
                query_latencies.push(*l);
            } else {
                query_latencies[q] = query_latencies[q].max(*l);
            }
        }
        let queries_issued = query_latencies.len();
        let secs = |key: &str| self.v[key].as_i64().unwrap() as f64 / 1e9;
        PerformanceResult {
            max_latency: *latencies.iter().max().unwrap() as f64 / 1e9,
            sample_latencies: latencies,
            query_latencies: if self.settings.scenario == Scenario::MultiStream {
                query_latencies
            } else {
                Vec::new()
            },
            queries_issued: queries_issued as u64,
            final_query_scheduled_time: plan.scheduled_delta_ns[queries_issued - 1] as f64 / 1e9,
            final_query_issued_time: secs("final_query_issued_ns"),
            final_query_all_samples_done_time: secs("final_query_done_ns"),
            issue_delays: Vec::new(),
        }
    }

    fn check_statistics(&self, plan: &QueryPlan) {
        let pr = self.performance_result(plan);
        let r = evaluate("PySUT", &self.settings, &pr);
        let results = &self.v["results"];
        let errors = results["num_errors"].as_u64().unwrap_or(0) as usize;
        let ours = performance_summary(&r) + &warning_error_footer(0, errors);
        let theirs = self.v["summary"].as_str().unwrap();
        let (ours, theirs): (Vec<&str>, Vec<&str>) =
            (ours.lines().collect(), theirs.lines().collect());
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{}: summary length\n{}",
            self.name,
            ours.join("\n")
        );
        for (a, b) in ours.iter().zip(&theirs) {
            if let Some(prefix) = rate_line(b) {
                let parse = |s: &str| s[prefix.len()..].trim().parse::<f64>().unwrap();
                let (x, y) = (parse(a), parse(b));
                // The trace places the run's start within a few microseconds; over a run of
                // tens of milliseconds that moves the rate in its fourth significant digit.
                let tolerance = 0.011f64.max(2e-4 * y);
                assert!(
                    (x - y).abs() <= tolerance,
                    "{}: '{a}' vs LoadGen '{b}'",
                    self.name
                );
            } else {
                assert_eq!(a, b, "{}: summary line", self.name);
            }
        }
        assert_eq!(
            r.validity == detbench_loadgen::Validity::Valid,
            results["result_validity"] == "VALID",
            "{}",
            self.name
        );
        assert_eq!(
            Value::from(r.min_duration_met),
            results["result_min_duration_met"]
        );
        assert_eq!(
            Value::from(r.early_stopping_met),
            results["early_stopping_met"]
        );
        assert_eq!(
            r.sample_latency.mean_ns,
            results["result_mean_latency_ns"].as_i64().unwrap()
        );
        let es = r.early_stopping.clone();
        match self.settings.scenario {
            Scenario::SingleStream if r.early_stopping_met => {
                let es = es.unwrap();
                assert_eq!(
                    Value::from(es.estimate_ns.unwrap()),
                    results["early_stopping_latency_ss"]
                );
                assert_eq!(
                    Value::from(es.estimate_p99_ns.unwrap_or(0)),
                    results["early_stopping_latency_ms"]
                );
            }
            Scenario::MultiStream => {
                let es = es.unwrap();
                assert_eq!(
                    Value::from(es.estimate_ns.unwrap()),
                    results["early_stopping_latency_ms"]
                );
            }
            Scenario::Server => {
                assert_eq!(
                    Value::from(r.overlatency_query_count.unwrap()),
                    results["result_overlatency_query_count"]
                );
            }
            _ => {}
        }
    }
}

/// The lines whose value divides by a time known here only to the microsecond.
fn rate_line(line: &str) -> Option<&'static str> {
    [
        "QPS w/ loadgen overhead         : ",
        "Completed samples per second    : ",
    ]
    .into_iter()
    .find(|p| line.starts_with(p))
}

#[test]
fn generation_matches_loadgen_draw_for_draw() {
    let g = goldens();
    let cases = g["cases"].as_object().unwrap();
    assert!(cases.len() >= 10, "the fixture lost its cases");
    for (name, v) in cases {
        Case::new(name, v).check_generation();
    }
}

#[test]
fn statistics_and_summary_match_loadgen() {
    let g = goldens();
    let mut checked = 0;
    for (name, v) in g["cases"].as_object().unwrap() {
        let case = Case::new(name, v);
        if case.accuracy() {
            continue;
        }
        let plan = case.check_generation();
        case.check_statistics(&plan);
        checked += 1;
    }
    assert!(checked >= 8);
}

#[test]
fn accuracy_mode_covers_every_sample_like_loadgen() {
    let g = goldens();
    for (name, v) in g["cases"].as_object().unwrap() {
        let case = Case::new(name, v);
        if !case.accuracy() {
            continue;
        }
        let mut seen: Vec<i64> = ints(&v["sample_idx"]);
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..case.total as i64).collect::<Vec<_>>(), "{name}");
    }
}
