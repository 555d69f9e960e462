"""Shared pieces of the LoadGen side-by-side scripts in tools/loadgen/.

* `run_loadgen(...)`: runs the real LoadGen (mlcommons-loadgen==6.0.17, imported as
  `mlperf_loadgen`) with a replaying or no-op Python SUT, in this process.
* `run_detbench(...)`: runs the same test through detbench-loadgen's `replay` example binary.
* `read_loadgen_logs(dir)`: LoadGen's summary, detail-log records and per-sample trace records.

The replaying SUT is the same on both sides: one FIFO worker; query q (in issue order) starts
when it is issued or when query q-1 finished, whichever is later, and takes latencies[q % n];
an Offline query takes latencies[k % n] for its k-th sample, one after another, each completed
on its own. The worker sleeps until 200 us before a deadline and spins the rest.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOADGEN_VERSION = "6.0.17"

SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = ("SubmissionRun", "AccuracyOnly", "PerformanceOnly", "FindPeakPerformance")


def import_loadgen():
    try:
        import mlperf_loadgen as lg  # noqa: F401  (mlcommons_loadgen registers this alias)
    except ImportError:
        import mlcommons_loadgen  # noqa: F401
        import mlperf_loadgen as lg
    return lg


def wait_until_ns(deadline):
    """Sleep until 200 us before `deadline` (perf_counter_ns), then spin."""
    while True:
        left = deadline - time.perf_counter_ns()
        if left <= 0:
            return
        if left > 200_000:
            time.sleep((left - 200_000) / 1e9)


class ReplaySUT:
    """The replaying SUT (see the module docstring); `complete(samples)` reports to LoadGen."""

    def __init__(self, latencies, offline, complete):
        self.latencies = latencies
        self.offline = offline
        self.complete = complete
        self.queue = deque()
        self.cv = threading.Condition()
        self.worker = threading.Thread(target=self._run, daemon=True)
        self.worker.start()

    def issue(self, samples):
        with self.cv:
            self.queue.append((list(samples), time.perf_counter_ns()))
            self.cv.notify()

    def stop(self):
        with self.cv:
            self.queue.append(None)
            self.cv.notify()
        self.worker.join()

    def _run(self):
        lat, n = self.latencies, len(self.latencies)
        nxt, free_at = 0, time.perf_counter_ns()
        while True:
            with self.cv:
                while not self.queue:
                    self.cv.wait()
                job = self.queue.popleft()
            if job is None:
                return
            samples, issued = job
            start = max(issued, free_at)
            if self.offline:
                for s in samples:
                    start += lat[nxt % n]
                    nxt += 1
                    wait_until_ns(start)
                    self.complete([s])
            else:
                start += lat[nxt % n]
                nxt += 1
                wait_until_ns(start)
                self.complete(samples)
            free_at = start


def make_settings(lg, fields):
    """A lg.TestSettings from a dict of LoadGen field names (the same JSON detbench reads)."""
    s = lg.TestSettings()
    for key, value in fields.items():
        if key == "scenario":
            value = getattr(lg.TestScenario, value)
        elif key == "mode":
            value = getattr(lg.TestMode, value)
        elif key == "server_target_latency_ns":
            value = int(value)
        setattr(s, key, value)
    return s


def run_loadgen(fields, total, performance, outdir, latencies=None, enable_trace=True):
    """Runs LoadGen in this process with the replaying SUT (or a no-op one without latencies)."""
    lg = import_loadgen()
    os.makedirs(outdir, exist_ok=True)
    # The worker spins in Python holding the GIL; let LoadGen's issuing callback in quickly.
    sys.setswitchinterval(5e-5)

    def complete(samples):
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

    replay = None
    if latencies is None:
        def issue(samples):
            complete(samples)
    else:
        replay = ReplaySUT(latencies, fields.get("scenario") == "Offline", complete)
        issue = replay.issue
    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(total, performance, lambda s: None, lambda s: None)
    log = lg.LogSettings()
    log.log_output.outdir = outdir
    log.enable_trace = enable_trace
    t0 = time.time()
    lg.StartTestWithLogSettings(sut, qsl, make_settings(lg, fields), log, "")
    wall = time.time() - t0
    if replay is not None:
        replay.stop()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)
    return wall


def detbench_binary():
    return os.path.join(ROOT, "target", "release", "examples", "replay")


def build_detbench():
    subprocess.run(
        ["cargo", "build", "--release", "-p", "detbench-loadgen", "--example", "replay"],
        cwd=ROOT, check=True)


def run_detbench(fields, total, performance, outdir, latencies=None, extra=()):
    """Runs the same test through detbench-loadgen (the replay example), in a subprocess."""
    os.makedirs(outdir, exist_ok=True)
    settings_path = os.path.join(outdir, "settings.json")
    with open(settings_path, "w") as f:
        json.dump(fields, f)
    # LoadGen's Python binding names every SUT "PySUT"; use the same name so the two
    # summaries differ only where the measurements do.
    cmd = [detbench_binary(), "--settings", settings_path, "--total", str(total),
           "--performance", str(performance), "--outdir", outdir, "--sut-name", "PySUT", *extra]
    if latencies is None:
        cmd.append("--noop")
    else:
        lat_path = os.path.join(outdir, "latencies.txt")
        with open(lat_path, "w") as f:
            f.write("\n".join(str(int(x)) for x in latencies) + "\n")
        cmd += ["--latencies", lat_path]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    wall = time.time() - t0
    with open(os.path.join(outdir, "outcome.json")) as f:
        return json.load(f), wall


_SAMPLE = re.compile(
    r'\{"name":"Sample","cat":"default","ph":"b","pid":\d+,"id":\d+,"ts":([0-9.]+),'
    r'"args":\{"sample_seq":(\d+),"query_seq":(\d+),"sample_idx":(\d+),'
    r'"issue_start_ns":(-?\d+),"complete_ns":(-?\d+)\}\}')


def read_loadgen_logs(outdir):
    """LoadGen's outputs: summary text, detail records {key: [values]}, accuracy entries and the
    trace's per-sample records (ts_us, sample_seq, query_seq, sample_idx, issue_ns, latency_ns),
    sorted by sample_seq."""
    with open(os.path.join(outdir, "mlperf_log_summary.txt")) as f:
        summary = f.read()
    detail = {}
    with open(os.path.join(outdir, "mlperf_log_detail.txt")) as f:
        for line in f:
            if line.startswith(":::MLLOG "):
                rec = json.loads(line[len(":::MLLOG "):])
                detail.setdefault(rec["key"], []).append(rec["value"])
    with open(os.path.join(outdir, "mlperf_log_accuracy.json")) as f:
        accuracy = json.load(f)
    samples = []
    trace = os.path.join(outdir, "mlperf_log_trace.json")
    if os.path.exists(trace):
        with open(trace) as f:
            for m in _SAMPLE.finditer(f.read()):
                ts, seq, qseq, idx, issue, lat = m.groups()
                samples.append((float(ts), int(seq), int(qseq), int(idx), int(issue), int(lat)))
    samples.sort(key=lambda r: r[1])
    return {"summary": summary, "detail": detail, "accuracy": accuracy, "samples": samples}


RESULT_KEYS = ("result_validity", "result_perf_constraints_met", "result_min_duration_met",
               "result_min_queries_met", "early_stopping_met", "result_query_count",
               "result_overlatency_query_count", "early_stopping_latency_ss",
               "early_stopping_latency_ms", "result_min_latency_ns", "result_max_latency_ns",
               "result_mean_latency_ns", "num_errors", "num_warnings")


def loadgen_record(outdir, fields, total, perf):
    """What a LoadGen run chose and measured, from its logs: the golden-fixture record that
    crates/loadgen/tests/loadgen_goldens.rs and the `loadgen_stats` example read."""
    logs = read_loadgen_logs(outdir)
    d = logs["detail"]
    samples = logs["samples"]
    first_ts = samples[0][0] if samples else 0.0
    # Times from the trace (ts in us with ns resolution, relative to the trace's origin). The
    # first query's scheduled time is the run's start for Server and Offline, and within a
    # microsecond or so of it for SingleStream and MultiStream.
    by_query = {}
    for ts, _seq, qseq, _idx, issue, lat in samples:
        q = by_query.setdefault(qseq, {"ts": ts, "issue": issue, "done": lat})
        q["done"] = max(q["done"], lat)
    queries = [by_query[k] for k in sorted(by_query)]
    rec = {
        "settings": fields,
        "total_sample_count": total,
        "performance_sample_count": perf,
        "loaded_qsl_set": d.get("loaded_qsl_set", []),
        "generated_query_count": d.get("generated_query_count", []),
        "generated_query_duration": d.get("generated_query_duration", []),
        "sample_idx": [s[3] for s in samples],
        "sample_query": [s[2] for s in samples],
        "latency_ns": [s[5] for s in samples],
        "issue_delay_ns": [s[4] for s in samples],
        "summary": logs["summary"],
        "results": {k: d[k][0] for k in RESULT_KEYS if k in d},
    }
    if queries:
        final = queries[-1]
        rec["final_query_issued_ns"] = round((final["ts"] - first_ts) * 1000) + final["issue"]
        rec["final_query_done_ns"] = round((final["ts"] - first_ts) * 1000) + final["done"]
    return rec


def lognormal_latencies(n, median_ns, sigma, seed):
    """A fixed latency sequence: lognormal around `median_ns`, from numpy's seeded generator."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.round(median_ns * np.exp(sigma * rng.standard_normal(n)))]


def percentile_index(sorted_values, p):
    """LoadGen's percentile: sorted[int(n * p)]."""
    return sorted_values[min(int(len(sorted_values) * p), len(sorted_values) - 1)]
