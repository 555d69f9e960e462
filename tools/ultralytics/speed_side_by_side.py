#!/usr/bin/env python3
"""detbench against Ultralytics' own ONNX Runtime predictor, side by side in one run (issue 12,
item 7): the same ONNX file, the same first N images of the shipped subset, the same ONNX Runtime
intra-op threads and spin-waiting (`--spinning`), the predictor's settings (conf 0.25, iou 0.7, max_det 300, single label), in
interleaved rounds (the order alternates each round), per stage and end to end.

- Ultralytics: tools/ultralytics/bench_predictor.py (its own per-stage clocks, `Results.speed`;
  decode is `cv2.imread`, timed by that script).
- detbench: `detbench run --model-file MODEL --card CARD --decode inline` (decode on the timed
  thread, so end to end includes it as the predictor loop's does), CARD being the card
  `detbench zoo --card MODEL` prints with the predictor's thresholds instead of the validator's.

Non-inference time per image = decode + preprocess + postprocess of that image; "outside
inference" = end to end minus inference (the stages and the glue between them: the predictor's
per-call set-up, detbench's harness). Printed: pooled medians and p10 per stage over all rounds,
the ratio of the medians (Ultralytics / detbench), the per-round ratio of non-inference medians,
and the machine load (`/proc/loadavg`) at each round's start and end. The JSON written to --out
has every raw sample (ms, 4 decimals), both tools' settings as they recorded them, and the mean
detections per image of each (the same work: equal within a few per cent).

    source tools/ultralytics/env.sh && $ULTRALYTICS_PY tools/ultralytics/speed_side_by_side.py \\
        --detbench target/release/detbench --model ../shared/models/yolo11n_int8_320.onnx \\
        --threads 2 --images 100 --rounds 6 --out target/bench/side_by_side_yolo11n.json
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("decode", "preprocess", "inference", "postprocess")


def predictor_card(detbench, model, out):
    """The card detbench makes from the file, with the predictor's settings."""
    text = subprocess.run(
        [detbench, "zoo", "--card", str(model)], check=True, capture_output=True, text=True
    ).stdout
    text = re.sub(r"(?m)^score_threshold = .*$", "score_threshold = 0.25", text)
    text = re.sub(r"(?m)^protocol = .*\n", "", text)
    for key, value in (("nms_iou", "0.7"), ("max_detections", "300"), ("agnostic", "false")):
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    out.write_text(text)
    return out


def load():
    return Path("/proc/loadavg").read_text().split()[:3]


def run_ultralytics(args, work, k):
    out = work / f"ultralytics_{k}.json"
    subprocess.run(
        [sys.executable, str(HERE / "bench_predictor.py"), "--model", str(args.model),
         "--threads", str(args.threads), "--spinning", args.spinning, "--images", str(args.images), "--rounds", "1",
         "--out", str(out)],
        check=True, capture_output=True, text=True,
    )
    doc = json.loads(out.read_text())
    samples = doc["samples_ms"]
    return {s: samples[s] for s in STAGES} | {
        "end_to_end": samples["end_to_end"],
        "tool": doc["tool"],
        "settings": {
            "onnxruntime_session": doc["onnxruntime_session"],
            "torch_threads": doc["torch_threads"],
        },
        "detections_per_image": statistics.fmean(doc["detections_per_image"]),
    }


def run_detbench(args, card, work, k):
    out = work / f"detbench_{k}"
    subprocess.run(
        [str(args.detbench), "run", "--model-file", str(args.model), "--card", str(card),
         "--threads", str(args.threads), "--ort-spinning", args.spinning, "--limit", str(args.images), "--decode", "inline",
         "--warmup", "10", "--no-store", "--quiet", "--out", str(out)],
        check=True, capture_output=True, text=True,
        env=os.environ | {"XDG_CONFIG_HOME": str(work / "config")},
    )
    row = json.loads((out / "results.json").read_text())["models"][0]
    latency = row["latency"]
    assert row["status"] == "ok" and latency["includes_decode"] and latency["batch_size"] == 1, row["status"]
    stages = {s["stage"]: s["samples_ms"] for s in latency["stages"]}
    return {s: stages[s] for s in STAGES} | {
        "end_to_end": latency["end_to_end_samples_ms"],
        "tool": f"detbench, {row['backend']['engine']} {row['backend']['engine_version']} CPU",
        "settings": {"backend_options": row["backend"]["options"], "valid": latency["valid"],
                     "validity_notes": latency["validity_notes"]},
        "detections_per_image": row["detections_per_image"]["mean"],
    }


def per_image_sum(run, stages):
    return [sum(vals) for vals in zip(*(run[s] for s in stages))]


def rounded(run):
    return {k: [round(x, 4) for x in v] if isinstance(v, list) else v for k, v in run.items()}


def machine():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "host": platform.node(), "kernel": platform.release(),
            "python": platform.python_version(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def pooled(runs, key):
    values = [v for run in runs for v in run[key]]
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(values),
        "p10_ms": ordered[max(0, int(0.1 * len(ordered)) - 1)],
        "mean_ms": statistics.fmean(values),
        "count": len(values),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detbench", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spinning", choices=("on", "off"), default="on",
                        help="ONNX Runtime intra-op spin-waiting on both sides (default: on, ONNX Runtime's own)")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.detbench = args.detbench.resolve()
    work = Path(tempfile.mkdtemp(prefix="side_by_side_"))
    card = predictor_card(args.detbench, args.model, work / "predictor_card.toml")
    tools = {"ultralytics": [], "detbench": []}
    loads = []
    for k in range(args.rounds):
        order = ("ultralytics", "detbench") if k % 2 == 0 else ("detbench", "ultralytics")
        loads.append({"round": k, "order": order, "loadavg_start": load()})
        for tool in order:
            run = run_ultralytics(args, work, k) if tool == "ultralytics" else run_detbench(args, card, work, k)
            run["non_inference"] = per_image_sum(run, ("decode", "preprocess", "postprocess"))
            run["pre_post"] = per_image_sum(run, ("preprocess", "postprocess"))
            run["outside_inference"] = [e - i for e, i in zip(run["end_to_end"], run["inference"])]
            tools[tool].append(run)
        loads[-1]["loadavg_end"] = load()
        per_round = statistics.median(tools["ultralytics"][-1]["non_inference"]) / statistics.median(
            tools["detbench"][-1]["non_inference"])
        loads[-1]["non_inference_ratio"] = per_round
        print(f"round {k + 1}/{args.rounds}: non-inference ratio {per_round:.2f}x "
              f"(load {' '.join(loads[-1]['loadavg_start'])} -> {' '.join(loads[-1]['loadavg_end'])})",
              file=sys.stderr)
    keys = STAGES + ("non_inference", "pre_post", "outside_inference", "end_to_end")
    summary = {tool: {key: pooled(runs, key) for key in keys} for tool, runs in tools.items()}
    ratio = {
        key: summary["ultralytics"][key]["median_ms"] / summary["detbench"][key]["median_ms"]
        for key in keys
    }
    doc = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "machine": machine(),
        "model": str(args.model),
        "threads": args.threads,
        "spinning": args.spinning,
        "images": args.images,
        "rounds": args.rounds,
        "settings": "conf 0.25, iou 0.7, max_det 300, single label (the predictor's)",
        "card": card.read_text(),
        "tools": {tool: runs[0]["tool"] for tool, runs in tools.items()},
        "tool_settings": {tool: runs[0]["settings"] for tool, runs in tools.items()},
        "detections_per_image": {tool: [r["detections_per_image"] for r in runs] for tool, runs in tools.items()},
        "loads": loads,
        "summary": summary,
        "ratio_of_medians_ultralytics_over_detbench": ratio,
        "raw": {tool: [rounded(r) for r in runs] for tool, runs in tools.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(args.out)
    print(f"{args.model.name}, {args.images} images x {args.rounds} rounds, {args.threads} threads, spinning {args.spinning}")
    print("| stage | Ultralytics median (p10) ms | detbench median (p10) ms | Ultralytics / detbench |")
    print("|---|---|---|---|")
    for key in keys:
        u, d = summary["ultralytics"][key], summary["detbench"][key]
        print(f"| {key} | {u['median_ms']:.2f} ({u['p10_ms']:.2f}) | {d['median_ms']:.2f} ({d['p10_ms']:.2f}) | {ratio[key]:.2f}x |")
    per_round = ", ".join(f"{entry['non_inference_ratio']:.2f}x" for entry in loads)
    print(f"non-inference ratio per round: {per_round}")
    print(f"raw samples: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
