//! The run's table of MLPerf LoadGen scenario rows (`detbench run --scenario`): per row the
//! scenario and mode, LoadGen's verdict and result line, the latency percentiles of the
//! performance run (MultiStream: per query), samples per second, queries and duration, and what
//! each SUT call cost. The `results.md`/console section and its notes.

use detbench_bench::results::{ModelResult, RunResults, ScenarioRecord};
use detbench_loadgen::{Scenario, Validity};

use crate::tables::{Cell, Table};

/// Columns of [`scenario_table`].
const COLUMNS: [&str; 15] = [
    "Model",
    "Backend/precision",
    "Scenario",
    "Mode",
    "Result",
    "Result line",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "Early-stop est. ms",
    "samples/s",
    "Queries",
    "Duration s",
    "SUT call ms (mean)",
    "Failed",
];

fn ns_ms(ns: Option<i64>) -> Cell {
    Cell::number(ns.map(|v| v as f64 / 1e6), 2)
}

/// One row per scenario result (failed rows show their reason), or `None` when the run had none.
pub fn scenario_table(results: &RunResults) -> Option<Table> {
    let rows: Vec<Vec<Cell>> = results
        .models
        .iter()
        .filter_map(|m| Some((m, m.scenario.as_ref()?)))
        .map(|(m, s)| row(m, s))
        .collect();
    (!rows.is_empty()).then(|| Table {
        title: String::new(),
        columns: COLUMNS.map(String::from).to_vec(),
        rows,
        notes: Vec::new(),
    })
}

fn row(m: &ModelResult, s: &ScenarioRecord) -> Vec<Cell> {
    let backend = m
        .backend
        .as_ref()
        .map_or(Cell::Empty, |b| Cell::text(b.label()));
    let mut cells = vec![
        Cell::text(m.label()),
        backend,
        Cell::text(s.label()),
        Cell::text(s.mode.as_str()),
    ];
    if !m.is_ok() {
        cells.push(Cell::text(m.status.to_string()));
        cells.resize(COLUMNS.len(), Cell::Empty);
        return cells;
    }
    let r = s.performance.as_ref();
    let result = match (s.validity, s.peak_qps) {
        (Some(Validity::Valid), Some(qps)) => format!("VALID at peak {qps} QPS"),
        (Some(Validity::Valid), None) => "VALID".to_owned(),
        (Some(Validity::Invalid), _) => format!("INVALID: {}", why_invalid(s)),
        (None, _) => accuracy_result(m, s),
    };
    cells.push(Cell::text(result));
    cells.push(s.headline.as_ref().map_or(Cell::Empty, |h| {
        let decimals = if h.metric.ends_with("(ns)") { 0 } else { 2 };
        Cell::text(format!("{}: {:.decimals$}", h.metric, h.value))
    }));
    cells.extend([0.50, 0.90, 0.99].map(|p| ns_ms(s.latency_ns(p))));
    cells.push(ns_ms(
        r.and_then(|r| r.early_stopping.as_ref())
            .and_then(|e| e.estimate_ns),
    ));
    let rate = r.and_then(|r| {
        r.samples_per_second
            .or(r.completed_samples_per_second)
            .or(r.qps_with_loadgen_overhead)
    });
    cells.push(Cell::number(rate, 1));
    cells.push(Cell::number(r.map(|r| r.query_count as f64), 0));
    cells.push(Cell::number(
        r.map(|r| r.final_query_all_samples_done_time_s),
        1,
    ));
    cells.push(Cell::number(
        s.sut_calls.as_ref().map(|c| c.end_to_end.mean),
        2,
    ));
    cells.push(Cell::text(s.failed_samples.to_string()));
    cells
}

/// The unmet conditions of an INVALID run, as the summary's satisfied lines name them.
fn why_invalid(s: &ScenarioRecord) -> String {
    let Some(r) = &s.performance else {
        return String::new();
    };
    let mut unmet = Vec::new();
    if r.perf_constraints_met == Some(false) {
        unmet.push("latency bound");
    }
    if !r.min_duration_met {
        unmet.push("min duration");
    }
    if !r.min_queries_met {
        unmet.push("min queries");
    }
    if !r.early_stopping_met {
        unmet.push("early stopping");
    }
    unmet.join(", ")
}

/// An accuracy-only row's result: the box AP it scored.
fn accuracy_result(m: &ModelResult, s: &ScenarioRecord) -> String {
    let issued = s.accuracy_samples_issued.unwrap_or(0);
    match &m.bbox {
        Some(acc) => format!("{issued} samples, bbox AP {:.1}", acc.stats[0] * 100.0),
        None => format!("{issued} samples"),
    }
}

/// A scenario row's remarks for the notes list: why it is INVALID (the summary's
/// recommendations), LoadGen's errors, and what makes its numbers less trustworthy.
pub fn scenario_notes(m: &ModelResult) -> Vec<String> {
    let Some(s) = &m.scenario else {
        return Vec::new();
    };
    let label = m.label();
    let mut out = Vec::new();
    if let Some(r) = &s.performance {
        for rec in &r.recommendations {
            out.push(format!("- {label}: LoadGen: {}", rec.replace("\n   ", " ")));
        }
        if r.scenario == Scenario::Server && r.validity == Validity::Invalid {
            out.push(format!(
                "- {label}: {} of {} samples over the {} ms bound",
                r.overlatency_query_count.unwrap_or(0),
                r.sample_count,
                s.settings.target_latency_ns as f64 / 1e6
            ));
        }
    }
    for e in &s.errors {
        out.push(format!("- {label}: LoadGen error: {e}"));
    }
    for note in &s.notes {
        out.push(format!("- {label}: {note}"));
    }
    out.push(format!("- {label}: LoadGen logs in {}", s.log_dir));
    out
}
