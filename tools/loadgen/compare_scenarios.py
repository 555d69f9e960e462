#!/usr/bin/env python3
"""Check (2) of issue 13, the real model: YOLOX-Nano through ONNX Runtime (onnxruntime 1.31.1,
--threads intra-op threads on both sides) in all four LoadGen scenarios, two tools interleaved:

  * loadgen   the real LoadGen (mlcommons-loadgen==6.0.17) driving the Python onnxruntime SUT of
              tools/loadgen/python_sut.py (the reference pipeline of ../shared/tools/reference;
              one FIFO worker, one sample per call);
  * detbench  `detbench run --scenario ...` (detbench-loadgen; one SUT worker, batch 1: YOLOX-Nano's
              ONNX graph has a fixed batch of 1).

Same images (the 206-image subset, all held in memory), same seeds (LoadGen's defaults), same
settings per scenario (below), same warm-up (10 untimed calls), both tools in their own process.
Each round runs every scenario with both tools back to back, the order alternating between
rounds; the peak Server QPS is each tool's own FindPeakPerformance search (LoadGen's mode 3 on
the Python side, `--find-peak-qps` on detbench's) from the same base QPS.

Every figure comes from the tool's own logs:
  * the verdict and the rates from its mlperf_log_summary.txt (same layout on both sides):
    SingleStream "QPS w/ loadgen overhead"; MultiStream samples per query / mean query latency
    (queries run back to back); Offline "Samples per second"; Server "Completed samples per
    second"; the peak: the target_qps of FindPeakPerformance's final summary, when its base run
    met the latency bound;
  * the raw latencies (ns): LoadGen's trace (mlperf_log_trace.json: every sample's latency;
    a MultiStream query's latency is its slowest sample's) and detbench's results.json
    (`scenario.sample_latencies_ns`, `scenario.query_latencies_ns`). The table pools them
    over the rounds (p10/p50/p90/p99 as LoadGen picks them: sorted[floor(n*p)]).

Usage (a Python with mlcommons-loadgen, onnxruntime, opencv, numpy, pycocotools):
    python tools/loadgen/compare_scenarios.py --detbench target/release/detbench \
        [--rounds 3] [--duration-ms 8000] [--json docs/cpu/loadgen_scenarios_DATE.json]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import lg_common as c  # noqa: E402

SCENARIOS = ["single-stream", "multi-stream", "offline", "server", "server-peak"]
TOOLS = ("loadgen", "detbench")


def parse_summary(path):
    """The numbers of an mlperf_log_summary.txt: top-level fields (first occurrence), and the
    latency stats block (the per-query block for MultiStream)."""
    out = {"latency": {}}
    with open(path) as f:
        for line in f:
            if ":" not in line or line.startswith("="):
                continue
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key.endswith("percentile latency (ns)") or key in (
                    "Min latency (ns)", "Max latency (ns)", "Mean latency (ns)"):
                # SingleStream/MultiStream's result line ("90th ...", "99.0th ...") differs in
                # name from the stats block's ("90.00 ..."), so both are kept.
                out["latency"][key] = int(value)
            else:
                out.setdefault(key, value)
    return out


def figures(scenario, s):
    """The summary's verdict and rate, and its own p90/p99 (ms)."""
    lat = s["latency"]
    p90 = lat.get("90.00 percentile latency (ns)")
    p99 = lat.get("99.00 percentile latency (ns)")
    if scenario == "single-stream":
        rate = float(s["QPS w/ loadgen overhead"])
    elif scenario == "multi-stream":
        rate = float(s["samples_per_query"]) * 1e9 / lat["Mean latency (ns)"]
    elif scenario == "offline":
        rate = float(s["Samples per second"])
    else:
        rate = float(s["Completed samples per second"])
    out = {"p90_ms": p90 / 1e6 if p90 else None, "p99_ms": p99 / 1e6 if p99 else None,
           "samples_per_s": rate, "result": s.get("Result is"),
           "not_satisfied": sorted(k for k, v in s.items()
                                   if isinstance(v, str) and v.upper() == "NO")}
    if scenario == "server-peak":
        met = s.get("Performance constraints satisfied") == "Yes"
        out["peak_qps"] = float(s["target_qps"]) if met else None
        out["peak_search_met_bound"] = met
    return out


def tool_args(tool, scenario, a):
    """The command line of one run: the same LoadGen settings through each tool's options."""
    lg_scenario = "server" if scenario == "server-peak" else scenario
    common = {"--min-duration-ms": a.duration_ms, "--min-query-count": a.min_queries}
    if scenario == "multi-stream":
        common["--min-query-count"] = a.ms_min_queries
    elif scenario == "server":
        common["--target-qps"] = a.server_qps
    elif scenario == "server-peak":
        common["--target-qps"] = a.peak_base_qps
        common["--min-duration-ms"] = a.peak_duration_ms
        common["--min-query-count"] = a.peak_min_queries
    elif scenario == "offline":
        common["--target-qps"] = a.offline_qps
    if tool == "loadgen":
        cmd = [a.python, os.path.join(HERE, "python_sut.py"), "--scenario", lg_scenario,
               "--threads", str(a.threads)]
        if scenario == "server-peak":
            cmd += ["--mode", "find-peak", "--peak-decimals", str(a.peak_decimals)]
    else:
        cmd = [a.detbench, "run", "--scenario", lg_scenario, "--threads", str(a.threads),
               "--no-store", "--quiet", "--warmup", "10"]
        if scenario == "server-peak":
            cmd += ["--find-peak-qps", "--find-peak-decimals", str(a.peak_decimals)]
    if lg_scenario == "server":
        cmd += ["--target-latency-ms", str(a.target_latency_ms)]
    for k, v in common.items():
        cmd += [k, str(v)]
    return cmd


def loadgen_latencies(out, scenario):
    """LoadGen's raw latencies (ns) from its trace: per sample, or per query (MultiStream)."""
    samples = c.read_loadgen_logs(out)["samples"]  # (ts, seq, query_seq, idx, issue, latency)
    if scenario != "multi-stream":
        return [s[5] for s in samples]
    per_query = {}
    for s in samples:
        per_query[s[2]] = max(per_query.get(s[2], 0), s[5])
    return [per_query[q] for q in sorted(per_query)]


def loadgen_peak_steps(out):
    """FindPeakPerformance's messages from LoadGen's detail log."""
    detail = c.read_loadgen_logs(out)["detail"]
    return [m for m in detail.get("generic_message", []) if "FindPeakPerformance" in str(m)]


def detbench_record(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)["models"][0]["scenario"]


def run_one(tool, scenario, a, workdir):
    out = os.path.join(workdir, f"{tool}-{scenario}")
    shutil.rmtree(out, ignore_errors=True)
    cmd = tool_args(tool, scenario, a)
    cmd += ["--outdir", out] if tool == "loadgen" else ["--out", out]
    load_before = os.getloadavg()
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"{tool} {scenario} failed ({proc.returncode}):\n{' '.join(cmd)}\n"
                 f"{proc.stderr[-3000:]}")
    if tool == "loadgen":
        summary_path = os.path.join(out, "mlperf_log_summary.txt")
    else:
        lg = os.path.join(out, "loadgen")
        summary_path = os.path.join(lg, os.listdir(lg)[0], "mlperf_log_summary.txt")
    with open(summary_path) as f:
        text = f.read()
    run = {"tool": tool, "scenario": scenario, "command": cmd, "wall_s": wall,
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "figures": figures(scenario, parse_summary(summary_path)), "summary_text": text}
    if scenario == "server-peak":
        if tool == "loadgen":
            run["peak_search"] = loadgen_peak_steps(out)
        else:
            run["peak_search"] = detbench_record(out)["peak_search"]
    elif tool == "loadgen":
        run["latencies_ns"] = loadgen_latencies(out, scenario)
    else:
        rec = detbench_record(out)
        key = "query_latencies_ns" if scenario == "multi-stream" else "sample_latencies_ns"
        run["latencies_ns"] = rec[key]
    return run


def pct(values, p):
    return c.percentile_index(sorted(values), p) if values else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def stats(runs, scenario, tool):
    """Pooled figures of one tool in one scenario, over the rounds."""
    mine = [r for r in runs if r["tool"] == tool and r["scenario"] == scenario]
    if not mine:
        return None
    pooled = [x for r in mine for x in r.get("latencies_ns", [])]
    rates = [r["figures"]["samples_per_s"] for r in mine]
    peaks = [r["figures"].get("peak_qps") for r in mine]
    results = [r["figures"]["result"] for r in mine]
    out = {"runs": len(mine), "results": results, "latencies": len(pooled),
           "rate_per_round": rates, "rate_median": median(rates),
           "rate_p10": pct(rates, 0.10) if rates else None,
           "peak_per_round": peaks, "peak_median": median(peaks),
           "summary_p90_ms_per_round": [r["figures"]["p90_ms"] for r in mine],
           "summary_p99_ms_per_round": [r["figures"]["p99_ms"] for r in mine]}
    for name, p in (("p10", 0.10), ("p50", 0.50), ("p90", 0.90), ("p99", 0.99)):
        v = pct(pooled, p)
        out[f"pooled_{name}_ms"] = v / 1e6 if v is not None else None
    return out


def fmt(v, d=1):
    return "-" if v is None else f"{v:.{d}f}"


def verdicts(results):
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{n}x {r}" for r, n in sorted(counts.items()))


def table(runs, scenarios):
    rows = ["| scenario | tool | result | latencies pooled | p10 ms | p50 ms | p90 ms | p99 ms | "
            "samples/s median (per round) | peak QPS median (per round) |",
            "|---|---|---|--:|--:|--:|--:|--:|---|---|"]
    for scenario in scenarios:
        for tool in TOOLS:
            s = stats(runs, scenario, tool)
            if s is None:
                continue
            per_round = ", ".join(fmt(v) for v in s["rate_per_round"])
            peak = "-"
            if scenario == "server-peak":
                peak = (f"{fmt(s['peak_median'], 0)} ("
                        + ", ".join(fmt(v, 0) for v in s["peak_per_round"]) + ")")
            rows.append(
                f"| {scenario} | {tool} | {verdicts(s['results'])} | {s['latencies'] or '-'} | "
                f"{fmt(s['pooled_p10_ms'])} | {fmt(s['pooled_p50_ms'])} | "
                f"{fmt(s['pooled_p90_ms'])} | {fmt(s['pooled_p99_ms'])} | "
                f"{fmt(s['rate_median'])} ({per_round}) | {peak} |")
    return "\n".join(rows)


def ratios(runs, scenarios):
    """detbench against LoadGen+Python per scenario: rates (higher is better) and pooled
    latencies (lower is better), as ratios LoadGen/detbench for latency, detbench/LoadGen
    for rates, so > 1 means detbench is ahead."""
    out = {}
    for scenario in scenarios:
        lg, db = stats(runs, scenario, "loadgen"), stats(runs, scenario, "detbench")
        if not lg or not db:
            continue
        r = {}
        if lg["rate_median"] and db["rate_median"]:
            r["samples_per_s"] = db["rate_median"] / lg["rate_median"]
        for k in ("pooled_p50_ms", "pooled_p90_ms", "pooled_p99_ms"):
            if lg[k] and db[k]:
                r[k.replace("pooled_", "latency_")] = lg[k] / db[k]
        if lg["peak_median"] and db["peak_median"]:
            r["peak_qps"] = db["peak_median"] / lg["peak_median"]
        out[scenario] = r
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detbench", default=os.path.join(ROOT, "target/release/detbench"))
    ap.add_argument("--python", default=sys.executable, help="the Python that runs python_sut.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration-ms", type=int, default=8000, help="min_duration of every test")
    ap.add_argument("--min-queries", type=int, default=100,
                    help="min_query_count of SingleStream, Offline and Server")
    ap.add_argument("--ms-min-queries", type=int, default=16, help="MultiStream min_query_count")
    ap.add_argument("--server-qps", type=float, default=8.0)
    ap.add_argument("--target-latency-ms", type=float, default=100.0, help="the Server bound")
    ap.add_argument("--offline-qps", type=float, default=25.0,
                    help="Offline expected QPS (the query holds 1.1 x duration x this samples)")
    ap.add_argument("--peak-base-qps", type=float, default=5.0)
    ap.add_argument("--peak-duration-ms", type=int, default=8000)
    ap.add_argument("--peak-min-queries", type=int, default=40)
    ap.add_argument("--peak-decimals", type=int, default=0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--json", help="write every run (figures, raw latencies, summaries, load)")
    a = ap.parse_args()
    scenarios = a.scenarios.split(",")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    version = subprocess.run([a.detbench, "--version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"{started} commit {commit} ({version}) load {os.getloadavg()}", file=sys.stderr)
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        for rnd in range(a.rounds):
            tools = list(TOOLS) if rnd % 2 == 0 else list(reversed(TOOLS))
            for scenario in scenarios:
                for tool in tools:
                    r = run_one(tool, scenario, a, workdir)
                    r["round"] = rnd
                    runs.append(r)
                    f = r["figures"]
                    print(f"round {rnd} {scenario:13} {tool:8} p90 {fmt(f['p90_ms'])} p99 "
                          f"{fmt(f['p99_ms'])} samples/s {f['samples_per_s']:.1f} peak "
                          f"{f.get('peak_qps')} {f['result']} {f['not_satisfied']} "
                          f"{r['wall_s']:.0f} s, load {r['loadavg_before'][0]:.2f}->"
                          f"{r['loadavg_after'][0]:.2f}", file=sys.stderr, flush=True)
    ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    loads = [r["loadavg_before"][0] for r in runs] + [r["loadavg_after"][0] for r in runs]
    print(f"{started} to {ended}; 1-minute load average {min(loads):.2f}-{max(loads):.2f} "
          f"(median {statistics.median(loads):.2f})")
    print(table(runs, scenarios))
    rat = ratios(runs, scenarios)
    for scenario, r in rat.items():
        print(f"{scenario}: detbench vs LoadGen+Python (> 1: detbench ahead): "
              + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    if a.json:
        doc = {"started": started, "ended": ended, "commit": commit, "detbench": version,
               "machine": platform.uname()._asdict(), "cpus": os.cpu_count(),
               "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
               "args": vars(a), "loadavg_1min": {"min": min(loads), "max": max(loads),
                                                  "median": statistics.median(loads)},
               "stats": {s: {t: stats(runs, s, t) for t in TOOLS} for s in scenarios},
               "ratios": rat, "table": table(runs, scenarios), "runs": runs}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
