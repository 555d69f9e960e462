#!/usr/bin/env python3
"""Check (2) of issue 13, the real model: YOLOX-Nano through ONNX Runtime (onnxruntime 1.31.1,
2 intra-op threads on both sides) in all four LoadGen scenarios, two tools interleaved:

  * loadgen   the real LoadGen (mlcommons-loadgen==6.0.17) driving the Python onnxruntime SUT of
              tools/loadgen/python_sut.py (the reference pipeline of ../shared/tools/reference;
              one FIFO worker, one sample per call);
  * detbench  `detbench run --scenario ...` (detbench-loadgen; one SUT worker, batch 1: YOLOX-Nano's
              ONNX graph has a fixed batch of 1).

Same images (the 206-image subset, all held in memory), same seeds (LoadGen's defaults), same
settings per scenario (below), same warm-up (10 untimed calls), both tools in their own process.
Each round runs every scenario with both tools back to back, the order alternating between
rounds; the peak Server QPS is each tool's own FindPeakPerformance search from the same base QPS.

Every figure comes from the tool's own mlperf_log_summary.txt (same layout on both sides):
  SingleStream  p90/p99 of the sample latency; samples/s = "QPS w/ loadgen overhead";
  MultiStream   p90/p99 of the per-query latency; samples/s = samples per query / mean query
                latency (queries run back to back);
  Offline       samples/s = "Samples per second"; p90/p99 of the sample latency (from the
                query's issue, so they grow with the query);
  Server        p90/p99 of the sample latency at --server-qps; samples/s = "Completed samples per
                second"; and the peak: the QPS FindPeakPerformance reports, with its validity.

Usage (a Python with mlcommons-loadgen, onnxruntime, opencv, numpy, pycocotools):
    python tools/loadgen/compare_scenarios.py --detbench target/release/detbench \
        [--rounds 3] [--duration-ms 10000] [--json docs/cpu/loadgen_scenarios_DATE.json]
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
SCENARIOS = ["single-stream", "multi-stream", "offline", "server", "server-peak"]


def parse_summary(path):
    """The numbers of an mlperf_log_summary.txt: top-level fields, and the latency stats (the
    per-query block for MultiStream)."""
    out = {"latency": {}}
    with open(path) as f:
        for line in f:
            if ":" not in line or line.startswith("="):
                continue
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key.endswith("percentile latency (ns)") or key in (
                    "Min latency (ns)", "Max latency (ns)", "Mean latency (ns)"):
                # The first occurrence of a percentile is the result line (SS/MS); the stats
                # block repeats it with two decimals. Keep the stats block's.
                out["latency"][key] = int(value)
            else:
                out.setdefault(key, value)
    return out


def figures(scenario, s):
    lat = s["latency"]
    p90 = lat.get("90.00 percentile latency (ns)")
    p99 = lat.get("99.00 percentile latency (ns)")
    rate = None
    if scenario == "single-stream":
        rate = float(s["QPS w/ loadgen overhead"])
    elif scenario == "multi-stream":
        rate = float(s["samples_per_query"]) * 1e9 / lat["Mean latency (ns)"]
    elif scenario == "offline":
        rate = float(s["Samples per second"])
    else:
        rate = float(s["Completed samples per second"])
    out = {"p90_ms": p90 / 1e6 if p90 else None, "p99_ms": p99 / 1e6 if p99 else None,
           "samples_per_s": rate, "result": s.get("Result is")}
    if scenario == "server-peak":
        # The searched QPS, when the search found one (its base run met the latency bound).
        met = s.get("Performance constraints satisfied") == "Yes"
        out["peak_qps"] = float(s["target_qps"]) if met else None
        out["peak_search_met_bound"] = met
    return out


def tool_args(tool, scenario, a):
    """The command line of one run: the same LoadGen settings through each tool's options."""
    lg_scenario = "server" if scenario == "server-peak" else scenario
    common = {"--min-duration-ms": a.duration_ms, "--min-query-count": a.min_queries}
    if scenario == "server":
        common["--target-qps"] = a.server_qps
    elif scenario == "server-peak":
        common["--target-qps"] = a.peak_base_qps
        common["--min-duration-ms"] = a.peak_duration_ms
    elif scenario == "offline":
        common["--target-qps"] = a.offline_qps
    if tool == "loadgen":
        cmd = [a.python, os.path.join(HERE, "python_sut.py"), "--scenario", lg_scenario,
               "--threads", str(a.threads)]
        if scenario == "server-peak":
            cmd += ["--mode", "find-peak", "--peak-decimals", str(a.peak_decimals)]
        if lg_scenario == "server":
            cmd += ["--target-latency-ms", "100"]
    else:
        cmd = [a.detbench, "run", "--scenario", lg_scenario, "--threads", str(a.threads),
               "--no-store", "--quiet", "--warmup", "10"]
        if scenario == "server-peak":
            cmd += ["--find-peak-qps", "--find-peak-decimals", str(a.peak_decimals)]
        if lg_scenario == "server":
            cmd += ["--target-latency-ms", "100"]
    for k, v in common.items():
        cmd += [k, str(v)]
    return cmd


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
        sys.exit(f"{tool} {scenario} failed ({proc.returncode}):\n{' '.join(cmd)}\n{proc.stderr[-3000:]}")
    if tool == "loadgen":
        summary_path = os.path.join(out, "mlperf_log_summary.txt")
    else:
        lg = os.path.join(out, "loadgen")
        summary_path = os.path.join(lg, os.listdir(lg)[0], "mlperf_log_summary.txt")
    summary = parse_summary(summary_path)
    with open(summary_path) as f:
        text = f.read()
    return {"tool": tool, "scenario": scenario, "command": cmd, "wall_s": wall,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "figures": figures(scenario, summary), "summary_text": text}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(runs):
    rows = ["| scenario | tool | p90 ms | p99 ms | samples/s | peak QPS | results | runs |",
            "|---|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        for tool in ("loadgen", "detbench"):
            mine = [r["figures"] for r in runs if r["tool"] == tool and r["scenario"] == scenario]
            if not mine:
                continue
            fmt = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
            results = ", ".join(sorted({m["result"] for m in mine}))
            rows.append(
                f"| {scenario} | {tool} | {fmt(median(m['p90_ms'] for m in mine))} | "
                f"{fmt(median(m['p99_ms'] for m in mine))} | "
                f"{fmt(median(m['samples_per_s'] for m in mine), 1)} | "
                f"{fmt(median(m.get('peak_qps') for m in mine), 1)} | {results} | {len(mine)} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detbench", default=os.path.join(ROOT, "target/release/detbench"))
    ap.add_argument("--python", default=sys.executable, help="the Python that runs python_sut.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration-ms", type=int, default=10000)
    ap.add_argument("--min-queries", type=int, default=100)
    ap.add_argument("--server-qps", type=float, default=30.0)
    ap.add_argument("--offline-qps", type=float, default=80.0)
    ap.add_argument("--peak-base-qps", type=float, default=20.0)
    ap.add_argument("--peak-duration-ms", type=int, default=8000)
    ap.add_argument("--peak-decimals", type=int, default=0)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--json", help="write every run (figures, summaries, load) here")
    a = ap.parse_args()
    scenarios = a.scenarios.split(",")
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    print(f"{started} commit {commit} load {os.getloadavg()}", file=sys.stderr)
    runs = []
    with tempfile.TemporaryDirectory() as workdir:
        for rnd in range(a.rounds):
            tools = ["loadgen", "detbench"] if rnd % 2 == 0 else ["detbench", "loadgen"]
            for scenario in scenarios:
                for tool in tools:
                    r = run_one(tool, scenario, a, workdir)
                    r["round"] = rnd
                    runs.append(r)
                    f = r["figures"]
                    print(f"round {rnd} {scenario:13} {tool:8} p90 {f['p90_ms']} p99 {f['p99_ms']} "
                          f"samples/s {f['samples_per_s']:.1f} peak {f.get('peak_qps')} "
                          f"{f['result']} load {r['loadavg_before'][0]:.2f}->{r['loadavg_after'][0]:.2f}",
                          file=sys.stderr)
    print(table(runs))
    if a.json:
        doc = {"started": started, "commit": commit, "machine": platform.uname()._asdict(),
               "cpu": open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": "),
               "args": vars(a), "runs": runs, "table": table(runs)}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
