#!/usr/bin/env python3
"""Joins detbench's results.json files and eager_bench.py's JSON files into the GPU latency
table of docs/BENCHMARKS.md (Markdown on stdout).

    python3 tools/gpu/latency_table.py --detbench RUN/results.json ... --eager EAGER.json ...

A row per (model, precision, batch): the median latency of one call of detbench's `inference`
stage (libtorch backend `run`: inputs to the GPU, TorchScript forward, synchronize, outputs to
the host) and of the same region in PyTorch eager mode, their ratio (eager / detbench: above
1.00 means detbench is faster), p90 of both, images per second at the median, and the detections
per image each side returned.
"""
import argparse
import json
import math
import sys


def percentile(samples, q):
    """The q-th percentile, nearest rank (detbench's percentile definition); None if empty."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(len(ordered) * q / 100)) - 1] if ordered else None


def p10(samples):
    return percentile(samples, 10)


def detbench_rows(path):
    with open(path) as f:
        run = json.load(f)
    rows = {}
    for m in run["models"]:
        key = (m["name"], (m.get("backend") or {}).get("precision", "?"), m["batch_size"])
        if m["status"] != "ok" or not m.get("latency"):
            rows[key] = {"error": m["status"]}
            continue
        stage = next(s for s in m["latency"]["stages"] if s["stage"] == "inference")
        rows[key] = {
            "median": stage["summary"]["median"],
            "p90": stage["summary"]["p90"],
            "p10": p10(stage.get("samples_ms") or []),
            "samples": stage.get("samples_ms") or [],
            "calls": stage["summary"]["count"],
            "dets": (m.get("detections_per_image") or {}).get("mean"),
            "device": (m.get("backend") or {}).get("device"),
            "options": dict((m.get("backend") or {}).get("options", [])),
        }
    return rows


def eager_rows(path):
    with open(path) as f:
        doc = json.load(f)
    rows = {}
    for r in doc["results"]:
        key = (r["model"], r["precision"], r["batch_size"])
        if "error" in r:
            rows[key] = {"error": r["error"]}
            continue
        rows[key] = {
            "median": r["latency_ms"]["median"],
            "p90": r["latency_ms"]["p90"],
            "p10": p10(r.get("samples_ms") or []),
            "samples": r.get("samples_ms") or [],
            "calls": r["calls"],
            "dets": r["detections_per_image"],
        }
    return rows, doc


def fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--detbench", nargs="+", required=True)
    p.add_argument("--eager", nargs="+", required=True)
    p.add_argument("--detbench-no-profiling", nargs="*", default=[],
                   help="results.json of runs with DETBENCH_TORCH_EXECUTOR=no-profiling (extra column)")
    p.add_argument("--native", nargs="*", default=[],
                   help="results.json of `detbench run --backend native` runs (extra columns: its median, eager / native)")
    args = p.parse_args()
    ours, theirs, variant, native, meta = {}, {}, {}, {}, None
    for path in args.detbench:
        ours.update(detbench_rows(path))
    for path in args.detbench_no_profiling:
        variant.update(detbench_rows(path))
    for path in args.native:
        native.update(detbench_rows(path))
    for path in args.eager:
        rows, meta = eager_rows(path)
        theirs.update(rows)
    keys = sorted(set(ours) | set(theirs) | set(native), key=lambda k: (k[2], k[1], k[0]))
    extra = bool(variant)
    print("| model | precision | batch | detbench ms (median) | eager ms (median) | eager / detbench "
          "| detbench p90 | eager p90 | detbench img/s | eager img/s | dets/img detbench | dets/img eager | calls |"
          + (" detbench no-profiling ms (median) |" if extra else "")
          + (" native ms (median) | eager / native | dets/img native |" if native else ""))
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|" + ("--:|" if extra else "")
          + ("--:|--:|--:|" if native else ""))
    for key in keys:
        model, precision, batch = key
        a, b = ours.get(key, {"error": "not run"}), theirs.get(key, {"error": "not run"})
        v = variant.get(key, {"error": "not run"})
        tail = (f" {v.get('error') or fmt(v['median'])} |" if extra else "")
        if native:
            n = native.get(key, {"error": "not run"})
            if "error" in n:
                tail += f" {n['error']} | - | - |"
            else:
                versus = f"{b['median'] / n['median']:.2f}x" if "error" not in b else "-"
                tail += f" {fmt(n['median'])} | {versus} | {fmt(n['dets'], 1)} |"
        if "error" in a or "error" in b:
            print(f"| {model} | {precision} | {batch} | {a.get('error') or fmt(a['median'])} "
                  f"| {b.get('error') or fmt(b['median'])} | - | - | - | - | - | - | - | - |{tail}")
            continue
        ratio = b["median"] / a["median"]
        print(f"| {model} | {precision} | {batch} | {fmt(a['median'])} | {fmt(b['median'])} | {ratio:.2f}x "
              f"| {fmt(a['p90'])} | {fmt(b['p90'])} | {fmt(1e3 * batch / a['median'], 1)} "
              f"| {fmt(1e3 * batch / b['median'], 1)} | {fmt(a['dets'], 1)} | {fmt(b['dets'], 1)} "
              f"| {a['calls']}/{b['calls']} |{tail}")
    if meta:
        print()
        print(f"eager: torch {meta['torch']}, torchvision {meta['torchvision']}, Python {meta['python']}, "
              f"{meta['device']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}, {meta['images']} images")


if __name__ == "__main__":
    sys.exit(main())
