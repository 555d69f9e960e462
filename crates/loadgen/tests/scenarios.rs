//! The four scenarios run live against a fake SUT of controlled latency: one FIFO worker that
//! takes a fixed time per query (or per sample), and records what it was given and when. Each
//! test checks a rule LoadGen defines, from the SUT's side where it can.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use detbench_loadgen::effective::EffectiveSettings;
use detbench_loadgen::qsl::generate_loadable_sets;
use detbench_loadgen::schedule::{SequenceGen, generate_queries};
use detbench_loadgen::*;

/// What the fake SUT saw of one query.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    origin: Instant,
    samples: Vec<QuerySample>,
}

type Job = (Vec<QuerySample>, Completer);

/// One worker serving queries first in, first out, `service` per query (per sample when
/// `per_sample`), waiting precisely (sleep, then spin).
struct FakeSut {
    tx: Mutex<Option<Sender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    block_first_issue: Option<Duration>,
}

fn wait(d: Duration) {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(200));
        }
    }
}

impl FakeSut {
    fn new(service: Duration, per_sample: bool) -> FakeSut {
        let (tx, rx) = channel::<Job>();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let flight = in_flight.clone();
        let worker = std::thread::spawn(move || {
            for (samples, done) in rx {
                if per_sample {
                    for s in &samples {
                        wait(service);
                        done.complete(&[QuerySampleResponse::new(s.id, &s.index.to_le_bytes())]);
                    }
                } else {
                    wait(service);
                    let bytes: Vec<[u8; 8]> =
                        samples.iter().map(|s| s.index.to_le_bytes()).collect();
                    let r: Vec<_> = samples
                        .iter()
                        .zip(&bytes)
                        .map(|(s, b)| QuerySampleResponse::new(s.id, b))
                        .collect();
                    // Leave the in-flight count before completing: the next query may be
                    // issued the moment the completion lands.
                    flight.fetch_sub(1, Ordering::SeqCst);
                    done.complete(&r);
                    continue;
                }
                flight.fetch_sub(1, Ordering::SeqCst);
            }
        });
        FakeSut {
            tx: Mutex::new(Some(tx)),
            worker: Mutex::new(Some(worker)),
            seen: Arc::default(),
            in_flight,
            max_in_flight: Arc::default(),
            block_first_issue: None,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeSut {
    fn drop(&mut self) {
        self.tx.lock().unwrap().take();
        if let Some(w) = self.worker.lock().unwrap().take() {
            w.join().unwrap();
        }
    }
}

impl SystemUnderTest for FakeSut {
    fn name(&self) -> String {
        "FakeSut".into()
    }

    fn issue_query(&self, samples: &[QuerySample], completer: &Completer) {
        let at = Instant::now();
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(n, Ordering::SeqCst);
        let first = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(Seen {
                at,
                origin: completer.schedule_origin(),
                samples: samples.to_vec(),
            });
            seen.len() == 1
        };
        if let (true, Some(block)) = (first, self.block_first_issue) {
            std::thread::sleep(block);
        }
        let tx = self.tx.lock().unwrap();
        tx.as_ref()
            .unwrap()
            .send((samples.to_vec(), completer.clone()))
            .unwrap();
    }
}

fn qsl(
    total: usize,
    performance: usize,
) -> InMemoryQsl<usize, impl Fn(usize) -> Result<usize, QslError>> {
    InMemoryQsl::new("test", total, performance, Ok)
}

fn run(sut: &FakeSut, settings: &TestSettings, total: usize, performance: usize) -> TestOutcome {
    start_test(
        sut,
        &qsl(total, performance),
        settings,
        &HarnessOptions::default(),
    )
    .unwrap()
}

fn server(qps: f64, duration_ms: u64) -> TestSettings {
    let mut s = TestSettings::new(Scenario::Server);
    s.server_target_qps = qps;
    s.min_duration_ms = duration_ms;
    s.min_query_count = 1;
    s.schedule_rng_seed = 7;
    s
}

#[test]
fn server_arrivals_are_poisson_at_the_target_rate() {
    // The generated schedules, for several seeds: N arrivals in T seconds is Poisson(qps T),
    // and the gaps are exponential (mean 1/qps, P[gap > mean] = 1/e).
    for seed in [0u64, 1, 2, 16_159_082_839_903_944_936] {
        let mut req = server(1000.0, 20_000);
        req.schedule_rng_seed = seed;
        let s = EffectiveSettings::new(&req, 16, 16);
        let set = &generate_loadable_sets(&s, 16, 16)[0];
        let plan = generate_queries(
            &s,
            TestMode::PerformanceOnly,
            set,
            &mut SequenceGen::default(),
        );
        let expected = 1000.0 * 20.0;
        let n = (plan.len() - 1) as f64;
        assert!(
            (n - expected).abs() < 4.0 * expected.sqrt(),
            "seed {seed}: {n} arrivals"
        );
        let gaps: Vec<f64> = plan
            .scheduled_delta_ns
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64)
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!(
            (mean - 1e6).abs() < 4.0 * 1e6 / (gaps.len() as f64).sqrt(),
            "seed {seed}: mean gap {mean}"
        );
        let over = gaps.iter().filter(|&&g| g > 1e6).count() as f64 / gaps.len() as f64;
        let p = (-1.0f64).exp();
        let sd = (p * (1.0 - p) / gaps.len() as f64).sqrt();
        assert!(
            (over - p).abs() < 4.0 * sd,
            "seed {seed}: P[gap > mean] = {over}"
        );
    }
    // And the issued queries, as the SUT saw them, arrive at that rate.
    let sut = FakeSut::new(Duration::from_micros(100), false);
    let out = run(&sut, &server(500.0, 2000), 16, 16);
    let seen = sut.seen();
    let span = (seen.last().unwrap().at - seen[0].at).as_secs_f64();
    let rate = (seen.len() - 1) as f64 / span;
    let expected_n = 500.0 * span;
    assert!(
        ((seen.len() - 1) as f64 - expected_n).abs() < 4.0 * expected_n.sqrt(),
        "issued rate {rate}/s over {span} s"
    );
    assert_eq!(out.performance.unwrap().query_count, seen.len() as u64);
}

#[test]
fn no_query_is_issued_before_its_time() {
    let req = server(800.0, 1000);
    let sut = FakeSut::new(Duration::from_micros(200), false);
    let out = run(&sut, &req, 16, 16);
    // Regenerate LoadGen's schedule for these settings and compare with the SUT's own clock.
    let s = EffectiveSettings::new(&req, 16, 16);
    let set = &generate_loadable_sets(&s, 16, 16)[0];
    let plan = generate_queries(
        &s,
        TestMode::PerformanceOnly,
        set,
        &mut SequenceGen::default(),
    );
    let seen = sut.seen();
    assert_eq!(seen.len(), plan.len());
    let mut late = Vec::new();
    for (q, seen) in seen.iter().enumerate() {
        let since = seen.at.duration_since(seen.origin).as_nanos() as i64;
        assert!(
            since >= plan.scheduled_delta_ns[q],
            "query {q} reached the SUT {} ns before its time",
            plan.scheduled_delta_ns[q] - since
        );
        assert_eq!(seen.samples.len(), 1);
        late.push(since - plan.scheduled_delta_ns[q]);
    }
    let r = out.performance.clone().unwrap();
    let delay = r.issue_delay.unwrap();
    assert!(delay.min_ns >= 0);
    late.sort_unstable();
    // Not a timing benchmark (tools/loadgen/overhead.py is), only a sanity bound that holds
    // on a busy 2-core machine: the median query reaches the SUT within 5 ms of its time.
    assert!(
        late[late.len() / 2] < 5_000_000,
        "median lateness {} ns",
        late[late.len() / 2]
    );
}

#[test]
fn server_keeps_issuing_on_schedule_while_the_sut_falls_behind() {
    // 400 queries/s into a SUT that serves 200/s: the backlog grows, the schedule does not.
    let mut req = server(400.0, 1500);
    req.server_target_latency_ns = 20_000_000;
    let sut = FakeSut::new(Duration::from_millis(5), false);
    let out = run(&sut, &req, 16, 16);
    let r = out.performance.clone().unwrap();
    assert!(
        r.sample_latency.max_ns > 500_000_000,
        "{:?}",
        r.sample_latency
    );
    // The backlog reaches ~750 ms (1.5 s of arrivals at twice the service rate); the issue
    // delays stay far below it (a loose bound: CI machines are busy).
    let delay = r.issue_delay.unwrap();
    assert!(delay.reported(0.99).unwrap() < 20_000_000, "{delay:?}");
    assert_eq!(r.validity, Validity::Invalid);
    assert_eq!(r.perf_constraints_met, Some(false));
    assert!(
        out.summary_text()
            .contains("  Performance constraints satisfied : NO")
    );
}

#[test]
fn single_and_multi_stream_never_overlap_queries() {
    for scenario in [Scenario::SingleStream, Scenario::MultiStream] {
        let mut req = TestSettings::new(scenario);
        req.min_duration_ms = 200;
        req.min_query_count = 50;
        // The expected latency sizes the pre-generated schedule (2 x min_duration of it); a
        // SUT faster than expected runs out of queries, as in LoadGen.
        req.single_stream_expected_latency_ns = 1e6;
        req.multi_stream_expected_latency_ns = 1e6;
        let sut = FakeSut::new(Duration::from_millis(1), false);
        let out = run(&sut, &req, 40, 40);
        assert_eq!(sut.max_in_flight.load(Ordering::SeqCst), 1, "{scenario}");
        let seen = sut.seen();
        let r = out.performance.clone().unwrap();
        assert_eq!(r.query_count, seen.len() as u64);
        assert!(r.query_count >= 50);
        let per_query = if scenario == Scenario::MultiStream {
            8
        } else {
            1
        };
        assert!(seen.iter().all(|q| q.samples.len() == per_query));
        // Each latency is the 1 ms service time plus overhead, never less.
        assert!(
            r.sample_latency.min_ns >= 1_000_000,
            "{:?}",
            r.sample_latency
        );
        assert!(r.min_duration_met && r.min_queries_met, "{scenario}: {r:?}");
    }
}

#[test]
fn offline_covers_every_sample() {
    let mut req = TestSettings::new(Scenario::Offline);
    req.min_duration_ms = 100;
    req.min_query_count = 100;
    req.offline_expected_qps = 10.0;
    let sut = FakeSut::new(Duration::from_micros(300), true);
    let out = run(&sut, &req, 37, 37);
    let seen = sut.seen();
    assert_eq!(seen.len(), 1, "one query");
    let samples = &seen[0].samples;
    assert_eq!(samples.len(), 100);
    let indices: BTreeSet<usize> = samples.iter().map(|s| s.index).collect();
    assert_eq!(indices, (0..37).collect());
    let r = out.performance.clone().unwrap();
    assert_eq!(r.sample_count, 100);
    let sps = r.samples_per_second.unwrap();
    assert!(sps < 1.0 / 300e-6, "at most one sample per 300 µs: {sps}");
}

#[test]
fn accuracy_mode_issues_every_sample_and_logs_every_response() {
    for scenario in Scenario::ALL {
        let mut req = TestSettings::new(scenario);
        req.mode = TestMode::AccuracyOnly;
        // Server accuracy runs keep the Poisson schedule (LoadGen's too): at the default
        // 1 query/s, 45 samples would take 45 s.
        req.server_target_qps = 2000.0;
        let sut = FakeSut::new(Duration::from_micros(50), scenario == Scenario::Offline);
        let out = run(&sut, &req, 45, 20);
        assert!(out.performance.is_none());
        let logged: BTreeSet<usize> = out.accuracy_log.iter().map(|e| e.qsl_idx).collect();
        assert_eq!(logged, (0..45).collect(), "{scenario}");
        for e in &out.accuracy_log {
            assert_eq!(
                e.data,
                e.qsl_idx.to_le_bytes(),
                "{scenario}: response data kept"
            );
        }
        assert!(out.accuracy_samples_issued.unwrap() >= 45);
        let dir = tempfile::tempdir().unwrap();
        out.write_logs(dir.path(), &mut |p, b| std::fs::write(p, b))
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("mlperf_log_accuracy.json")).unwrap();
        assert_eq!(parse_accuracy_log(&text).unwrap(), out.accuracy_log);
        let summary = std::fs::read_to_string(dir.path().join("mlperf_log_summary.txt")).unwrap();
        assert_eq!(
            summary,
            "\nNo warnings encountered during test.\n\nNo errors encountered during test.\n"
        );
    }
}

#[test]
fn server_coalesces_overdue_queries_when_asked() {
    let mut req = server(1000.0, 300);
    req.server_coalesce_queries = true;
    let mut sut = FakeSut::new(Duration::from_micros(50), false);
    sut.block_first_issue = Some(Duration::from_millis(30));
    let out = run(&sut, &req, 16, 16);
    let seen = sut.seen();
    let total: usize = seen.iter().map(|q| q.samples.len()).sum();
    assert!(
        seen.iter().any(|q| q.samples.len() > 5),
        "the queries due during the block come together"
    );
    let r = out.performance.clone().unwrap();
    assert_eq!(
        r.query_count as usize, total,
        "a coalesced query still counts each query"
    );
    assert!(seen.len() < total);
}

#[test]
fn server_spreads_queries_over_several_issuing_threads() {
    let mut req = server(600.0, 500);
    req.server_num_issue_query_threads = 2;
    let sut = FakeSut::new(Duration::from_micros(100), false);
    let out = run(&sut, &req, 16, 16);
    let r = out.performance.clone().unwrap();
    assert_eq!(r.query_count, sut.seen().len() as u64);
    assert!(sut.seen().iter().all(|q| q.at >= q.origin));
}

/// A SUT that answers badly: twice, or never.
struct Misbehaving {
    twice: bool,
}

impl SystemUnderTest for Misbehaving {
    fn name(&self) -> String {
        "Misbehaving".into()
    }

    fn issue_query(&self, samples: &[QuerySample], completer: &Completer) {
        let r: Vec<_> = samples
            .iter()
            .map(|s| QuerySampleResponse::new(s.id, &[]))
            .collect();
        if self.twice {
            completer.complete(&r);
            completer.complete(&r);
            completer.complete(&[QuerySampleResponse::new(u64::MAX, &[])]);
        }
    }
}

#[test]
fn a_sut_that_never_answers_is_reported_not_waited_for() {
    let mut req = TestSettings::new(Scenario::SingleStream);
    req.min_duration_ms = 10;
    req.min_query_count = 1;
    let options = HarnessOptions {
        stall_timeout: Duration::from_millis(300),
        ..HarnessOptions::default()
    };
    let err = start_test(&Misbehaving { twice: false }, &qsl(4, 4), &req, &options).unwrap_err();
    match err {
        LoadgenError::SutStalled { outstanding, .. } => assert_eq!(outstanding, 1),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn duplicate_and_unknown_responses_are_errors_of_the_run() {
    let mut req = TestSettings::new(Scenario::Offline);
    req.min_duration_ms = 0;
    req.min_query_count = 10;
    let out = start_test(
        &Misbehaving { twice: true },
        &qsl(4, 4),
        &req,
        &HarnessOptions::default(),
    )
    .unwrap();
    let errors: Vec<String> = out.errors().map(|e| e.value.to_string()).collect();
    assert_eq!(errors.len(), 11, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("twice")));
    assert!(errors.iter().any(|e| e.contains("never issued")));
    assert!(
        out.summary_text()
            .ends_with("\n11 ERRORS encountered. See detailed log.\n")
    );
}

#[test]
fn bad_settings_fail_before_any_query() {
    let mut req = TestSettings::new(Scenario::MultiStream);
    req.multi_stream_samples_per_query = 9;
    let sut = FakeSut::new(Duration::from_micros(10), false);
    let err = start_test(&sut, &qsl(8, 8), &req, &HarnessOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("multi_stream_samples_per_query"),
        "{err}"
    );
    assert!(sut.seen().is_empty());
}

#[test]
fn find_peak_performance_brackets_the_sut_capacity() {
    // One worker at 2 ms per query serves at most 500 queries/s; with a 20 ms bound at p99 the
    // peak lies below that.
    let mut req = server(100.0, 400);
    req.mode = TestMode::FindPeakPerformance;
    req.server_target_latency_ns = 20_000_000;
    req.server_find_peak_qps_decimals_of_precision = 0;
    let sut = FakeSut::new(Duration::from_millis(2), false);
    let out = run(&sut, &req, 16, 16);
    let steps = &out.peak_search;
    assert_eq!(steps[0].phase, "base");
    assert_eq!(steps[0].target_qps, 100.0);
    assert!(steps.iter().any(|s| !s.perf_constraints_met), "{steps:?}");
    let r = out.performance.clone().unwrap();
    assert_eq!(r.mode, TestMode::FindPeakPerformance);
    assert_eq!(r.perf_constraints_met, Some(true));
    let peak = r.settings.target_qps;
    assert!(
        (100.0..=520.0).contains(&peak),
        "peak {peak} for a 500/s SUT; {steps:?}"
    );
    let failed_min = steps
        .iter()
        .filter(|s| !s.perf_constraints_met)
        .map(|s| s.target_qps)
        .fold(f64::INFINITY, f64::min);
    // Bisection stops when floor(lower) + 1 >= floor(upper).
    assert!(
        peak < failed_min && failed_min - peak < 2.0,
        "{peak} vs {failed_min}"
    );
    assert!(
        out.summary_text()
            .contains("Mode     : FindPeakPerformance")
    );
}

#[test]
fn a_sut_faster_than_expected_runs_out_of_queries_as_in_loadgen() {
    // MultiStream pre-generates 2 x min_duration at the expected latency (8 ms by default):
    // 501 queries for 2 s. A 1 ms SUT issues them all in ~0.6 s and the run ends early.
    let mut req = TestSettings::new(Scenario::MultiStream);
    req.min_duration_ms = 2000;
    req.min_query_count = 50;
    let sut = FakeSut::new(Duration::from_millis(1), false);
    let out = run(&sut, &req, 40, 40);
    let r = out.performance.clone().unwrap();
    assert_eq!(r.query_count, 501);
    assert!(!r.min_duration_met);
    assert_eq!(r.validity, Validity::Invalid);
    let errors: Vec<_> = out.errors().collect();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .value
            .as_str()
            .unwrap()
            .starts_with("Ending early: Ran out of generated queries")
    );
    let summary = out.summary_text();
    assert!(
        summary.contains(
            " * Decrease the expected latency so the loadgen pre-generates more queries."
        )
    );
    assert!(
        summary.ends_with("\n1 ERROR encountered. See detailed log.\n"),
        "{summary}"
    );
}
