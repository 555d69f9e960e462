#!/usr/bin/env python3
"""The raw per-call samples of `tools/gpu/run_all.sh` runs, in one small JSON file for docs/gpu/.

    python3 tools/gpu/collect_samples.py --about "TEXT" --out samples.json WORK_DIR [WORK_DIR ...]

A run's work folder holds detbench's `detbench_NAME/results.json` (every detection of every
image, ~200 KB a run) and eager_bench.py's `eager_NAME.json`. What the latency tables need from
them is small: per run and model the inference-stage samples in call order, the detections per
image and, for detbench, the backend options. This keeps exactly that, so that the tables in
docs/BENCHMARKS.md can be recomputed from the repository (repeat_table.py and latency_table.py read
the full files; the samples here are the same numbers).
"""
import argparse
import glob
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from latency_table import detbench_rows, eager_rows  # noqa: E402


def runs_of(work):
    """(run name, {(model, precision, batch): row}) for every run in one work folder."""
    for path in sorted(glob.glob(os.path.join(work, "detbench_*", "results.json"))):
        yield os.path.basename(os.path.dirname(path)), detbench_rows(path)
    for path in sorted(glob.glob(os.path.join(work, "eager_*.json"))):
        yield os.path.splitext(os.path.basename(path))[0], eager_rows(path)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--about", required=True, help="what these runs are (machine, date, section)")
    parser.add_argument("--out", required=True)
    parser.add_argument("work", nargs="+")
    args = parser.parse_args()
    calls = {}
    for work in args.work:
        for name, rows in runs_of(work):
            if name in calls:
                sys.exit(f"{work}: run {name} is also in an earlier work folder; give each run once")
            calls[name] = {
                f"{model} {precision} b{batch}": {
                    key: row[key] for key in ("error", "samples", "median", "p10", "dets", "options") if key in row
                }
                for (model, precision, batch), row in rows.items()
            }
    if not calls:
        sys.exit(f"no runs under {', '.join(args.work)}")
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"about": args.about, "calls": calls}, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"{args.out}: {len(calls)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
