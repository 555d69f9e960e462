//! Issuing one run's queries: LoadGen's `IssueQueries` (`loadgen.cc`) and
//! `IssueQueryController::IssueQueriesInternal` with its per-scenario `QueryScheduler`
//! (`issue_query_controller.cc`).
//!
//! Queries are issued from dedicated threads (one, or `server_num_issue_query_threads`), never
//! from the SUT's. SingleStream and MultiStream issue the next query when the previous one
//! completes; Server issues each query at its scheduled time whatever the SUT is doing; Offline
//! issues its one query at once. A Server query is never issued before its time: the thread
//! sleeps with a 1 ns timer slack until its usual wake-up latency before the query's time, then
//! spins the rest ([`HarnessOptions::max_spin_ns`]), where LoadGen calls `sleep_until` and
//! inherits the kernel's 50 µs timer slack.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::effective::EffectiveSettings;
use crate::error::LoadgenError;
use crate::results::PerformanceResult;
use crate::schedule::QueryPlan;
use crate::settings::{Scenario, TestMode};
use crate::sut::{
    AccuracyEntry, AccuracyLogging, Completer, QuerySample, RunState, SystemUnderTest,
};

/// How the harness itself behaves; none of this is a LoadGen setting.
#[derive(Clone, Debug, PartialEq)]
pub struct HarnessOptions {
    /// The most a Server issuing thread busy-waits for a query (ns). The thread wakes early by
    /// the median wake-up latency it has seen (tracked per query, capped here) and spins the
    /// rest, so its queries go out on time without spinning long enough to be preempted on a
    /// busy machine. 0: sleep to the query's time, as LoadGen does.
    pub max_spin_ns: u64,
    /// On Linux, the issuing threads' timer slack (ns): how late the kernel may wake a sleep.
    /// `None` keeps the default (50 µs).
    pub timer_slack_ns: Option<u64>,
    /// Give up when the SUT completes nothing for this long while samples are outstanding.
    pub stall_timeout: Duration,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            max_spin_ns: 100_000,
            timer_slack_ns: Some(1),
            stall_timeout: Duration::from_secs(300),
        }
    }
}

/// What one issuing thread did.
#[derive(Default)]
struct ThreadOutcome {
    queries_issued: usize,
    /// The SUT stopped completing while this thread waited to issue.
    stalled: bool,
    expected_latencies: usize,
    ran_out: bool,
    errors: Vec<String>,
}

/// Everything an issuing thread reads.
struct IssueCtx<'a> {
    sut: &'a dyn SystemUnderTest,
    settings: &'a EffectiveSettings,
    mode: TestMode,
    state: &'a RunState,
    completer: &'a Completer,
    options: &'a HarnessOptions,
}

/// A run's raw outcome: the result and what went to the logs.
pub(crate) struct IssuedRun {
    pub result: PerformanceResult,
    pub accuracy_entries: Vec<AccuracyEntry>,
    pub errors: Vec<String>,
}

/// `IssueQueries<scenario, mode>`: issues `plan`, waits for every issued sample, and gathers
/// the latencies.
pub(crate) fn issue_queries(
    sut: &dyn SystemUnderTest,
    settings: &EffectiveSettings,
    mode: TestMode,
    plan: Arc<QueryPlan>,
    accuracy: AccuracyLogging,
    options: &HarnessOptions,
) -> Result<IssuedRun, LoadgenError> {
    let state = Arc::new(RunState::new(plan, accuracy));
    let completer = Completer::new(state.clone());
    let threads = if settings.scenario == Scenario::Server {
        settings.requested.server_num_issue_query_threads.max(1) as usize
    } else {
        1
    };
    let ctx = IssueCtx {
        sut,
        settings,
        mode,
        state: &state,
        completer: &completer,
        options,
    };
    let outcomes = run_issuing_threads(&ctx, threads)?;

    // Let the SUT know it should not expect any more queries.
    sut.flush_queries();

    let mut errors = Vec::new();
    let queries_issued: usize = outcomes.iter().map(|o| o.queries_issued).sum();
    let expected: usize = outcomes.iter().map(|o| o.expected_latencies).sum();
    for o in &outcomes {
        errors.extend(o.errors.iter().cloned());
    }
    if mode == TestMode::PerformanceOnly && outcomes.iter().any(|o| o.ran_out) {
        errors.push(
            "Ending early: Ran out of generated queries to issue before the minimum query \
             count and test duration were reached. Please update the relevant expected latency \
             or target qps in the TestSettings so they are more accurate."
                .into(),
        );
    }
    let done = if outcomes.iter().any(|o| o.stalled) {
        state.completed.load(Ordering::Acquire)
    } else {
        state.wait_completed(expected, options.stall_timeout)
    };
    if done < expected {
        return Err(LoadgenError::SutStalled {
            waited_s: options.stall_timeout.as_secs_f64(),
            outstanding: expected - done,
            expected,
        });
    }
    errors.extend(std::mem::take(
        &mut *state
            .response_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    ));
    let result = gather(&state, settings, queries_issued);
    let mut entries = std::mem::take(
        &mut *state
            .accuracy_entries
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    entries.sort_by_key(|e| e.seq_id);
    Ok(IssuedRun {
        result,
        accuracy_entries: entries,
        errors,
    })
}

/// Runs `threads` issuing threads to the end of the plan (or an early stop). The clock starts
/// once every one is ready, as LoadGen's starts right before it issues (`StartIssueQueries`),
/// so thread start-up is not counted as issue delay.
fn run_issuing_threads(
    ctx: &IssueCtx<'_>,
    threads: usize,
) -> Result<Vec<ThreadOutcome>, LoadgenError> {
    let ready = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let ready = &ready;
                std::thread::Builder::new()
                    .name(format!("loadgen-issue-{t}"))
                    .spawn_scoped(scope, move || {
                        if let Some(slack) = ctx.options.timer_slack_ns {
                            crate::os::set_timer_slack(slack);
                        }
                        ready.wait();
                        ctx.state.start_clock();
                        issue_thread(ctx, threads, t)
                    })
                    .expect("spawning an issuing thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|e| {
                    LoadgenError::IssuePanicked(detbench_assets::panic_message(e.as_ref()))
                })
            })
            .collect()
    })
}

/// The latencies and timestamps LoadGen's `IssueQueries` returns in its `PerformanceResult`.
fn gather(
    state: &RunState,
    settings: &EffectiveSettings,
    queries_issued: usize,
) -> PerformanceResult {
    let plan = &state.plan;
    // Every issued sample has completed by now, and only those have a latency. With one
    // issuing thread they are a prefix of the plan, as LoadGen assumes; with several they
    // need not be.
    let sample_latencies: Vec<i64> = state
        .latencies
        .iter()
        .map(|l| l.load(Ordering::Acquire))
        .filter(|&l| l >= 0)
        .collect();
    let q = |i: usize| &state.queries[i];
    let query_latencies = if settings.scenario == Scenario::MultiStream {
        (0..queries_issued)
            .map(|i| {
                q(i).done_ns.load(Ordering::Acquire) - q(i).scheduled_ns.load(Ordering::Acquire)
            })
            .collect()
    } else {
        Vec::new()
    };
    let issue_delays: Vec<i64> = (0..queries_issued)
        .map(|i| q(i).issued_ns.load(Ordering::Acquire) - q(i).scheduled_ns.load(Ordering::Acquire))
        .collect();
    let last = queries_issued.saturating_sub(1);
    let secs = |ns: i64| ns as f64 / 1e9;
    PerformanceResult {
        max_latency: secs(sample_latencies.iter().copied().max().unwrap_or(0)),
        sample_latencies,
        query_latencies,
        queries_issued: queries_issued as u64,
        final_query_scheduled_time: secs(plan.scheduled_delta_ns.get(last).copied().unwrap_or(0)),
        final_query_issued_time: secs(q(last).issued_ns.load(Ordering::Acquire)),
        final_query_all_samples_done_time: secs(q(last).done_ns.load(Ordering::Acquire)),
        issue_delays,
    }
}

/// One issuing thread: queries `thread_idx`, `thread_idx + stride`, ...
fn issue_thread(ctx: &IssueCtx<'_>, stride: usize, thread_idx: usize) -> ThreadOutcome {
    let s = ctx.settings;
    let per_thread = |total: u64| -> usize {
        let (total, stride) = (total as usize, stride);
        total / stride + usize::from(thread_idx < total % stride)
    };
    let min_queries = per_thread(s.min_query_count);
    let max_queries = per_thread(s.max_query_count);
    let coalesce = s.scenario == Scenario::Server && s.requested.server_coalesce_queries;
    let plan = &ctx.state.plan;
    let mut out = ThreadOutcome {
        ran_out: s.scenario != Scenario::Server,
        ..ThreadOutcome::default()
    };
    let mut prev: Option<usize> = None;
    let mut waker = Waker::new(ctx.options.max_spin_ns);
    let mut idx = thread_idx;
    while idx < plan.len() {
        let Some(now) = wait_for_turn(ctx, &mut waker, idx, prev) else {
            out.stalled = true;
            break;
        };
        prev = Some(idx);
        let first = idx;
        let mut in_batch = 1;
        if coalesce {
            // Fold in every later query whose time has already passed.
            while idx + stride < plan.len() && plan.scheduled_delta_ns[idx + stride] <= now {
                idx += stride;
                in_batch += 1;
                let t = &ctx.state.queries[idx];
                t.scheduled_ns
                    .store(plan.scheduled_delta_ns[idx], Ordering::Release);
                t.issued_ns.store(now, Ordering::Release);
            }
        }
        let samples = batch_samples(plan, first, idx, stride);
        ctx.sut.issue_query(&samples, ctx.completer);
        out.expected_latencies += samples.len();
        out.queries_issued += in_batch;

        if ctx.mode == TestMode::AccuracyOnly {
            idx += stride;
            continue;
        }
        if let Some(stop) = should_stop(ctx, &mut out, now, min_queries, max_queries) {
            if let Some(message) = stop {
                out.errors
                    .push(format!("IssueQueryThread {thread_idx} {message}"));
            }
            break;
        }
        idx += stride;
    }
    out
}

/// The samples of queries `first..=last` (every `stride`-th), with their response ids.
fn batch_samples(plan: &QueryPlan, first: usize, last: usize, stride: usize) -> Vec<QuerySample> {
    let mut samples = Vec::new();
    let mut q = first;
    while q <= last {
        let start = plan.offsets[q];
        samples.extend(
            plan.query(q)
                .iter()
                .enumerate()
                .map(|(i, &index)| QuerySample {
                    id: plan.first_sample_id + (start + i) as u64,
                    index,
                }),
        );
        q += stride;
    }
    samples
}

/// `QueryScheduler<scenario>::Wait`: blocks until query `idx` may be issued, stamps its
/// scheduled and issued times, and returns the issue time (ns from the start); `None` when the
/// previous query never completes.
fn wait_for_turn(
    ctx: &IssueCtx<'_>,
    waker: &mut Waker,
    idx: usize,
    prev: Option<usize>,
) -> Option<i64> {
    let state = ctx.state;
    let times = &state.queries[idx];
    let (scheduled, issued) = match ctx.settings.scenario {
        Scenario::SingleStream | Scenario::MultiStream => {
            if let Some(p) = prev
                && !state.wait_query_done(p, ctx.options.stall_timeout)
            {
                return None;
            }
            let now = state.now_ns();
            (now, now)
        }
        Scenario::Server => {
            let scheduled = state.plan.scheduled_delta_ns[idx];
            (scheduled, waker.wait_until(state, scheduled))
        }
        Scenario::Offline => (0, state.now_ns()),
    };
    times.scheduled_ns.store(scheduled, Ordering::Release);
    times.issued_ns.store(issued, Ordering::Release);
    Some(issued)
}

/// Waits for a Server query's time: sleeps until `margin` before it, then spins. `margin`
/// follows the median of the observed wake-up latencies (one step per sleep, towards the
/// latency just seen), between 0 and `max`.
pub(crate) struct Waker {
    margin_ns: i64,
    max_ns: i64,
}

impl Waker {
    const STEP_NS: i64 = 2_000;

    pub fn new(max_spin_ns: u64) -> Self {
        let max_ns = max_spin_ns.min(i64::MAX as u64) as i64;
        Waker {
            margin_ns: max_ns / 4,
            max_ns,
        }
    }

    /// Returns the time reached, never before `target_ns`.
    pub fn wait_until(&mut self, state: &RunState, target_ns: i64) -> i64 {
        let now = state.now_ns();
        let wake_at = target_ns - self.margin_ns;
        if wake_at > now {
            std::thread::sleep(Duration::from_nanos((wake_at - now) as u64));
            let late = state.now_ns() - wake_at;
            self.margin_ns += if late > self.margin_ns {
                Self::STEP_NS
            } else {
                -Self::STEP_NS
            };
            self.margin_ns = self.margin_ns.clamp(0, self.max_ns);
        }
        loop {
            let now = state.now_ns();
            if now >= target_ns {
                return now;
            }
            std::hint::spin_loop();
        }
    }
}

/// The end-of-iteration checks of `IssueQueriesInternal`: `Some(None)` ends the run normally,
/// `Some(Some(message))` ends it early with an error, `None` goes on.
fn should_stop(
    ctx: &IssueCtx<'_>,
    out: &mut ThreadOutcome,
    now: i64,
    min_queries: usize,
    max_queries: usize,
) -> Option<Option<String>> {
    let s = ctx.settings;
    let duration_ns = now;
    if s.scenario == Scenario::Server {
        if s.max_async_queries != 0 {
            let outstanding = (out.queries_issued as u64)
                .saturating_sub(ctx.state.queries_completed.load(Ordering::Acquire) as u64);
            if outstanding > s.max_async_queries {
                out.ran_out = false;
                return Some(Some(format!(
                    "Ending early: Too many outstanding queries. issued {} outstanding \
                     {outstanding}",
                    out.queries_issued
                )));
            }
        }
    } else if out.queries_issued >= min_queries
        && duration_ns >= s.target_duration_ms as i64 * 1_000_000
    {
        out.ran_out = false;
        return Some(None);
    }
    if s.max_query_count != 0 && out.queries_issued >= max_queries {
        out.ran_out = false;
        return Some(Some(format!(
            "Ending early: Max query count reached. query_count {}",
            out.queries_issued
        )));
    }
    if s.max_duration_ms != 0 && duration_ns > s.max_duration_ms as i64 * 1_000_000 {
        out.ran_out = false;
        return Some(Some(format!(
            "Ending early: Max test duration reached. duration_ns {duration_ns}"
        )));
    }
    None
}
