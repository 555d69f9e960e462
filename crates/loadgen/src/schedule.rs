//! The pre-generated queries of one run: LoadGen's `GenerateQueries` (`loadgen.cc`), which
//! picks every query's samples and scheduled time before the first is issued, from
//! `sample_index_rng_seed` and `schedule_rng_seed`, and `SequenceGen`
//! (`issue_query_controller.h`), which numbers queries and samples across the runs of a test.
//!
//! The random draws happen in LoadGen's order, including the draws of distributions a run does
//! not use (LoadGen builds all three sample distributions every time), so the same seeds give
//! LoadGen's samples and arrival times.

use crate::effective::EffectiveSettings;
use crate::qsl::{LoadableSampleSet, QuerySampleIndex};
use crate::rng::{self, Mt19937};
use crate::settings::{Scenario, TestMode};

/// Query and sample numbering across the runs of one test (`SequenceGen`), with the per-sample
/// random value that decides accuracy-log sampling in performance mode.
pub struct SequenceGen {
    query_id: u64,
    sample_id: u64,
    /// LoadGen never calls `InitAccLogRng`, so this engine keeps its default seed, 5489.
    accuracy_log_rng: Mt19937,
}

impl Default for SequenceGen {
    fn default() -> Self {
        SequenceGen {
            query_id: 0,
            sample_id: 0,
            accuracy_log_rng: Mt19937::new(5489),
        }
    }
}

impl SequenceGen {
    /// The next sample's sequence id (`CurrentSampleId`).
    pub fn current_sample_id(&self) -> u64 {
        self.sample_id
    }
}

/// The queries of one run, flat: query `q` holds `samples[offsets[q]..offsets[q + 1]]`.
#[derive(Clone, Debug, Default)]
pub struct QueryPlan {
    /// Scheduled time of each query from the run's start (ns); used by Server.
    pub scheduled_delta_ns: Vec<i64>,
    pub offsets: Vec<usize>,
    /// Sample indices of all queries, concatenated.
    pub samples: Vec<QuerySampleIndex>,
    /// Sequence id of `samples[0]`; sample `k` of the plan has id `first_sample_id + k`.
    pub first_sample_id: u64,
    /// Sequence id of the first query.
    pub first_query_id: u64,
    /// Per sample, the value compared with the accuracy-log probability (kept only when
    /// performance-mode accuracy logging is on).
    pub accuracy_log_vals: Vec<f64>,
    /// The schedule's end (`generated_query_duration`, ns).
    pub generated_duration_ns: i64,
    /// Samples per query as generated (`generated_samples_per_query`).
    pub samples_per_query: usize,
}

impl QueryPlan {
    /// Number of queries.
    pub fn len(&self) -> usize {
        self.scheduled_delta_ns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.scheduled_delta_ns.is_empty()
    }

    /// The samples of query `q`.
    pub fn query(&self, q: usize) -> &[QuerySampleIndex] {
        &self.samples[self.offsets[q]..self.offsets[q + 1]]
    }

    fn push(
        &mut self,
        samples: &[QuerySampleIndex],
        delta_ns: i64,
        seq: &mut SequenceGen,
        keep: bool,
    ) {
        self.scheduled_delta_ns.push(delta_ns);
        self.samples.extend_from_slice(samples);
        self.offsets.push(self.samples.len());
        seq.query_id += 1;
        for _ in samples {
            seq.sample_id += 1;
            let v = rng::uniform_real(&mut seq.accuracy_log_rng, 0.0, 1.0);
            if keep {
                self.accuracy_log_vals.push(v);
            }
        }
    }
}

/// A stateful sample chooser (`SampleDistribution<mode>`): performance mode draws uniformly;
/// accuracy mode (and `performance_issue_unique`) walks one shuffled permutation.
enum SampleDistribution {
    Uniform { end: u64 },
    Walk { indices: Vec<usize>, next: usize },
}

impl SampleDistribution {
    fn walk(sample_count: usize, stride: usize, g: &mut Mt19937) -> Self {
        let mut indices: Vec<usize> = (0..sample_count).step_by(stride.max(1)).collect();
        rng::shuffle(&mut indices, g);
        SampleDistribution::Walk { indices, next: 0 }
    }

    /// `SampleDistributionEqualIssue`: one fresh permutation of the set per `set_size` queries.
    fn equal_issue(sample_count: usize, set_size: usize, g: &mut Mt19937) -> Self {
        let mut indices = Vec::new();
        let mut perm: Vec<usize> = (0..set_size).collect();
        for _ in (0..sample_count).step_by(set_size.max(1)) {
            rng::shuffle(&mut perm, g);
            indices.extend_from_slice(&perm);
        }
        SampleDistribution::Walk { indices, next: 0 }
    }

    fn next(&mut self, g: &mut Mt19937) -> usize {
        match self {
            SampleDistribution::Uniform { end } => rng::uniform_int(g, 0, *end - 1) as usize,
            SampleDistribution::Walk { indices, next } => {
                // The equal-issue walk wraps (`indices.at(i++ % size)`); the others are sized
                // to the queries drawn, so the modulo never bites.
                let v = indices[*next % indices.len()];
                *next += 1;
                v
            }
        }
    }
}

/// The sample choosers of one run, built in LoadGen's order from `sample_index_rng_seed`:
/// the mode's distribution, the unique-sample walk and the equal-issue walk, all drawing from
/// one engine (each is built, and draws its shuffles, whether or not the run uses it).
struct Choosers {
    sample_rng: Mt19937,
    dist: SampleDistribution,
    unique: SampleDistribution,
    equal: SampleDistribution,
}

impl Choosers {
    fn new(
        s: &EffectiveSettings,
        mode: TestMode,
        loaded: &LoadableSampleSet,
        spq: usize,
        min_queries: usize,
    ) -> Self {
        let mut sample_rng = Mt19937::new(s.sample_index_rng_seed);
        let stride = if s.scenario == Scenario::MultiStream {
            spq
        } else {
            1
        };
        let sde = loaded.sample_distribution_end;
        let dist = if mode == TestMode::AccuracyOnly {
            SampleDistribution::walk(sde, stride, &mut sample_rng)
        } else {
            SampleDistribution::Uniform { end: sde as u64 }
        };
        let unique = SampleDistribution::walk(sde, stride, &mut sample_rng);
        let equal = SampleDistribution::equal_issue(min_queries, loaded.set.len(), &mut sample_rng);
        Choosers {
            sample_rng,
            dist,
            unique,
            equal,
        }
    }

    /// The next sample index into the loaded set, for SingleStream and Server (a start index
    /// for MultiStream, which takes no equal-issue walk).
    fn next(&mut self, s: &EffectiveSettings, equal_issue: bool) -> usize {
        if s.performance_issue_unique {
            self.unique.next(&mut self.sample_rng)
        } else if s.performance_issue_same {
            s.performance_issue_same_index as usize
        } else if equal_issue {
            self.equal.next(&mut self.sample_rng)
        } else {
            self.dist.next(&mut self.sample_rng)
        }
    }

    /// One query's samples (the loop body of `GenerateQueries`).
    fn fill(&mut self, s: &EffectiveSettings, set: &[QuerySampleIndex], samples: &mut [usize]) {
        match s.scenario {
            Scenario::MultiStream => {
                // Contiguous samples from the start index; the padding at the end of the
                // loaded set keeps the slice in bounds.
                let first = self.next(s, false);
                samples.copy_from_slice(&set[first..first + samples.len()]);
            }
            Scenario::Offline => fill_offline(s, set, samples, &mut self.sample_rng),
            Scenario::SingleStream | Scenario::Server => {
                let equal_issue = s.sample_concatenate_permutation;
                for slot in samples.iter_mut() {
                    *slot = set[self.next(s, equal_issue)];
                }
            }
        }
    }
}

/// `GenerateQueries<scenario, mode>`. `mode` is `AccuracyOnly` or `PerformanceOnly`.
pub fn generate_queries(
    s: &EffectiveSettings,
    mode: TestMode,
    loaded: &LoadableSampleSet,
    seq: &mut SequenceGen,
) -> QueryPlan {
    let accuracy = mode == TestMode::AccuracyOnly;
    let set = &loaded.set;
    let multiplier: i64 = if s.scenario == Scenario::Server { 1 } else { 2 };
    let mut gen_duration_ns = multiplier * s.target_duration_ms as i64 * 1_000_000;
    let mut min_queries = s.min_query_count as usize;
    let mut spq = s.samples_per_query as usize;
    if accuracy && s.scenario == Scenario::Offline {
        spq = loaded.sample_distribution_end;
    }
    if accuracy || s.performance_issue_unique {
        gen_duration_ns = 0;
        min_queries = set.len() / spq;
    }

    let mut schedule_rng = Mt19937::new(s.schedule_rng_seed);
    let mut choose = Choosers::new(s, mode, loaded, spq, min_queries);

    let equal_issue = s.sample_concatenate_permutation;
    if !accuracy && equal_issue {
        if s.scenario == Scenario::Offline && !spq.is_multiple_of(set.len()) {
            spq += set.len() - spq % set.len();
        } else if s.scenario != Scenario::Offline && !min_queries.is_multiple_of(set.len()) {
            min_queries += set.len() - min_queries % set.len();
        }
    }

    let keep_vals =
        !accuracy && (s.accuracy_log_probability > 0.0 || s.accuracy_log_sampling_target > 0);
    let mut plan = QueryPlan {
        offsets: vec![0],
        first_sample_id: seq.sample_id,
        first_query_id: seq.query_id,
        samples_per_query: spq,
        ..QueryPlan::default()
    };
    let period_ns = rng::seconds_to_ns_trunc(1.0 / s.target_qps);
    let mut samples = vec![0usize; spq];
    let (mut timestamp, mut prev) = (0i64, 0i64);
    while prev < gen_duration_ns || plan.len() < min_queries {
        choose.fill(s, set, &mut samples);
        plan.push(&samples, timestamp, seq, keep_vals);
        prev = timestamp;
        timestamp += if s.scenario == Scenario::Server {
            rng::seconds_to_ns_trunc(rng::exponential(&mut schedule_rng, s.target_qps))
        } else {
            period_ns
        };
        if equal_issue
            && plan.len() >= min_queries
            && prev < gen_duration_ns
            && s.scenario != Scenario::Offline
        {
            min_queries += set.len();
        }
    }

    // Offline accuracy: a remainder query so every loaded sample is issued.
    if s.scenario == Scenario::Offline && accuracy {
        let remaining = set.len() % spq;
        if remaining != 0 {
            let rest: Vec<usize> = (0..remaining)
                .map(|_| set[choose.dist.next(&mut choose.sample_rng)])
                .collect();
            plan.push(&rest, timestamp, seq, keep_vals);
        }
    }
    plan.generated_duration_ns = timestamp;
    plan
}

/// The Offline query: the loaded set repeated to fill it, then a prefix of it; each repeat
/// shuffled under `sample_concatenate_permutation`; one sample throughout under
/// `performance_issue_same`.
fn fill_offline(
    s: &EffectiveSettings,
    set: &[QuerySampleIndex],
    samples: &mut [QuerySampleIndex],
    sample_rng: &mut Mt19937,
) {
    let n = set.len();
    if s.performance_issue_same {
        samples.fill(set[s.performance_issue_same_index as usize]);
        return;
    }
    let full = samples.len() / n;
    let remainder = samples.len() % n;
    for i in 0..full {
        let block = &mut samples[i * n..(i + 1) * n];
        block.copy_from_slice(set);
        if s.sample_concatenate_permutation {
            rng::shuffle(block, sample_rng);
        }
    }
    samples[full * n..].copy_from_slice(&set[..remainder]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qsl::generate_loadable_sets;
    use crate::settings::TestSettings;

    fn plan_for(req: &TestSettings, mode: TestMode, psc: usize, total: usize) -> QueryPlan {
        let s = EffectiveSettings::new(req, psc, total);
        let count = if mode == TestMode::AccuracyOnly {
            s.accuracy_sample_count
        } else {
            s.performance_sample_count
        } as usize;
        let sets = generate_loadable_sets(&s, total, count);
        generate_queries(&s, mode, &sets[0], &mut SequenceGen::default())
    }

    #[test]
    fn offline_repeats_the_loaded_set() {
        let mut req = TestSettings::new(Scenario::Offline);
        req.min_query_count = 25;
        let plan = plan_for(&req, TestMode::PerformanceOnly, 10, 10);
        assert_eq!(plan.len(), 1);
        let q = plan.query(0);
        assert_eq!(q.len(), 25);
        assert_eq!(&q[..10], &q[10..20]);
        assert_eq!(&q[20..], &q[..5]);
    }

    #[test]
    fn server_schedule_is_increasing_and_long_enough() {
        let mut req = TestSettings::new(Scenario::Server);
        req.server_target_qps = 1000.0;
        req.min_duration_ms = 1000;
        req.min_query_count = 10;
        let plan = plan_for(&req, TestMode::PerformanceOnly, 10, 10);
        assert!(plan.scheduled_delta_ns.windows(2).all(|w| w[0] <= w[1]));
        // The loop stops at the first query scheduled at or after min_duration.
        let last = *plan.scheduled_delta_ns.last().unwrap();
        assert!(last >= 1_000_000_000);
        assert!(plan.scheduled_delta_ns[plan.len() - 2] < 1_000_000_000);
    }

    #[test]
    fn multistream_queries_are_contiguous_in_the_loaded_set() {
        let mut req = TestSettings::new(Scenario::MultiStream);
        req.min_duration_ms = 0;
        req.min_query_count = 50;
        let s = EffectiveSettings::new(&req, 20, 20);
        let sets = generate_loadable_sets(&s, 20, 20);
        let plan = generate_queries(
            &s,
            TestMode::PerformanceOnly,
            &sets[0],
            &mut SequenceGen::default(),
        );
        assert_eq!(plan.len(), 50);
        for q in 0..plan.len() {
            let samples = plan.query(q);
            let start = sets[0].set.iter().position(|&x| x == samples[0]).unwrap();
            assert_eq!(samples, &sets[0].set[start..start + 8]);
        }
    }

    #[test]
    fn accuracy_mode_issues_every_sample_once() {
        for scenario in Scenario::ALL {
            let req = TestSettings::new(scenario);
            let plan = plan_for(&req, TestMode::AccuracyOnly, 13, 13);
            let mut all = plan.samples.clone();
            all.sort_unstable();
            if scenario == Scenario::MultiStream {
                all.dedup();
            }
            assert_eq!(all, (0..13).collect::<Vec<_>>(), "{scenario}");
        }
    }
}
