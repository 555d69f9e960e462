#!/usr/bin/env python3
"""Tables of the native engine's GPU runs (tools/native/gpu_run.sh): batch-1 latency and batch-8
throughput of every run pooled over rounds, the engine's GPU time and launches, correctness.

    python3 tools/native/table.py WORK_DIR      # the folder of native_*.json, eager_*.json, compare_*.json

Latency: the pooled median and p10 of every call of a run over all rounds (each call counts
once), and the median of the rounds' medians. "best peer" is the fastest of eager fp32, eager
AMP, eager channels_last + AMP and detbench's torch backend (fp32 or fp16) by pooled median;
the ratio is best peer / native fp16 (latency) or native fp16 / best peer (throughput).
"img/s, all calls" is images over the summed time of every timed call, first-shape costs (cuDNN
plans, the native engine's graph captures) included; with --prewarm-all runs it is steady state.
"""
import glob
import json
import os
import statistics
import sys
from collections import defaultdict

PEERS = ["eager-fp32", "eager-amp", "eager-cl_amp", "torch-fp32", "torch-fp16"]


def pct(samples, q):
    s = sorted(samples)
    return s[max(1, -(-len(s) * q // 100)) - 1] if s else float("nan")


def load(work):
    runs = []
    for path in sorted(glob.glob(os.path.join(work, "native_*.json")) + glob.glob(os.path.join(work, "eager_*.json"))):
        with open(path) as f:
            doc = json.load(f)
        for r in doc.get("runs", []):
            r["file"] = os.path.basename(path)
            runs.append(r)
    return runs


def pooled(runs):
    """(model, batch, run) -> pooled statistics."""
    groups = defaultdict(list)
    for r in runs:
        if "samples_ms" in r:
            groups[(r["model"], r["batch"], r["run"])].append(r)
    out = {}
    for key, rs in groups.items():
        samples = [s for r in rs for s in r["samples_ms"]]
        out[key] = {"median": statistics.median(samples), "p10": pct(samples, 10),
                    "median_of_rounds": statistics.median(r["median_ms"] for r in rs), "rounds": len(rs),
                    "calls": len(samples), "img_s": key[1] * len(samples) / (sum(samples) / 1e3),
                    "dets": statistics.fmean(r["detections_per_image"] for r in rs),
                    "gpu": [g for r in rs for g in r.get("gpu", [])]}
    return out


def latency_table(stats, batch):
    models = sorted({k[0] for k in stats if k[1] == batch})
    lines = [f"\n### Batch {batch}\n",
             "| model | run | median ms | p10 ms | median of rounds | img/s, all calls | dets/img | rounds x calls |",
             "|---|---|--:|--:|--:|--:|--:|--:|"]
    for m in models:
        rows = sorted((k for k in stats if k[0] == m and k[1] == batch), key=lambda k: k[2])
        for k in rows:
            s = stats[k]
            lines.append(f"| {m} | {k[2]} | {s['median']:.2f} | {s['p10']:.2f} | {s['median_of_rounds']:.2f} | "
                         f"{s['img_s']:.1f} | {s['dets']:.1f} | {s['rounds']} x {s['calls'] // max(s['rounds'], 1)} |")
        native = stats.get((m, batch, "native-fp16"))
        peers = [(p, stats[(m, batch, p)]) for p in PEERS if (m, batch, p) in stats]
        if native and peers:
            best = min(peers, key=lambda p: p[1]["median"])
            best_p10 = min(peers, key=lambda p: p[1]["p10"])
            best_tp = max(peers, key=lambda p: p[1]["img_s"])
            lines.append(f"| {m} | **native fp16 vs best peer** | **{best[1]['median'] / native['median']:.2f}x** "
                         f"(vs {best[0]}) | {best_p10[1]['p10'] / native['p10']:.2f}x (vs {best_p10[0]}) | | "
                         f"**{native['img_s'] / best_tp[1]['img_s']:.2f}x** (vs {best_tp[0]}) | | |")
    return lines


def gpu_table(stats):
    lines = ["\n### Native engine: GPU time, wall time, launches (per call, medians)\n",
             "| model | batch | run | wall ms | GPU ms (events, upload to download) | forward ms (graph replay) | GPU / wall | graph kernels | other launches | graphed calls |",
             "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|"]
    for k in sorted(stats):
        g = stats[k]["gpu"]
        if not g:
            continue
        med = lambda key: statistics.median(x[key] for x in g)
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {stats[k]['median']:.2f} | {med('gpu_ms'):.2f} | {med('forward_ms'):.2f} | "
                     f"{med('gpu_ms') / stats[k]['median']:.2f} | {med('graph_kernels'):.0f} | {med('other_launches'):.0f} | "
                     f"{sum(1 for x in g if x['graphed'])}/{len(g)} |")
    return lines


def extra_tables(work, runs):
    lines = ["\n### Correctness against eager (same weights, same images)\n",
             "| comparison | eager dets | native dets | matched | share | mask IoU mean (pairs) |", "|---|--:|--:|--:|--:|--:|"]
    for path in sorted(glob.glob(os.path.join(work, "compare_*.json"))):
        with open(path) as f:
            c = json.load(f)
        mask = c.get("mask_iou")
        mask_text = f"{mask['mean']:.4f} ({mask['pairs']})" if mask else ""
        lines.append(f"| {os.path.basename(path)[8:-5]} (IoU>={c['iou']}, dscore<={c['score_tolerance']}) | "
                     f"{c['eager_detections']} | {c['native_detections']} | {c['matched']} | **{c['matched_share']:.4f}** | {mask_text} |")
    for path in glob.glob(os.path.join(work, "native_*.json")):
        with open(path) as f:
            extra = json.load(f).get("extra", {})
        for model, e in extra.items():
            for row in e.get("backbone", []):
                lines.append(f"\nbackbone {model} {row['precision']} {row['shape']}: {row['median_ms']:.3f} ms, "
                             f"{row['gflops']:.1f} GFLOP, {row['tflops_per_s']:.1f} TFLOP/s")
    for stage in sorted(glob.glob(os.path.join(work, "stage_parity*.json"))):
        with open(stage) as f:
            lines.append(f"\n{os.path.basename(stage)[:-5]}: " + json.dumps(json.load(f)))
    failed = [f"{r['model']} {r['run']} b{r['batch']}: {r['error']}" for r in runs if "error" in r]
    if failed:
        lines.append("\nfailed runs:\n" + "\n".join(failed))
    return lines


def main():
    work = sys.argv[1]
    runs = load(work)
    stats = pooled(runs)
    lines = ["## Native engine runs"]
    for batch in sorted({k[1] for k in stats}):
        lines += latency_table(stats, batch)
    lines += gpu_table(stats)
    lines += extra_tables(work, runs)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
