#!/usr/bin/env python3
"""Scripts torchvision detectors to TorchScript for detbench-train (crates/train).

Each model is built by torchvision's own builder with random weights (``weights=None,
weights_backbone=None``, what references/detection/train.py builds without ``--weights`` and
``--weights-backbone``: BatchNorm2d layers that train, all five backbone stages trainable), after
``torch.manual_seed(seed)``, then ``torch.jit.script``-ed and saved. No weights are downloaded;
nothing made here is committed.

    python3 tools/train/export_train_models.py --out models/ \
        --models maskrcnn_resnet50_fpn,fasterrcnn_resnet50_fpn --seed 0

``--min-size/--max-size`` set GeneralizedRCNNTransform's resize (default 800/1333, torchvision's);
the CPU parity test uses a small configuration (320/512). The file name is ``<model>.pt``, or
``<model>_<suffix>.pt`` with ``--suffix``. A manifest (export_train_manifest.json) records the
versions and settings.
"""
import argparse
import json
import os
import sys

MODELS = {
    "maskrcnn_resnet50_fpn": 91,
    "fasterrcnn_resnet50_fpn": 91,
    "retinanet_resnet50_fpn": 91,
    # references/detection/train.py: get_dataset("coco_kp") -> num_classes 2 (background, person)
    "keypointrcnn_resnet50_fpn": 2,
}


def export(name, out, seed, min_size, max_size, suffix):
    import torch
    import torchvision

    builder = getattr(torchvision.models.detection, name)
    torch.manual_seed(seed)
    model = builder(weights=None, weights_backbone=None, num_classes=MODELS[name],
                    min_size=min_size, max_size=max_size)
    model.train()
    scripted = torch.jit.script(model)
    file = os.path.join(out, f"{name}_{suffix}.pt" if suffix else f"{name}.pt")
    tmp = file + ".tmp"
    scripted.save(tmp)
    os.replace(tmp, file)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"model": name, "file": os.path.basename(file), "seed": seed, "min_size": min_size,
            "max_size": max_size, "num_classes": MODELS[name], "parameters": params,
            "trainable_parameters": trainable}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default="maskrcnn_resnet50_fpn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-size", type=int, default=800)
    ap.add_argument("--max-size", type=int, default=1333)
    ap.add_argument("--suffix", default="")
    args = ap.parse_args()
    import torch
    import torchvision

    os.makedirs(args.out, exist_ok=True)
    entries = []
    for name in args.models.split(","):
        if name not in MODELS:
            sys.exit(f"export_train_models: unknown model {name} (expected one of {', '.join(MODELS)})")
        entries.append(export(name, args.out, args.seed, args.min_size, args.max_size, args.suffix))
        print(f"exported {entries[-1]['file']} ({entries[-1]['trainable_parameters']} trainable parameters)",
              file=sys.stderr)
    manifest = {"torch": torch.__version__, "torchvision": torchvision.__version__, "models": entries}
    with open(os.path.join(args.out, "export_train_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()
