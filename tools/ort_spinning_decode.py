#!/usr/bin/env python3
"""Does ONNX Runtime's intra-op spin-waiting slow the work between calls? `cv2.imread` of the next
image, then `session.run` on a fixed input, in a loop over the first N subset images, with
`session.intra_op.allow_spinning` on or off (2 intra-op threads, 1 inter-op). Prints the median
and p10 of the decode and of the call (ms) as one JSON line per setting; run it on a quiet
machine and under load (docs/BENCHMARKS.md "The same comparison on a quiet machine").

    $ULTRALYTICS_PY tools/ort_spinning_decode.py ../shared/models/yolo11n_int8_320.onnx --images 150 --spinning on off on off
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

SHARED = Path(os.environ.get("DETBENCH_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


def run(model, spinning, files):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning == "on" else "0")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    x = np.full([1, 3, spec.shape[2], spec.shape[3]], 0.5, np.float32)
    for _ in range(5):
        session.run(None, {spec.name: x})
    decode, call = [], []
    for f in files:
        t0 = time.perf_counter()
        cv2.imread(str(f))
        t1 = time.perf_counter()
        session.run(None, {spec.name: x})
        t2 = time.perf_counter()
        decode.append(1e3 * (t1 - t0))
        call.append(1e3 * (t2 - t1))

    def summary(v):
        return {"median_ms": round(statistics.median(v), 2), "p10_ms": round(sorted(v)[len(v) // 10], 2)}

    return {"spinning": spinning, "images": len(files), "decode": summary(decode), "inference": summary(call),
            "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--spinning", nargs="+", choices=("on", "off"), default=["on", "off", "on", "off"])
    args = parser.parse_args()
    files = sorted((SHARED / "coco" / "val2017").glob("*.jpg"))[: args.images]
    for spinning in args.spinning:
        print(json.dumps(run(args.model, spinning, files)), flush=True)


if __name__ == "__main__":
    main()
