#!/usr/bin/env python3
"""Why Ultralytics' own mAP sits 0.4-1.1 points below pycocotools (and detbench) on the 206-image subset.

Issue 12 item 6 compares `detbench run` with "Ultralytics' own mAP", the figure its validator computes in the
loop (`validator.metrics.box.map` / `.seg.map`), which `tools/ultralytics/val_subset.py` keeps as
`ultralytics_own_metrics`. This script scores the SAME prediction sets several ways, per model and IoU type
(box for all three models, mask for the seg model), to show where the distance comes from:

  (a)   pycocotools on the subset's annotations (what detbench reports; loadRes on the whole results list, as
        val_subset.py does);
  (b)   pycocotools with the crowd annotations removed (Ultralytics' converter, `convert_coco`, drops them: the
        validator never sees them, so detections on crowds are false positives instead of ignored);
  (b2)  pycocotools on the labels Ultralytics' dataset holds (converter + `verify_image_label`: boxes from the
        polygons' extents, multi-part polygons merged by `merge_multi_segment`, duplicates removed), in
        original pixels; (b3) the same with maxDets 300 (the validator uses all max_det=300 detections);
  (c)   Ultralytics' own metric by Ultralytics' own code, in the validator's own space: labels, letterbox
        geometry and ground-truth masks from the validator's own dataloader (`DetectionValidator.get_dataloader`
        -> `YOLODataset`, `LetterBox(scaleup=False)`, `Format` with mask_ratio 4 and overlap_mask), each image
        through the validator's own `update_metrics` -> `_process_batch` (`box_iou` / `mask_iou`,
        `match_predictions`), the figure from its own `get_stats` -> `DetMetrics.process` /
        `SegmentMetrics.process` -> `ap_per_class` (`compute_ap`: np.interp at 101 points + trapezoid). Results
        saved in original-image pixels are mapped into that letterbox space (boxes: the exact inverse of
        `ops.scale_boxes` before its clip; masks: below). Applied to
          (c-0)  the validator's own in-loop predictions, captured while it ran (checks this harness: must give
                 the run's `ultralytics_own_metrics` exactly, and the same per-image correct-matrices);
          (c-i)  Ultralytics' saved predictions.json (the fixtures' for the detect models; the seg model's is not
                 in the fixtures, so the one `capture` writes);
          (c-ii) detbench's detections (`detbench run --save-detections`);
  (c*)  the validator's own correct-matrices from (c), accumulated as pycocotools' COCOeval.accumulate does
        (step sampling, mean of 101) instead of `ap_per_class`: separates the accumulation from the rest.
For the seg model, also (c-0) against ground-truth masks at full letterbox resolution (mask_ratio 1), with and
without overlap_mask: what the quarter-resolution ground truth costs.

Masks: the validator (save_json=True, so `SegmentationValidator.init_metrics` picks `ops.process_mask_native`)
compares predicted masks at the letterboxed input resolution (320x320 here) against ground-truth masks that
`Format._format_segments` rasterised at a quarter of it (`polygons2masks_overlap`, downsample_ratio 4: polygon
vertices cast to int32, `cv2.fillPoly` at full size, `cv2.resize` to 1/4, instances merged into one index map,
smaller over larger), which `SegmentationValidator._prepare_batch` splits per instance and upsamples back
(`F.interpolate` bilinear, `> 0.5`). Saved masks are at the original image size (`SegmentationValidator.
scale_preds`: `ops.scale_masks` bilinear, then `.byte()`, i.e. truncation); this script maps them back onto the
letterbox grid with a max over each letterbox pixel's footprint (`F.adaptive_max_pool2d` on the content area,
placed as `scale_masks` crops it) and reports how well that reproduces the in-loop masks (not exactly: the
truncation loses thin parts).

The scoring itself (each way, and the mapping of saved results into the validator's space) is in
metric_gap_ways.py; this file runs the validator (capture), drives the ways (score) and prints the tables.

Two steps; the first runs Ultralytics' validator on the three models (about 4 minutes on 2 cores, 7 loaded),
the second takes about 10 minutes (most of it the seg model's masks):

    source tools/ultralytics/env.sh
    $ULTRALYTICS_PY tools/ultralytics/metric_gap.py capture --work target/ultralytics-work/metric_gap
    $ULTRALYTICS_PY tools/ultralytics/metric_gap.py score --work target/ultralytics-work/metric_gap \\
        --detbench 'DIR/dets.{model}.json' --detbench-results OUT/results.json \\
        --out docs/cpu/ultralytics_metric_gap_2026-12-03.json

where DIR/dets.<model>.json and OUT/results.json come from
`detbench run --model yolov8n_int8_640,yolo11n_int8_320,yolov8n-seg_int8_320 --threads 2 --no-store --quiet
--out OUT --save-detections DIR/dets.json` (the shipped cards: the validator's protocol). `capture` writes, under
WORK/val, what val_subset.py writes (`<model>.predictions.json.gz`, `<model>.summary.json`) plus
`<model>.inloop.pkl.gz` (per image: the predictions as the validator scored them and the stats it appended).
"""
import argparse
import gzip
import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import val_subset  # noqa: E402  (its dataset layout, its validator settings)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates" / "models" / "tests" / "fixtures" / "ultralytics" / "val"
MODELS = val_subset.MODELS
from metric_gap_ways import (  # noqa: E402  (the ways of scoring, in metric_gap_ways.py)
    STAT_NAMES, UltralyticsScorer, coco_style_map, compare_to_inloop, converter_ground_truth, load_results,
    preds_from_inloop, preds_from_results, pycocotools_stats, results_by_image, tp_agreement,
)


# ---------------------------------------------------------------------------------------------------------------
# capture: Ultralytics' validator as val_subset.py runs it, keeping its in-loop predictions and per-image stats
# ---------------------------------------------------------------------------------------------------------------


def install_capture(records):
    """Wrap DetectionValidator.update_metrics and DetMetrics.update_stats (class level; the seg validator and
    SegmentMetrics inherit them) to keep, per image, the predictions exactly as the validator scores them
    (letterbox pixels, float32, masks at the input size as RLE) and the stats it appends."""
    import torch
    from pycocotools import mask as mask_utils
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import DetMetrics

    update_metrics, update_stats = DetectionValidator.update_metrics, DetMetrics.update_stats

    def hooked_update_metrics(self, preds, batch):
        for si, pred in enumerate(preds):
            rec = {
                "im_file": Path(batch["im_file"][si]).name,
                "ori_shape": tuple(int(x) for x in batch["ori_shape"][si]),
                "ratio_pad": batch["ratio_pad"][si],
                "imgsz": tuple(int(x) for x in batch["img"].shape[2:]),
                "bboxes": pred["bboxes"].detach().cpu().numpy().astype(np.float32).copy(),
                "conf": pred["conf"].detach().cpu().numpy().astype(np.float32).copy(),
                "cls": pred["cls"].detach().cpu().numpy().astype(np.float32).copy(),
            }
            if "masks" in pred:
                m = pred["masks"].detach().cpu().to(torch.uint8).numpy()
                rec["masks"] = mask_utils.encode(np.asfortranarray(m.transpose(1, 2, 0))) if len(m) else []
            records.append(rec)
        return update_metrics(self, preds, batch)

    def hooked_update_stats(self, stat):
        records[-1]["stats"] = {k: (np.array(v).copy() if not isinstance(v, str) else v) for k, v in stat.items()}
        return update_stats(self, stat)

    DetectionValidator.update_metrics = hooked_update_metrics
    DetMetrics.update_stats = hooked_update_stats
    return lambda: (setattr(DetectionValidator, "update_metrics", update_metrics),
                    setattr(DetMetrics, "update_stats", update_stats))


def capture(work, models):
    """val_subset.py's validator run into WORK/val, plus WORK/val/<model>.inloop.pkl.gz."""
    out = work / "val"
    os.chdir(work)
    data = val_subset.make_dataset(work)
    for name in models:
        records = []
        restore = install_capture(records)
        try:
            val_subset.validate(name, MODELS[name], data, work, out)
        finally:
            restore()
        with gzip.open(out / f"{name}.inloop.pkl.gz", "wb", compresslevel=6) as f:
            pickle.dump(records, f, protocol=4)
        print(f"{name}: captured {len(records)} images, {sum(len(r['conf']) for r in records)} predictions",
              file=sys.stderr)


def score(work, detbench_pattern, out_path, models, detbench_results=None):
    import ultralytics

    os.chdir(work)
    data = val_subset.make_dataset(work)
    subset = json.loads(val_subset.SUBSET_JSON.read_text())
    no_crowd = dict(subset, annotations=[a for a in subset["annotations"] if not a.get("iscrowd", 0)])
    detbench_stats = {}
    if detbench_results:
        for m in json.loads(Path(detbench_results).read_text())["models"]:
            detbench_stats[m["name"]] = {t: m[t]["stats"] for t in ("bbox", "segm") if t in m}
    report = {
        "what": "the same predictions scored several ways: (a) pycocotools on the subset, (b) pycocotools without "
                "the crowd annotations, (b2) pycocotools on the labels Ultralytics' dataset holds (converter + "
                "verify_image_label), (b3) the same with maxDets 300, (c) Ultralytics' validator's own metric (its "
                "dataloader's labels and letterbox space, update_metrics/_process_batch/match_predictions, "
                "ap_per_class) on (c-0) its in-loop predictions, (c-i) its saved predictions.json, (c-ii) "
                "detbench's detections; (c*) the validator's own correct-matrices accumulated as COCOeval does",
        "ultralytics": ultralytics.__version__,
        "pycocotools": __import__("importlib.metadata").metadata.version("pycocotools"),
        "annotations": str(val_subset.SUBSET_JSON),
        "images": len(subset["images"]),
        "annotations_total": len(subset["annotations"]),
        "annotations_crowd": len(subset["annotations"]) - len(no_crowd["annotations"]),
        "stat_names": STAT_NAMES,
        "models": {},
    }
    for name in models:
        started = time.time()
        task = MODELS[name]
        with_masks = task == "segment"
        iou_types = ["bbox", "segm"] if with_masks else ["bbox"]
        fixture = json.loads((FIXTURES / f"{name}.summary.json").read_text())
        captured_summary = json.loads((work / "val" / f"{name}.summary.json").read_text())
        fixture_json = FIXTURES / f"{name}.predictions.json.gz"
        captured_json = work / "val" / f"{name}.predictions.json.gz"
        ultra_path = fixture_json if fixture_json.is_file() else captured_json
        ultra = load_results(ultra_path)
        det_path = Path(detbench_pattern.format(model=name))
        det = load_results(det_path)
        with gzip.open(work / "val" / f"{name}.inloop.pkl.gz", "rb") as f:
            records = pickle.load(f)
        scorer = UltralyticsScorer(name, data, work)
        conv_gt = converter_ground_truth(scorer, subset)
        m = {
            "inputs": {
                "ultralytics_predictions": str(ultra_path.relative_to(ROOT) if ultra_path.is_relative_to(ROOT)
                                               else ultra_path),
                "ultralytics_predictions_count": len(ultra),
                "detbench_detections": str(det_path),
                "detbench_detections_count": len(det),
                "capture_run_predictions": str(captured_json),
                "capture_run_predictions_equal_fixture_predictions": (
                    load_results(captured_json) == ultra if fixture_json.is_file() else None),
                "converter_annotations": len(conv_gt["annotations"]),
            },
            "fixture_ultralytics_own_metrics": fixture["ultralytics_own_metrics"],
            "capture_run_ultralytics_own_metrics": captured_summary["ultralytics_own_metrics"],
            "fixture_pycocotools": {"bbox": fixture["pycocotools_bbox"]} | (
                {"segm": fixture["pycocotools_segm"]} if with_masks else {}),
        }
        if name in detbench_stats:
            m["detbench_run_reported"] = detbench_stats[name]
        # (a), (b), (b2), (b3): pycocotools
        for label, gt, max_dets in (("a_pycocotools", subset, None), ("b_pycocotools_no_crowd", no_crowd, None),
                                    ("b2_pycocotools_converter_labels", conv_gt, None),
                                    ("b3_pycocotools_converter_labels_maxdets300", conv_gt, (1, 10, 300))):
            m[label] = {who: {t: pycocotools_stats(gt, res, t, max_dets) for t in iou_types}
                        for who, res in (("ultralytics", ultra), ("detbench", det))}
        # (c): Ultralytics' own metric
        c0, per0 = scorer.score(preds_from_inloop(records, with_masks))
        c0_clip, _ = scorer.score(preds_from_inloop(records, with_masks, clip=True))
        ultra_by = results_by_image(ultra)
        c1, per1 = scorer.score(preds_from_results(scorer, ultra_by, with_masks))
        c2, per2 = scorer.score(preds_from_results(scorer, results_by_image(det), with_masks))
        m["c0_ultralytics_metric_on_inloop_predictions"] = c0
        m["c0_inloop_boxes_clipped_to_the_image"] = c0_clip
        m["c_i_ultralytics_metric_on_ultralytics_json"] = c1
        m["c_ii_ultralytics_metric_on_detbench"] = c2
        keys = (("box", "tp"), ("mask", "tp_m")) if with_masks else (("box", "tp"),)
        m["c_star_ultralytics_matching_coco_accumulation"] = {
            who: {k: coco_style_map(per, tp) for k, tp in keys}
            for who, per in (("inloop", per0), ("ultralytics", per1), ("detbench", per2))
        }
        if with_masks:  # the ground-truth mask resolution, on the validator's exact in-loop predictions
            m["c0_ground_truth_mask_variants"] = {}
            for label, over in (("full_resolution", {"mask_ratio": 1}),
                                ("full_resolution_no_overlap", {"mask_ratio": 1, "overlap_mask": False})):
                res, per = UltralyticsScorer(name, data, work, over).score(preds_from_inloop(records, True))
                m["c0_ground_truth_mask_variants"][label] = {
                    "overrides": over, "ultralytics_metric": res,
                    "coco_accumulation": {k: coco_style_map(per, tp) for k, tp in keys}}
        # what the saved form loses: the capture run's own JSON against its own in-loop predictions
        same_run_by, same_run_per = ultra_by, per1
        if m["inputs"]["capture_run_predictions_equal_fixture_predictions"] is False:
            same_run_by = results_by_image(load_results(captured_json))
            m["c_i_on_capture_run_json"], same_run_per = scorer.score(
                preds_from_results(scorer, same_run_by, with_masks))
        m["capture_json_vs_inloop"] = compare_to_inloop(records, same_run_by, scorer, with_masks)
        for k, tp in keys:
            m["capture_json_vs_inloop"][f"{tp}_rows"] = tp_agreement(per0, same_run_per, tp)
        own_stats = [r["stats"] for r in records]
        m["checks"] = {
            "c0_equals_capture_run_own_metrics": all(
                c0[k] == v for k, v in captured_summary["ultralytics_own_metrics"].items()),
            "c0_per_image_stats_equal_validator_stats": len(own_stats) == len(per0) and all(
                all(np.array_equal(np.asarray(a[tp]), np.asarray(b[tp])) for tp in
                    ("tp", "conf", "pred_cls", "target_cls") + (("tp_m",) if with_masks else ()))
                for a, b in zip(own_stats, per0)),
            "a_ultralytics_equals_fixture_pycocotools": m["a_pycocotools"]["ultralytics"] == m["fixture_pycocotools"],
        }
        if name in detbench_stats:
            m["checks"]["a_detbench_max_abs_diff_from_detbench_run_reported"] = {
                t: max(abs(x - y) for x, y in zip(m["a_pycocotools"]["detbench"][t], detbench_stats[name][t]))
                for t in iou_types}
        m["seconds"] = round(time.time() - started, 1)
        report["models"][name] = m
        print(f"{name}: scored in {m['seconds']:.0f} s", file=sys.stderr)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    print_tables(report)


def print_tables(report):
    pts = lambda ap, ap50: f"{100 * ap:.2f} / {100 * ap50:.2f}"  # noqa: E731
    main, steps, mask_lines = [], [], []
    for name, m in report["models"].items():
        for t, key in (("bbox", "box"), ("segm", "mask")):
            if t not in m["a_pycocotools"]["ultralytics"]:
                continue
            own = m["fixture_ultralytics_own_metrics"]
            ult = lambda label: pts(m[label][f"{key}_map50_95"], m[label][f"{key}_map50"])  # noqa: E731
            coco = lambda label, who: pts(*m[label][who][t][:2])  # noqa: E731
            c1, c2 = m["c_i_ultralytics_metric_on_ultralytics_json"], m["c_ii_ultralytics_metric_on_detbench"]
            main.append(f"| {name} {key} | {pts(own[f'{key}_map50_95'], own[f'{key}_map50'])} | "
                        f"{ult('c0_ultralytics_metric_on_inloop_predictions')} | "
                        f"{coco('a_pycocotools', 'ultralytics')} | {coco('a_pycocotools', 'detbench')} | "
                        f"{coco('b_pycocotools_no_crowd', 'ultralytics')} | {coco('b_pycocotools_no_crowd', 'detbench')} | "
                        f"{ult('c_i_ultralytics_metric_on_ultralytics_json')} | "
                        f"{ult('c_ii_ultralytics_metric_on_detbench')} | "
                        f"{100 * (c2[f'{key}_map50_95'] - own[f'{key}_map50_95']):+.2f} / "
                        f"{100 * (c2[f'{key}_map50'] - own[f'{key}_map50']):+.2f} | "
                        f"{100 * (c2[f'{key}_map50_95'] - c1[f'{key}_map50_95']):+.2f} |")
            ap = lambda label: 100 * m[label]["ultralytics"][t][0]  # noqa: E731
            star = m["c_star_ultralytics_matching_coco_accumulation"]["ultralytics"][key]
            chain = [ap("a_pycocotools"), ap("b_pycocotools_no_crowd"), ap("b2_pycocotools_converter_labels"),
                     ap("b3_pycocotools_converter_labels_maxdets300"), 100 * star["map50_95"],
                     100 * star["map50_95_trapezoid"], 100 * c1[f"{key}_map50_95"]]
            steps.append(f"| {name} {key} | {chain[0]:.2f} | " + " | ".join(
                f"{b:.2f} ({b - a:+.2f})" for a, b in zip(chain, chain[1:])) + " |")
            if key == "mask":
                var = m["c0_ground_truth_mask_variants"]
                c0 = m["c0_ultralytics_metric_on_inloop_predictions"]
                star0 = m["c_star_ultralytics_matching_coco_accumulation"]["inloop"]["mask"]["map50_95"]
                mask_rows = [("full res, no overlap", var["full_resolution_no_overlap"]),
                             ("full res, overlap", var["full_resolution"])]
                mask_lines += [f"| {name} {label} | {100 * v['coco_accumulation']['mask']['map50_95']:.2f} | "
                              f"{100 * v['ultralytics_metric']['mask_map50_95']:.2f} |" for label, v in mask_rows]
                mask_lines.append(f"| {name} 1/4 res, overlap (the validator's) | {100 * star0:.2f} | "
                                  f"{100 * c0['mask_map50_95']:.2f} |")
    print("AP / AP50 in points. own: validator.metrics.box/seg (fixture summary); c-0: this harness on the "
          "validator's in-loop predictions (captured); (a) pycocotools, (b) pycocotools without crowd, on Ultralytics' "
          "saved predictions (U) and detbench's detections (D); (c-i)/(c-ii): Ultralytics' own metric on U / on D.")
    print("| model | own | c-0 | (a) U | (a) D | (b) U | (b) D | (c-i) U | (c-ii) D | (c-ii) - own | (c-ii) - (c-i) AP |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(main))
    print()
    print("From pycocotools to Ultralytics' own, step by step, on Ultralytics' saved predictions (AP, points; "
          "change from the previous column):")
    print("| model | (a) pycocotools | (b) crowd removed | (b2) converter's labels | (b3) 300 dets/image | "
          "(c*) validator's labels, space, IoU, matching; COCO accumulation | trapezoid instead of mean | "
          "(c-i) ap_per_class (compute_ap's samples) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(steps))
    if mask_lines:
        print()
        print("Mask AP of the validator's in-loop predictions against its ground-truth masks at other resolutions "
              "(points):")
        print("| ground-truth masks | COCO accumulation | ap_per_class |")
        print("|---|---|---|")
        print("\n".join(mask_lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="run Ultralytics' validator, keeping its in-loop predictions")
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--models", nargs="*", default=list(MODELS))
    s = sub.add_parser("score", help="score the prediction sets (a), (b), (c)")
    s.add_argument("--work", type=Path, required=True, help="the capture's --work")
    s.add_argument("--detbench", required=True, help="detbench's results files, with {model} for the model name")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--detbench-results", type=Path, help="detbench run's results.json, to check (a) against it")
    s.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.cmd == "capture":
        capture(work, args.models)
    else:
        score(work, args.detbench, args.out.resolve(), args.models,
              args.detbench_results.resolve() if args.detbench_results else None)


if __name__ == "__main__":
    main()
