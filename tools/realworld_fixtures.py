#!/usr/bin/env python3
"""Small COCO files shaped like real exports, with pycocotools 2.0.11's stats as goldens.

Writes crates/eval/tests/fixtures/realworld/: ground-truth files in the shapes CVAT, Label
Studio and Roboflow export (their metadata as they write it: CVAT's `"year": ""` and
`"date_captured": 0`, Roboflow's `"year": "2023"`, `"info"` as plain text, unknown fields,
annotation and image ids from 0, an image listed twice), seeded detections for each, and
goldens.json: pycocotools' `COCOeval.stats` and printed summary for every pair and setting
that crates/eval/tests/realworld.rs and crates/cli/tests/eval_realworld.rs check.

pycocotools cannot match a ground truth whose annotation id is 0 (it marks "unmatched" with
0; ../shared/conformance/NOTES.md). Label Studio and Roboflow number annotations from 0, so
for those files the golden is pycocotools' result on the same file with every annotation id
plus 1 (`"ids_shifted": true`), which is what detbench (hotcoco) computes on the file as
exported.

Run: /work/main/.deps/venv/bin/python tools/realworld_fixtures.py  (deterministic; the output
is committed).
"""

import contextlib
import copy
import io
import json
import os
import random
import sys
import tempfile

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "eval", "tests", "fixtures", "realworld")

CATEGORIES = ["car", "person", "dog"]
SIZES = [(480, 640), (360, 500), (600, 800), (427, 640), (500, 375), (640, 480)]


def objects(seed):
    """Per image: a list of (category index, [x, y, w, h]) of every size bucket."""
    rng = random.Random(seed)
    images = []
    for h, w in SIZES:
        boxes = []
        for _ in range(rng.randint(2, 6)):
            side = rng.choice([12, 20, 45, 70, 130, 200])
            bw = side * rng.uniform(0.7, 1.3)
            bh = side * rng.uniform(0.7, 1.3)
            x = rng.uniform(0, w - bw - 1)
            y = rng.uniform(0, h - bh - 1)
            boxes.append((rng.randrange(len(CATEGORIES)), [round(v, 2) for v in (x, y, bw, bh)]))
        images.append(((h, w), boxes))
    return images


def polygon(box):
    x, y, w, h = box
    # An octagon inside the box, so masks and boxes differ.
    return [[x + w * 0.3, y, x + w * 0.7, y, x + w, y + h * 0.3, x + w, y + h * 0.7,
             x + w * 0.7, y + h, x + w * 0.3, y + h, x, y + h * 0.7, x, y + h * 0.3]]


def polygon_area(poly):
    pts = list(zip(poly[0][0::2], poly[0][1::2]))
    s = 0.0
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2


def cvat(images):
    """CVAT's "COCO 1.0" export: empty-string metadata, year "", date_captured 0, attributes."""
    gt = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(CATEGORIES)],
        "images": [],
        "annotations": [],
    }
    for i, ((h, w), boxes) in enumerate(images):
        gt["images"].append({"id": i + 1, "width": w, "height": h, "file_name": f"frame_{i:06d}.PNG",
                             "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0})
        for cat, box in boxes:
            poly = polygon(box)
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": cat + 1,
                "segmentation": poly, "area": round(polygon_area(poly), 2), "bbox": box,
                "iscrowd": 0, "attributes": {"occluded": False, "rotation": 0.0}})
    return gt


def label_studio(images):
    """Label Studio's COCO export: ids from 0, `segmentation: []`, `ignore`, a dated info."""
    gt = {
        "images": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(CATEGORIES)],
        "annotations": [],
        "info": {"year": 2024, "version": "1.0", "description": "", "contributor": "Label Studio",
                 "url": "", "date_created": "2024-05-01 10:00:00.123456"},
    }
    for i, ((h, w), boxes) in enumerate(images):
        gt["images"].append({"width": w, "height": h, "id": i, "file_name": f"images/{i}.jpg"})
        for cat, box in boxes:
            gt["annotations"].append({
                "id": len(gt["annotations"]), "image_id": i, "category_id": cat, "segmentation": [],
                "bbox": box, "ignore": 0, "iscrowd": 0, "area": round(box[2] * box[3], 4)})
    return gt


def roboflow(images):
    """Roboflow's COCO export: year as a string, a parent category 0, ids from 0."""
    gt = {
        "info": {"year": "2023", "version": "3", "description": "Exported from roboflow.com",
                 "contributor": "", "url": "https://example.org/dataset",
                 "date_created": "2023-06-01T10:00:00+00:00"},
        "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
        "categories": [{"id": 0, "name": "objects", "supercategory": "none"}]
        + [{"id": i + 1, "name": n, "supercategory": "objects"} for i, n in enumerate(CATEGORIES)],
        "images": [],
        "annotations": [],
    }
    for i, ((h, w), boxes) in enumerate(images):
        gt["images"].append({"id": i, "license": 1, "file_name": f"img{i}_jpg.rf.0a1b2c.jpg",
                             "height": h, "width": w, "date_captured": "2023-06-01T10:00:00+00:00"})
        for cat, box in boxes:
            gt["annotations"].append({
                "id": len(gt["annotations"]), "image_id": i, "category_id": cat + 1, "bbox": box,
                "area": round(box[2] * box[3], 3), "segmentation": [], "iscrowd": 0})
    return gt


def loose(images):
    """Hand-written and converted files: info as text, unknown fields everywhere, nulls, an
    image listed twice."""
    gt = cvat(images)
    gt["info"] = "converted from VOC by a script"
    gt["type"] = "instances"
    del gt["licenses"]
    for image in gt["images"]:
        image.update({"date_captured": None, "license": None, "flags": {"reviewed": True}})
    for cat in gt["categories"]:
        cat["supercategory"] = None
        cat["color"] = [255, 0, 0]
    for ann in gt["annotations"]:
        del ann["attributes"]
        ann["source"] = "manual"
    gt["images"].append(copy.deepcopy(gt["images"][1]))
    return gt


def detections(gt, seed, with_masks):
    """Jittered boxes for most objects, some misses and false positives, seeded."""
    rng = random.Random(seed)
    dets = []
    cat_ids = [c["id"] for c in gt["categories"] if c["name"] in CATEGORIES]
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue
        x, y, w, h = ann["bbox"]
        j = lambda v, s: v + rng.gauss(0, s)
        box = [round(j(x, w * 0.06), 2), round(j(y, h * 0.06), 2),
               round(max(1.0, j(w, w * 0.08)), 2), round(max(1.0, j(h, h * 0.08)), 2)]
        cat = ann["category_id"] if rng.random() < 0.9 else rng.choice(cat_ids)
        dets.append({"image_id": ann["image_id"], "category_id": cat, "bbox": box,
                     "score": round(rng.uniform(0.05, 0.99), 4)})
    for image_id, (h, w) in sizes.items():
        for _ in range(rng.randint(0, 3)):
            bw, bh = rng.uniform(10, 120), rng.uniform(10, 120)
            box = [round(rng.uniform(0, w - bw), 2), round(rng.uniform(0, h - bh), 2), round(bw, 2), round(bh, 2)]
            dets.append({"image_id": image_id, "category_id": rng.choice(cat_ids), "bbox": box,
                         "score": round(rng.uniform(0.01, 0.6), 4)})
    if with_masks:
        for d in dets:
            d["segmentation"] = polygon(d["bbox"])
    return dets


def shifted_ids(gt):
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        ann["id"] += 1
    return gt


def evaluate(gt, dt, iou_type, max_dets=None, img_ids=None):
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = os.path.join(tmp, "gt.json")
        dt_path = os.path.join(tmp, "dt.json")
        json.dump(gt, open(gt_path, "w"))
        json.dump(dt, open(dt_path, "w"))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            coco_gt = COCO(gt_path)
            coco_dt = coco_gt.loadRes(dt_path)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            if max_dets is not None:
                ev.params.maxDets = max_dets
            if img_ids is not None:
                ev.params.imgIds = img_ids
            ev.evaluate()
            ev.accumulate()
            out.truncate(0)
            out.seek(0)
            ev.summarize()
        lines = [l for l in out.getvalue().splitlines() if l.startswith(" Average")]
        return [float(v) for v in ev.stats], lines


def main():
    os.makedirs(OUT, exist_ok=True)
    shapes = {
        "cvat": (cvat, 11, True),
        "label_studio": (label_studio, 12, False),
        "roboflow": (roboflow, 13, False),
        "loose": (loose, 14, True),
    }
    goldens = []
    for name, (make, seed, masks) in shapes.items():
        gt = make(objects(seed))
        dt = detections(gt, seed + 100, masks)
        json.dump(gt, open(os.path.join(OUT, f"{name}_gt.json"), "w"), indent=1)
        json.dump(dt, open(os.path.join(OUT, f"{name}_dt.json"), "w"))
        ids_shifted = any(a["id"] == 0 for a in gt["annotations"])
        reference = shifted_ids(gt) if ids_shifted else gt
        settings = [("bbox", None, None)]
        if masks:
            settings.append(("segm", None, None))
        if name == "cvat":
            settings += [("bbox", [1, 10, 1000], None), ("bbox", [1, 100, 1000], None),
                         ("bbox", None, [2, 3])]
        for iou_type, max_dets, img_ids in settings:
            stats, lines = evaluate(reference, dt, iou_type, max_dets, img_ids)
            goldens.append({"name": name, "gt": f"{name}_gt.json", "dt": f"{name}_dt.json",
                            "iou_type": iou_type, "max_dets": max_dets, "image_ids": img_ids,
                            "ids_shifted": ids_shifted, "stats": stats, "summary": lines})
    meta = {"pycocotools": __import__("pycocotools").__version__ if hasattr(__import__("pycocotools"), "__version__") else "2.0.11",
            "made_by": "tools/realworld_fixtures.py", "goldens": goldens}
    json.dump(meta, open(os.path.join(OUT, "goldens.json"), "w"), indent=1)
    print(f"wrote {len(goldens)} goldens to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
