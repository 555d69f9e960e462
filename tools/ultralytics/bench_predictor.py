#!/usr/bin/env python3
"""Ultralytics' own predictor on the shipped subset, timed per stage: the Python side of the speed
comparison with detbench (`detbench run --model-file`, phase 2 of issue 12).

What is timed, per image, on the predictor's own clocks (`Results.speed`, from `ops.Profile` around
`BasePredictor.preprocess`, `inference` and `postprocess`) plus this script's:
- decode: `cv2.imread` of the file (the predictor's loader reads files with the same call, outside its
  stage clocks), timed here on the same files;
- preprocess / inference / postprocess: the predictor's own numbers (ms);
- end to end: wall time of one `predict` call per image on an in-memory BGR array (decode excluded) plus
  the decode time.
ONNX Runtime gets `--threads` intra-op threads and `--spinning` (the predictor itself leaves both at
ONNX Runtime's defaults), through the SessionOptions the predictor's session is built with. A warm-up pass runs first; `--rounds` repeats.

    source tools/ultralytics/env.sh && $ULTRALYTICS_PY tools/ultralytics/bench_predictor.py \
        --model ../shared/models/yolov8n_int8_640.onnx --threads 2 --out target/bench/ultralytics.json
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

SHARED = Path(os.environ.get("DETBENCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))


def pin_threads(threads, spinning):
    """Every ONNX Runtime session made from here on gets `threads` intra-op threads, spin-waiting
    or not (`session.intra_op.allow_spinning`; ONNX Runtime's default is on)."""
    import onnxruntime

    original = onnxruntime.InferenceSession
    made = []

    def session(path, sess_options=None, *args, **kwargs):
        options = sess_options or onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning == "on" else "0")
        made.append(original(path, options, *args, **kwargs))
        return made[-1]

    onnxruntime.InferenceSession = session
    return made


def session_settings(sessions):
    """What the predictor's ONNX Runtime session was really made with (checked, not assumed)."""
    if len(sessions) != 1:
        sys.exit(f"expected the predictor to make one ONNX Runtime session, saw {len(sessions)}")
    options = sessions[0].get_session_options()
    return {
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode),
        "graph_optimization_level": str(options.graph_optimization_level),
        "intra_op_allow_spinning": options.get_session_config_entry("session.intra_op.allow_spinning"),
        "providers": sessions[0].get_providers(),
    }


def summarise(values):
    ordered = sorted(values)
    return {
        "mean_ms": statistics.fmean(values),
        "median_ms": statistics.median(values),
        "p10_ms": ordered[max(0, int(0.1 * len(ordered)) - 1)],
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--spinning", choices=("on", "off"), default="on",
                        help="ONNX Runtime intra-op spin-waiting (default: on, its own default)")
    parser.add_argument("--conf", type=float, default=0.25)
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--max-det", type=int, default=300)
    parser.add_argument("--images", type=int, default=206, help="first N images of the subset")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sessions = pin_threads(args.threads, args.spinning)
    import cv2
    import torch
    import ultralytics
    from ultralytics import YOLO

    annotations = json.loads((SHARED / "coco" / "annotations" / "instances_val2017_subset.json").read_text())
    files = sorted(SHARED / "coco" / "val2017" / i["file_name"] for i in annotations["images"])[: args.images]
    model = YOLO(str(args.model))
    settings = dict(conf=args.conf, iou=args.iou, max_det=args.max_det, device="cpu", verbose=False, retina_masks=True)
    model.predict(cv2.imread(str(files[0])), **settings)  # warm-up: session, predictor setup
    samples = {k: [] for k in ("decode", "preprocess", "inference", "postprocess", "end_to_end")}
    detections = []
    for _ in range(args.rounds):
        for f in files:
            t0 = time.perf_counter()
            image = cv2.imread(str(f))
            t1 = time.perf_counter()
            (result,) = model.predict(image, **settings)
            t2 = time.perf_counter()
            samples["decode"].append(1e3 * (t1 - t0))
            for stage in ("preprocess", "inference", "postprocess"):
                samples[stage].append(result.speed[stage])
            samples["end_to_end"].append(1e3 * (t2 - t0))
            detections.append(len(result.boxes))
    doc = {
        "tool": f"ultralytics {ultralytics.__version__} predictor, ONNX Runtime CPU",
        "model": str(args.model),
        "threads": args.threads,
        "onnxruntime_session": session_settings(sessions),
        "torch_threads": torch.get_num_threads(),
        "settings": {"conf": args.conf, "iou": args.iou, "max_det": args.max_det},
        "images": len(files),
        "rounds": args.rounds,
        "stages": {k: summarise(v) for k, v in samples.items()},
        "non_inference_mean_ms": sum(statistics.fmean(samples[k]) for k in ("decode", "preprocess", "postprocess")),
        "samples_ms": samples,
        "detections_per_image": detections,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc) + "\n")
    for k, v in doc["stages"].items():
        print(f"{k:12s} median {v['median_ms']:.2f} ms  mean {v['mean_ms']:.2f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
