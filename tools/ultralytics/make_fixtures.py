#!/usr/bin/env python3
"""Reference outputs of Ultralytics' own predictor, for detbench's parity tests.

Runs `ultralytics` (8.4.x, CPU, ONNX Runtime backend) on the shipped ONNX models and on random-weight
models exported here from the package's own YAMLs, and writes small JSON fixtures that
crates/models/tests/ultralytics_parity.rs compares detbench's pipeline with:

- shipped detect/segment models (../shared/models): per image, the predictor's boxes (xyxy, original
  pixels), scores, classes and, for segmentation, masks (retina_masks=True: `ops.process_mask_native`,
  masks at the original size) as COCO compressed RLE. detbench runs the whole pipeline (decode,
  letterbox, ONNX Runtime, NMS, masks) and must match these.
- layouts no shipped model has, pose ([1, 4 + 1 + 51, N]) and end-to-end ([1, 300, 6], as `nms=True`,
  YOLOv10 and YOLO26 exports give): seeded synthetic raw outputs with realistic clusters of boxes, run
  through the package's own `PosePredictor.postprocess` / `DetectionPredictor.postprocess` (NMS,
  `scale_boxes`, `scale_coords`). The fixture keeps the raw rows over the confidence threshold (no
  other row can reach the output, so the test rebuilds the tensor with zeros there). Random-weight
  exports from the package's YAMLs (`--only exports`: YOLO11n-pose, YOLO26n with the NMS-free head)
  give degenerate outputs (near-constant scores and boxes), useless for parity; they serve layout
  recognition and speed runs and are never committed.
- YOLOv5-style output ([1, N, 5 + nc] with objectness), which the `ultralytics` package no longer
  produces: a seeded synthetic raw output and the result of the reference NMS below, transcribed from
  ultralytics/yolov5 v7.0 `utils/general.py::non_max_suppression`.

Usage (after tools/ultralytics/setup_venv.sh):
    source tools/ultralytics/env.sh && $ULTRALYTICS_PY tools/ultralytics/make_fixtures.py \
        --out crates/models/tests/fixtures/ultralytics --work target/ultralytics-work
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("DETBENCH_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
IMAGES = SHARED / "coco" / "val2017"
# Landscape and portrait images of the shipped subset (the first three are the reference parity images).
IMAGE_STEMS = ["000000000139", "000000000802", "000000005001", "000000011813", "000000017627", "000000109313", "000000020992"]
SHIPPED = {
    "yolov8n_int8_640": "detect",
    "yolo11n_int8_320": "detect",
    "yolov8n-seg_int8_320": "segment",
}


def f32_list(a):
    """float32 values as JSON numbers that round-trip exactly (repr of the widened double)."""
    return [float(x) for x in np.asarray(a, dtype=np.float32).reshape(-1)]


def result_record(result, stem):
    """One image's predictor results, in original-image pixels."""
    import pycocotools.mask as mask_util

    h, w = result.orig_shape
    boxes = result.boxes
    record = {
        "image": stem,
        "width": int(w),
        "height": int(h),
        "boxes": [f32_list(b) for b in boxes.xyxy.cpu().numpy()],
        "scores": f32_list(boxes.conf.cpu().numpy()),
        "classes": [int(c) for c in boxes.cls.cpu().numpy()],
    }
    if result.masks is not None:
        masks = result.masks.data.cpu().numpy().astype(np.uint8)
        assert masks.shape[1:] == (h, w), f"retina masks expected at {h}x{w}, got {masks.shape}"
        record["masks"] = [mask_util.encode(np.asfortranarray(m))["counts"].decode() for m in masks]
    if result.keypoints is not None:
        record["keypoints"] = [f32_list(k) for k in result.keypoints.data.cpu().numpy()]
    return record


def run_predictor(model_path, task, conf, iou, max_det, stems):
    """Ultralytics' predictor on each image; results (and raw rows) per image."""
    from ultralytics import YOLO

    model = YOLO(str(model_path), task=task)
    records = []
    for stem in stems:
        path = IMAGES / f"{stem}.jpg"
        t = time.time()
        (result,) = model.predict(
            str(path), conf=conf, iou=iou, max_det=max_det, retina_masks=True, device="cpu", verbose=False
        )
        record = result_record(result, stem)
        records.append(record)
        print(f"  {model_path.name} {stem}: {len(record['scores'])} results ({time.time() - t:.2f} s)", file=sys.stderr)
    return records


def settings(conf, iou, max_det):
    return {"conf": conf, "iou": iou, "max_det": max_det, "retina_masks": True, "agnostic_nms": False}


def shipped_fixtures(out):
    import ultralytics

    for name, task in SHIPPED.items():
        path = SHARED / "models" / f"{name}.onnx"
        runs = []
        for conf, stems in ((0.25, IMAGE_STEMS), (0.001, IMAGE_STEMS[:2])):
            runs.append({"settings": settings(conf, 0.7, 300), "images": run_predictor(path, task, conf, 0.7, 300, stems)})
        write(out / f"{name}.json", {"model": path.name, "task": task, "ultralytics": ultralytics.__version__, "runs": runs})


def quantise(raw, coordinate_channels, step=1 / 16, score_step=1 / 4096):
    """Rounds synthetic values to short binary fractions (exact in float32, short in JSON); equal scores
    then occur, which exercises the order of ties."""
    out = np.round(raw / score_step) * score_step
    out[coordinate_channels] = np.round(raw[coordinate_channels] / step) * step
    return out.astype(np.float32)


def synthetic_clusters(rng, n, size, clusters=40):
    """Centres and sizes of n boxes in clusters of heavy overlap, inside a size x size input."""
    anchors = rng.uniform(0.06 * size, 0.94 * size, size=(clusters, 2))
    pick = rng.integers(0, clusters, size=n)
    centres = anchors[pick] + rng.normal(0, 0.02 * size, size=(n, 2))
    sizes = rng.uniform(0.03 * size, 0.4 * size, size=(clusters, 2))[pick] * rng.uniform(0.85, 1.15, size=(n, 2))
    return centres, sizes, pick


def ultralytics_postprocess(task, raw, input_hw, image_stem, conf, iou, max_det, names, kpt_shape=None, end2end=False):
    """Runs the package's own predictor postprocess (NMS, scale_boxes, scale_coords, Results) on a raw output."""
    import cv2
    import torch
    import torchvision  # noqa: F401  the predictor imports it while setting up, so its NMS is torchvision's
    from types import SimpleNamespace

    from ultralytics.models.yolo.detect.predict import DetectionPredictor
    from ultralytics.models.yolo.pose.predict import PosePredictor

    cls = PosePredictor if task == "pose" else DetectionPredictor
    predictor = cls(overrides={"conf": conf, "iou": iou, "max_det": max_det, "task": task, "verbose": False})
    predictor.model = SimpleNamespace(names=names, kpt_shape=kpt_shape, end2end=end2end)
    path = str(IMAGES / f"{image_stem}.jpg")
    orig = cv2.imread(path)
    predictor.batch = ([path], None, None)
    img = torch.zeros((1, 3, *input_hw))
    assert "torchvision" in sys.modules  # else non_max_suppression falls back to TorchNMS.nms
    (result,) = predictor.postprocess(torch.from_numpy(raw.copy()), img, [orig])
    return result_record(result, image_stem)


def synthetic_pose(rng, n, size, nk=17):
    """A YOLO-pose style output [1, 4 + 1 + 3 * nk, n]: xywh, person score, keypoints (x, y, visibility)."""
    centres, sizes, _ = synthetic_clusters(rng, n, size)
    raw = np.zeros((1, 5 + 3 * nk, n), dtype=np.float32)
    raw[0, 0:2] = centres.T
    raw[0, 2:4] = sizes.T
    raw[0, 4] = rng.beta(0.4, 6.0, size=n)
    offsets = rng.uniform(-0.6, 0.6, size=(nk, 2, n)) * sizes.T[None]
    for k in range(nk):
        raw[0, 5 + 3 * k : 7 + 3 * k] = centres.T + offsets[k]
        raw[0, 7 + 3 * k] = rng.uniform(0, 1, size=n)
    coordinates = np.zeros(raw.shape, dtype=bool)
    coordinates[0, :4] = True
    for k in range(nk):
        coordinates[0, 5 + 3 * k : 7 + 3 * k] = True
    return quantise(raw, coordinates)


def synthetic_end2end(rng, rows, size, nc):
    """An end-to-end output [1, rows, 6]: xyxy in input pixels, score (descending, as the top-k), class."""
    centres, sizes, _ = synthetic_clusters(rng, rows, size)
    raw = np.zeros((1, rows, 6), dtype=np.float32)
    raw[0, :, 0:2] = centres - sizes / 2
    raw[0, :, 2:4] = centres + sizes / 2
    raw[0, :, 4] = np.sort(rng.beta(0.3, 3.0, size=rows))[::-1]
    raw[0, :, 5] = rng.integers(0, nc, size=rows)
    coordinates = np.zeros(raw.shape, dtype=bool)
    coordinates[0, :, :4] = True
    coordinates[0, :, 5] = True
    return quantise(raw, coordinates)


def synthetic_fixtures(out):
    """Raw outputs of the layouts no shipped model has, through Ultralytics' own postprocess."""
    import ultralytics

    rng = np.random.default_rng(11)
    size, n = 320, 3 * 700  # a 320 input has 40^2 + 20^2 + 10^2 = 2100 anchors
    conf, iou = 0.25, 0.7
    images = []
    for stem in IMAGE_STEMS[:2]:
        raw = synthetic_pose(rng, n, size)
        record = ultralytics_postprocess("pose", raw, (size, size), stem, conf, iou, 100, {0: "person"}, [17, 3])
        data = raw[0].T
        record["raw_shape"] = list(raw.shape)
        record["raw_rows"] = [[int(i), *f32_list(data[i])] for i in np.nonzero(data[:, 4] > conf)[0]]
        images.append(record)
    write(out / "synthetic_pose.json", {
        "model": "synthetic YOLO-pose output [1, 56, 2100] (numpy seed 11) through PosePredictor.postprocess",
        "task": "pose", "ultralytics": ultralytics.__version__, "nc": 1, "kpt_shape": [17, 3],
        "input_size": [size, size], "runs": [{"settings": settings(conf, iou, 100), "images": images}],
    })
    images = []
    names = {i: f"class{i}" for i in range(80)}
    for stem in IMAGE_STEMS[:3]:
        raw = synthetic_end2end(rng, 300, size, 80)
        record = ultralytics_postprocess("detect", raw, (size, size), stem, conf, iou, 300, names, end2end=True)
        record["raw_shape"] = list(raw.shape)
        record["raw_rows"] = [[int(i), *f32_list(raw[0, i])] for i in range(raw.shape[1])]
        images.append(record)
    write(out / "synthetic_end2end.json", {
        "model": "synthetic end-to-end output [1, 300, 6] (numpy seed 11) through DetectionPredictor.postprocess "
                 "(end2end=True)",
        "task": "detect", "ultralytics": ultralytics.__version__, "nc": 80, "input_size": [size, size],
        "runs": [{"settings": settings(conf, iou, 300), "images": images}],
    })


def export_random(work):
    """Random-weight exports from the package's own YAMLs (seed 0), offline, for layout recognition and
    speed runs (never committed): YOLO11n-pose (one class) and YOLO26n with the NMS-free head."""
    import torch
    from ultralytics import YOLO

    work.mkdir(parents=True, exist_ok=True)
    made = []
    for name, yaml, args in (
        ("yolo11n-pose", "11/yolo11-pose.yaml", {}),
        ("yolo26n", "26/yolo26.yaml", {"nms": False}),
    ):
        cfg = work / f"{name}.yaml"
        cfg.write_text(package_yaml(yaml).replace("nc: 80", "nc: 1") if "pose" in name else package_yaml(yaml))
        torch.manual_seed(0)
        made.append(Path(YOLO(str(cfg)).export(format="onnx", imgsz=320, simplify=False, opset=17, **args)))
    for path in made:
        print(f"exported {path}", file=sys.stderr)


def package_yaml(relative):
    import ultralytics

    return (Path(ultralytics.__file__).parent / "cfg" / "models" / relative).read_text()


def yolov5_reference_nms(prediction, conf_thres, iou_thres, max_det=300, agnostic=False):
    """ultralytics/yolov5 v7.0 utils/general.py::non_max_suppression, single label (multi_label=False),
    no masks: candidates obj > conf; cls *= obj; best class conf > conf; class offset max_wh = 7680;
    torchvision.ops.nms; first max_det."""
    import torch
    import torchvision

    max_wh, max_nms = 7680, 30000
    x = prediction[0]
    x = x[x[:, 4] > conf_thres]
    x[:, 5:] *= x[:, 4:5]
    box = x[:, :4].clone()
    box[:, 0] = x[:, 0] - x[:, 2] / 2  # yolov5 xywh2xyxy
    box[:, 1] = x[:, 1] - x[:, 3] / 2
    box[:, 2] = x[:, 0] + x[:, 2] / 2
    box[:, 3] = x[:, 1] + x[:, 3] / 2
    conf, j = x[:, 5:].max(1, keepdim=True)
    x = torch.cat((box, conf, j.float()), 1)[conf.view(-1) > conf_thres]
    if x.shape[0] > max_nms:
        x = x[x[:, 4].argsort(descending=True)[:max_nms]]
    c = x[:, 5:6] * (0 if agnostic else max_wh)
    i = torchvision.ops.nms(x[:, :4] + c, x[:, 4], iou_thres)[:max_det]
    return x[i]


def yolov5_fixture(out):
    """Synthetic [1, N, 85] output at 160 (N = 3 * (20^2 + 10^2 + 5^2) anchors) and its reference NMS."""
    import torch

    rng = np.random.default_rng(5)
    n, nc = 3 * (20 * 20 + 10 * 10 + 5 * 5), 20  # a 160 input, 20 classes
    raw = np.zeros((1, n, 5 + nc), dtype=np.float32)
    centres, sizes, _ = synthetic_clusters(rng, n, 160, clusters=25)
    raw[0, :, 0:2] = centres
    raw[0, :, 2:4] = sizes
    raw[0, :, 4] = rng.beta(0.6, 2.5, size=n)
    raw[0, :, 5:] = rng.beta(0.15, 3.0, size=(n, nc))
    coordinates = np.zeros(raw.shape, dtype=bool)
    coordinates[0, :, :4] = True
    raw = quantise(raw, coordinates)
    conf, iou = 0.25, 0.45
    kept = yolov5_reference_nms(torch.from_numpy(raw.copy()), conf, iou).numpy()
    keep_rows = np.nonzero(raw[0, :, 4] > conf)[0]
    write(out / "synthetic_yolov5.json", {
        "model": "synthetic YOLOv5-style output (objectness), numpy seed 5; reference: ultralytics/yolov5 v7.0 "
                 "utils/general.py::non_max_suppression (single label)",
        "nc": nc, "raw_shape": list(raw.shape), "settings": {"conf": conf, "iou": iou, "max_det": 300},
        "raw_rows": [[int(i), *f32_list(raw[0, i])] for i in keep_rows],
        "boxes": [f32_list(r[:4]) for r in kept], "scores": f32_list(kept[:, 4]),
        "classes": [int(c) for c in kept[:, 5]],
    })


def write(path, doc):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    tmp.replace(path)
    print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="where the random-weight exports go (not committed)")
    parser.add_argument("--only", choices=["shipped", "synthetic", "exports", "yolov5"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["shipped", "synthetic", "yolov5"])
    out, work = args.out.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # Ultralytics writes its exports beside the YAML and may create runs/ here
    if "shipped" in only:
        shipped_fixtures(out)
    if "synthetic" in only:
        synthetic_fixtures(out)
    if "exports" in only:
        export_random(work)
    if "yolov5" in only:
        yolov5_fixture(out)

if __name__ == "__main__":
    main()
