#!/usr/bin/env python3
"""Per-stage parity of detbench's native engine with torchvision eager (issue 15), on the GPU:
torchvision's intermediate tensors for one image (transform output, FPN levels, RPN proposals,
RoI-head detections before rescaling) against the engine's dumps of the same stages
(`detbench-native-bench --stages DIR`, one folder per model and precision).

    python3 tools/native/stage_parity.py --models-dir DIR --image FILE --stages DIR \\
        --models fasterrcnn_resnet50_fpn,retinanet_resnet50_fpn --out FILE.json

Prints and writes a small summary per stage: max |difference| and the relative L2 error
||ours - eager|| / ||eager|| for dense tensors; for proposals and detections the share of eager's
boxes found among ours (IoU >= 0.99; detections also same class, score within 1e-3).
"""
import argparse
import json
import os

import cv2
import numpy as np
import torch
from torchvision.models import detection
from torchvision.ops import box_iou


def dense(ours, eager):
    ours = torch.from_numpy(ours).double()
    eager = eager.detach().double().cpu()
    if ours.shape != eager.shape:
        return {"shape_ours": list(ours.shape), "shape_eager": list(eager.shape)}
    diff = ours - eager
    return {"max_abs": float(diff.abs().max()), "rel_l2": float(diff.norm() / eager.norm().clamp_min(1e-30))}


def box_share(ours, eager, iou=0.99, labels=None, scores=None):
    if len(eager) == 0:
        return {"eager": 0, "ours": int(len(ours)), "found_share": 1.0}
    if len(ours) == 0:
        return {"eager": int(len(eager)), "ours": 0, "found_share": 0.0}
    m = box_iou(torch.as_tensor(eager).float(), torch.as_tensor(ours).float()) >= iou
    if labels is not None:
        m &= torch.as_tensor(labels[0])[:, None] == torch.as_tensor(labels[1])[None, :]
    if scores is not None:
        m &= (torch.as_tensor(scores[0])[:, None] - torch.as_tensor(scores[1])[None, :]).abs() <= 1e-3
    return {"eager": int(len(eager)), "ours": int(len(ours)), "found_share": float(m.any(1).float().mean())}


def load(folder, name):
    return np.load(os.path.join(folder, name + ".npy"))


def rcnn_stages(model, images, folder, out):
    image_list, _ = model.transform(images)
    out["images"] = dense(load(folder, "images"), image_list.tensors.float())
    features = model.backbone(image_list.tensors)
    for i, f in enumerate(features.values()):
        out[f"features.{i}"] = dense(load(folder, f"features.{i}"), f.float())
    if not hasattr(model, "rpn"):
        return
    proposals, _ = model.rpn(image_list, features)
    valid = load(folder, "proposals.valid")[0].astype(bool)
    out["proposals"] = box_share(load(folder, "proposals.boxes")[0][valid], proposals[0].float().cpu().numpy())
    dets, _ = model.roi_heads(features, proposals, image_list.image_sizes)
    n = int(load(folder, "detections.count")[0])
    out["detections"] = box_share(
        load(folder, "detections.boxes")[0][:n], dets[0]["boxes"].float().cpu().numpy(),
        labels=(dets[0]["labels"].cpu().numpy(), load(folder, "detections.labels")[0][:n]),
        scores=(dets[0]["scores"].float().cpu().numpy(), load(folder, "detections.scores")[0][:n]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models-dir", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--stages", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    device = torch.device("cuda:0")
    bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
    image = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0
    summary = {}
    for name in [m for m in args.models.split(",") if m]:
        scripted = torch.jit.load(os.path.join(args.models_dir, f"{name}.pt"), map_location="cpu")
        for precision in ("fp32", "fp16"):
            folder = os.path.join(args.stages, f"{name}_{precision}")
            if not os.path.isdir(folder):
                continue
            model = getattr(detection, name)(weights=None, weights_backbone=None)
            model.load_state_dict(scripted.state_dict())
            model = model.eval().to(device)
            x = image.to(device)
            if precision == "fp16":
                model, x = model.half(), x.half()
            out = {}
            try:
                with torch.no_grad():
                    rcnn_stages(model, [x], folder, out)
            except Exception as e:  # recorded; the other stages and models go on
                out["error"] = f"{type(e).__name__}: {e}"
            summary[f"{name}_{precision}"] = out
            print(name, precision, json.dumps(out), flush=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
