#!/usr/bin/env python3
"""The executor/pinning comparison of docs/BENCHMARKS.md, from `tools/gpu/run_all.sh variants`
(Markdown on stdout).

    python3 tools/gpu/variants_table.py WORK_DIR GPU_CLOCKS_CSV [RUN_LOG]

WORK_DIR holds, per run R ([pinned-]eager|profiling|no-profiling|no-optimize[+inference]), round N and
precision P, `detbench_R_rN_P/results.json` or `eager_R_rN_P.json`. Per (model, precision, run) it
prints every round's median latency of one call (the same quantity as latency_table.py), the
median of those, the 10th and 90th percentiles of all calls pooled, the share of calls slower than
1.15x the same round's eager median (the "slow mode" of the bimodal rows), and eager's median
over the run's median (above 1.00: detbench faster). With the run log (log_variants.txt, whose
lines are stamped with the time each run began) it adds the GPU's mean SM clock and utilisation
while the run ran, from nvidia-smi's log.
"""
import csv
import datetime
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency_table import percentile  # noqa: E402

RUN = re.compile(r"^(?:detbench|eager)_(?P<run>.+)_r(?P<round>\d+)_(?P<precision>fp16|fp32)(?:\.json)?$")
LOG_LINE = re.compile(r"^\[run_all (\d\d:\d\d:\d\d)\] (?:detbench|eager) (\S+):")


def samples_of(path):
    """{(model, precision): [ms per call]} of one detbench results.json or eager_bench JSON."""
    with open(path) as f:
        doc = json.load(f)
    out = {}
    if "models" in doc:
        for m in doc["models"]:
            if m["status"] != "ok":
                continue
            stage = next(s for s in m["latency"]["stages"] if s["stage"] == "inference")
            out[(m["name"], m["backend"]["precision"])] = stage["samples_ms"]
    else:
        for r in doc["results"]:
            if "error" not in r:
                out[(r["model"], r["precision"])] = r["samples_ms"]
    return out


def run_windows(log_path):
    """{run name as in the work dir (e.g. "eager_r1_fp16"): (start, end) seconds of the day}."""
    stamps = []
    with open(log_path) as f:
        for line in f:
            m = LOG_LINE.match(line)
            if m:
                h, mi, s = map(int, m.group(1).split(":"))
                stamps.append((m.group(2), h * 3600 + mi * 60 + s))
    windows = {}
    for i, (name, start) in enumerate(stamps):
        end = stamps[i + 1][1] if i + 1 < len(stamps) else start + 60
        windows[name] = (start, end)
    return windows


def gpu_log(path):
    """[(seconds of the day, SM MHz, utilisation %)] from nvidia-smi's CSV log."""
    rows = []
    with open(path) as f:
        for rec in csv.reader(f):
            if not rec or rec[0].startswith("timestamp"):
                continue
            try:
                t = datetime.datetime.strptime(rec[0].strip(), "%Y/%m/%d %H:%M:%S.%f")
                sm = float(rec[1].split()[0])
                util = float(rec[4].split()[0])
            except (ValueError, IndexError):
                continue
            rows.append((t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6, sm, util))
    return rows


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    work, clocks = sys.argv[1], sys.argv[2]
    log = sys.argv[3] if len(sys.argv) > 3 else os.path.join(os.path.dirname(clocks), "log_variants.txt")
    windows = run_windows(log) if os.path.exists(log) else {}
    gpu = gpu_log(clocks) if os.path.exists(clocks) else []

    # table[(model, precision)][run][round] = (samples, gpu (sm, util) or None)
    table = {}
    for path in glob.glob(os.path.join(work, "detbench_*", "results.json")) + glob.glob(os.path.join(work, "eager_*.json")):
        name = os.path.basename(os.path.dirname(path)) if path.endswith("results.json") else os.path.basename(path)
        m = RUN.match(name)
        if not m:
            continue
        short = name[len("detbench_"):] if name.startswith("detbench_") else name[len("eager_"):]
        short = short[:-5] if short.endswith(".json") else short
        clock = None
        if short in windows and gpu:
            start, end = windows[short]
            inside = [(sm, u) for t, sm, u in gpu if start <= t < end and u > 0]
            if inside:
                clock = (statistics.mean(s for s, _ in inside), statistics.mean(u for _, u in inside))
        for key, samples in samples_of(path).items():
            table.setdefault(key, {}).setdefault(m["run"], {})[int(m["round"])] = (samples, clock)

    for (model, precision), runs in sorted(table.items()):
        eager = {r: statistics.median(s) for r, (s, _) in runs.get("eager", {}).items()}
        print(f"### {model} {precision}\n")
        print("| run | per-round medians ms | median of rounds | p10 / p90 (all calls) | calls > 1.15x eager | "
              "eager / run | GPU SM MHz, util % (per round) |")
        print("|---|---|--:|--:|--:|--:|---|")
        order = ["eager", "eager+inference", "profiling", "no-profiling", "no-optimize", "profiling+inference",
                 "no-profiling+inference", "no-optimize+inference", "pinned-eager", "pinned-profiling"]
        for run in sorted(runs, key=lambda r: order.index(r) if r in order else len(order)):
            rounds = runs[run]
            medians = [statistics.median(s) for _, (s, _) in sorted(rounds.items())]
            pooled = [x for s, _ in rounds.values() for x in s]
            slow = sum(x > 1.15 * eager[r] for r, (s, _) in rounds.items() if r in eager for x in s)
            counted = sum(len(s) for r, (s, _) in rounds.items() if r in eager)
            mid = statistics.median(medians)
            ratio = statistics.median(eager.values()) / mid if eager else float("nan")
            clocks_txt = ", ".join(f"{c[0]:.0f}/{c[1]:.0f}" if c else "-" for _, (_, c) in sorted(rounds.items()))
            print(f"| {run} | {', '.join(f'{x:.2f}' for x in medians)} | {mid:.2f} | "
                  f"{percentile(pooled, 10):.2f} / {percentile(pooled, 90):.2f} | "
                  f"{100 * slow / counted if counted else float('nan'):.0f}% | {ratio:.2f}x | {clocks_txt} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
