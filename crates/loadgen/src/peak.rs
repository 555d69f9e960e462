//! The Server peak-QPS search: LoadGen's `FindPeakPerformanceMode`, `FindBoundaries` and
//! `FindPeakPerformanceBinarySearch` (`loadgen.cc`) with the helpers of
//! `find_peak_performance` (`test_settings_internal.h`).
//!
//! 1. Run at the requested `server_target_qps`; if its latency percentile misses the bound, the
//!    search stops there (LoadGen cannot search below the user's lower bound).
//! 2. Widen: multiply the QPS by `1 + server_find_peak_qps_boundary_step_size` until a run
//!    misses the bound, giving `[lower, upper)`.
//! 3. Bisect until `floor(lower * 10^d) + 1 >= floor(upper * 10^d)`, `d` =
//!    `server_find_peak_qps_decimals_of_precision`, and report the last passing run.
//!
//! As in LoadGen, a step passes on the performance constraint alone (the latency percentile
//! under the bound); minimum duration, query count and early stopping decide only whether the
//! final result is VALID.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::effective::EffectiveSettings;
use crate::error::LoadgenError;
use crate::results::{PerformanceResult, ScenarioResult, Validity};
use crate::run::{TestContext, run_performance};

/// At most this many widening steps; LoadGen recurses without a limit, which a SUT that never
/// misses the bound would turn into an endless search.
const MAX_WIDENINGS: usize = 64;

/// One run of the search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeakStep {
    /// `base`, `boundary` or `bisect`.
    pub phase: String,
    pub target_qps: f64,
    pub perf_constraints_met: bool,
    pub target_percentile_latency_ns: i64,
    pub validity: Validity,
}

fn step(phase: &str, (r, _): &(ScenarioResult, PerformanceResult)) -> PeakStep {
    PeakStep {
        phase: phase.into(),
        target_qps: r.settings.target_qps,
        perf_constraints_met: r.perf_constraints_met.unwrap_or(true),
        target_percentile_latency_ns: r.target_percentile_latency_ns.unwrap_or(0),
        validity: r.validity,
    }
}

/// `IsFinished`: the bounds agree to `decimals` places.
pub fn is_finished(lower_qps: f64, upper_qps: f64, decimals: i32) -> bool {
    let scale = 10f64.powf(f64::from(decimals));
    let l = (lower_qps * scale).floor();
    let u = (upper_qps * scale).floor();
    l + 1.0 >= u
}

/// `FindPeakPerformanceMode` for the Server scenario (validation refuses the others).
pub(crate) fn find_peak_performance(
    ctx: &mut TestContext<'_>,
    base: &EffectiveSettings,
) -> Result<((ScenarioResult, PerformanceResult), Vec<PeakStep>), LoadgenError> {
    let mut steps = Vec::new();
    ctx.log(
        "generic_message",
        json!(format!(
            "FindPeakPerformance: Check validity of the base settings field: {:.6}",
            base.target_qps
        )),
    );
    let base_result = run_performance(ctx, base)?;
    steps.push(step("base", &base_result));
    if base_result.0.perf_constraints_met == Some(false) {
        ctx.error(
            "error_runtime",
            "FindPeakPerformance: Initial lower bound does not satisfy performance \
             constraints, msg: Reduce target QPS to improve latency."
                .into(),
        );
        return Ok((base_result, steps));
    }

    // FindBoundaries: widen until a run misses the bound.
    let step_size = base.requested.server_find_peak_qps_boundary_step_size;
    let mut lower = base_result;
    let mut upper = None;
    for _ in 0..MAX_WIDENINGS {
        let l_settings = &lower.0.settings;
        let u_settings = l_settings.with_target_qps(l_settings.target_qps * (1.0 + step_size));
        let u = run_performance(ctx, &u_settings)?;
        steps.push(step("boundary", &u));
        if u.0.perf_constraints_met == Some(false) {
            upper = Some(u);
            break;
        }
        lower = u;
    }
    let Some(mut upper) = upper else {
        ctx.error(
            "error_runtime",
            format!(
                "FindPeakPerformance: no upper bound found after {MAX_WIDENINGS} widenings; \
                 reporting the last passing QPS"
            ),
        );
        return Ok((lower, steps));
    };
    ctx.log(
        "generic_message",
        json!(format!(
            "FindPeakPerformance: Found boundaries: [{:.6}, {:.6})",
            lower.0.settings.target_qps, upper.0.settings.target_qps
        )),
    );

    // FindPeakPerformanceBinarySearch.
    let decimals = base.requested.server_find_peak_qps_decimals_of_precision;
    let qps = |r: &(ScenarioResult, PerformanceResult)| r.0.settings.target_qps;
    while !is_finished(qps(&lower), qps(&upper), decimals) {
        let (l, u) = (qps(&lower), qps(&upper));
        let m_settings = lower.0.settings.with_target_qps(l + (u - l) / 2.0);
        let m = run_performance(ctx, &m_settings)?;
        steps.push(step("bisect", &m));
        if m.0.perf_constraints_met == Some(false) {
            upper = m;
        } else {
            lower = m;
        }
    }
    ctx.log(
        "generic_message",
        json!(format!(
            "FindPeakPerformance: Found peak performance field: {:.6}",
            qps(&lower)
        )),
    );
    Ok((lower, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_ends_at_the_requested_precision() {
        assert!(!is_finished(10.0, 20.0, 1));
        assert!(!is_finished(10.0, 10.2, 1));
        assert!(is_finished(10.0, 10.19, 1));
        assert!(is_finished(10.0, 10.9, 0));
        assert!(!is_finished(10.0, 12.0, 0));
    }
}
