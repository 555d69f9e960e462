#!/usr/bin/env python3
"""PyTorch eager-mode latency of torchvision detectors, measured the way detbench measures its
`inference` stage, so that the two columns of docs/BENCHMARKS.md compare like with like.

    python3 tools/gpu/eager_bench.py --models-dir DIR --images DIR --annotations FILE \\
        [--models a,b] [--precision fp32|fp16] [--batch N] [--limit N] [--warmup N] --out FILE.json

Same weights: each model is built with torchvision's builder and loaded with the state dict of
the TorchScript file detbench runs (DIR/<model>.pt, made by export_torchvision.py).
Same images: the annotation file's images by image id, the first --limit (as `detbench run`), decoded with PIL to
RGB, `pixel / 255` (torchvision's references/detection: PILToTensor + ConvertImageDtype).
Same precision: fp16 is `model.half()` and half inputs, as detbench's libtorch backend does.
Same settings: cudnn.benchmark as --cudnn-benchmark (default on, as detbench), no autograd
(torch.no_grad, or torch.inference_mode with --grad-mode inference, as detbench's
$DETBENCH_TORCH_GRAD_MODE), the same warm-up (--warmup calls cycling over the first max(warmup, batch)
images, as detbench's harness, crates/bench/src/runner.rs).
Same timed region as detbench's libtorch backend `run`: host-to-device copy of the inputs
(+ .half()), the forward pass, torch.cuda.synchronize(), and every output tensor copied to the
host as float32/int64 (`.float().cpu()`), per call; clock = time.perf_counter.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.models import detection


def load_images(image_dir, annotations, limit):
    with open(annotations) as f:
        coco = json.load(f)
    # The first N by image id, as `detbench run --limit N`.
    files = sorted((im["id"], os.path.join(image_dir, im["file_name"])) for im in coco["images"])
    if limit:
        files = files[:limit]
    images = []
    for image_id, path in files:
        rgb = np.array(Image.open(path).convert("RGB"))
        images.append((image_id, torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0))
    return images


def to_host(value):
    """Every tensor of an output structure on the host, floats as float32 (detbench's Value)."""
    if isinstance(value, torch.Tensor):
        return value.float().cpu() if value.is_floating_point() else value.cpu()
    if isinstance(value, dict):
        return {k: to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_host(v) for v in value]
    return value


# The 80 COCO category ids among torchvision's 91 label slots (the others are "N/A"); detbench
# drops detections with other labels (crates/models/src/families/torchvision.rs), so its
# detections-per-image count only these.
COCO_IDS = set(range(1, 91)) - {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def percentile(samples, q):
    """Nearest-rank percentile (as MLPerf LoadGen and detbench)."""
    ordered = sorted(samples)
    rank = max(1, int(np.ceil(q / 100.0 * len(ordered))))
    return ordered[rank - 1]


def bench_model(name, args, images, device):
    scripted = torch.jit.load(os.path.join(args.models_dir, f"{name}.pt"), map_location="cpu")
    if args.scripted:
        # Diagnostic: the TorchScript module itself, run from Python with detbench's settings.
        torch._C._jit_set_texpr_fuser_enabled(False)
        model = scripted
    else:
        model = getattr(detection, name)(weights=None, weights_backbone=None)
        model.load_state_dict(scripted.state_dict())
        del scripted
    model = model.eval().to(device)
    half = args.precision == "fp16"
    if half:
        model = model.half()

    batches = [images[i:i + args.batch] for i in range(0, len(images) - args.batch + 1, args.batch)]

    def call(batch):
        inputs = [t.to(device) for _, t in batch]
        if half:
            inputs = [t.half() for t in inputs]
        out = model(inputs)
        if args.scripted:
            out = out[1]  # (losses, detections) in scripting mode
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return to_host(out)

    # Warm-up as detbench's harness (crates/bench/src/runner.rs, warm_up): `warmup` calls of
    # `batch` images cycling over the first max(warmup, batch) images, which are timed again.
    head = images[:max(args.warmup, args.batch)]
    grad_mode = torch.inference_mode() if args.grad_mode == "inference" else torch.no_grad()
    with grad_mode:
        for k in range(args.warmup):
            call([head[(k * args.batch + j) % len(head)] for j in range(args.batch)])
        samples, detections, raw_detections = [], [], []
        for batch in batches:
            start = time.perf_counter()
            result = call(batch)
            samples.append((time.perf_counter() - start) * 1e3)
            for d in result:
                raw_detections.append(int(d["boxes"].shape[0]))
                detections.append(sum(1 for label in d["labels"].tolist() if label in COCO_IDS))
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "model": name,
        "mode": "torchscript-from-python" if args.scripted else "eager",
        "precision": args.precision,
        "grad_mode": args.grad_mode,
        "batch_size": args.batch,
        "calls": len(samples),
        "warmup_calls": args.warmup,
        "latency_ms": {
            "median": statistics.median(samples),
            "mean": statistics.fmean(samples),
            "p90": percentile(samples, 90),
            "p99": percentile(samples, 99),
            "min": min(samples),
        },
        "images_per_second": args.batch * len(samples) / (sum(samples) / 1e3),
        "detections_per_image": statistics.fmean(detections) if detections else 0.0,
        "raw_detections_per_image": statistics.fmean(raw_detections) if raw_detections else 0.0,
        "samples_ms": samples,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models-dir", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--annotations", required=True)
    p.add_argument("--models", required=True, help="comma-separated torchvision builder names")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--cudnn-benchmark", type=int, choices=[0, 1], default=1,
                   help="torch.backends.cudnn.benchmark (detbench: DETBENCH_TORCH_CUDNN_BENCHMARK)")
    p.add_argument("--scripted", action="store_true",
                   help="diagnostic: time the TorchScript file itself from Python (TE fuser off, as detbench)")
    p.add_argument("--grad-mode", choices=["no-grad", "inference"], default="no-grad",
                   help="torch.no_grad() or torch.inference_mode() around the calls (detbench: DETBENCH_TORCH_GRAD_MODE)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark == 1
    images = load_images(args.images, args.annotations, args.limit)
    results = []
    for name in [m for m in args.models.split(",") if m]:
        try:
            r = bench_model(name, args, images, device)
            print(f"[eager] {name} {args.precision} b{args.batch}: median {r['latency_ms']['median']:.2f} ms, "
                  f"{r['detections_per_image']:.1f} dets/img", flush=True)
        except Exception as e:  # report the failure in the table rather than stopping the run
            r = {"model": name, "precision": args.precision, "batch_size": args.batch, "error": f"{type(e).__name__}: {e}"}
            print(f"[eager] {name} {args.precision} b{args.batch}: FAILED {r['error']}", flush=True)
        results.append(r)
    doc = {
        "tool": "tools/gpu/eager_bench.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "images": len(images),
        "results": results,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    sys.exit(main())
