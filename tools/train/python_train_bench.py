#!/usr/bin/env python3
"""The PyTorch side of detbench's training benchmark: torchvision's training step
(references/detection/engine.py `train_one_epoch`, train.py's optimiser and schedules) with the
settings and data pipeline as `detbench train`, timed the same way.

* Model: the torchvision builder in eager mode (what users train), with the initial weights of the
  TorchScript file `detbench train` loads (its state_dict); ``--scripted`` runs the file itself.
* Data: tools/train/train_data.py (the same batches and flips as crates/train's sampler;
  CocoDetection + ConvertCocoPolysToMask + RandomHorizontalFlip + ToDtype), through a
  ``torch.utils.data.DataLoader(num_workers=4, collate_fn=tuple(zip(*batch)))``.
* Step: ``with torch.autocast("cuda", enabled=amp)``: ``loss_dict = model(images, targets)``,
  ``losses = sum(...)``; ``.item()`` (stop on a non-finite loss); ``zero_grad``;
  ``scaler.scale(losses).backward(); scaler.step(optimizer); scaler.update()`` (amp) or
  ``losses.backward(); optimizer.step()``; warm-up LinearLR step; MultiStepLR per epoch;
  ``torch.cuda.synchronize()`` before the step's clock stops (as `detbench train`).
* Precision: fp32 (TF32 off for matmul and cuDNN), tf32 (on), amp (fp16 autocast + GradScaler),
  bf16 (bf16 autocast).

Writes JSON with per-step records and the same throughput summary as `detbench train` (its results.json `training` entries).
"""
import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_data  # noqa: E402

NUM_CLASSES = {"maskrcnn_resnet50_fpn": 91, "fasterrcnn_resnet50_fpn": 91, "retinanet_resnet50_fpn": 91,
               "keypointrcnn_resnet50_fpn": 2}


def collate(batch):
    return tuple(zip(*batch))


def stats(samples):
    s = sorted(x * 1e3 for x in samples)
    n = len(s)
    at = lambda p: s[min(int(math.floor(n * p)), n - 1)]  # noqa: E731  nearest rank, as detbench
    return {"n": n, "mean_ms": sum(s) / n, "p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99),
            "min_ms": s[0], "max_ms": s[-1]}


def throughput(steps, skip, batch):
    timed = steps[skip:]
    if not timed:
        return None
    total = sum(s["step_s"] for s in timed)
    return {"skipped_steps": skip, "timed_steps": len(timed), "images_per_s": len(timed) * batch / total,
            "global_images_per_s": len(timed) * batch / total,
            "nvidia_pytorch_images_per_s": len(steps) * batch / sum(s["step_s"] for s in steps),
            "step": stats([s["step_s"] for s in timed]), "data_wait": stats([s["data_wait_s"] for s in timed]),
            "data_wait_fraction": sum(s["data_wait_s"] for s in timed) / total}


def build_model(args, device):
    import torch
    import torchvision

    scripted = torch.jit.load(args.model_file, map_location="cpu")
    if args.scripted:
        model = scripted
    else:
        builder = getattr(torchvision.models.detection, args.model)
        meta = json.loads(args.size) if args.size else {}
        model = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES[args.model], **meta)
        model.load_state_dict(scripted.state_dict())
    model.to(device)
    model.train()
    return model


def loader_batches(dataset, args, world=1, rank=0):
    """The batch index lists of every epoch, as detbench's training loader walks them."""
    groups = (train_data.aspect_ratio_groups(dataset.aspect_ratios(), args.aspect_ratio_group_factor)
              if args.aspect_ratio_group_factor >= 0 else None)
    epoch = 0
    while True:
        for b in train_data.epoch_batches(len(dataset), args.seed, epoch, args.hflip_prob, rank, world, groups,
                                          args.batch):
            yield epoch, b
        epoch += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="maskrcnn_resnet50_fpn")
    ap.add_argument("--model-file", required=True)
    ap.add_argument("--size", default="", help='builder kwargs as JSON, e.g. {"min_size": 320} (the export\'s)')
    ap.add_argument("--scripted", action="store_true")
    ap.add_argument("--annotations", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "amp", "bf16"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--warmup-steps", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--hflip-prob", type=float, default=0.5)
    ap.add_argument("--aspect-ratio-group-factor", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import torch

    started = time.perf_counter()
    device = torch.device(args.device)
    tf32 = args.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = False
    dataset = train_data.TrainSet(args.annotations, args.images, "mask" in args.model, "keypoint" in args.model)
    batches = loader_batches(dataset, args)
    per_epoch = len(train_data.epoch_batches(len(dataset), args.seed, 0, args.hflip_prob, 0, 1, None, args.batch))
    total_steps = args.warmup_steps + args.steps
    plan = [next(batches) for _ in range(total_steps)]
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=[b for _, b in plan], num_workers=args.workers,
                                         collate_fn=collate)
    model = build_model(args, device)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = args.lr * args.batch / 16
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    multistep = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[16, 22], gamma=0.1)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / 1000,
                                               total_iters=min(1000, per_epoch - 1))
    amp = args.precision == "amp"
    scaler = torch.amp.GradScaler("cuda") if amp else None
    autocast_dtype = {"amp": torch.float16, "bf16": torch.bfloat16}.get(args.precision)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, names = [], None
    it = iter(loader)
    for i in range(total_steps):
        epoch = plan[i][0]
        t0 = time.perf_counter()
        images, targets = next(it)
        waited = time.perf_counter() - t0
        images = [img.to(device) for img in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        if i == 0:
            torch.manual_seed(args.seed)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float16, enabled=autocast_dtype is not None):
            out = model(images, targets)
            loss_dict = out[0] if isinstance(out, tuple) else out
            losses = sum(loss for loss in loss_dict.values())
        values = torch.stack([v.detach().float() for v in loss_dict.values()] + [losses.detach().float()]).tolist()
        if names is None:
            names = list(loss_dict.keys())
        if not math.isfinite(values[-1]):
            sys.exit(f"Loss is {values[-1]} at step {i}, stopping training: {dict(zip(names, values))}")
        used_lr = optimizer.param_groups[0]["lr"]
        scale = scaler.get_scale() if amp else None
        optimizer.zero_grad()
        skipped = False
        if amp:
            scaler.scale(losses).backward()
            scaler.step(optimizer)
            scaler.update()
            skipped = scaler.get_scale() < scale
        else:
            losses.backward()
            optimizer.step()
        if epoch == 0:
            warmup.step()
        if i + 1 < total_steps and plan[i + 1][0] != epoch:
            multistep.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        steps.append({"step": i, "epoch": epoch, "lr": used_lr, "losses": values[:-1], "total_loss": values[-1],
                      "step_s": time.perf_counter() - t0, "data_wait_s": waited, "loss_scale": scale,
                      "skipped": skipped})
    peak = None
    if device.type == "cuda":
        peak = {"allocated_bytes": torch.cuda.max_memory_allocated(device),
                "reserved_bytes": torch.cuda.max_memory_reserved(device)}
    result = {"side": "pytorch-scripted" if args.scripted else "pytorch-eager", "model": args.model,
              "precision": args.precision, "batch": args.batch, "loss_names": names, "steps": steps,
              "throughput": throughput(steps, args.warmup_steps, args.batch), "peak_memory": peak,
              "torch": torch.__version__, "wall_s": time.perf_counter() - started}
    with open(args.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(args.out + ".tmp", args.out)
    t = result["throughput"]
    print(f"pytorch {args.model} {args.precision} batch {args.batch}: {t['images_per_s']:.2f} images/s "
          f"(step p50 {t['step']['p50_ms']:.1f} ms)", file=sys.stderr)


if __name__ == "__main__":
    main()
