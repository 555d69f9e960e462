#!/usr/bin/env python3
"""Export torchvision's COCO detection models to TorchScript (torch.jit.script) for detbench.

    python3 tools/gpu/export_torchvision.py --out DIR [--weights-dir DIR] [--models a,b,...] \
        [--calibrate] [--min-size N --max-size N]

For each model it builds the torchvision architecture with the builder's defaults (91 COCO
category ids, the builder's own min/max size and thresholds), then:

* if ``--weights-dir`` holds the official checkpoint (e.g. ``fasterrcnn_resnet50_fpn_coco-258fb6c6.pth``
  from https://download.pytorch.org/models/), loads it, checking its sha256 prefix;
* otherwise keeps random weights drawn under ``torch.manual_seed(SEED)`` (``weights=None,
  weights_backbone=None``), which give ~0 AP but the same architecture and kernels; the
  post-processing load differs from a trained model (see docs/BENCHMARKS.md).

and writes ``DIR/<model>.pt`` (scripted, eval mode, CPU, fp32) plus ``DIR/export_manifest.json``
(sha256 of every file, the weights used, torch/torchvision versions). The eager benchmark
(tools/gpu/eager_bench.py) loads the weights back from the scripted file, so both sides run the
same weights. Weights are never committed to the repository.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import torch
import torchvision
from torchvision.models import detection

SEED = 0

# --calibrate: random weights give no RetinaNet detection at all (its classification bias starts at
# the prior -log((1 - 0.01) / 0.01) = -4.595, so every score is about 0.01, under the 0.05
# threshold) and so no post-processing load. With --calibrate the bias is filled with this value
# instead, chosen on the CPU on the first 8 shipped images (tools/native/README.md): 0-300
# detections per image, mean about 50-80. Recorded in the manifest.
CALIBRATION = {
    "retinanet_resnet50_fpn": ("head.classification_head.cls_logits.bias", -3.9),
}

# zoo name suffix -> (builder, official checkpoint file (torchvision 0.26 DEFAULT weights))
MODELS = {
    "fasterrcnn_resnet50_fpn": (detection.fasterrcnn_resnet50_fpn, "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"),
    "fasterrcnn_mobilenet_v3_large_fpn": (detection.fasterrcnn_mobilenet_v3_large_fpn, "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": (detection.fasterrcnn_mobilenet_v3_large_320_fpn, "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"),
    "retinanet_resnet50_fpn": (detection.retinanet_resnet50_fpn, "retinanet_resnet50_fpn_coco-eeacb38b.pth"),
    "ssd300_vgg16": (detection.ssd300_vgg16, "ssd300_vgg16_coco-b556d3b4.pth"),
    "ssdlite320_mobilenet_v3_large": (detection.ssdlite320_mobilenet_v3_large, "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"),
    "maskrcnn_resnet50_fpn": (detection.maskrcnn_resnet50_fpn, "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"),
    "keypointrcnn_resnet50_fpn": (detection.keypointrcnn_resnet50_fpn, "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"),
}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build(name, weights_dir, calibrate=False, sizes=None):
    """The eval-mode model and a description of its weights. ``sizes``: GeneralizedRCNNTransform's
    (min_size, max_size) instead of the builder's (the native engine's CPU tests use 320/512)."""
    builder, official = MODELS[name]
    torch.manual_seed(SEED)
    extra = {"min_size": sizes[0], "max_size": sizes[1]} if sizes else {}
    model = builder(weights=None, weights_backbone=None, **extra)
    checkpoint = os.path.join(weights_dir, official) if weights_dir else None
    if checkpoint and os.path.isfile(checkpoint):
        digest = sha256_of(checkpoint)
        prefix = official.rsplit("-", 1)[1].split(".")[0]
        if not digest.startswith(prefix):
            sys.exit(f"{checkpoint}: sha256 {digest} does not start with {prefix} (torchvision's name for it)")
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        weights = {"kind": "official", "file": official, "sha256": digest}
    else:
        weights = {"kind": "random", "seed": SEED, "note": f"torch.manual_seed({SEED}); weights=None, weights_backbone=None"}
        if calibrate and name in CALIBRATION:
            key, value = CALIBRATION[name]
            with torch.no_grad():
                model.state_dict()[key].fill_(value)
            weights["calibration"] = f"{key} filled with {value} (detections per image for a benchmark of the post-processing)"
    return model.eval(), weights


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for <model>.pt and export_manifest.json")
    parser.add_argument("--weights-dir", default=None, help="folder holding official torchvision checkpoints")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    parser.add_argument("--calibrate", action="store_true", help="with random weights, apply CALIBRATION (RetinaNet's classification bias)")
    parser.add_argument("--min-size", type=int, default=None, help="GeneralizedRCNNTransform min_size instead of the builder's (with --max-size)")
    parser.add_argument("--max-size", type=int, default=None, help="GeneralizedRCNNTransform max_size instead of the builder's")
    args = parser.parse_args()
    if (args.min_size is None) != (args.max_size is None):
        sys.exit("--min-size and --max-size go together")
    sizes = (args.min_size, args.max_size) if args.min_size is not None else None
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        sys.exit(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    manifest = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": "torch.jit.script(model.eval()), saved on CPU in fp32",
        "models": {},
    }
    for name in names:
        start = time.perf_counter()
        model, weights = build(name, args.weights_dir, args.calibrate, sizes)
        scripted = torch.jit.script(model)
        path = os.path.join(args.out, f"{name}.pt")
        tmp = path + ".tmp"
        scripted.save(tmp)
        os.replace(tmp, path)
        manifest["models"][name] = {
            "file": os.path.basename(path),
            "sha256": sha256_of(path),
            "weights": weights,
            "transform": {"min_size": list(model.transform.min_size), "max_size": model.transform.max_size}
            if hasattr(model, "transform") else None,
            "parameters": sum(p.numel() for p in model.parameters()),
        }
        print(f"[export] {name}: {weights['kind']} weights -> {path} ({time.perf_counter() - start:.1f}s)", flush=True)
    manifest_path = os.path.join(args.out, "export_manifest.json")
    previous = {}
    if os.path.isfile(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f).get("models", {})
    previous.update(manifest["models"])
    manifest["models"] = previous
    with open(manifest_path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(manifest_path + ".tmp", manifest_path)


if __name__ == "__main__":
    main()
