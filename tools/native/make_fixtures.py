#!/usr/bin/env python3
"""Fixtures for the native engine's CPU parity tests (crates/native/tests/), made with
torchvision 0.26 on the CPU:

    python3 tools/native/make_fixtures.py [--models-dir DIR]

* crates/native/fixtures/ops.npz: inputs and torchvision's outputs of batched_nms (the
  coordinate-trick and the per-class path), roi_align (two settings), MultiScaleRoIAlign
  (LevelMapper + 4 levels), BoxCoder.decode_single, paste_masks_in_image (> 0.5) and
  GeneralizedRCNNTransform (normalise, resize, pad), on seeded random data. Small (< 200 kB).
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
    return {k: v.numpy() for k, v in out.items()}


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
