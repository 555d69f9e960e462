#!/usr/bin/env python3
"""`detbench run` beside the Python reference pipeline, on the same model, images and threads.

For each model this runs, in one invocation:
  * the Rust pipeline: `detbench run --model M --threads T --decode inline ...`; with
    `--decode inline` each image is decoded on the timed thread just before its call, so the
    end-to-end sample is decode + preprocess + inference + postprocess, the same span the
    Python loop times;
  * the Python reference pipeline: ../shared/tools/reference/run_onnx.py MODEL latency
    (onnxruntime, intra_op_num_threads=2, 10 warm-up images, one pass over the 206 images; it
    writes its timings to $DETBENCH_REF_OUT/<model>/stats.json);
  * the Python reference accuracy: the same Python pre/post-processing (models.py, common.py)
    over the subset, scored with pycocotools, so that "same AP" is checked on this machine.

It prints, per model, the end-to-end per-image latency ratio (Python / Rust, mean and median)
and the model-call-only ratio (session.run vs detbench's inference stage), both APs, and the
load average around each measurement. The Python timings need intra-op threads = 2: run_onnx.py
fixes that, so --threads must stay 2 for a like-for-like comparison.

Usage: tools/bench_run_vs_python.py [--models yolox_nano,...] [--detbench PATH] [--python PATH]
                                    [--json OUT.json]
Needs: a release build of detbench and the peers' venv (scripts/setup.sh --peers).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("DETBENCH_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
REF_TOOLS = os.path.join(SHARED, "tools", "reference")

# detbench zoo name -> run_onnx.py model name
MODELS = {
    "yolox_nano": "yolox_nano_416",
    "nanodet_m_320": "nanodet_m_320",
    "nanodet_m_416": "nanodet_m_416",
    "fastestdet": "fastestdet_352",
}

PYTHON_AP = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from common import image_lists, coco_eval
from models import get_model, load_bgr
from run_onnx import make_session, detect
model = get_model(sys.argv[2])
sess = make_session(model.onnx, threads=int(sys.argv[3]))
subset, _ = image_lists()
results = []
for iid, path in subset:
    res, *_ = detect(model, sess, load_bgr(path), iid, None, {"primary": model.PRIMARY})
    results.extend(res["primary"])
stats, _ = coco_eval(results)
print(json.dumps({"stats": stats, "detections": len(results)}))
"""


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def run_rust(detbench, model, threads, warmup):
    with tempfile.TemporaryDirectory() as out:
        cmd = [detbench, "run", "--model", model, "--threads", str(threads), "--warmup", str(warmup),
               "--decode", "inline", "--quiet", "--no-store", "--out", out]
        before = loadavg()
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"detbench failed:\n{proc.stdout}\n{proc.stderr}")
        results = json.load(open(os.path.join(out, "results.json")))
    m = results["models"][0]
    lat = m["latency"]
    stage = {s["stage"]: s for s in lat["stages"]}
    provenance = m["provenance"]["harness"]
    return {
        "command": " ".join(cmd[:-2] + ["--out", "DIR"]),
        "ap": m["bbox"]["stats"][0],
        "e2e_mean_ms": lat["end_to_end"]["mean"],
        "e2e_median_ms": lat["end_to_end"]["median"],
        "e2e_p99_ms": lat["end_to_end"]["p99"],
        "inference_mean_ms": stage["inference"]["summary"]["mean"],
        "inference_median_ms": stage["inference"]["summary"]["median"],
        "decode_mean_ms": stage["decode"]["summary"]["mean"],
        "preprocess_mean_ms": stage["preprocess"]["summary"]["mean"],
        "postprocess_mean_ms": stage["postprocess"]["summary"]["mean"],
        "includes_decode": lat["includes_decode"],
        "timed_images": lat["timed_images"],
        "valid": lat["valid"],
        "validity_notes": lat["validity_notes"],
        "other_processes_cpu_share": provenance.get("other_processes_cpu_share"),
        "evaluation_seconds_after_pass": provenance.get("evaluation_seconds_after_pass"),
        "timed_pass_seconds": lat["total_seconds"],
        "process_wall_seconds": wall,
        "loadavg_before": before,
        "loadavg_after": loadavg(),
    }


def run_python_latency(python, ref_name):
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, DETBENCH_REF_OUT=out, DETBENCH_SHARED=SHARED)
        cmd = [python, os.path.join(REF_TOOLS, "run_onnx.py"), ref_name, "latency"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REF_TOOLS)
        if proc.returncode != 0:
            raise SystemExit(f"run_onnx.py failed:\n{proc.stdout}\n{proc.stderr}")
        lat = json.load(open(os.path.join(out, ref_name, "stats.json")))["latency"]
    full = lat["full_pipeline(imread+preprocess+run+postprocess)"]
    return {
        "command": f"DETBENCH_REF_OUT=DIR {os.path.relpath(python, ROOT)} run_onnx.py {ref_name} latency",
        "e2e_mean_ms": full["mean_ms"],
        "e2e_median_ms": full["median_ms"],
        "e2e_p99_ms": full["p99_ms"],
        "session_run_mean_ms": lat["session_run"]["mean_ms"],
        "session_run_median_ms": lat["session_run"]["median_ms"],
        "timed_images": full["n"],
        "loadavg_before": [round(x, 2) for x in lat["loadavg_1_5_15_before"]],
        "loadavg_after": [round(x, 2) for x in lat["loadavg_1_5_15_after"]],
    }


def run_python_ap(python, ref_name, threads):
    env = dict(os.environ, DETBENCH_SHARED=SHARED)
    proc = subprocess.run([python, "-c", PYTHON_AP, REF_TOOLS, ref_name, str(threads)],
                          capture_output=True, text=True, env=env, cwd=REF_TOOLS)
    if proc.returncode != 0:
        raise SystemExit(f"Python AP run failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (run_onnx.py uses 2)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--detbench", default=os.path.join(ROOT, "target", "release", "detbench"))
    ap.add_argument("--python", default=os.path.join(ROOT, ".deps", "venv", "bin", "python"))
    ap.add_argument("--no-python-ap", action="store_true", help="skip the Python accuracy pass")
    ap.add_argument("--json", help="also write every number to this file")
    args = ap.parse_args()
    if args.threads != 2:
        print("warning: run_onnx.py times with 2 intra-op threads; the comparison is not like for like",
              file=sys.stderr)

    rows = []
    for n, model in enumerate(args.models.split(",")):
        ref_name = MODELS[model]
        # Alternate the order so that slow drifts in machine load do not favour one side.
        if n % 2 == 0:
            rust = run_rust(args.detbench, model, args.threads, args.warmup)
            py = run_python_latency(args.python, ref_name)
        else:
            py = run_python_latency(args.python, ref_name)
            rust = run_rust(args.detbench, model, args.threads, args.warmup)
        py_ap = None if args.no_python_ap else run_python_ap(args.python, ref_name, args.threads)
        row = {
            "model": model,
            "rust": rust,
            "python": py,
            "python_ap": py_ap["stats"][0] if py_ap else None,
            "ratio_e2e_mean": py["e2e_mean_ms"] / rust["e2e_mean_ms"],
            "ratio_e2e_median": py["e2e_median_ms"] / rust["e2e_median_ms"],
            "ratio_model_call_mean": py["session_run_mean_ms"] / rust["inference_mean_ms"],
            "ratio_model_call_median": py["session_run_median_ms"] / rust["inference_median_ms"],
        }
        rows.append(row)
        print(f"[{model}] e2e ms mean/median: python {py['e2e_mean_ms']:.2f}/{py['e2e_median_ms']:.2f} "
              f"rust {rust['e2e_mean_ms']:.2f}/{rust['e2e_median_ms']:.2f} -> "
              f"{row['ratio_e2e_mean']:.2f}x/{row['ratio_e2e_median']:.2f}x; model call "
              f"{row['ratio_model_call_mean']:.2f}x/{row['ratio_model_call_median']:.2f}x; "
              f"AP rust {rust['ap']:.4f} python {row['python_ap'] if row['python_ap'] is None else round(row['python_ap'], 4)}",
              file=sys.stderr, flush=True)

    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; threads {args.threads}\n")
    print("| Model | Python e2e mean / median ms | Rust e2e mean / median ms | e2e ratio mean / median "
          "| Python session.run mean / median ms | Rust inference mean / median ms | model-call ratio mean / median "
          "| AP Python | AP Rust | load avg (1 min) before Rust / Python |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        py, rust = r["python"], r["rust"]
        py_ap = "-" if r["python_ap"] is None else f"{r['python_ap']:.4f}"
        print(f"| {r['model']} | {py['e2e_mean_ms']:.2f} / {py['e2e_median_ms']:.2f} "
              f"| {rust['e2e_mean_ms']:.2f} / {rust['e2e_median_ms']:.2f} "
              f"| {r['ratio_e2e_mean']:.2f}x / {r['ratio_e2e_median']:.2f}x "
              f"| {py['session_run_mean_ms']:.2f} / {py['session_run_median_ms']:.2f} "
              f"| {rust['inference_mean_ms']:.2f} / {rust['inference_median_ms']:.2f} "
              f"| {r['ratio_model_call_mean']:.2f}x / {r['ratio_model_call_median']:.2f}x "
              f"| {py_ap} | {rust['ap']:.4f} "
              f"| {rust['loadavg_before'][0]} / {py['loadavg_before'][0]} |")
    for r in rows:
        notes = r["rust"]["validity_notes"]
        if notes:
            print(f"- {r['model']}: detbench flagged its timing: {'; '.join(notes)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                       "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
