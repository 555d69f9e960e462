//! The one percentile of detbench: MLPerf LoadGen's nearest rank, used for inference latencies
//! (detbench-bench's `timing`, which re-exports it), training step times (detbench-train) and
//! every table built from them.

/// How [`percentile`] picks a sample, as recorded in `results.json`.
pub const PERCENTILE_DEFINITION: &str = "nearest-rank as MLPerf LoadGen: the sample at 0-based \
     index floor(n*p) of the ascending sort (loadgen/results.cc, PerformanceSummary::ProcessLatencies)";

/// The `p`-quantile (0 <= p < 1) of `sorted` (ascending), as MLPerf LoadGen computes its latency
/// percentiles.
///
/// LoadGen (mlcommons/inference, `loadgen/results.cc`, `PerformanceSummary::ProcessLatencies`)
/// sorts the sample latencies and takes `pr.sample_latencies[sample_count * lp.percentile]`,
/// i.e. the element at index `floor(n * p)`, computing `n * p` in double precision and
/// truncating it (it asserts `p < 1.0`, so the index is always in range). It is a nearest-rank
/// percentile: always an observed sample, never an interpolation. It differs from the textbook
/// nearest-rank definition (index `ceil(n * p) - 1`) only when `n * p` is a whole number, where
/// LoadGen takes the next sample up: for 100 samples its p99 is the largest one, the 100th.
///
/// We clamp the index to `n - 1` so that `p = 1.0` gives the maximum instead of panicking.
/// Returns `None` for an empty sample.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let index = (sorted.len() as f64 * p) as usize;
    Some(sorted[index.min(sorted.len() - 1)])
}
