//! `mlperf_log_summary.txt` in LoadGen's layout (`PerformanceSummary::LogSummary` in
//! `results.cc`, `TestSettingsInternal::LogSummary`, and the warning/error count that
//! `AsyncLog::SetLogFiles` appends), line for line, with LoadGen's number formatting: C++
//! stream defaults for plain doubles (six significant digits), `DoubleToString` (fixed, two
//! decimals unless stated) for rates and percentile labels, booleans as 0/1.

use std::fmt::Write as _;

use crate::effective::EffectiveSettings;
use crate::results::{REPORTED_PERCENTILES, ScenarioResult, Validity};
use crate::settings::Scenario;

const RULE: &str = "================================================";

/// A double as `std::ostream << double` prints it by default (`%g` with precision 6).
pub fn fmt_double(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    const P: i32 = 6;
    let sci = format!("{:.*e}", (P - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    if !(-4..P).contains(&exp) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        strip_zeros(&format!("{:.*}", (P - 1 - exp) as usize, x)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// LoadGen's `DoubleToString(value, precision)`: fixed notation.
pub fn double_to_string(x: f64, precision: usize) -> String {
    format!("{x:.precision$}")
}

/// The summary of a performance run, without the closing warning/error count.
pub fn performance_summary(r: &ScenarioResult) -> String {
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!("{RULE}\nMLPerf Results Summary\n{RULE}"));
    line(&format!("SUT name : {}", r.sut_name));
    line(&format!("Scenario : {}", r.scenario));
    line(&format!("Mode     : {}", r.mode));
    let pct = double_to_string(r.target_latency_percentile * 100.0, 1);
    match r.scenario {
        Scenario::SingleStream | Scenario::MultiStream => line(&format!(
            "{pct}th percentile latency (ns) : {}",
            r.target_percentile_latency_ns.unwrap_or(0)
        )),
        Scenario::Server => line(&format!(
            "Completed samples per second    : {}",
            double_to_string(r.completed_samples_per_second.unwrap_or(0.0), 2)
        )),
        Scenario::Offline => line(&format!(
            "Samples per second: {}",
            fmt_double(r.samples_per_second.unwrap_or(0.0))
        )),
    }
    let yes_no = |b: bool| if b { "Yes" } else { "NO" };
    let valid = r.validity == Validity::Valid;
    line(&format!(
        "Result is : {}",
        if valid { "VALID" } else { "INVALID" }
    ));
    if let Some(perf) = r.perf_constraints_met {
        line(&format!(
            "  Performance constraints satisfied : {}",
            yes_no(perf)
        ));
    }
    line(&format!(
        "  Min duration satisfied : {}",
        yes_no(r.min_duration_met)
    ));
    line(&format!(
        "  Min queries satisfied : {}",
        yes_no(r.min_queries_met)
    ));
    line(&format!(
        "  Early stopping satisfied: {}",
        yes_no(r.early_stopping_met)
    ));
    if !valid {
        line("Recommendations:");
        for rec in &r.recommendations {
            line(&format!(" * {rec}"));
        }
    }
    if let Some(es) = &r.early_stopping {
        line("Early Stopping Result:");
        line(&es.lines.join("\n"));
    }
    line(&format!("\n{RULE}\nAdditional Stats\n{RULE}"));
    additional_stats(r, &mut line);
    line(&format!("\n{RULE}\nTest Parameters Used\n{RULE}"));
    test_parameters(&r.settings, &mut line);
    out
}

fn additional_stats(r: &ScenarioResult, line: &mut impl FnMut(&str)) {
    match r.scenario {
        Scenario::SingleStream => {
            let w = double_to_string(r.qps_with_loadgen_overhead.unwrap_or(0.0), 2);
            let wo = double_to_string(r.qps_without_loadgen_overhead.unwrap_or(0.0), 2);
            line(&format!("QPS w/ loadgen overhead         : {w}"));
            line(&format!("QPS w/o loadgen overhead        : {wo}"));
            line("");
        }
        Scenario::Server => line(&format!(
            "Scheduled samples per second : {}",
            double_to_string(r.scheduled_samples_per_second.unwrap_or(0.0), 2)
        )),
        Scenario::MultiStream | Scenario::Offline => {}
    }
    let stats = match (&r.query_latency, r.scenario) {
        (Some(q), Scenario::MultiStream) => {
            line("Per-query latency:  ");
            q
        }
        _ => &r.sample_latency,
    };
    line(&format!(
        "Min latency (ns)                : {}",
        stats.min_ns
    ));
    line(&format!(
        "Max latency (ns)                : {}",
        stats.max_ns
    ));
    line(&format!(
        "Mean latency (ns)               : {}",
        stats.mean_ns
    ));
    for (i, p) in REPORTED_PERCENTILES.iter().enumerate() {
        let v = stats.percentiles.get(i).map_or(0, |x| x.latency_ns);
        line(&format!(
            "{} percentile latency (ns)   : {v}",
            double_to_string(p * 100.0, 2)
        ));
    }
}

/// `TestSettingsInternal::LogSummary`: the "Test Parameters Used" block.
fn test_parameters(s: &EffectiveSettings, line: &mut impl FnMut(&str)) {
    let b = |v: bool| u8::from(v);
    line(&format!("samples_per_query : {}", s.samples_per_query));
    line(&format!("target_qps : {}", fmt_double(s.target_qps)));
    line(&format!("target_latency (ns): {}", s.target_latency_ns));
    line(&format!("max_async_queries : {}", s.max_async_queries));
    line(&format!("min_duration (ms): {}", s.min_duration_ms));
    line(&format!("max_duration (ms): {}", s.max_duration_ms));
    line(&format!("min_query_count : {}", s.min_query_count));
    line(&format!("max_query_count : {}", s.max_query_count));
    line(&format!("qsl_rng_seed : {}", s.qsl_rng_seed));
    line(&format!(
        "sample_index_rng_seed : {}",
        s.sample_index_rng_seed
    ));
    line(&format!("schedule_rng_seed : {}", s.schedule_rng_seed));
    line(&format!(
        "accuracy_log_rng_seed : {}",
        s.accuracy_log_rng_seed
    ));
    line(&format!(
        "accuracy_log_probability : {}",
        fmt_double(s.accuracy_log_probability)
    ));
    line(&format!(
        "accuracy_log_sampling_target : {}",
        s.accuracy_log_sampling_target
    ));
    line(&format!("print_timestamps : {}", b(s.print_timestamps)));
    line(&format!(
        "performance_issue_unique : {}",
        b(s.performance_issue_unique)
    ));
    line(&format!(
        "performance_issue_same : {}",
        b(s.performance_issue_same)
    ));
    line(&format!(
        "performance_issue_same_index : {}",
        s.performance_issue_same_index
    ));
    line(&format!(
        "performance_sample_count : {}",
        s.performance_sample_count
    ));
    line(&format!(
        "accuracy_sample_count : {}",
        s.accuracy_sample_count
    ));
    if s.sample_concatenate_permutation {
        line(
            "WARNING: sample_concatenate_permutation was set to true. \n\
             Generated samples per query might be different as the one in the setting.\n\
             Check the generated_samples_per_query line in the detailed log for the real\n\
             samples_per_query value",
        );
    }
}

/// The closing lines LoadGen writes when logging stops.
pub fn warning_error_footer(warnings: usize, errors: usize) -> String {
    let mut out = String::new();
    let _ = match warnings {
        0 => write!(out, "\nNo warnings encountered during test.\n"),
        1 => write!(out, "\n1 warning encountered. See detailed log.\n"),
        n => write!(out, "\n{n} warnings encountered. See detailed log.\n"),
    };
    let _ = match errors {
        0 => write!(out, "\nNo errors encountered during test.\n"),
        1 => write!(out, "\n1 ERROR encountered. See detailed log.\n"),
        n => write!(out, "\n{n} ERRORS encountered. See detailed log.\n"),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_cpp_streams() {
        assert_eq!(fmt_double(1000.0), "1000");
        assert_eq!(fmt_double(1.0), "1");
        assert_eq!(fmt_double(0.0), "0");
        assert_eq!(fmt_double(123.456789), "123.457");
        assert_eq!(fmt_double(1234567.0), "1.23457e+06");
        assert_eq!(fmt_double(0.0001), "0.0001");
        assert_eq!(fmt_double(0.00001234), "1.234e-05");
        assert_eq!(fmt_double(999999.5), "1e+06");
        assert_eq!(fmt_double(0.5), "0.5");
        assert_eq!(fmt_double(125.0), "125");
    }

    #[test]
    fn fixed_matches_double_to_string() {
        assert_eq!(double_to_string(90.0, 1), "90.0");
        assert_eq!(double_to_string(99.9, 2), "99.90");
        assert_eq!(double_to_string(475.3333, 2), "475.33");
    }

    #[test]
    fn footer_counts() {
        assert_eq!(
            warning_error_footer(0, 1),
            "\nNo warnings encountered during test.\n\n1 ERROR encountered. See detailed log.\n"
        );
    }
}
