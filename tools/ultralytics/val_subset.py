#!/usr/bin/env python3
"""Ultralytics' own validator (`val`, save_json=True) on the shipped COCO subset, for AP comparisons.

1. The 206-image subset becomes a COCO dataset in Ultralytics' layout, with labels made by the package's
   own converter (`ultralytics.data.converter.convert_coco`, use_segments=True, cls91to80=True):
   images/val2017 (links), labels/val2017, val2017.txt, annotations/instances_val2017.json (the subset's
   annotations). The path ends in `val2017.txt` under a folder named `coco`, so the validator treats it
   as COCO (`DetectionValidator.init_metrics: is_coco`): category ids through `coco80_to_coco91_class`,
   and its final COCO mAP through faster-coco-eval on the saved JSON.
2. For each shipped Ultralytics model, the validator at its defaults for mAP (conf=0.001, iou=0.7,
   max_det=300, multi_label NMS, batch 1, the export's imgsz), on CPU through ONNX Runtime.
3. Kept under --out: `<model>.predictions.json.gz` (the validator's own predictions.json, gzipped) and
   `<model>.summary.json`: Ultralytics' own metrics (`metrics.box.map`, its 101-point interpolation on
   its own matching), the faster-coco-eval stats the validator printed, and pycocotools 2.0.11's 12
   stats on the same JSON (what `detbench eval` must reproduce exactly).

    source tools/ultralytics/env.sh && $ULTRALYTICS_PY tools/ultralytics/val_subset.py \
        --out crates/models/tests/fixtures/ultralytics/val --work target/ultralytics-work/val
"""
import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

SHARED = Path(os.environ.get("DETBENCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
SUBSET_JSON = SHARED / "coco" / "annotations" / "instances_val2017_subset.json"
MODELS = {"yolov8n_int8_640": "detect", "yolo11n_int8_320": "detect", "yolov8n-seg_int8_320": "segment"}


def make_dataset(work):
    """The subset in Ultralytics' COCO layout; returns the data YAML path."""
    from ultralytics.data.converter import convert_coco
    from ultralytics.utils import YAML

    root = work / "coco"
    if root.exists():
        shutil.rmtree(root)
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    shutil.copy(SUBSET_JSON, annotations / "instances_val2017.json")
    converted = work / "converted"
    if converted.exists():
        shutil.rmtree(converted)
    with contextlib.redirect_stderr(io.StringIO()):
        convert_coco(labels_dir=str(annotations), save_dir=str(converted), use_segments=True, cls91to80=True)
    shutil.move(str(converted / "labels" / "val2017"), str(root / "labels" / "val2017"))
    images = root / "images" / "val2017"
    images.mkdir(parents=True)
    subset = json.loads(SUBSET_JSON.read_text())
    names = sorted(i["file_name"] for i in subset["images"])
    for name in names:
        (images / name).symlink_to(SHARED / "coco" / "val2017" / name)
    (root / "val2017.txt").write_text("".join(f"./images/val2017/{n}\n" for n in names))
    import ultralytics

    coco_yaml = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml")
    data = {"path": str(root), "train": "val2017.txt", "val": "val2017.txt", "names": coco_yaml["names"]}
    path = work / "coco_subset.yaml"
    YAML.save(path, data)
    return path


def pycocotools_stats(predictions, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(SUBSET_JSON))
        dt = gt.loadRes(str(predictions))
        e = COCOeval(gt, dt, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return [float(x) for x in e.stats]


def validate(name, task, data, work, out):
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.models.yolo.segment import SegmentationValidator

    model = SHARED / "models" / f"{name}.onnx"
    args = dict(model=str(model), data=str(data), task=task, mode="val", batch=1, conf=0.001, iou=0.7, max_det=300,
                save_json=True, plots=False, device="cpu", project=str(work / "runs"), name=name, exist_ok=True,
                verbose=False)
    validator = (SegmentationValidator if task == "segment" else DetectionValidator)(args=args)
    started = time.time()
    stats = validator(model=str(model))
    seconds = time.time() - started
    predictions = Path(validator.save_dir) / "predictions.json"
    own = {"box_map50_95": float(validator.metrics.box.map), "box_map50": float(validator.metrics.box.map50)}
    if task == "segment":
        own |= {"mask_map50_95": float(validator.metrics.seg.map), "mask_map50": float(validator.metrics.seg.map50)}
    summary = {
        "model": model.name,
        "ultralytics": __import__("ultralytics").__version__,
        "settings": {k: args[k] for k in ("batch", "conf", "iou", "max_det")} | {"imgsz": validator.args.imgsz},
        "images": len(validator.dataloader.dataset.im_files),
        "ultralytics_own_metrics": own,
        "validator_stats": {k: float(v) for k, v in stats.items()},
        "pycocotools_bbox": pycocotools_stats(predictions, "bbox"),
        "seconds": round(seconds, 1),
    }
    if task == "segment":
        summary["pycocotools_segm"] = pycocotools_stats(predictions, "segm")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.predictions.json.gz", "wb") as raw, gzip.GzipFile(
        filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0
    ) as f:  # mtime 0: the same predictions give the same bytes
        f.write(predictions.read_bytes())
    (out / f"{name}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{name}: own mAP50-95 {own['box_map50_95']:.4f}, pycocotools bbox AP {summary['pycocotools_bbox'][0]:.4f} "
          f"({seconds:.0f} s)", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    out, work = args.out.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    data = make_dataset(work)
    for name in args.models:
        validate(name, MODELS[name], data, work, out)


if __name__ == "__main__":
    main()
