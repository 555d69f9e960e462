#!/usr/bin/env python3
"""PyTorch eager peers of detbench's native engine (issue 15), on a CUDA machine: torchvision
detectors timed the way tools/gpu/eager_bench.py times them, in the variants the issue names,
and their detections dumped for the correctness comparison (tools/native/compare.py).

    python3 tools/native/eager_peers.py --models-dir DIR --images DIR --annotations FILE \\
        --models fasterrcnn_resnet50_fpn --variants fp32,amp,cl_amp,fp16 --batch 1 --limit 60 \\
        --out FILE.json [--detections-dir DIR]

Variants: fp32 (eager, cudnn.allow_tf32 as PyTorch's default), fp32_notf32 (TF32 off), amp (torch.autocast fp16),
cl_amp (channels_last model + autocast), fp16 (model.half() and half inputs, as the `torch`
backend's fp16, the reference for the engine's fp16 detections).

Same weights as detbench (the state dict of <models-dir>/<model>.pt), same images: the
annotation file's first --limit by image id, decoded with OpenCV (cv2.imread, as detbench's
decoder), RGB, pixel / 255 (torchvision's references). Timed region per call, as eager_bench.py:
inputs to the GPU, forward, synchronize, every output tensor to the host. Warm-up as detbench's
harness. Detections: COCO categories only (torchvision's "N/A" label slots dropped, as detbench),
boxes x1 y1 x2 y2 in original pixels; masks as pycocotools-style RLE counts.
"""
import argparse
import json
import os
import statistics
import sys
import time

import cv2
import numpy as np
import torch
import torchvision
from torchvision.models import detection

COCO_IDS = set(range(1, 91)) - {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def load_images(image_dir, annotations, limit):
    with open(annotations) as f:
        coco = json.load(f)
    files = sorted((im["id"], os.path.join(image_dir, im["file_name"])) for im in coco["images"])[:limit]
    out = []
    for image_id, path in files:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        out.append((image_id, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0))
    return out


def rle_counts(mask):
    """Column-major run lengths starting with zeros (pycocotools rleEncode)."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return runs


def to_host(value):
    if isinstance(value, torch.Tensor):
        return value.float().cpu() if value.is_floating_point() else value.cpu()
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_host(v) for v in value]
    return value


def percentile(samples, q):
    ordered = sorted(samples)
    return ordered[max(1, int(np.ceil(q / 100.0 * len(ordered)))) - 1]


def bench(name, variant, args, images, device):
    scripted = torch.jit.load(os.path.join(args.models_dir, f"{name}.pt"), map_location="cpu")
    # The exported transform's sizes (export_torchvision.py --min-size/--max-size), else the
    # builder's own.
    sizes = {"min_size": tuple(scripted.transform.min_size), "max_size": scripted.transform.max_size}
    model = getattr(detection, name)(weights=None, weights_backbone=None, **sizes)
    model.load_state_dict(scripted.state_dict())
    del scripted
    model = model.eval().to(device)
    if variant == "fp16":
        model = model.half()
    # fp32_notf32: true fp32 convolutions (cudnn.allow_tf32 off), for the strict comparison.
    torch.backends.cudnn.allow_tf32 = variant != "fp32_notf32"
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda _device: None)
    if variant == "cl_amp":
        model = model.to(memory_format=torch.channels_last)
    autocast = variant in ("amp", "cl_amp")
    batches = [images[i:i + args.batch] for i in range(0, len(images) - args.batch + 1, args.batch)]

    def call(batch):
        inputs = [t.to(device) for _, t in batch]
        if variant == "fp16":
            inputs = [t.half() for t in inputs]
        with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
            out = model(inputs)
        synchronize(device)
        return to_host(out)

    head = images[:max(args.warmup, args.batch)]
    with torch.no_grad():
        if args.prewarm_all:  # steady state: one untimed pass over every batch
            for batch in batches:
                call(batch)
        for k in range(0 if args.prewarm_all else args.warmup):
            call([head[(k * args.batch + j) % len(head)] for j in range(args.batch)])
        samples, per_image, dets = [], [], []
        for batch in batches:
            start = time.perf_counter()
            result = call(batch)
            samples.append((time.perf_counter() - start) * 1e3)
            for (image_id, _), d in zip(batch, result):
                keep = [i for i, l in enumerate(d["labels"].tolist()) if l in COCO_IDS]
                per_image.append(len(keep))
                if args.detections_dir:
                    for i in keep:
                        x1, y1, x2, y2 = d["boxes"][i].tolist()
                        entry = {"image_id": image_id, "category_id": int(d["labels"][i]),
                                 "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(d["scores"][i])}
                        if "masks" in d:
                            m = d["masks"][i, 0] > 0.5
                            entry["segmentation"] = {"size": list(m.shape), "counts": rle_counts(m.numpy())}
                        dets.append(entry)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    r = {"model": name, "run": f"eager-{variant}", "batch": args.batch, "calls": len(samples),
         "median_ms": statistics.median(samples), "p10_ms": percentile(samples, 10), "p90_ms": percentile(samples, 90),
         "images_per_second": args.batch * len(samples) / (sum(samples) / 1e3),
         "detections_per_image": statistics.fmean(per_image) if per_image else 0.0, "samples_ms": samples}
    if args.detections_dir:
        path = os.path.join(args.detections_dir, f"{name}_eager-{variant}_b{args.batch}.json")
        with open(path, "w") as f:
            json.dump(dets, f)
        r["detections_file"] = path
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models-dir", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--variants", default="fp32,amp,cl_amp")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--detections-dir", default=None)
    p.add_argument("--prewarm-all", action="store_true", help="warm up with one untimed pass over every batch")
    p.add_argument("--device", default="cuda:0", help="cuda:0, or cpu (fp32 only: the CPU reference of the CLI test)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    p.add_argument("--deadline-s", type=float, default=None, help="start no new run after this many seconds")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    started = time.monotonic()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = False
    images = load_images(args.images, args.annotations, args.limit)
    runs = []
    for name in [m for m in args.models.split(",") if m]:
        for variant in [v for v in args.variants.split(",") if v]:
            if args.deadline_s is not None and time.monotonic() - started >= args.deadline_s:
                print(f"[eager] deadline passed: skipping {name} {variant}", flush=True)
                continue
            try:
                r = bench(name, variant, args, images, device)
                print(f"[eager] {name} {variant} b{args.batch}: median {r['median_ms']:.2f} ms, p10 {r['p10_ms']:.2f}, "
                      f"{r['detections_per_image']:.1f} dets/img", flush=True)
            except Exception as e:  # recorded; the next run goes on
                r = {"model": name, "run": f"eager-{variant}", "batch": args.batch, "error": f"{type(e).__name__}: {e}"}
                print(f"[eager] {name} {variant}: FAILED {r['error']}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            runs.append(r)
            doc = {"tool": "tools/native/eager_peers.py", "torch": torch.__version__, "torchvision": torchvision.__version__,
                   "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "cudnn": torch.backends.cudnn.version(),
                   "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32, "runs": runs}
            with open(args.out + ".tmp", "w") as f:
                json.dump(doc, f)
            os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    sys.exit(main())
