#!/usr/bin/env python3
"""The repeated batch-1 GPU table of docs/BENCHMARKS.md, from the rounds of
`tools/gpu/run_all.sh repeat` (Markdown on stdout).

    python3 tools/gpu/repeat_table.py WORK_DIR [WORK_DIR ...]
    python3 tools/gpu/repeat_table.py docs/gpu/DATE-repeat/samples.json   # (collect_samples.py)

Each WORK_DIR holds, per round N and precision P, `detbench_rN_P/results.json` (detbench) and
`eager_rN_P.json` / `eager_rN_kp_P.json` (eager_bench.py). The quantity is the same as in
latency_table.py: the median latency of one call's inference stage (detbench) and of the same
region in eager mode. Per row it prints each side's median over the rounds (of the per-round
medians) with the range, the ratio of those medians (eager / detbench: above 1.00 means detbench
is faster), every round's own ratio, and how many rounds detbench was not slower in; then the same
ratio for the 10th percentile of each round's calls (the calls no host interference slowed: on the
shared GPU hosts both processes have stretches of calls 20-40% slower, see docs/BENCHMARKS.md);
last, the median and 10th percentile of all calls of all rounds pooled on each side (the rounds
taken as one long run per side, every call counting once, so that one round spent in a slow
stretch moves the result by its share of the calls, not by a whole round's vote).
"""
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency_table import detbench_rows, eager_rows, fmt, p10  # noqa: E402


def rounds_of_samples_file(path):
    """(side, round, rows) for every run kept by collect_samples.py in PATH."""
    with open(path) as f:
        calls = json.load(f)["calls"]
    for name, models in calls.items():
        found = re.fullmatch(r"(detbench|eager)_r(\d+)_.*", name)
        if not found:
            continue
        rows = {}
        for key, row in models.items():
            model, precision, batch = key.split(" ")
            rows[(model, precision, int(batch.lstrip("b")))] = row
        yield found.group(1), int(found.group(2)), rows


def collect(work_dirs):
    """{(model, precision, batch): {round: {"detbench": row, "eager": row}}} and eager metadata."""
    table, meta = {}, None
    for work in work_dirs:
        if os.path.isfile(work):
            for side, round_, rows in rounds_of_samples_file(work):
                for key, row in rows.items():
                    table.setdefault(key, {}).setdefault(round_, {})[side] = row
            continue
        for path in glob.glob(os.path.join(work, "detbench_r*_*", "results.json")):
            round_ = int(re.search(r"detbench_r(\d+)_", path).group(1))
            for key, row in detbench_rows(path).items():
                table.setdefault(key, {}).setdefault(round_, {})["detbench"] = row
        for path in glob.glob(os.path.join(work, "eager_r*_*.json")):
            round_ = int(re.search(r"eager_r(\d+)_", os.path.basename(path)).group(1))
            rows, meta = eager_rows(path)
            for key, row in rows.items():
                table.setdefault(key, {}).setdefault(round_, {})["eager"] = row
    return table, meta


def pooled(ours, theirs):
    """The three pooled cells: both medians, their ratio and the p10 ratio (eager / detbench)."""
    if not ours or not theirs:
        return "- | - | -"
    mo, mt = statistics.median(ours), statistics.median(theirs)
    return f"{fmt(mo)} / {fmt(mt)} ({len(ours)} / {len(theirs)} calls) | **{mt / mo:.2f}x** | {p10(theirs) / p10(ours):.2f}x"


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    table, meta = collect(sys.argv[1:])
    if not table:
        print(f"no rounds found under {', '.join(sys.argv[1:])}", file=sys.stderr)
        return 1
    print("| model | precision | detbench ms (median of rounds; range) | eager ms (median of rounds; range) "
          "| eager / detbench | per-round ratios | rounds not slower | p10 ms detbench / eager (median of rounds) "
          "| p10 ratio | per-round p10 ratios | all calls: median ms detbench / eager | all calls: ratio "
          "| all calls: p10 ratio | dets/img detbench / eager |")
    print("|---|---|--:|--:|--:|---|--:|--:|--:|---|--:|--:|--:|--:|")
    rounds_seen = set()
    for key in sorted(table, key=lambda k: (k[2], k[0], k[1])):
        model, precision, batch = key
        ours, theirs, ratios, dets = [], [], [], None
        ours_p10, theirs_p10 = [], []
        ours_all, theirs_all = [], []
        failures = []
        for round_, sides in sorted(table[key].items()):
            rounds_seen.add(round_)
            a, b = sides.get("detbench"), sides.get("eager")
            if a is None or b is None or "error" in a or "error" in b:
                failures.append(f"r{round_}: " + ((a or {}).get("error") or (b or {}).get("error") or "one side not run"))
                continue
            ours.append(a["median"])
            theirs.append(b["median"])
            ratios.append(b["median"] / a["median"])
            ours_p10.append(a["p10"])
            theirs_p10.append(b["p10"])
            ours_all += a["samples"]
            theirs_all += b["samples"]
            dets = (a["dets"], b["dets"])
        if not ratios:
            print(f"| {model} | {precision} | - | - | - | {'; '.join(failures)} | - | - | - | - | - | - | - | - |")
            continue
        mo, mt = statistics.median(ours), statistics.median(theirs)
        per_round = ", ".join(f"{r:.2f}" for r in ratios) + ("; " + "; ".join(failures) if failures else "")
        print(f"| {model} | {precision} | {fmt(mo)} ({fmt(min(ours))}-{fmt(max(ours))}) "
              f"| {fmt(mt)} ({fmt(min(theirs))}-{fmt(max(theirs))}) | **{mt / mo:.2f}x** | {per_round} "
              f"| {sum(r >= 1.0 for r in ratios)}/{len(ratios)} "
              f"| {fmt(statistics.median(ours_p10))} / {fmt(statistics.median(theirs_p10))} "
              f"| {statistics.median(theirs_p10) / statistics.median(ours_p10):.2f}x "
              f"| {', '.join(f'{t / o:.2f}' for o, t in zip(ours_p10, theirs_p10))} "
              f"| {pooled(ours_all, theirs_all)} "
              f"| {fmt(dets[0], 1)} / {fmt(dets[1], 1)} |")
    print()
    if meta:
        print(f"rounds: {', '.join(str(r) for r in sorted(rounds_seen))}; eager: torch {meta['torch']}, "
              f"torchvision {meta['torchvision']}, Python {meta['python']}, {meta['device']}, CUDA {meta['cuda']}, "
              f"cuDNN {meta['cudnn']}, {meta['images']} images per model and round")
    else:
        print(f"rounds: {', '.join(str(r) for r in sorted(rounds_seen))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
