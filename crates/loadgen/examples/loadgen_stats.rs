//! detbench-loadgen's statistics on LoadGen's own measurements: reads one run record written by
//! `tools/loadgen/lg_common.py::loadgen_record` (LoadGen's settings, its per-sample latencies
//! from its trace, its final query times) and prints the `mlperf_log_summary.txt` that
//! detbench-loadgen makes of them, for `tools/loadgen/compare_exactness.py` to diff against
//! LoadGen's own summary.
//!
//! ```text
//! loadgen_stats RECORD.json
//! ```

use detbench_loadgen::effective::EffectiveSettings;
use detbench_loadgen::qsl::generate_loadable_sets;
use detbench_loadgen::results::{PerformanceResult, evaluate};
use detbench_loadgen::schedule::{SequenceGen, generate_queries};
use detbench_loadgen::summary::{performance_summary, warning_error_footer};
use detbench_loadgen::{Scenario, TestMode, TestSettings};
use serde_json::Value;

fn ints(v: &Value) -> Result<Vec<i64>, String> {
    v.as_array()
        .ok_or("expected an array")?
        .iter()
        .map(|x| x.as_i64().ok_or_else(|| format!("not an integer: {x}")))
        .collect()
}

fn run() -> Result<String, String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: loadgen_stats RECORD.json")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let requested: TestSettings = serde_json::from_value(v["settings"].clone())
        .map_err(|e| format!("{path}: settings: {e}"))?;
    let total = v["total_sample_count"]
        .as_u64()
        .ok_or("total_sample_count")? as usize;
    let perf = v["performance_sample_count"]
        .as_u64()
        .ok_or("performance_sample_count")? as usize;
    requested.validate(total, perf).map_err(|e| e.to_string())?;
    let s = EffectiveSettings::new(&requested, perf, total);
    // The schedule gives the final query's scheduled time (Server).
    let set = &generate_loadable_sets(&s, total, s.performance_sample_count as usize)[0];
    let plan = generate_queries(
        &s,
        TestMode::PerformanceOnly,
        set,
        &mut SequenceGen::default(),
    );

    let latencies = ints(&v["latency_ns"])?;
    let sample_query = ints(&v["sample_query"])?;
    if latencies.is_empty() {
        return Err(format!("{path}: no latencies"));
    }
    let mut query_latencies: Vec<i64> = Vec::new();
    for (q, l) in sample_query.iter().zip(&latencies) {
        let q = (q - sample_query[0]) as usize;
        match query_latencies.get_mut(q) {
            Some(x) => *x = (*x).max(*l),
            None => query_latencies.push(*l),
        }
    }
    let queries_issued = query_latencies.len();
    let secs = |key: &str| v[key].as_i64().unwrap_or(0) as f64 / 1e9;
    let pr = PerformanceResult {
        max_latency: latencies.iter().copied().max().unwrap_or(0) as f64 / 1e9,
        sample_latencies: latencies,
        query_latencies: if s.scenario == Scenario::MultiStream {
            query_latencies
        } else {
            Vec::new()
        },
        queries_issued: queries_issued as u64,
        final_query_scheduled_time: plan.scheduled_delta_ns[queries_issued - 1] as f64 / 1e9,
        final_query_issued_time: secs("final_query_issued_ns"),
        final_query_all_samples_done_time: secs("final_query_done_ns"),
        issue_delays: Vec::new(),
    };
    let errors = v["results"]["num_errors"].as_u64().unwrap_or(0) as usize;
    let warnings = v["results"]["num_warnings"].as_u64().unwrap_or(0) as usize;
    let r = evaluate("PySUT", &s, &pr);
    Ok(performance_summary(&r) + &warning_error_footer(warnings, errors))
}

fn main() {
    match run() {
        Ok(summary) => print!("{summary}"),
        Err(e) => {
            eprintln!("loadgen_stats: {e}");
            std::process::exit(2);
        }
    }
}
