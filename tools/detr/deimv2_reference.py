#!/usr/bin/env python3
"""Reference post-processing of the shipped DEIMv2 ONNX files, for detbench's DETR parity test.

The model's own deploy path, in plain Python (numpy, OpenCV, onnxruntime):
- preprocessing of the files' sample (Kazuhito00/DEIMv2-ONNX-Sample @ 73feca3, sample_onnx.py):
  cv2.imread, cv2.cvtColor(BGR2RGB), cv2.resize to the input size (INTER_LINEAR), astype(float32) / 255,
  HWC -> CHW; orig_target_sizes = [[W, H]] (int64);
- the postprocessor is inside the graph (DEIMv2 tools/deployment/export_onnx.py: Model.forward runs
  cfg.postprocessor.deploy()): labels [N, 300] (class index 0..79), boxes [N, 300, 4] (xyxy, original
  pixels), scores [N, 300];
- COCO results as the upstream evaluator writes them (engine/data/dataset/coco_eval.py
  prepare_for_coco_detection: convert_to_xywh, i.e. [x1, y1, x2 - x1, y2 - y1] in float32), category id
  = the sorted COCO category ids[label], all 300 per image.

Each image is run alone (batch 1) and the same images again as one batch, to show that the batch
dimension changes nothing; the fixture keeps the batch-1 results and the largest difference seen.

    /work/main/.deps/venv/bin/python tools/detr/deimv2_reference.py --out crates/models/tests/fixtures/detr
"""
import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

SHARED = Path(os.environ.get("DETBENCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
IMAGES = ["000000000139", "000000000802", "000000005001"]
MODELS = ["deimv2_hgnetv2_atto_coco", "deimv2_hgnetv2_femto_coco"]
COCO80_TO_91 = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77,
    78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90,
]


def preprocess(path, width, height):
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    x = cv2.resize(rgb, (width, height)).astype(np.float32) / 255.0
    return np.transpose(x, (2, 0, 1)), (w, h)


def coco_results(labels, boxes, scores):
    boxes = boxes.astype(np.float32)
    wh = boxes[:, 2:4] - boxes[:, 0:2]  # float32, as torch's convert_to_xywh
    return [
        {"category_id": COCO80_TO_91[int(l)], "bbox": [float(b[0]), float(b[1]), float(v[0]), float(v[1])],
         "score": float(s)}
        for l, b, v, s in zip(labels, boxes, wh, scores)
    ]


def run_model(name, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(SHARED / "models" / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
    _, _, height, width = session.get_inputs()[0].shape
    inputs = [preprocess(SHARED / "coco" / "val2017" / f"{stem}.jpg", width, height) for stem in IMAGES]
    single = []
    for x, (w, h) in inputs:
        labels, boxes, scores = session.run(None, {"images": x[None], "orig_target_sizes": np.array([[w, h]], dtype=np.int64)})
        single.append((labels[0], boxes[0], scores[0]))
    batch = np.stack([x for x, _ in inputs])
    sizes = np.array([s for _, s in inputs], dtype=np.int64)
    labels, boxes, scores = session.run(None, {"images": batch, "orig_target_sizes": sizes})
    worst_box = max(float(np.abs(boxes[k] - single[k][1]).max()) for k in range(len(IMAGES)))
    worst_score = max(float(np.abs(scores[k] - single[k][2]).max()) for k in range(len(IMAGES)))
    same_labels = all(bool((labels[k] == single[k][0]).all()) for k in range(len(IMAGES)))
    return {
        "model": f"{name}.onnx",
        "input_size": [width, height],
        "onnxruntime": ort.__version__,
        "threads": threads,
        "batch_of_all_vs_single": {"max_box_diff": worst_box, "max_score_diff": worst_score, "same_labels": same_labels},
        "images": [
            {"image": stem, "width": w, "height": h, "results": coco_results(*single[k])}
            for k, (stem, (_, (w, h))) in enumerate(zip(IMAGES, inputs))
        ],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        doc = run_model(name, args.threads)
        path = args.out / f"{name}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        tmp.replace(path)
        print(f"wrote {path} ({path.stat().st_size} bytes); batch vs single: {doc['batch_of_all_vs_single']}", file=sys.stderr)


if __name__ == "__main__":
    main()
