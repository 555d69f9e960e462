#!/usr/bin/env python3
"""Benchmark of COCO evaluators on the synthetic val2017-scale sets.

Times, on the same files and in one run, for each IoU type (bbox, segm, keypoints):
  detbench   `detbench eval` (the release binary: hotcoco 1.3.1 as a Rust crate)
  hotcoco    hotcoco's Python API (PyPI wheel)
  faster     faster-coco-eval's COCOeval_faster
  pycoco     pycocotools' COCOeval (the reference)
Each evaluation runs in its own subprocess, so its peak memory (ru_maxrss from wait4) is its
own. Printed per tool: in-process time (load GT + load results + evaluate + accumulate +
summarize, measured by the tool's process; median and minimum over the repeats), CPU time (of
that section for the Python tools, of the whole process for detbench), wall time of the whole
process (interpreter start and imports included), peak RSS, and max |stat difference| against pycocotools in this run
and against the pycocotools goldens in ../shared/conformance/goldens_synthetic_*.json.
Ends with detbench's time as a ratio of hotcoco's.

The synthetic set is made with ../shared/tools/make_synthetic_coco.py and checked against
the sha256 recorded in the goldens before anything is timed.

Usage (venv from `scripts/setup.sh --peers`; release binary from `cargo build --release`):
  .deps/venv/bin/python tools/bench_eval.py --images 500 [--repeat 3] [--record out.json]
"""
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IOU_TYPES = ("bbox", "segm", "keypoints")
TOOLS = ("detbench", "hotcoco", "faster", "pycoco")
GT_FILE = {"bbox": "instances_synth.json", "segm": "instances_synth.json",
           "keypoints": "person_keypoints_synth.json"}
DT_FILE = {t: f"dets_{t}.json" for t in IOU_TYPES}


def shared_dir():
    env = os.environ.get("DETBENCH_SHARED")
    return Path(env) if env else ROOT.parent / "shared"


# ----------------------------------------------------------------------------- workers
def worker(tool, gt, dt, iou_type, out):
    """Runs one evaluation in this process and writes {seconds, stats, version} to `out`."""
    import contextlib
    import io
    if tool == "pycoco":
        from importlib.metadata import version as package_version
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval as Eval
        version = package_version("pycocotools")
    elif tool == "faster":
        import faster_coco_eval
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as Eval
        version = faster_coco_eval.__version__
    elif tool == "hotcoco":
        import hotcoco
        from hotcoco import COCO, COCOeval as Eval
        version = hotcoco.__version__
    else:
        raise SystemExit(f"unknown tool {tool}")
    quiet = io.StringIO()
    start, cpu_start = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(quiet):
        coco_gt = COCO(gt)
        coco_dt = coco_gt.loadRes(dt)
        ev = Eval(coco_gt, coco_dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    stats = [float(s) for s in ev.stats]
    Path(out).write_text(json.dumps({"seconds": seconds, "cpu": cpu, "stats": stats, "version": version}))


# ----------------------------------------------------------------------------- driver
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def goldens_for(images):
    name = {500: "goldens_synthetic_500.json", 5000: "goldens_synthetic_full.json"}.get(images)
    if name is None:
        return None
    return json.loads((shared_dir() / "conformance" / name).read_text())


def make_set(images, seed, out, python):
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "manifest.json").is_file():
        script = shared_dir() / "tools" / "make_synthetic_coco.py"
        print(f"generating {out} with {script.name} --images {images} --seed {seed}", file=sys.stderr)
        subprocess.run([python, str(script), "--out", str(out), "--images", str(images),
                        "--seed", str(seed)], check=True, stdout=subprocess.DEVNULL)
    goldens = goldens_for(images)
    if goldens and seed == 0:
        for name, meta in goldens["generator"]["files"].items():
            got = sha256(out / name)
            if got != meta["sha256"]:
                raise SystemExit(f"{out / name}: sha256 {got} differs from the goldens' {meta['sha256']}")
        print("synthetic set matches the goldens' sha256", file=sys.stderr)
    return goldens


def run_measured(cmd):
    """Runs `cmd`; returns (wall seconds, CPU seconds, peak RSS in MiB, stdout, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own rusage; read the pipes first so a full pipe cannot block it.
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{stderr.decode()}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024.0, stdout.decode(), stderr.decode()


def run_tool(tool, gt, dt, iou_type, detbench, python, scratch):
    out = scratch / f"{tool}_{iou_type}.json"
    if tool == "detbench":
        cmd = [str(detbench), "eval", "--gt", str(gt), "--dt", str(dt), "--iou-type", iou_type,
               "--json", str(out)]
        wall, cpu, rss, _, stderr = run_measured(cmd)
        result = json.loads(out.read_text())
        # `detbench eval` reports its own time from before loading the ground truth.
        line = next(l for l in stderr.splitlines() if l.startswith("Evaluated "))
        seconds = float(line.rsplit(" in ", 1)[1].split()[0])
        # Its CPU time is the whole process's (a Rust binary starts in about a millisecond).
        return {"seconds": seconds, "cpu": cpu, "wall": wall, "rss_mib": rss, "stats": result["stats"]}
    cmd = [python, __file__, "--worker", tool, str(gt), str(dt), iou_type, str(out)]
    wall, _, rss, _, _ = run_measured(cmd)
    result = json.loads(out.read_text())
    # CPU time of the evaluation itself (time.process_time() around it), without the
    # interpreter's start and imports.
    return {"seconds": result["seconds"], "cpu": result["cpu"], "wall": wall, "rss_mib": rss,
            "stats": result["stats"],
            "version": result["version"]}


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) if a and b else float("nan")


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else 0.5 * (values[n // 2 - 1] + values[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=None,
                    help="folder of the synthetic set (default: target/bench-eval/synthetic_N_sS)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool and IoU type; the median is shown")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--iou-types", default=",".join(IOU_TYPES))
    ap.add_argument("--detbench", type=Path, default=ROOT / "target" / "release" / "detbench")
    ap.add_argument("--record", type=Path, help="also write the measurements as JSON here")
    args = ap.parse_args()

    python = sys.executable
    data = args.data or ROOT / "target" / "bench-eval" / f"synthetic_{args.images}_s{args.seed}"
    goldens = make_set(args.images, args.seed, data, python)
    if not args.detbench.is_file():
        raise SystemExit(f"{args.detbench} not found: run `cargo build --release -p detbench` first")
    tools = args.tools.split(",")
    iou_types = args.iou_types.split(",")
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for iou_type in iou_types:
            gt, dt = data / GT_FILE[iou_type], data / DT_FILE[iou_type]
            runs = {tool: [] for tool in tools}
            for r in range(args.repeat):
                for tool in tools:
                    result = run_tool(tool, gt, dt, iou_type, args.detbench, python, scratch)
                    runs[tool].append(result)
                    print(f"{iou_type:9} {tool:8} run {r + 1}: {result['seconds']:.2f} s "
                          f"(CPU {result['cpu']:.2f} s, wall {result['wall']:.2f} s), "
                          f"{result['rss_mib']:.0f} MiB", file=sys.stderr)
            reference = runs["pycoco"][0]["stats"] if "pycoco" in runs else None
            golden = goldens["results"][iou_type]["stats"] if goldens else None
            for tool in tools:
                results = runs[tool]
                rows.append({
                    "iou_type": iou_type, "tool": tool,
                    "seconds": median([x["seconds"] for x in results]),
                    "min_seconds": min(x["seconds"] for x in results),
                    "cpu": median([x["cpu"] for x in results]),
                    "wall": median([x["wall"] for x in results]),
                    "rss_mib": max(x["rss_mib"] for x in results),
                    "runs_seconds": [x["seconds"] for x in results],
                    "diff_vs_pycoco": max_diff(results[0]["stats"], reference),
                    "diff_vs_golden": max_diff(results[0]["stats"], golden),
                    "version": results[0].get("version", ""),
                    "stats": results[0]["stats"],
                })
    load_after = os.getloadavg()

    print(f"\n{args.images} images, seed {args.seed}, {args.repeat} run(s) each (median); "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs")
    print("| IoU type | tool | time (s) | min time (s) | CPU (s) | process wall (s) | peak RSS (MiB) "
          "| max abs stat diff vs pycocotools | vs goldens |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['iou_type']} | {row['tool']} | {row['seconds']:.2f} | {row['min_seconds']:.2f} | "
              f"{row['cpu']:.2f} | {row['wall']:.2f} | {row['rss_mib']:.0f} | "
              f"{row['diff_vs_pycoco']:.3g} | {row['diff_vs_golden']:.3g} |")
    if "detbench" in tools and "hotcoco" in tools:
        print()
        for iou_type in iou_types:
            by_tool = {r["tool"]: r for r in rows if r["iou_type"] == iou_type}
            d, h = by_tool["detbench"], by_tool["hotcoco"]
            print(f"{iou_type}: detbench/hotcoco time {d['seconds'] / h['seconds']:.3f} "
                  f"(min {d['min_seconds'] / h['min_seconds']:.3f}), CPU {d['cpu'] / h['cpu']:.3f}, "
                  f"process wall {d['wall'] / h['wall']:.3f}")
    versions = {r["tool"]: r["version"] for r in rows if r["version"]}
    print("\nversions:", json.dumps(versions), "python", platform.python_version())
    if args.record:
        record = {"images": args.images, "seed": args.seed, "repeat": args.repeat, "started": started,
                  "load_average_before": load_before, "load_average_after": load_after,
                  "cpus": os.cpu_count(), "platform": platform.platform(), "versions": versions,
                  "command": " ".join(sys.argv), "rows": rows}
        args.record.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.record.with_suffix(args.record.suffix + ".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(args.record)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:7])
    else:
        main()
