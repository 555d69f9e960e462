#!/usr/bin/env python3
"""AP of the shipped DEIMv2 files on the 206-image subset through their own deploy pipeline and
pycocotools: the upstream-side number beside `detbench run --model deimv2_*` in
docs/BENCHMARKS.md ("Modern families").

The pipeline is tools/detr/deimv2_reference.py's (the files' sample preprocessing, the
postprocessor inside the graph, all 300 results per image written as the upstream COCO evaluator
writes them: `[x1, y1, x2 - x1, y2 - y1]`, batch 1). pycocotools scores them twice: as they are
(negative widths or heights included, as upstream passes them), and with the boxes whose
`x2 < x1` or `y2 < y1` dropped (what detbench's DETR family does, because COCO results take no
negative sizes). The JSON written to --out has both stat lists and the reversed boxes found.

    DETBENCH_SHARED=../shared /work/main/.deps/venv/bin/python tools/detr/deimv2_subset_ap.py \
        --out docs/cpu/deimv2_subset_ap_2026-12-03.json
"""
import argparse
import collections
import contextlib
import copy
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deimv2_reference import MODELS, SHARED, coco_results, preprocess  # noqa: E402


def stats(gt, image_ids, results):
    """pycocotools' 12 bbox stats of `results` on `image_ids`."""
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(copy.deepcopy(results))
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats]


def run_model(name, gt, image_ids, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(SHARED / "models" / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
    _, _, height, width = session.get_inputs()[0].shape
    results = []
    for image_id in image_ids:
        x, (w, h) = preprocess(SHARED / "coco" / "val2017" / gt.imgs[image_id]["file_name"], width, height)
        labels, boxes, scores = session.run(None, {"images": x[None], "orig_target_sizes": np.array([[w, h]], dtype=np.int64)})
        for result in coco_results(labels[0], boxes[0], scores[0]):
            results.append(result | {"image_id": image_id})
    reversed_boxes = [r for r in results if r["bbox"][2] < 0 or r["bbox"][3] < 0]
    kept = [r for r in results if not (r["bbox"][2] < 0 or r["bbox"][3] < 0)]
    per_image_class = collections.Counter((r["image_id"], r["category_id"]) for r in results)
    return {
        "model": f"{name}.onnx",
        "results": len(results),
        "reversed_boxes": reversed_boxes,
        "most_results_of_one_class_on_one_image": max(per_image_class.values()),
        "pycocotools_as_exported": stats(gt, image_ids, results),
        "pycocotools_reversed_dropped": stats(gt, image_ids, kept),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(SHARED / "coco" / "annotations" / "instances_val2017_subset.json"))
    image_ids = sorted(gt.getImgIds())
    doc = {"onnxruntime": ort.__version__, "images": len(image_ids), "models": {}}
    for name in MODELS:
        doc["models"][name] = run_model(name, gt, image_ids, args.threads)
        entry = doc["models"][name]
        print(f"{name}: AP {entry['pycocotools_as_exported'][0]:.6f} as exported, "
              f"{entry['pycocotools_reversed_dropped'][0]:.6f} without the {len(entry['reversed_boxes'])} "
              f"reversed box(es)", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
