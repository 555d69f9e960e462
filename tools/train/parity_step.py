#!/usr/bin/env python3
"""One training step in PyTorch against detbench-train's first step (crates/train/tests/parity.rs).

Given what the Rust run wrote (the first batch as .npz with each image's id and flip, its
results JSON, and the module it saved after the step), this script:

1. rebuilds each image and target of that batch the reference's way: decode (cv2, which matches
   PIL's decode pixel for pixel here), ``ConvertCocoPolysToMask`` (references/detection/
   coco_utils.py, with pycocotools), ``RandomHorizontalFlip`` (transforms.py) when the image was
   flipped, ``convert_image_dtype`` (``/ 255``); and compares them with Rust's batch;
2. loads the same initial TorchScript file, seeds the generator as Rust did just before the
   step (``torch.manual_seed``), runs ``loss_dict = model(images, targets)`` in training mode on
   Rust's batch, sums the losses in dict order, ``zero_grad``, ``backward``, and one
   ``torch.optim.SGD`` step at the warm-up lr (``LinearLR(start_factor=1/1000)`` on
   ``0.02 * batch / 16``);
3. compares the losses with Rust's and the parameters and buffers with Rust's saved module.

It prints a JSON report; the Rust test asserts on it. Needs torch + torchvision 0.26, numpy,
pycocotools and opencv (scripts/setup.sh --train).
"""
import argparse
import contextlib
import json
import sys

import numpy as np


def reference_sample(coco, image_id, images_dir, flip, with_masks):
    import cv2
    import torch
    from pycocotools import mask as coco_mask

    info = coco.imgs[image_id]
    bgr = cv2.imread(f"{images_dir}/{info['file_name']}", cv2.IMREAD_COLOR)
    image = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).contiguous()
    h, w = image.shape[-2:]
    anno = [o for o in coco.loadAnns(coco.getAnnIds(imgIds=image_id)) if o["iscrowd"] == 0]
    # ConvertCocoPolysToMask
    boxes = torch.as_tensor([o["bbox"] for o in anno], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 0::2].clamp_(min=0, max=w)
    boxes[:, 1::2].clamp_(min=0, max=h)
    labels = torch.tensor([o["category_id"] for o in anno], dtype=torch.int64)
    masks = []
    for o in anno if with_masks else []:
        m = coco_mask.decode(coco_mask.frPyObjects(o["segmentation"], h, w))
        if len(m.shape) < 3:
            m = m[..., None]
        masks.append(torch.as_tensor(m, dtype=torch.uint8).any(dim=2))
    masks = torch.stack(masks) if masks else torch.zeros((0, h, w), dtype=torch.uint8)
    keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
    target = {"boxes": boxes[keep], "labels": labels[keep]}
    if with_masks:
        target["masks"] = masks[keep]
    if flip:  # RandomHorizontalFlip
        image = image.flip(-1)
        target["boxes"][:, [0, 2]] = w - target["boxes"][:, [2, 0]]
        if with_masks:
            target["masks"] = target["masks"].flip(-1)
    image = image.to(torch.float32) / 255.0  # F.convert_image_dtype
    return image, target


def max_abs(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max()) if a.size else 0.0


def compare_data(batch, n, args):
    from pycocotools.coco import COCO

    coco = COCO(args.annotations)
    report = {}
    for i in range(n):
        image_id, flipped = (int(v) for v in batch[f"meta{i}"])
        image, target = reference_sample(coco, image_id, args.images, bool(flipped), f"masks{i}" in batch)
        report[f"image{i}"] = {"image_id": image_id, "flipped": bool(flipped),
                               "img": max_abs(batch[f"img{i}"], image.numpy())}
        for key, value in target.items():
            report[f"image{i}"][key] = max_abs(batch[f"{key}{i}"], value.numpy())
    return report


def python_step(batch, n, rust, args):
    import torch
    import torchvision  # noqa: F401  (registers torchvision::roi_align, nms)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    model = torch.jit.load(args.model_file, map_location="cpu")
    model.train()
    images = [torch.from_numpy(batch[f"img{i}"]) for i in range(n)]
    keys = ["boxes", "labels", "masks", "keypoints"]
    targets = [{k: torch.from_numpy(batch[f"{k}{i}"]) for k in keys if f"{k}{i}" in batch} for i in range(n)]
    params = [p for p in model.parameters() if p.requires_grad]
    config = rust["config"]
    recipe = config["recipe"]
    lr = recipe["lr_per_16"] * config["batch"] / 16
    optimizer = torch.optim.SGD(params, lr=lr, momentum=recipe["momentum"], weight_decay=recipe["weight_decay"])
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=recipe["warmup_factor"],
                                               total_iters=max(rust["warmup_iters"], 1))
    torch.manual_seed(config["seed"])
    # engine.py: `with torch.cuda.amp.autocast(enabled=...)` around the forward and the sum.
    bf16 = config["precision"] == "bf16"
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss_dict, _ = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
    optimizer.zero_grad()
    losses.backward()
    used_lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    warmup.step()
    if bf16:
        # The same forward without autocast, to show that autocast changed the numbers.
        plain = torch.jit.load(args.model_file, map_location="cpu")
        plain.train()
        torch.manual_seed(config["seed"])
        plain_losses, _ = plain(images, targets)
        args.fp32_total = float(sum(loss for loss in plain_losses.values()))
    return model, loss_dict, float(losses), used_lr


def compare_modules(python_model, rust_file, initial_file):
    import torch

    rust_model = torch.jit.load(rust_file, map_location="cpu")
    initial = torch.jit.load(initial_file, map_location="cpu")
    out = {}
    for kind in ("parameters", "buffers"):
        ours = dict(getattr(python_model, f"named_{kind}")())
        theirs = dict(getattr(rust_model, f"named_{kind}")())
        start = dict(getattr(initial, f"named_{kind}")())
        worst, worst_name, moved = 0.0, None, 0.0
        for name, value in ours.items():
            if name not in theirs:
                return {"error": f"{kind[:-1]} {name} missing from Rust's module"}
            if not value.is_floating_point():
                continue
            d = float((value.detach().double() - theirs[name].detach().double()).abs().max())
            if d > worst:
                worst, worst_name = d, name
            moved = max(moved, float((theirs[name].detach().double() - start[name].detach().double()).abs().max()))
        out[kind] = {"count": len(ours), "max_abs_diff": worst, "worst": worst_name,
                     "max_abs_change_from_initial": moved}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-file", required=True, help="the initial TorchScript file both sides loaded")
    ap.add_argument("--batch", required=True, help="Rust's first batch (.npz)")
    ap.add_argument("--results", required=True, help="Rust's results JSON")
    ap.add_argument("--rust-module", required=True, help="the module Rust saved after the step")
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with np.load(args.batch) as f:
        batch = {k: f[k] for k in f.files}
    n = sum(1 for k in batch if k.startswith("img"))
    with open(args.results) as f:
        rust = json.load(f)
    # pycocotools prints to stdout; the report alone goes there.
    with contextlib.redirect_stdout(sys.stderr):
        report = {"data": compare_data(batch, n, args)}
        model, loss_dict, total, lr = python_step(batch, n, rust, args)
    rust_losses = dict(zip(rust["loss_names"], rust["steps"][0]["losses"]))
    report["lr"] = {"python": lr, "rust": rust["steps"][0]["lr"]}
    report["losses"] = {}
    for name, value in loss_dict.items():
        p = float(value)
        r = rust_losses.get(name, float("nan"))
        report["losses"][name] = {"python": p, "rust": r, "rel": abs(p - r) / max(abs(p), 1e-12)}
    report["total"] = {"python": total, "rust": rust["steps"][0]["total_loss"],
                       "python_without_autocast": getattr(args, "fp32_total", None)}
    with contextlib.redirect_stdout(sys.stderr):
        report["modules"] = compare_modules(model, args.rust_module, args.model_file)
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
