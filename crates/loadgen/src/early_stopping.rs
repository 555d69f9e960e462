//! LoadGen's early-stopping bound (`early_stopping.cc`, 6.0.17), ported operation for
//! operation so the numbers match to the last query.
//!
//! Given `t` queries over the latency bound, [`MinPassingQueriesFinder::find`] returns the
//! fewest queries `h` under the bound such that, with confidence `c`, the true `p`-th
//! percentile is under the bound: the smallest `h` with `P[at most t overlatency queries in
//! h + t | percentile p - d] <= 1 - c`, a binomial tail computed as a regularized incomplete
//! beta function through a hypergeometric series. The search range for `h` comes from
//! interpolating the answers already in the cache, exactly as LoadGen does (including its
//! `max_slope` product), so the call order matters and is kept.
//!
//! `lgamma` is the C library's (`lgamma_r`): the same function LoadGen's `std::lgamma` calls,
//! so the bound agrees bit for bit on the same platform.

use std::collections::{BTreeMap, HashMap};

fn lgamma(x: f64) -> f64 {
    #[cfg(unix)]
    {
        unsafe extern "C" {
            fn lgamma_r(x: f64, sign: *mut std::ffi::c_int) -> f64;
        }
        let mut sign: std::ffi::c_int = 0;
        // SAFETY: lgamma_r is a pure function of `x` that writes the sign of Γ(x) to `sign`,
        // a valid local.
        unsafe { lgamma_r(x, &mut sign) }
    }
    #[cfg(not(unix))]
    {
        unsafe extern "C" {
            fn lgamma(x: f64) -> f64;
        }
        // SAFETY: the C runtime's lgamma is a pure function of `x`.
        unsafe { lgamma(x) }
    }
}

/// `lbeta(x, y)`: log B(x, y).
fn lbeta(x: i64, y: i64) -> f64 {
    lgamma(x as f64) + lgamma(y as f64) - lgamma((x + y) as f64)
}

/// `hypergeometric_2F1_A1(b, c, x)`: 2F1(1, b; c; x) by its series, to 2^-33.
fn hypergeometric_2f1_a1(b: i64, c: i64, x: f64) -> f64 {
    let tolerance = 1.0 / (1u64 << 33) as f64;
    let mut term = 1.0f64;
    let mut result = 1.0f64;
    let mut i = 0i64;
    while term.abs() > tolerance {
        term *= (b + i) as f64 * x / (c + i) as f64;
        result += term;
        i += 1;
    }
    result
}

/// `beta_regularized(x, a, b)`: I_x(a, b).
fn beta_regularized(x: f64, a: i64, b: i64) -> f64 {
    (a as f64 * x.ln() + (b - 1) as f64 * (1.0 - x).ln() - lbeta(a, b)).exp() / a as f64
        * hypergeometric_2f1_a1(1 - b, 1 + a, x / (x - 1.0))
}

/// `odds(h, t, p, d)`: the probability of at most `t` overlatency queries in `h + t`.
pub fn odds(h: i64, t: i64, p: f64, d: f64) -> f64 {
    beta_regularized(p - d, h, 1 + t)
}

/// `find_min_passing(min_h, max_h, t, p, d, c)`: binary search on `[min_h, max_h]`.
fn find_min_passing(mut min_h: i64, max_h: i64, t: i64, p: f64, d: f64, c: f64) -> i64 {
    let mut count = max_h - min_h;
    while count > 0 {
        let step = count / 2;
        let h = min_h + step;
        if odds(h, t, p, d) < 1.0 - c {
            count = step;
        } else {
            min_h = h + 1;
            count -= step + 1;
        }
    }
    min_h
}

/// `MinPassingQueriesFinder`: the search with its per-`(p, d, c)` cache of answers.
#[derive(Default)]
pub struct MinPassingQueriesFinder {
    caches: HashMap<(u64, u64, u64), BTreeMap<i64, i64>>,
}

impl MinPassingQueriesFinder {
    pub fn new() -> Self {
        Self::default()
    }

    /// `operator()(t, p, d, c)`: the minimum `h` with `odds(h, t, p, d) <= 1 - c`.
    pub fn find(&mut self, t: i64, p: f64, d: f64, c: f64) -> i64 {
        let cache = self
            .caches
            .entry((p.to_bits(), d.to_bits(), c.to_bits()))
            .or_default();
        if let Some(&h) = cache.get(&t) {
            return h;
        }
        let (mut x0, mut y0) = (-1i64, 0i64);
        let (mut x1, mut y1) = (0i64, ((1.0 - c).ln() / (p - d).ln()).ceil() as i64);
        let mut below = cache.range(..t).rev();
        if let Some((&x, &y)) = below.next() {
            (x1, y1) = (x, y);
            if let Some((&x, &y)) = below.next() {
                (x0, y0) = (x, y);
            }
        }
        let min_slope = (p - d) / (1.0 - p + d);
        let max_slope = ((y1 - y0) * (x1 - x0)) as f64;
        let min_h = ((t - x1) as f64 * min_slope + y1 as f64) as i64;
        let max_h = ((t - x1) as f64 * max_slope + y1 as f64 + 1.0) as i64;
        let h = find_min_passing(min_h, max_h, t, p, d, c);
        cache.insert(t, h);
        h
    }
}

/// LoadGen's early-stopping constants (`PerformanceSummary::EarlyStopping`).
pub const CONFIDENCE: f64 = 0.99;
pub const TOLERANCE: f64 = 0.0;

/// The percentile estimate for SingleStream and MultiStream: how many of the highest latencies
/// may be discarded (`t - 1`) so that the `t`-th highest is, with 99% confidence, above the
/// true percentile. Returns `None` when fewer than `h_min + 1` queries ran, else `Some(t)`.
pub(crate) fn latency_estimate_rank(
    finder: &mut MinPassingQueriesFinder,
    queries_issued: i64,
    percentile: f64,
) -> (i64, Option<i64>) {
    let h_min = finder.find(1, percentile, TOLERANCE, CONFIDENCE);
    if queries_issued < h_min + 1 {
        return (h_min, None);
    }
    let mut t = 1i64;
    for i in 2..queries_issued + 1 {
        let h = finder.find(i, percentile, TOLERANCE, CONFIDENCE);
        if queries_issued < h + i {
            t = i - 1;
            break;
        }
    }
    (h_min, Some(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_overlatency_query_at_p90_needs_63_queries_under() {
        // LoadGen's summary for 90th-percentile SingleStream: "Processed at least 64 queries".
        let mut f = MinPassingQueriesFinder::new();
        assert_eq!(f.find(1, 0.90, 0.0, 0.99), 63);
        // p99: "would need to process at least 662 total queries".
        assert_eq!(f.find(1, 0.99, 0.0, 0.99), 661);
        // No overlatency query at p99: 0.99^459 < 0.01 <= 0.99^458.
        assert_eq!(f.find(0, 0.99, 0.0, 0.99), 459);
    }

    #[test]
    fn odds_is_the_binomial_tail() {
        // t = 0: every one of h queries under the bound, probability p^h.
        let p: f64 = 0.9;
        assert!((odds(10, 0, p, 0.0) - p.powi(10)).abs() < 1e-12);
        // t = 1 of h + 1: p^(h+1) + (h+1) p^h (1-p).
        let expect = p.powi(11) + 11.0 * p.powi(10) * (1.0 - p);
        assert!((odds(10, 1, p, 0.0) - expect).abs() < 1e-9);
    }
}
