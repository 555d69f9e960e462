#!/usr/bin/env python3
"""The repeated batch-1 GPU table of docs/BENCHMARKS.md, from the rounds of
`tools/gpu/run_all.sh repeat` (Markdown on stdout).

    python3 tools/gpu/repeat_table.py WORK_DIR [WORK_DIR ...]

Each WORK_DIR holds, per round N and precision P, `detbench_rN_P/results.json` (detbench) and
`eager_rN_P.json` / `eager_rN_kp_P.json` (eager_bench.py). The quantity is the same as in
latency_table.py: the median latency of one call's inference stage (detbench) and of the same
region in eager mode. Per row it prints each side's median over the rounds (of the per-round
medians) with the range, the ratio of those medians (eager / detbench: above 1.00 means detbench
is faster), every round's own ratio, and how many rounds detbench was not slower in; then the same
ratio for the 10th percentile of each round's calls (the calls no host interference slowed: on the
shared GPU hosts both processes have stretches of calls 20-40% slower, see docs/BENCHMARKS.md).
"""
import glob
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency_table import detbench_rows, eager_rows, fmt  # noqa: E402


def collect(work_dirs):
    """{(model, precision, batch): {round: {"detbench": row, "eager": row}}} and eager metadata."""
    table, meta = {}, None
    for work in work_dirs:
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
          "| p10 ratio | per-round p10 ratios | dets/img detbench / eager |")
    print("|---|---|--:|--:|--:|---|--:|--:|--:|---|--:|")
    rounds_seen = set()
    for key in sorted(table, key=lambda k: (k[2], k[0], k[1])):
        model, precision, batch = key
        ours, theirs, ratios, dets = [], [], [], None
        ours_p10, theirs_p10 = [], []
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
            dets = (a["dets"], b["dets"])
        if not ratios:
            print(f"| {model} | {precision} | - | - | - | {'; '.join(failures)} | - | - | - | - | - |")
            continue
        mo, mt = statistics.median(ours), statistics.median(theirs)
        per_round = ", ".join(f"{r:.2f}" for r in ratios) + ("; " + "; ".join(failures) if failures else "")
        print(f"| {model} | {precision} | {fmt(mo)} ({fmt(min(ours))}-{fmt(max(ours))}) "
              f"| {fmt(mt)} ({fmt(min(theirs))}-{fmt(max(theirs))}) | **{mt / mo:.2f}x** | {per_round} "
              f"| {sum(r >= 1.0 for r in ratios)}/{len(ratios)} "
              f"| {fmt(statistics.median(ours_p10))} / {fmt(statistics.median(theirs_p10))} "
              f"| {statistics.median(theirs_p10) / statistics.median(ours_p10):.2f}x "
              f"| {', '.join(f'{t / o:.2f}' for o, t in zip(ours_p10, theirs_p10))} "
              f"| {fmt(dets[0], 1)} / {fmt(dets[1], 1)} |")
    if meta:
        print()
        print(f"rounds: {', '.join(str(r) for r in sorted(rounds_seen))}; eager: torch {meta['torch']}, "
              f"torchvision {meta['torchvision']}, Python {meta['python']}, {meta['device']}, CUDA {meta['cuda']}, "
              f"cuDNN {meta['cudnn']}, {meta['images']} images per model and round")
    return 0


if __name__ == "__main__":
    sys.exit(main())
