#!/usr/bin/env python3
"""How much evaluation adds to a `detbench run` at val2017 scale (5,000 images), measured.

The full val2017 images are not on these machines, so the set is built from the shipped subset:
its real images and real annotations repeated under new ids until there are --images of them
(image i is subset image i mod 206, as a symlink; its annotations are copied with new ids). The
detector then sees real pictures, gives real detection counts, and the ground truth has the
subset's density of objects per image (val2017's, sampled), at val2017's image count.

    python3 tools/bench_eval_share.py [--images 5000] [--model yolox_nano] [--runs 3] \\
        [--eval after-run,overlap] [--work DIR] [--json OUT.json]

For each run it reads `provenance.harness.evaluation_seconds_after_pass` from results.json (what
scoring adds after the timed pass: all of it with --eval after-run; the wait for the background
scorer and the accumulation with --eval overlap) and times the whole detbench process from start
to exit. Prints a Markdown table: evaluation seconds, timed pass, process wall, share. Runs of the
two --eval modes alternate.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_eval import ROOT, shared_dir  # the same script folder; standard library only


def build_repeated_set(out, count):
    """`out`/val2017 (symlinks) and `out`/instances.json: the subset repeated to `count` images."""
    images_dir = out / "val2017"
    annotations = out / "instances.json"
    if annotations.is_file() and len(list(images_dir.iterdir())) == count:
        return images_dir, annotations
    src = shared_dir().resolve() / "coco"  # absolute: the symlinks must not depend on the cwd
    subset = json.loads((src / "annotations" / "instances_val2017_subset.json").read_text())
    by_image = {}
    for ann in subset["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    originals = sorted(subset["images"], key=lambda im: im["id"])
    images_dir.mkdir(parents=True, exist_ok=True)
    for old in images_dir.iterdir():
        old.unlink()
    images, anns = [], []
    for i in range(count):
        original = originals[i % len(originals)]
        new_id = i + 1
        name = f"{new_id:012d}.jpg"
        os.symlink(src / "val2017" / original["file_name"], images_dir / name)
        images.append({**original, "id": new_id, "file_name": name})
        for ann in by_image.get(original["id"], []):
            anns.append({**ann, "id": len(anns) + 1, "image_id": new_id})
    doc = {k: v for k, v in subset.items() if k not in ("images", "annotations")}
    doc.update(images=images, annotations=anns)
    tmp = annotations.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(annotations)
    print(f"built {out}: {len(images)} images, {len(anns)} annotations", file=sys.stderr)
    return images_dir, annotations


def run_detbench(detbench, model, images_dir, annotations, mode, out):
    cmd = [str(detbench), "run", "--model", model, "--images-dir", str(images_dir),
           "--annotations", str(annotations), "--eval", mode, "--out", str(out), "--no-store", "--quiet"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    row = json.loads((out / "results.json").read_text())["models"][0]
    harness = row["provenance"]["harness"]
    return {
        "mode": mode,
        "evaluation_seconds": harness["evaluation_seconds_after_pass"],
        "timed_pass_seconds": row["latency"]["total_seconds"],
        "process_wall_seconds": wall,
        "ap": row["bbox"]["stats"][0],
        "detections_per_image": (row.get("detections_per_image") or {}).get("mean"),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--model", default="yolox_nano")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--eval", default="after-run,overlap")
    p.add_argument("--work", type=Path, default=Path("/tmp/detbench-eval-share"))
    p.add_argument("--detbench", type=Path, default=ROOT / "target" / "release" / "detbench")
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    images_dir, annotations = build_repeated_set(args.work / f"repeated_{args.images}", args.images)
    modes = [m for m in args.eval.split(",") if m]
    runs = []
    for r in range(args.runs):
        order = modes if r % 2 == 0 else modes[::-1]
        for mode in order:
            result = run_detbench(args.detbench, args.model, images_dir, annotations, mode, args.work / f"run_{mode}_{r}")
            print(f"run {r + 1} {mode}: evaluation {result['evaluation_seconds']:.3f} s of "
                  f"{result['process_wall_seconds']:.1f} s, AP {result['ap']:.4f}", file=sys.stderr, flush=True)
            runs.append(result)

    print(f"{args.model} on the shipped subset repeated to {args.images} images; medians of {args.runs} runs "
          f"per mode ({os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    print("| --eval | evaluation s | timed pass s | process wall s | evaluation share | AP |")
    print("|---|--:|--:|--:|--:|--:|")
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        ev = statistics.median(r["evaluation_seconds"] for r in mine)
        wall = statistics.median(r["process_wall_seconds"] for r in mine)
        passes = [r["timed_pass_seconds"] for r in mine]
        share = statistics.median(r["evaluation_seconds"] / r["process_wall_seconds"] for r in mine)
        print(f"| {mode} | {ev:.3f} | {statistics.median(passes):.1f} | {wall:.1f} "
              f"| {share:.2%} | {mine[0]['ap']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps({"images": args.images, "model": args.model, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
