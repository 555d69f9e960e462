#!/usr/bin/env python3
"""Fixtures for the native engine's CPU parity tests (crates/native/tests/), made with
torchvision 0.26 on the CPU:

    python3 tools/native/make_fixtures.py [--models-dir DIR]

* crates/native/fixtures/ops.npz: inputs and torchvision's outputs of batched_nms (the
  coordinate-trick and the per-class path, and the trick with fp16 offsets as on CUDA), roi_align (two settings), MultiScaleRoIAlign
  (LevelMapper + 4 levels), BoxCoder.decode_single, paste_masks_in_image (> 0.5) and
  GeneralizedRCNNTransform (normalise, resize, pad), on seeded random data; LevelMapper on fp16
  boxes. Small (< 200 kB).
* crates/native/fixtures/not_a_detector.pt: a scripted nn.Linear, for the unknown-architecture
  test.
* with --models-dir (exported by tools/gpu/export_torchvision.py): fixtures/eager_cpu.json,
  torchvision eager's detections of fasterrcnn_resnet50_fpn on the first two shipped images, for
  the whole-model test (which runs when DETBENCH_NATIVE_MODELS names that folder).
"""
import argparse
import json
import os

import numpy as np
import torch
import torchvision
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.roi_heads import paste_masks_in_image
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, batched_nms, roi_align
from torchvision.ops.poolers import LevelMapper

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "crates", "native", "fixtures")


def random_boxes(g, n, size):
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 3 + 1
    return torch.cat([xy, xy + wh], 1)


def ops(g):
    out = {}
    for name, n in (("nms_trick", 300), ("nms_vanilla", 1200)):
        boxes = random_boxes(g, n, 200.0)
        scores = torch.rand(n, generator=g)
        idxs = torch.randint(0, 6, (n,), generator=g)
        out[f"{name}_boxes"], out[f"{name}_scores"], out[f"{name}_idxs"] = boxes, scores, idxs
        out[f"{name}_keep"] = batched_nms(boxes, scores, idxs, 0.5)
    feat = torch.randn(1, 4, 20, 24, generator=g)
    rois = torch.cat([torch.zeros(30, 1), random_boxes(g, 30, 44.0)], 1)
    out["roi_features"], out["roi_rois"] = feat, rois
    out["roi_out_s2"] = roi_align(feat, rois, 7, spatial_scale=0.5, sampling_ratio=2, aligned=False)
    out["roi_out_adaptive_aligned"] = roi_align(feat, rois, 5, spatial_scale=0.5, sampling_ratio=-1, aligned=True)
    levels = {str(i): torch.randn(1, 4, 32 >> i, 32 >> i, generator=g) for i in range(4)}
    boxes = random_boxes(g, 24, 128.0) * torch.tensor([1, 1, 2.5, 2.5])
    boxes = boxes.clamp(0, 128)
    for k, v in levels.items():
        out[f"ms_level{k}"] = v
    out["ms_boxes"] = boxes
    out["ms_out"] = MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)(levels, [boxes], [(128, 128)])
    codes = torch.randn(50, 4, generator=g)
    refs = random_boxes(g, 50, 300.0)
    out["decode_codes"], out["decode_boxes"] = codes, refs
    out["decode_out"] = det_utils.BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(codes, refs)
    masks = torch.sigmoid(torch.randn(5, 1, 28, 28, generator=g) * 3)
    pboxes = torch.tensor([[10.0, 5, 40, 30], [-5, -3, 20, 18], [50, 40, 95, 70], [0, 0, 79, 59], [30.5, 20.2, 31.7, 21.9]])
    out["paste_masks"], out["paste_boxes"] = masks[:, 0], pboxes
    out["paste_out"] = (paste_masks_in_image(masks, pboxes, (60, 80), padding=1)[:, 0] > 0.5).to(torch.uint8)
    bgr = torch.randint(0, 256, (37, 53, 3), dtype=torch.uint8, generator=g)
    transform = GeneralizedRCNNTransform(50, 100, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    image = bgr.flip(2).permute(2, 0, 1).float() / 255.0
    images, _ = transform.eval()([image])
    out["pre_bgr"], out["pre_out"] = bgr, images.tensors[0]
    out["pre_size"] = torch.tensor(images.image_sizes[0])
    out.update(nms_half_trick(torch.Generator().manual_seed(1515)))
    out.update(levels_half())
    return {k: v.numpy() for k, v in out.items()}


def levels_half():
    """MultiScaleRoIAlign's LevelMapper (levels 2..5) on fp16 boxes, as a `model.half()` box and
    mask head maps them: box_area upcasts to float32, so boxes over 65,504 px^2 keep a finite area
    (in fp16 it would be inf, the coarsest level). Integer corners, exact in fp16."""
    sides = torch.tensor([8.0, 40, 100, 150, 255, 257, 300, 447, 449, 640, 900, 1333])
    boxes = torch.stack([torch.zeros_like(sides), torch.full_like(sides, 3), sides, (sides * 0.75).round() + 3], 1)
    return {"levels_boxes": boxes, "levels_half": LevelMapper(2, 5)([boxes.half()])}


def nms_half_trick(g, n=300, size=700.0, threshold=0.5):
    """batched_nms as torchvision runs it on CUDA for a model.half() box head: the coordinate
    trick (numel <= 100,000) with fp16 offsets k * (max + 1). Past 32768 fp16 steps are 32 and
    the rounded offsets of neighbouring classes can be closer than the boxes' extent (with a
    largest coordinate of 700, classes 48 and 49 start 672 apart), so the offset boxes of class
    k's bottom-right corner land on those of class k + 1's top-left corner, and torchvision's
    nms suppresses across the classes, which class-wise NMS would not. Random boxes with labels
    30..85 (offsets past 65504 are inf: never suppressed), plus such corner pairs. Reference: the
    offset boxes exactly as _batched_nms_coordinate_trick makes them, in fp16, then
    torchvision's nms (CPU kernel on their float values; boxes of pairs whose IoU is within 0.02
    of the threshold are left out, so the CUDA kernel's fp16 width rounding decides the same)."""
    from torchvision.ops import box_iou, nms
    from torchvision.ops.boxes import _batched_nms_vanilla

    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * 200 + 20
    boxes = torch.cat([xy, xy + wh], 1).clamp(0, size)
    idxs = torch.randint(30, 86, (n,), generator=g)
    pairs = []
    for side in (20.0, 26.0, 30.0, 34.0, 38.0):
        pairs.append(([size - side, size - side, size, size], 48))
        pairs.append(([0.0, 0.0, side, side], 49))
    boxes = torch.cat([boxes, torch.tensor([b for b, _ in pairs])])
    idxs = torch.cat([idxs, torch.tensor([k for _, k in pairs])])
    n = len(idxs)
    scores = torch.linspace(0.06, 0.95, n)[torch.randperm(n, generator=g)]  # distinct in fp16
    boxes_h, scores_h = boxes.half(), scores.half()
    max_coordinate = boxes_h.max()
    offsets = idxs.to(boxes_h) * (max_coordinate + torch.tensor(1).to(boxes_h))
    for_nms = (boxes_h + offsets[:, None]).float()
    # Leave out the boxes of borderline pairs (IoU within 0.02 of the threshold), one at a time.
    iou = box_iou(for_nms.double(), for_nms.double()).nan_to_num(0.0)
    iou.fill_diagonal_(0)
    kept = torch.ones(n, dtype=torch.bool)
    while True:
        borderline = ((iou - threshold).abs() < 0.02) & kept[:, None] & kept[None, :]
        if not borderline.any():
            break
        kept[borderline.any(1).nonzero()[0, 0]] = False
    boxes_h, scores_h, idxs, for_nms = boxes_h[kept], scores_h[kept], idxs[kept], for_nms[kept]
    assert boxes_h.max() == max_coordinate
    keep = nms(for_nms, scores_h.float(), threshold)
    classwise = _batched_nms_vanilla(for_nms, scores_h.float(), idxs, threshold)
    assert set(keep.tolist()) != set(classwise.tolist()), "no cross-class suppression exercised"
    return {"nms_half_boxes": boxes_h.float(), "nms_half_scores": scores_h.float(),
            "nms_half_idxs": idxs, "nms_half_keep": keep}


def eager_reference(models_dir):
    import cv2
    from torchvision.models import detection

    path = os.path.join(models_dir, "fasterrcnn_resnet50_fpn.pt")
    model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    model.load_state_dict(torch.jit.load(path, map_location="cpu").state_dict())
    model.eval()
    shared = os.environ.get("DETBENCH_SHARED", os.path.join(HERE, "..", "..", "..", "shared"))
    with open(os.path.join(shared, "coco/annotations/instances_val2017_subset.json")) as f:
        files = sorted((im["id"], im["file_name"]) for im in json.load(f)["images"])[:2]
    result = []
    for image_id, name in files:
        bgr = cv2.imread(os.path.join(shared, "coco/val2017", name), cv2.IMREAD_COLOR)
        x = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            d = model([x])[0]
        result.append({"image_id": image_id, "file_name": name, "boxes": d["boxes"].tolist(),
                       "scores": d["scores"].tolist(), "labels": d["labels"].tolist()})
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(15)
    os.makedirs(FIXTURES, exist_ok=True)
    np.savez_compressed(os.path.join(FIXTURES, "ops.npz"), **ops(g))
    torch.jit.script(torch.nn.Linear(2, 2)).save(os.path.join(FIXTURES, "not_a_detector.pt"))
    if args.models_dir:
        with open(os.path.join(FIXTURES, "eager_cpu.json"), "w") as f:
            json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__,
                       "model": "fasterrcnn_resnet50_fpn (export_torchvision.py, random weights, seed 0)",
                       "images": eager_reference(args.models_dir)}, f)


if __name__ == "__main__":
    main()
