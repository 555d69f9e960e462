#!/usr/bin/env python3
"""Tables of tools/gpu/train_bench.sh from its per-run results (rust_<row>/results.json from
`detbench train`, its `training` section; python_<row>.json from python_train_bench.py):

* throughput: per row images/s of each side over the timed steps, the ratio detbench / PyTorch,
  step p50/p90/p99, data wait, peak memory, and NVIDIA's PyTorch convention (all steps);
* speed-ups: AMP and TF32 over fp32 for each side and batch;
* loss curves (rows named curve_*): both sides' total loss every 20 steps, written in full to
  loss_curves.csv beside the files.

    python3 tools/train/train_table.py gpu-out/work
"""
import glob
import json
import os
import sys


def load(folder):
    runs = {}
    for path in glob.glob(os.path.join(folder, "python_*.json")):
        row = os.path.basename(path)[len("python_"):-len(".json")]
        with open(path) as f:
            runs.setdefault(row, {})["python"] = json.load(f)
    for path in glob.glob(os.path.join(folder, "rust_*", "results.json")):
        row = os.path.basename(os.path.dirname(path))[len("rust_"):]
        with open(path) as f:
            training = json.load(f).get("training") or []
        if training:  # one run per `detbench train` call here
            runs.setdefault(row, {})["rust"] = training[0]
    return runs


def tput(run):
    t = run.get("throughput") if run else None
    return t["images_per_s"] if t else None


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def throughput_table(runs):
    print("| row | detbench img/s | PyTorch img/s | ratio | detbench p50 / p90 / p99 ms | PyTorch p50 / p90 / p99 ms "
          "| data wait detbench / PyTorch | peak alloc GiB detbench / PyTorch | NVIDIA convention img/s detbench / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in sorted(r for r in runs if not r.startswith(("curve_", "long_"))):
        r, p = runs[row].get("rust"), runs[row].get("python")
        tr, tp = tput(r), tput(p)
        ratio = tr / tp if tr and tp else None

        def pct(run):
            t = run and run.get("throughput")
            return "-" if not t else f"{t['step']['p50_ms']:.1f} / {t['step']['p90_ms']:.1f} / {t['step']['p99_ms']:.1f}"

        def wait(run):
            t = run and run.get("throughput")
            return "-" if not t else f"{100 * t['data_wait_fraction']:.1f}%"

        def mem(run):
            m = run and run.get("peak_memory")
            return "-" if not m else f"{m['allocated_bytes'] / 2**30:.2f}"

        def nv(run):
            t = run and run.get("throughput")
            return "-" if not t else f"{t['nvidia_pytorch_images_per_s']:.2f}"

        print(f"| {row} | {fmt(tr)} | {fmt(tp)} | {fmt(ratio)}x | {pct(r)} | {pct(p)} | {wait(r)} / {wait(p)} "
              f"| {mem(r)} / {mem(p)} | {nv(r)} / {nv(p)} |")


def speedup_table(runs):
    print("\n| model, batch | side | fp32 img/s | TF32 speed-up | AMP speed-up |")
    print("|---|---|---|---|---|")
    for batch in (2, 4, 8):
        for side in ("rust", "python"):
            base = tput(runs.get(f"maskrcnn_fp32_b{batch}", {}).get(side))
            tf32 = tput(runs.get(f"maskrcnn_tf32_b{batch}", {}).get(side))
            amp = tput(runs.get(f"maskrcnn_amp_b{batch}", {}).get(side))
            if base is None:
                continue
            name = "detbench" if side == "rust" else "PyTorch"
            print(f"| Mask R-CNN, {batch} | {name} | {fmt(base)} | {fmt(tf32 / base if tf32 else None)}x "
                  f"| {fmt(amp / base if amp else None)}x |")


def curves(runs, folder):
    rows = sorted(r for r in runs if r.startswith(("curve_", "long_")))
    if not rows:
        return
    with open(os.path.join(folder, "loss_curves.csv"), "w") as f:
        f.write("row,side,step,epoch,lr,total_loss,loss_scale\n")
        for row in rows:
            for side, run in runs[row].items():
                for s in run["steps"]:
                    f.write(f"{row},{side},{s['step']},{s['epoch']},{s['lr']},{s['total_loss']},{s.get('loss_scale')}\n")
    for row in rows:
        sides = runs[row]
        print(f"\nLoss curve {row} (total loss; every 20th step):\n")
        print("| step | " + " | ".join(sides) + " |")
        print("|---|" + "---|" * len(sides))
        n = max(len(r["steps"]) for r in sides.values())
        for i in list(range(0, n, 20)) + [n - 1]:
            vals = [fmt(r["steps"][i]["total_loss"], ".4f") if i < len(r["steps"]) else "-" for r in sides.values()]
            print(f"| {i} | " + " | ".join(vals) + " |")


def trained_inference(folder, runs):
    """`detbench run` results on the trained weights (infer_trained_<precision>/results.json)."""
    files = sorted(glob.glob(os.path.join(folder, "infer_trained_*", "results.json")))
    if not files:
        return
    long_run = next((r["rust"] for k, r in runs.items() if k.startswith("long_") and "rust" in r), None)
    steps = len(long_run["steps"]) if long_run else "?"
    print(f"\nInference with weights trained {steps} steps on the 206-image subset (batch 1):\n")
    print("| model | precision | bbox AP | segm AP | detections / image (mean) | latency mean / p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for path in files:
        with open(path) as f:
            res = json.load(f)
        for m in res.get("models", []):
            lat = (m.get("latency") or {}).get("end_to_end") or {}
            ap = lambda kind: fmt((m.get(kind) or {}).get("stats", [None])[0], ".3f")  # noqa: E731
            dets = (m.get("detections_per_image") or {}).get("mean")
            prec = (m.get("backend") or {}).get("precision", "?")
            print(f"| {m['name']} | {prec} | {ap('bbox')} | {ap('segm')} | {fmt(dets, '.1f')} "
                  f"| {fmt(lat.get('mean'), '.2f')} / {fmt(lat.get('median'), '.2f')} / {fmt(lat.get('p99'), '.2f')} |")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else "gpu-out/work"
    runs = load(folder)
    if not runs:
        sys.exit(f"train_table: no rust_*/results.json / python_*.json in {folder}")
    throughput_table(runs)
    speedup_table(runs)
    curves(runs, folder)
    trained_inference(folder, runs)


if __name__ == "__main__":
    main()
