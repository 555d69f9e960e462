//! A synthetic system under test for the side-by-side runs against LoadGen
//! (`tools/loadgen/`): it replays a fixed latency sequence, or answers at once (`--noop`).
//!
//! ```text
//! replay --settings settings.json --total N --performance N --outdir DIR
//!        [--latencies latencies.txt] [--noop] [--sut-name NAME] [--max-spin-ns NS]
//!        [--timer-slack-ns NS]
//! ```
//!
//! `settings.json` holds LoadGen `TestSettings` fields by name (missing ones keep LoadGen's
//! defaults). `latencies.txt` holds one latency in ns per line. Queries are served first in,
//! first out by one worker: query `q` (in issue order) starts when it is issued or when query
//! `q - 1` finishes, whichever is later, and takes `latency[q % len]`; an Offline query takes
//! `latency[k % len]` for its `k`-th sample, one after another, each completed on its own.
//! The Python side (`tools/loadgen/replay_sut.py`) does the same under LoadGen.
//!
//! Writes LoadGen's three logs and `outcome.json` (the typed outcome) into `--outdir`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use detbench_loadgen::*;

struct Args {
    settings: PathBuf,
    latencies: Option<PathBuf>,
    total: usize,
    performance: usize,
    outdir: PathBuf,
    noop: bool,
    name: String,
    options: HarnessOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        settings: PathBuf::new(),
        latencies: None,
        total: 0,
        performance: 0,
        outdir: PathBuf::from("."),
        noop: false,
        name: "Replay".into(),
        options: HarnessOptions::default(),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--settings" => a.settings = value()?.into(),
            "--latencies" => a.latencies = Some(value()?.into()),
            "--total" => a.total = num(value()?)? as usize,
            "--performance" => a.performance = num(value()?)? as usize,
            "--outdir" => a.outdir = value()?.into(),
            "--noop" => a.noop = true,
            "--sut-name" => a.name = value()?,
            "--max-spin-ns" => a.options.max_spin_ns = num(value()?)?,
            "--timer-slack-ns" => {
                let v = num(value()?)?;
                a.options.timer_slack_ns = (v > 0).then_some(v);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// Waits until `deadline`: sleeps, then spins the last 200 µs.
fn wait_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > Duration::from_micros(200) {
            std::thread::sleep(left - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

type Job = (Vec<QuerySample>, Instant, Completer);

/// The replaying SUT: one FIFO worker.
struct Replay {
    queue: Arc<(Mutex<VecDeque<Option<Job>>>, Condvar)>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    name: String,
}

impl Replay {
    fn new(latencies: Vec<u64>, offline: bool, name: String) -> Replay {
        let queue: Arc<(Mutex<VecDeque<Option<Job>>>, Condvar)> = Arc::default();
        let q = queue.clone();
        let worker = std::thread::spawn(move || {
            let mut next = 0usize;
            let mut free_at = Instant::now();
            loop {
                let job = {
                    let mut guard = q.0.lock().unwrap();
                    loop {
                        if let Some(job) = guard.pop_front() {
                            break job;
                        }
                        guard = q.1.wait(guard).unwrap();
                    }
                };
                let Some((samples, issued, done)) = job else {
                    return;
                };
                let mut start = issued.max(free_at);
                if offline {
                    for s in &samples {
                        start += Duration::from_nanos(latencies[next % latencies.len()]);
                        next += 1;
                        wait_until(start);
                        done.complete(&[QuerySampleResponse::new(s.id, &[])]);
                    }
                } else {
                    start += Duration::from_nanos(latencies[next % latencies.len()]);
                    next += 1;
                    wait_until(start);
                    let r: Vec<_> = samples
                        .iter()
                        .map(|s| QuerySampleResponse::new(s.id, &[]))
                        .collect();
                    done.complete(&r);
                }
                free_at = start;
            }
        });
        Replay {
            queue,
            worker: Mutex::new(Some(worker)),
            name,
        }
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.queue.0.lock().unwrap().push_back(None);
        self.queue.1.notify_all();
        if let Some(w) = self.worker.lock().unwrap().take() {
            let _ = w.join();
        }
    }
}

impl SystemUnderTest for Replay {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn issue_query(&self, samples: &[QuerySample], completer: &Completer) {
        let job = (samples.to_vec(), Instant::now(), completer.clone());
        self.queue.0.lock().unwrap().push_back(Some(job));
        self.queue.1.notify_one();
    }
}

/// Answers every query inside `issue_query`.
struct Noop(String);

impl SystemUnderTest for Noop {
    fn name(&self) -> String {
        self.0.clone()
    }

    fn issue_query(&self, samples: &[QuerySample], completer: &Completer) {
        let r: Vec<_> = samples
            .iter()
            .map(|s| QuerySampleResponse::new(s.id, &[]))
            .collect();
        completer.complete(&r);
    }
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let text = std::fs::read_to_string(&a.settings)
        .map_err(|e| format!("{}: {e}", a.settings.display()))?;
    let settings: TestSettings =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", a.settings.display()))?;
    check_log_dir(&a.outdir).map_err(|e| e.to_string())?;
    let qsl = InMemoryQsl::new("ReplayQSL", a.total, a.performance, Ok);
    let outcome = if a.noop {
        start_test(&Noop(a.name.clone()), &qsl, &settings, &a.options)
    } else {
        let path = a
            .latencies
            .as_ref()
            .ok_or("--latencies is required without --noop")?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let latencies = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.trim()
                    .parse::<u64>()
                    .map_err(|e| format!("{}: '{l}': {e}", path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if latencies.is_empty() {
            return Err(format!("{}: no latencies", path.display()));
        }
        let sut = Replay::new(
            latencies,
            settings.scenario == Scenario::Offline,
            a.name.clone(),
        );
        start_test(&sut, &qsl, &settings, &a.options)
    }
    .map_err(|e| e.to_string())?;
    outcome
        .write_logs(&a.outdir, &mut |p, b| std::fs::write(p, b))
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&outcome).map_err(|e| e.to_string())?;
    std::fs::write(a.outdir.join("outcome.json"), json).map_err(|e| e.to_string())?;
    if let Some(raw) = &outcome.performance_raw {
        let json = serde_json::to_string(raw).map_err(|e| e.to_string())?;
        std::fs::write(a.outdir.join("raw.json"), json).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("replay: {e}");
        std::process::exit(2);
    }
}
