//! The system under test and its completion path: LoadGen's `SystemUnderTest`
//! (`system_under_test.h`) as a trait, and [`Completer`], the Rust form of
//! `QuerySamplesComplete` (`loadgen.cc`), which timestamps a response first and then records
//! the sample's latency from its query's scheduled time.
//!
//! The harness never knows what the SUT computes: it hands out sample indices and response ids
//! and gets back ids (and, for the accuracy log, bytes).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::qsl::QuerySampleIndex;
use crate::schedule::QueryPlan;

/// Identifies one issued sample; the SUT passes it back in its response. It is the sample's
/// sequence number in the test (LoadGen's `sample_seq`).
pub type ResponseId = u64;

/// One sample of a query (`QuerySample`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuerySample {
    pub id: ResponseId,
    pub index: QuerySampleIndex,
}

/// One sample's response (`QuerySampleResponse`). `data` goes to the accuracy log when that
/// sample is logged ([`Completer::wants_response_data`]); otherwise it may be empty.
#[derive(Clone, Copy, Debug)]
pub struct QuerySampleResponse<'a> {
    pub id: ResponseId,
    pub data: &'a [u8],
}

impl<'a> QuerySampleResponse<'a> {
    pub fn new(id: ResponseId, data: &'a [u8]) -> Self {
        QuerySampleResponse { id, data }
    }
}

/// LoadGen's `SystemUnderTest`.
pub trait SystemUnderTest: Send + Sync {
    /// A name for the summary (`SUT name : ...`).
    fn name(&self) -> String;
    /// Starts work on `samples`. Called from the issuing thread: in the Server scenario the next
    /// query cannot be issued before this returns, so queue the work and return. Report each
    /// sample through `completer` (clone it to complete from another thread), exactly once.
    fn issue_query(&self, samples: &[QuerySample], completer: &Completer);
    /// No more queries will come in this run (`FlushQueries`): finish what is queued.
    fn flush_queries(&self) {}
}

/// A pending sample's latency slot.
const PENDING: i64 = -1;

/// One query's timestamps, as ns from the run's start (`QueryMetadata`).
pub(crate) struct QueryTimes {
    pub scheduled_ns: AtomicI64,
    pub issued_ns: AtomicI64,
    /// [`PENDING`] until every sample is complete.
    pub done_ns: AtomicI64,
    pub remaining: AtomicUsize,
}

/// One accuracy-log entry: `{ "seq_id", "qsl_idx", "data" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccuracyEntry {
    pub seq_id: u64,
    pub qsl_idx: QuerySampleIndex,
    pub data: Vec<u8>,
}

/// Which responses go to the accuracy log.
#[derive(Clone, Debug)]
pub(crate) enum AccuracyLogging {
    Off,
    All,
    /// Performance mode: sample `k` is logged when its value, shifted by `offset` and wrapped
    /// into [0, 1), is at most `probability` (`ResponseDelegateDetailed::SampleComplete`).
    Sampled {
        offset: f64,
        probability: f64,
    },
}

/// Shared state of one run: what the issuing thread and every completion write.
pub(crate) struct RunState {
    /// Set by the issuing threads just before the first query (`state->start_time`).
    pub start: OnceLock<Instant>,
    pub plan: Arc<QueryPlan>,
    pub queries: Vec<QueryTimes>,
    /// Query of each plan sample.
    pub sample_query: Vec<u32>,
    pub latencies: Vec<AtomicI64>,
    pub completed: AtomicUsize,
    pub queries_completed: AtomicUsize,
    pub max_completion_ns: AtomicI64,
    pub accuracy: AccuracyLogging,
    pub accuracy_entries: Mutex<Vec<AccuracyEntry>>,
    pub response_errors: Mutex<Vec<String>>,
    pub signal: Mutex<()>,
    pub cv: Condvar,
    /// Threads blocked in a wait; completions skip the condition variable when there are none
    /// (the Server's completions never have a waiter, and a wake-up costs a system call).
    waiters: AtomicUsize,
}

impl RunState {
    pub fn new(plan: Arc<QueryPlan>, accuracy: AccuracyLogging) -> Self {
        let queries = (0..plan.len())
            .map(|q| QueryTimes {
                scheduled_ns: AtomicI64::new(0),
                issued_ns: AtomicI64::new(0),
                done_ns: AtomicI64::new(PENDING),
                remaining: AtomicUsize::new(plan.query(q).len()),
            })
            .collect();
        let mut sample_query = Vec::with_capacity(plan.samples.len());
        for q in 0..plan.len() {
            sample_query.extend(std::iter::repeat_n(q as u32, plan.query(q).len()));
        }
        let latencies = (0..plan.samples.len())
            .map(|_| AtomicI64::new(PENDING))
            .collect();
        RunState {
            start: OnceLock::new(),
            plan,
            queries,
            sample_query,
            latencies,
            completed: AtomicUsize::new(0),
            queries_completed: AtomicUsize::new(0),
            max_completion_ns: AtomicI64::new(0),
            accuracy,
            accuracy_entries: Mutex::new(Vec::new()),
            response_errors: Mutex::new(Vec::new()),
            signal: Mutex::new(()),
            cv: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Starts the run's clock (the first caller wins); returns the start.
    pub fn start_clock(&self) -> Instant {
        *self.start.get_or_init(Instant::now)
    }

    /// ns since the run's start.
    pub fn now_ns(&self) -> i64 {
        self.start_clock().elapsed().as_nanos() as i64
    }

    fn logs_sample(&self, k: usize) -> bool {
        match self.accuracy {
            AccuracyLogging::Off => false,
            AccuracyLogging::All => true,
            AccuracyLogging::Sampled {
                offset,
                probability,
            } => {
                let v = self.plan.accuracy_log_vals.get(k).copied().unwrap_or(1.0) + offset;
                let v = if v < 1.0 { v } else { v - 1.0 };
                v <= probability
            }
        }
    }

    /// Wakes the waiters, if any. The completion path stores its results (`done_ns`,
    /// `completed`) before reading `waiters`, and a waiter registers before reading them, all
    /// sequentially consistent: either the completion sees the waiter or the waiter sees the
    /// completion.
    fn notify(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        let _guard = self.signal.lock().unwrap_or_else(|e| e.into_inner());
        self.cv.notify_all();
    }

    /// Blocks until `done()` holds; `false` when `stall` passes without any completion.
    fn wait_for(&self, done: impl Fn() -> bool, stall: Duration) -> bool {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.signal.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = self.completed.load(Ordering::SeqCst);
        let mut since = Instant::now();
        let finished = loop {
            if done() {
                break true;
            }
            guard = self
                .cv
                .wait_timeout(guard, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            let now = self.completed.load(Ordering::SeqCst);
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= stall {
                break done();
            }
        };
        drop(guard);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        finished
    }

    /// Blocks until query `q` is complete; `false` when `stall` passes without any completion.
    pub fn wait_query_done(&self, q: usize, stall: Duration) -> bool {
        let done = || self.queries[q].done_ns.load(Ordering::SeqCst) != PENDING;
        self.wait_for(done, stall)
    }

    /// Blocks until `expected` samples are complete, or `stall` passes with no completion.
    /// Returns the number complete.
    pub fn wait_completed(&self, expected: usize, stall: Duration) -> usize {
        self.wait_for(|| self.completed.load(Ordering::SeqCst) >= expected, stall);
        self.completed.load(Ordering::SeqCst)
    }

    fn record_error(&self, message: String) {
        let mut errors = self
            .response_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        errors.push(message);
    }

    /// One response, timestamped at `now_ns`.
    fn complete_one(&self, r: &QuerySampleResponse<'_>, now_ns: i64) {
        let Some(k) =
            r.id.checked_sub(self.plan.first_sample_id)
                .map(|k| k as usize)
                .filter(|&k| k < self.latencies.len())
        else {
            self.record_error(format!(
                "the SUT completed response id {} that this run never issued",
                r.id
            ));
            return;
        };
        let q = self.sample_query[k] as usize;
        let times = &self.queries[q];
        let latency = now_ns - times.scheduled_ns.load(Ordering::Acquire);
        if self.latencies[k]
            .compare_exchange(PENDING, latency, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.record_error(format!(
                "the SUT completed response id {} (sample {}) twice; the second is ignored",
                r.id, self.plan.samples[k]
            ));
            return;
        }
        if self.logs_sample(k) {
            let mut entries = self
                .accuracy_entries
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            entries.push(AccuracyEntry {
                seq_id: r.id,
                qsl_idx: self.plan.samples[k],
                data: r.data.to_vec(),
            });
        }
        self.max_completion_ns.fetch_max(now_ns, Ordering::AcqRel);
        let mut wake = false;
        if times.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            times.done_ns.store(now_ns, Ordering::SeqCst);
            self.queries_completed.fetch_add(1, Ordering::AcqRel);
            wake = true;
        }
        self.completed.fetch_add(1, Ordering::SeqCst);
        if wake {
            self.notify();
        }
    }
}

/// The completion handle the SUT reports through (`QuerySamplesComplete`). Cheap to clone and
/// safe to use from any thread.
#[derive(Clone)]
pub struct Completer {
    state: Arc<RunState>,
}

impl Completer {
    pub(crate) fn new(state: Arc<RunState>) -> Self {
        Completer { state }
    }

    /// Reports finished samples. The completion time is taken once, on entry, for all of them.
    /// An id this run did not issue, or one completed before, is counted as an error of the run
    /// and otherwise ignored.
    pub fn complete(&self, responses: &[QuerySampleResponse<'_>]) {
        let now_ns = self.state.now_ns();
        for r in responses {
            self.state.complete_one(r, now_ns);
        }
    }

    /// The instant this run's schedule counts from: a Server query scheduled at `d` is never
    /// issued before `schedule_origin() + d`.
    pub fn schedule_origin(&self) -> Instant {
        self.state.start_clock()
    }

    /// Whether the response data of `id` will be written to the accuracy log (always in
    /// accuracy mode; in performance mode only for the samples LoadGen's sampling picks). A SUT
    /// may skip serializing its output when this is false.
    pub fn wants_response_data(&self, id: ResponseId) -> bool {
        id.checked_sub(self.state.plan.first_sample_id)
            .map(|k| k as usize)
            .filter(|&k| k < self.state.latencies.len())
            .is_some_and(|k| self.state.logs_sample(k))
    }
}
