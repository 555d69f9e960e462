#!/usr/bin/env python3
"""Check (3) of issue 13, harness overhead: the highest Server QPS each harness can schedule
with a no-op SUT while keeping the issue-time jitter's p99 under a bound (100 us).

Issue-time jitter is, per query, the time it was handed to the SUT minus its scheduled time:
LoadGen's `issue_start_ns` (from its trace: `issued_start_time - scheduled_time`, taken after
its `sleep_until` and before the SUT's IssueQuery call), and detbench-loadgen's
`issued - scheduled` (the `replay` example's raw.json). The no-op SUT completes every sample
inside its issue call: in Python for LoadGen (as LoadGen's own perftests_null_sut.py does),
in Rust for detbench.

Harnesses compared (interleaved, --rounds times):
  * loadgen          mlcommons-loadgen 6.0.17 through its Python binding, default settings;
  * detbench         detbench-loadgen's defaults (HarnessOptions::default());
  * detbench-nospin  sleep only, with the 1 ns timer slack (--max-spin-ns 0);
  * detbench-sleep   sleep only with the kernel's default timer slack (--max-spin-ns 0
                     --timer-slack-ns 0): LoadGen's own waiting strategy.

For each harness and round: a geometric QPS ladder up to the first failure, then bisection to
--precision. Prints each round's peak, the median over rounds, and every measured point.

Usage (the venv with mlcommons-loadgen==6.0.17):
    /work/venvs/loadgen/bin/python tools/loadgen/overhead.py [--rounds 3] [--duration-ms 2000]
                                                             [--bound-us 100] [--json OUT]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lg_common as c  # noqa: E402

LADDER = [500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000]
HARNESSES = {
    "loadgen": None,
    "detbench": [],
    "detbench-nospin": ["--max-spin-ns", "0"],
    "detbench-sleep": ["--max-spin-ns", "0", "--timer-slack-ns", "0"],
}


def settings(qps, duration_ms):
    return {"scenario": "Server", "server_target_qps": float(qps), "min_duration_ms": duration_ms,
            "min_query_count": 1, "schedule_rng_seed": 1}


def pct(sorted_values, p):
    return c.percentile_index(sorted_values, p)


def measure(harness, qps, duration_ms, workdir):
    """Issue delays (ns) of one no-op Server run."""
    out = os.path.join(workdir, f"{harness}-{qps}")
    fields = settings(qps, duration_ms)
    if harness == "loadgen":
        c.run_loadgen(fields, 1024, 1024, out, latencies=None)
        delays = [s[4] for s in c.read_loadgen_logs(out)["samples"]]
    else:
        c.run_detbench(fields, 1024, 1024, out, latencies=None, extra=HARNESSES[harness])
        with open(os.path.join(out, "raw.json")) as f:
            delays = json.load(f)["issue_delays"]
    subprocess.run(["rm", "-rf", out], check=True)
    delays.sort()
    return {"qps": qps, "queries": len(delays), "p50_ns": pct(delays, 0.50),
            "p90_ns": pct(delays, 0.90), "p99_ns": pct(delays, 0.99), "max_ns": delays[-1],
            "load1": os.getloadavg()[0]}


def search(harness, duration_ms, bound_ns, precision, workdir, points):
    """Highest QPS (to `precision`, relative) whose p99 issue delay is under the bound."""
    def ok(qps):
        m = measure(harness, qps, duration_ms, workdir)
        m["harness"] = harness
        m["pass"] = m["p99_ns"] < bound_ns
        points.append(m)
        print(f"[overhead] {harness:15s} {qps:>9.0f} qps: p50 {m['p50_ns'] / 1e3:8.1f} us, "
              f"p90 {m['p90_ns'] / 1e3:8.1f} us, p99 {m['p99_ns'] / 1e3:8.1f} us, "
              f"max {m['max_ns'] / 1e3:9.1f} us ({m['queries']} queries, load {m['load1']:.1f}) "
              f"{'pass' if m['pass'] else 'FAIL'}", flush=True)
        return m["pass"]

    lo, hi = None, None
    for qps in LADDER:
        if ok(qps):
            lo = qps
        else:
            hi = qps
            break
    if lo is None:
        return 0.0
    if hi is None:
        return float(lo)
    while hi / lo > 1 + precision:
        mid = (lo * hi) ** 0.5
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration-ms", type=int, default=2000)
    ap.add_argument("--bound-us", type=float, default=100.0)
    ap.add_argument("--precision", type=float, default=0.1,
                    help="stop bisecting when upper/lower < 1 + this (default 0.1)")
    ap.add_argument("--harnesses", default=",".join(HARNESSES))
    ap.add_argument("--json", help="write every measured point here")
    args = ap.parse_args()
    c.build_detbench()
    harnesses = args.harnesses.split(",")
    points, peaks = [], {h: [] for h in harnesses}
    start = datetime.datetime.now().isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            order = harnesses if r % 2 == 0 else list(reversed(harnesses))
            for h in order:
                load = os.getloadavg()[0]
                peak = search(h, args.duration_ms, args.bound_us * 1000, args.precision, workdir, points)
                peaks[h].append(peak)
                print(f"[overhead] round {r + 1} {h}: peak {peak:.0f} qps (1-min load {load:.2f})",
                      flush=True)
    print()
    print(f"Highest Server QPS with issue-delay p99 < {args.bound_us:g} us "
          f"({args.duration_ms} ms per point, {args.rounds} rounds, started {start}, "
          f"{platform.node()}, {os.cpu_count()} CPUs):")
    print()
    print("| harness | peak QPS per round | median |")
    print("|---|---|---|")
    for h in harnesses:
        rounds = ", ".join(f"{p:.0f}" for p in peaks[h])
        print(f"| {h} | {rounds} | {statistics.median(peaks[h]):.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"started": start, "args": vars(args), "peaks": peaks, "points": points}, f, indent=1)


if __name__ == "__main__":
    main()
