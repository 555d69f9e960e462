"""The ways `metric_gap.py` scores one prediction set: pycocotools (a, b), and Ultralytics' own metric by its
own code in the validator's letterbox space (c), with the helpers that map saved results back into that space.
See metric_gap.py's docstring for what each way is and why.
"""
import contextlib
import copy
import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import val_subset  # noqa: E402  (its dataset layout, its validator settings)

MODELS = val_subset.MODELS
IMGSZ = {"yolov8n_int8_640": 640, "yolo11n_int8_320": 320, "yolov8n-seg_int8_320": 320}
STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]

# ---------------------------------------------------------------------------------------------------------------
# (a), (b): pycocotools
# ---------------------------------------------------------------------------------------------------------------


def pycocotools_stats(gt_dict, results, iou_type, max_dets=None):
    """pycocotools' 12 stats; loadRes on the whole results list as val_subset.pycocotools_stats does (so for a
    results list with boxes and masks, loadRes takes its bbox branch for both IoU types). max_dets replaces
    params.maxDets (the AP stats use its last entry)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_dict)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        e = COCOeval(gt, dt, iou_type)
        if max_dets:
            e.params.maxDets = list(max_dets)
        e.evaluate()
        e.accumulate()
        e.summarize()
    stats = [float(x) for x in e.stats]
    if max_dets:  # summarize() takes stats[0] at maxDets 100 whatever params.maxDets says: redo it at the last one
        p = e.eval["precision"][:, :, :, 0, -1]
        stats[0] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return stats


# ---------------------------------------------------------------------------------------------------------------
# (c): Ultralytics' validator's own metric on given predictions
# ---------------------------------------------------------------------------------------------------------------


class UltralyticsScorer:
    """The validator without a model: its own dataloader (labels from the converter, letterbox geometry, GT masks)
    and its own update_metrics/_process_batch/get_stats, fed with predictions from elsewhere."""

    def __init__(self, name, data_yaml, work, overrides=None):
        import torch
        from ultralytics.data.utils import check_det_dataset
        from ultralytics.models.yolo.detect import DetectionValidator
        from ultralytics.models.yolo.segment import SegmentationValidator
        from ultralytics.utils import ops

        task = MODELS[name]
        args = dict(data=str(data_yaml), task=task, mode="val", batch=1, conf=0.001, iou=0.7, max_det=300,
                    imgsz=IMGSZ[name], rect=False, save_json=True, plots=False, device="cpu", workers=0,
                    project=str(work / "runs"), name=f"metric_gap_{name}", exist_ok=True, verbose=False)
        args |= overrides or {}
        v = (SegmentationValidator if task == "segment" else DetectionValidator)(args=args)
        v.device = torch.device("cpu")
        v.data = check_det_dataset(v.args.data, split=v.args.split)
        v.stride = 32
        v.names = v.data["names"]
        v.args.rect = False  # what BaseValidator.__call__ sets for a fixed-shape ONNX file
        v.dataloader = v.get_dataloader(v.data.get(v.args.split), v.args.batch)
        v.init_metrics(type("Model", (), {"names": v.data["names"]})())
        assert v.is_coco, "the subset must be in val_subset.py's COCO layout"
        if task == "segment":
            assert v.process is ops.process_mask_native  # save_json=True: masks at the input size
        v.args.save_json = False  # no JSON from this harness; init_metrics already chose the mask path
        self.v, self.task, self.name = v, task, name
        self.coco91_to_80 = {c91: i for i, c91 in enumerate(v.class_map)}
        self.batches = None

    def _batches(self):
        """The validator's own batches (labels, ratio_pad, GT masks), kept: the same for every prediction set."""
        if self.batches is None:
            self.batches = []
            for batch in self.v.dataloader:
                batch = self.v.preprocess(batch)
                batch.pop("img_raw", None)
                batch["img"] = batch["img"][:, :, :1, :1].expand(-1, -1, *batch["img"].shape[2:])  # shape only
                self.batches.append(batch)
        return self.batches

    def score(self, preds_for):
        """preds_for(batch) -> list of one dict {bboxes, conf, cls[, masks]} in the validator's letterbox space,
        ordered by descending score. Returns Ultralytics' own metrics and the per-image stats."""
        v = self.v
        v.seen = 0
        v.metrics.clear_stats()
        v.metrics.clear_image_metrics()
        per_image = []
        for batch in self._batches():
            b = dict(batch)
            preds = preds_for(b)
            v.update_metrics(preds, b)
            per_image.append({k: v.metrics.stats[k][-1] for k in v.metrics.stats})
        v.get_stats()
        out = {"box_map50_95": float(v.metrics.box.map), "box_map50": float(v.metrics.box.map50),
               "box_map75": float(v.metrics.box.map75)}
        if self.task == "segment":
            out |= {"mask_map50_95": float(v.metrics.seg.map), "mask_map50": float(v.metrics.seg.map50),
                    "mask_map75": float(v.metrics.seg.map75)}
        return out, per_image


def converter_ground_truth(scorer, subset):
    """The subset's ground truth as Ultralytics' dataset holds it (convert_coco's labels after
    verify_image_label: no crowd, boxes from the polygons' extents, multi-part polygons merged by
    merge_multi_segment, duplicates removed), back in original pixels as a COCO dict for pycocotools."""
    from pycocotools import mask as mask_utils

    anns = []
    for lb in scorer.v.dataloader.dataset.labels:
        h, w = lb["shape"]
        image_id = int(Path(lb["im_file"]).stem)
        for c, (x, y, bw, bh), seg in zip(lb["cls"].reshape(-1), lb["bboxes"], lb["segments"]):
            poly = (np.asarray(seg, dtype=np.float64) * [w, h]).reshape(-1).tolist()
            rle = mask_utils.merge(mask_utils.frPyObjects([poly], h, w))
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": scorer.v.class_map[int(c)],
                         "bbox": [float((x - bw / 2) * w), float((y - bh / 2) * h), float(bw * w), float(bh * h)],
                         "area": float(mask_utils.area(rle)), "segmentation": [poly], "iscrowd": 0})
    return dict(subset, annotations=anns)


def coco_style_map(per_image, key):
    """mAP50-95 and mAP50 from the validator's own correct-matrices (its labels, its matching) but accumulated
    the way pycocotools' COCOeval.accumulate does (stable sort by score, precision envelope, precision at the
    first recall >= each of the 101 thresholds, 0 past the last; mean over the 101), instead of ap_per_class's
    compute_ap (sentinels (0, 1) and (r_last, 0), (1, 0), envelope, np.interp at the 101 points, trapezoid).
    Also the split of the difference: the 101 samples of compute_ap's curve minus COCO's, summed where the
    sample point equals a recall the class reaches (np.interp then reads the last of the equal-recall entries,
    the envelope after the false positives at that recall, or the (r_last, 0) sentinel, where COCO reads the
    first) and elsewhere; and COCO's samples integrated by the trapezoid instead of the mean."""
    from ultralytics.utils.metrics import compute_ap

    tp = np.concatenate([s[key] for s in per_image]).astype(bool)
    conf = np.concatenate([s["conf"] for s in per_image])
    pred_cls = np.concatenate([s["pred_cls"] for s in per_image])
    target_cls = np.concatenate([s["target_cls"] for s in per_image])
    rec_thrs = np.linspace(0.0, 1.00, 101)
    classes = np.unique(target_cls)
    ap, ap_trapz = np.zeros((len(classes), tp.shape[1])), np.zeros((len(classes), tp.shape[1]))
    at_recalls = elsewhere = 0.0
    for ci, c in enumerate(classes):
        npig = int((target_cls == c).sum())
        sel = pred_cls == c
        order = np.argsort(-conf[sel], kind="mergesort")
        t = tp[sel][order]
        tps, fps = np.cumsum(t, 0).astype(float), np.cumsum(~t, 0).astype(float)
        nd = len(t)
        if not nd:
            continue
        for j in range(tp.shape[1]):
            rc = tps[:, j] / npig
            pr = np.maximum.accumulate((tps[:, j] / (tps[:, j] + fps[:, j] + np.spacing(1)))[::-1])[::-1]
            inds = np.searchsorted(rc, rec_thrs, side="left")
            q = np.where(inds < nd, pr[np.minimum(inds, nd - 1)], 0.0)
            ap[ci, j] = q.mean()
            ap_trapz[ci, j] = np.trapezoid(q, rec_thrs) if hasattr(np, "trapezoid") else np.trapz(q, rec_thrs)
            _, mpre, mrec = compute_ap(tps[:, j] / (npig + 1e-16), tps[:, j] / (tps[:, j] + fps[:, j]))
            d = np.interp(rec_thrs, mrec, mpre) - q
            hit = np.isin(rec_thrs, tps[:, j] / (npig + 1e-16))
            at_recalls += d[hit].sum()
            elsewhere += d[~hit].sum()
    n = ap.size * len(rec_thrs)
    return {"map50_95": float(ap.mean()), "map50": float(ap[:, 0].mean()),
            "map50_95_trapezoid": float(ap_trapz.mean()), "map50_trapezoid": float(ap_trapz[:, 0].mean()),
            "compute_ap_samples_minus_coco_at_reached_recalls": float(at_recalls / n),
            "compute_ap_samples_minus_coco_elsewhere": float(elsewhere / n)}


def letterbox_boxes(xyxy, ratio_pad):
    """Original-image xyxy -> the validator's letterbox pixels: the inverse of ops.scale_boxes before its clip
    (x / gain_x + ... reversed: x * gain_x + pad_x)."""
    (gain_y, gain_x), (pad_x, pad_y) = ratio_pad
    b = np.array(xyxy, dtype=np.float64).reshape(-1, 4)
    b[:, [0, 2]] = b[:, [0, 2]] * gain_x + pad_x
    b[:, [1, 3]] = b[:, [1, 3]] * gain_y + pad_y
    return b


def letterbox_masks(masks_hw_n, ori_shape, ratio_pad, imgsz):
    """(h0, w0, N) uint8 masks at the original size -> (N, H, W) uint8 on the validator's letterbox grid.
    The saved masks were made by ops.scale_masks (crop the content rectangle, bilinear to the original size,
    .byte() truncation: a pixel survives only where every letterbox pixel it reads is 1); the inverse used here
    keeps a letterbox pixel where any original pixel of its footprint is set (adaptive max pool over the content
    rectangle, placed as scale_masks crops it: top/left = round(pad - 0.1))."""
    import torch
    import torch.nn.functional as F

    (gain_h, gain_w), (pad_w, pad_h) = ratio_pad
    h0, w0 = ori_shape
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    ch, cw = max(round(h0 * gain_h), 1), max(round(w0 * gain_w), 1)
    n = masks_hw_n.shape[2]
    out = torch.zeros((n, *imgsz), dtype=torch.uint8)
    if n == 0:
        return out
    src = torch.from_numpy(np.ascontiguousarray(masks_hw_n.transpose(2, 0, 1)))
    for i in range(0, n, 32):
        chunk = src[i:i + 32].float()[None]
        if (ch, cw) != (h0, w0):
            chunk = F.adaptive_max_pool2d(chunk, (ch, cw))
        out[i:i + 32, top:top + ch, left:left + cw] = chunk[0].to(torch.uint8)
    return out


def results_by_image(results):
    """COCO results (original pixels) grouped by image, in descending score order (stable: file order on ties,
    which for Ultralytics' JSON is its NMS order)."""
    by = {}
    for r in results:
        by.setdefault(int(r["image_id"]), []).append(r)
    for k in by:
        by[k].sort(key=lambda r: -r["score"])
    return by


def preds_from_results(scorer, by_image, with_masks):
    import torch
    from pycocotools import mask as mask_utils

    def preds_for(batch):
        image_id = int(Path(batch["im_file"][0]).stem)
        rs = by_image.get(image_id, [])
        ratio_pad = batch["ratio_pad"][0]
        imgsz = tuple(int(x) for x in batch["img"].shape[2:])
        xyxy = [[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]] for r in rs]
        pred = {
            "bboxes": torch.from_numpy(letterbox_boxes(xyxy, ratio_pad).astype(np.float32)),
            "conf": torch.tensor([r["score"] for r in rs], dtype=torch.float32),
            "cls": torch.tensor([scorer.coco91_to_80[r["category_id"]] for r in rs], dtype=torch.float32),
        }
        if with_masks:
            ori = tuple(int(x) for x in batch["ori_shape"][0])
            segs = [r["segmentation"] for r in rs]
            segs = [dict(s, counts=s["counts"].encode() if isinstance(s["counts"], str) else s["counts"]) for s in segs]
            m = mask_utils.decode(segs) if segs else np.zeros((*ori, 0), np.uint8)
            pred["masks"] = letterbox_masks(m.reshape(*ori, -1), ori, ratio_pad, imgsz)
        return [pred]

    return preds_for


def preds_from_inloop(records, with_masks, clip=False):
    """The validator's in-loop predictions; clip=True: boxes through ops.scale_boxes (which clips them to the
    original image, as the saved JSON has them) and back, without the JSON's rounding."""
    import torch
    from pycocotools import mask as mask_utils
    from ultralytics.utils import ops

    by_file = {r["im_file"]: r for r in records}

    def preds_for(batch):
        r = by_file[Path(batch["im_file"][0]).name]
        boxes = torch.from_numpy(r["bboxes"])
        if clip:
            scaled = ops.scale_boxes(r["imgsz"], boxes.clone(), r["ori_shape"], ratio_pad=r["ratio_pad"])
            boxes = torch.from_numpy(letterbox_boxes(scaled.numpy(), r["ratio_pad"]).astype(np.float32))
        pred = {"bboxes": boxes, "conf": torch.from_numpy(r["conf"]), "cls": torch.from_numpy(r["cls"])}
        if with_masks:
            m = mask_utils.decode(r["masks"]) if len(r["conf"]) else np.zeros((*r["imgsz"], 0), np.uint8)
            pred["masks"] = torch.from_numpy(np.ascontiguousarray(m.reshape(*r["imgsz"], -1).transpose(2, 0, 1)))
        return [pred]

    return preds_for


def compare_to_inloop(records, by_image, scorer, with_masks):
    """How close saved results, mapped into letterbox space, come to the validator's in-loop predictions
    (Ultralytics' saved JSON is the same predictions, so this measures the mapping and the JSON's rounding)."""
    from pycocotools import mask as mask_utils

    n_pred = n_same_count = 0
    box_err = []
    score_err = []
    mask_px_diff = mask_px = n_mask_equal = n_masks = 0
    mask_ious = []
    batches = {Path(b["im_file"][0]).name: b for b in scorer._batches()}
    for r in records:
        image_id = int(Path(r["im_file"]).stem)
        rs = by_image.get(image_id, [])
        n_pred += len(r["conf"])
        if len(rs) != len(r["conf"]):
            continue
        n_same_count += len(rs)
        if not rs:
            continue
        # the JSON keeps the validator's order; results_by_image re-sorts by the rounded score, stably
        saved_xyxy = letterbox_boxes([[x[0], x[1], x[0] + x[2], x[1] + x[3]] for x in (q["bbox"] for q in rs)],
                                     r["ratio_pad"])
        box_err.append(np.abs(saved_xyxy - r["bboxes"]).max(1))
        score_err.append(np.abs(np.array([q["score"] for q in rs]) - r["conf"]))
        if with_masks:
            b = batches[r["im_file"]]
            ori = r["ori_shape"]
            segs = [dict(q["segmentation"], counts=q["segmentation"]["counts"].encode()) for q in rs]
            mine = letterbox_masks(mask_utils.decode(segs).reshape(*ori, -1), ori, r["ratio_pad"],
                                   tuple(int(x) for x in b["img"].shape[2:])).numpy().astype(bool)
            theirs = mask_utils.decode(r["masks"]).reshape(*r["imgsz"], -1).transpose(2, 0, 1).astype(bool)
            diff = (mine != theirs).reshape(len(rs), -1).sum(1)
            union = (mine | theirs).reshape(len(rs), -1).sum(1)
            inter = (mine & theirs).reshape(len(rs), -1).sum(1)
            mask_px_diff += int(diff.sum())
            mask_px += int(theirs.sum())
            n_mask_equal += int((diff == 0).sum())
            n_masks += len(rs)
            mask_ious.append(np.where(union > 0, inter / np.maximum(union, 1), 1.0))
    box_err = np.concatenate(box_err) if box_err else np.zeros(0)
    score_err = np.concatenate(score_err) if score_err else np.zeros(0)
    out = {
        "inloop_predictions": n_pred,
        "saved_predictions_on_images_with_equal_counts": n_same_count,
        "box_max_abs_diff_letterbox_px": float(box_err.max()) if box_err.size else None,
        "box_diff_over_0.01px": int((box_err > 0.01).sum()),
        "box_diff_over_0.5px": int((box_err > 0.5).sum()),
        "score_max_abs_diff": float(score_err.max()) if score_err.size else None,
    }
    if with_masks:
        ious = np.concatenate(mask_ious) if mask_ious else np.zeros(0)
        out |= {
            "masks_identical": n_mask_equal,
            "masks_compared": n_masks,
            "mask_pixels_differing_over_inloop_pixels": mask_px_diff / max(mask_px, 1),
            "mask_iou_reconstructed_vs_inloop_mean": float(ious.mean()) if ious.size else None,
            "mask_iou_reconstructed_vs_inloop_p1": float(np.percentile(ious, 1)) if ious.size else None,
        }
    return out


def tp_agreement(per_image_a, per_image_b, key):
    """Per-prediction agreement of two runs' correct-matrices (same images, same predictions in the same order)."""
    same = differ = skipped = 0
    for a, b in zip(per_image_a, per_image_b):
        if a[key].shape != b[key].shape:
            skipped += 1
            continue
        rows = (a[key] != b[key]).any(1)
        differ += int(rows.sum())
        same += int((~rows).sum())
    return {"predictions_same_tp_row": same, "predictions_different_tp_row": differ, "images_skipped": skipped}


def load_results(path):
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return json.load(f)
