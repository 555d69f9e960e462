#!/usr/bin/env python3
"""`detbench run` beside the Python reference pipeline, on the same model, images and threads.

For each model this runs, in one invocation:
  * the Rust pipeline as detbench runs it by default: `detbench run --model M --threads T`
    (images decoded in chunks by all cores while the model waits, then the model runs through
    them); its per-image end to end is that image's decode time + its detect call (preprocess +
    inference + postprocess), summed from the raw samples in results.json;
  * the Rust pipeline as a sequential loop: the same with `--decode inline`, each image decoded
    on the timed thread just before its call, exactly the structure of the Python loop;
  * the Python reference pipeline: ../shared/tools/reference/run_onnx.py MODEL latency
    (onnxruntime, intra_op_num_threads=2, 10 warm-up images, one pass over the 206 images; it
    writes its timings to $DETBENCH_REF_OUT/<model>/stats.json);
  * the Python reference accuracy: the same Python pre/post-processing (models.py, common.py)
    over the subset, scored with pycocotools, so that "same AP" is checked on this machine.

It prints, per model, the end-to-end per-image latency ratio (Python / Rust, mean and median)
for both Rust runs, the model-call-only ratio (session.run vs detbench's inference stage), the
throughput ratio, both APs, and how much CPU other processes took during each measurement
(from /proc/stat minus the measured child's own CPU time; a step is measured again, up to
--tries times, when that share is over --max-others). The Python timings need intra-op threads = 2: run_onnx.py
fixes that, so --threads must stay 2 for a like-for-like comparison.

Each side is measured --repeat times (default 3), the three runs of a round interleaved and the
order alternated between rounds; every figure printed is the median over the repeats.

Usage: tools/bench_run_vs_python.py [--models yolox_nano,...] [--repeat N] [--detbench PATH]
                                    [--python PATH] [--json OUT.json]
Needs: a release build of detbench and the peers' venv (scripts/setup.sh --peers).
"""
import argparse
import json
import os
import platform
import resource
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


def combine(runs):
    """One run's dict whose numbers are the medians over `runs` (lists and strings from the first)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = median([r[key] for r in runs])
        elif isinstance(value, list) and value and isinstance(value[0], (int, float)):
            out[key] = [median([r[key][i] for r in runs]) for i in range(len(value))]
    if "validity_notes" in out:
        out["validity_notes"] = sorted({note for r in runs for note in r["validity_notes"]})
    return out


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_ticks():
    """(busy, total) CPU clock ticks of the whole machine, from /proc/stat (guest time excluded,
    it is already in user/nice)."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def others_share(step):
    """Runs `step()` (which runs one child process) and returns (its result, the share of the
    machine's CPU that processes other than that child used meanwhile)."""
    hz = os.sysconf("SC_CLK_TCK")
    busy0, total0 = machine_ticks()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = step()
    busy1, total1 = machine_ticks()
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_ticks = ((child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)) * hz
    total = max(1, total1 - total0)
    return result, max(0.0, (busy1 - busy0 - child_ticks) / total)


def measured(step, limit, tries):
    """Runs `step` until other processes took at most `limit` of the CPU meanwhile (at most
    `tries` times, keeping the quietest run) and records that share."""
    best = None
    for attempt in range(tries):
        result, share = others_share(step)
        result["others_cpu_share"] = share
        result["attempts"] = attempt + 1
        if best is None or share < best["others_cpu_share"]:
            best = result
        if share <= limit:
            break
        print(f"  (other processes took {share:.0%} of the CPU; measuring again)", file=sys.stderr, flush=True)
        time.sleep(20)
    return best


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def run_rust(detbench, model, threads, warmup, decode):
    with tempfile.TemporaryDirectory() as out:
        cmd = [detbench, "run", "--model", model, "--threads", str(threads), "--warmup", str(warmup),
               "--decode", decode, "--quiet", "--no-store", "--out", out]
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
    # Per image: decode + the detect call (inline mode: the sample already includes decode).
    if lat["includes_decode"]:
        per_image = lat["end_to_end_samples_ms"]
    else:
        per_image = [d + e for d, e in zip(stage["decode"]["samples_ms"], lat["end_to_end_samples_ms"])]
    return {
        "command": " ".join(cmd[:-2] + ["--out", "DIR"]),
        "decode_mode": provenance["decode"],
        "ap": m["bbox"]["stats"][0],
        "per_image_mean_ms": sum(per_image) / len(per_image),
        "per_image_median_ms": median(per_image),
        "e2e_mean_ms": lat["end_to_end"]["mean"],
        "e2e_median_ms": lat["end_to_end"]["median"],
        "e2e_p99_ms": lat["end_to_end"]["p99"],
        "inference_mean_ms": stage["inference"]["summary"]["mean"],
        "inference_median_ms": stage["inference"]["summary"]["median"],
        "decode_mean_ms": stage["decode"]["summary"]["mean"],
        "preprocess_mean_ms": stage["preprocess"]["summary"]["mean"],
        "postprocess_mean_ms": stage["postprocess"]["summary"]["mean"],
        "images_per_second": lat["images_per_second"],
        "includes_decode": lat["includes_decode"],
        "timed_images": lat["timed_images"],
        "valid": lat["valid"],
        "validity_notes": lat["validity_notes"],
        "other_processes_cpu_share": provenance.get("other_processes_cpu_share"),
        "evaluation_seconds_after_pass": provenance.get("evaluation_seconds_after_pass"),
        "ground_truth_load_seconds": provenance.get("ground_truth_load_seconds"),
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
    ap.add_argument("--max-others", type=float, default=0.10,
                    help="re-measure a step when other processes took more than this share of the CPU")
    ap.add_argument("--tries", type=int, default=4, help="measurements of a step at most")
    ap.add_argument("--repeat", type=int, default=3,
                    help="measurements per side; the figures are medians over them")
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
        runs = {"rust": [], "rust_sequential": [], "python": []}
        for round_ in range(args.repeat):
            # Alternate the order so that slow drifts in machine load do not favour one side.
            steps = ["rust", "python", "rust_sequential"]
            if (n + round_) % 2 == 1:
                steps.reverse()
            for side in steps:
                if side == "python":
                    step = lambda: run_python_latency(args.python, ref_name)
                else:
                    decode = "chunked" if side == "rust" else "inline"
                    step = lambda d=decode: run_rust(args.detbench, model, args.threads, args.warmup, d)
                runs[side].append(measured(step, args.max_others, args.tries))
        # Each figure below is the median over the repeats of that run's figure.
        rust, rust_seq, py = (combine(runs[k]) for k in ("rust", "rust_sequential", "python"))
        py_ap = None if args.no_python_ap else run_python_ap(args.python, ref_name, args.threads)
        py_throughput = 1000.0 / py["e2e_mean_ms"]
        row = {
            "model": model,
            "rust": rust,
            "rust_sequential": rust_seq,
            "python": py,
            "python_ap": py_ap["stats"][0] if py_ap else None,
            "repeats": runs,
            "ratio_e2e_mean": py["e2e_mean_ms"] / rust["per_image_mean_ms"],
            "ratio_e2e_median": py["e2e_median_ms"] / rust["per_image_median_ms"],
            "ratio_e2e_sequential_mean": py["e2e_mean_ms"] / rust_seq["per_image_mean_ms"],
            "ratio_e2e_sequential_median": py["e2e_median_ms"] / rust_seq["per_image_median_ms"],
            "ratio_model_call_mean": py["session_run_mean_ms"] / rust["inference_mean_ms"],
            "ratio_model_call_median": py["session_run_median_ms"] / rust["inference_median_ms"],
            "ratio_model_call_sequential_mean": py["session_run_mean_ms"] / rust_seq["inference_mean_ms"],
            "ratio_throughput": rust["images_per_second"] / py_throughput,
        }
        rows.append(row)
        print(f"[{model}] per-image ms mean/median: python {py['e2e_mean_ms']:.2f}/{py['e2e_median_ms']:.2f}, "
              f"rust {rust['per_image_mean_ms']:.2f}/{rust['per_image_median_ms']:.2f} "
              f"({row['ratio_e2e_mean']:.2f}x/{row['ratio_e2e_median']:.2f}x), rust sequential "
              f"{rust_seq['per_image_mean_ms']:.2f}/{rust_seq['per_image_median_ms']:.2f} "
              f"({row['ratio_e2e_sequential_mean']:.2f}x/{row['ratio_e2e_sequential_median']:.2f}x); "
              f"model call {row['ratio_model_call_mean']:.2f}x/{row['ratio_model_call_median']:.2f}x; "
              f"AP rust {rust['ap']:.4f} python {'-' if row['python_ap'] is None else round(row['python_ap'], 4)}",
              file=sys.stderr, flush=True)

    print(f"\nmachine: {cpu_model()}, {os.cpu_count()} CPUs; "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; intra-op threads {args.threads}; "
          f"each figure is the median of {args.repeat} interleaved runs\n")
    print("Per-image end to end (ms, mean / median): Python = imread + preprocess + session.run + "
          "postprocess, one loop; Rust = decode + detect call of each image, detbench's default "
          "(chunked decode) and sequential (`--decode inline`).\n")
    print("| Model | Python | Rust | ratio | Rust sequential | ratio | Python session.run | Rust inference | "
          "model-call ratio | images/s Python / Rust | AP Python | AP Rust | AP Rust seq. | CPU taken by other processes (Rust / Python / Rust seq.) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        py, rust, seq = r["python"], r["rust"], r["rust_sequential"]
        py_ap = "-" if r["python_ap"] is None else f"{r['python_ap']:.4f}"
        print(f"| {r['model']} | {py['e2e_mean_ms']:.2f} / {py['e2e_median_ms']:.2f} "
              f"| {rust['per_image_mean_ms']:.2f} / {rust['per_image_median_ms']:.2f} "
              f"| {r['ratio_e2e_mean']:.2f}x / {r['ratio_e2e_median']:.2f}x "
              f"| {seq['per_image_mean_ms']:.2f} / {seq['per_image_median_ms']:.2f} "
              f"| {r['ratio_e2e_sequential_mean']:.2f}x / {r['ratio_e2e_sequential_median']:.2f}x "
              f"| {py['session_run_mean_ms']:.2f} / {py['session_run_median_ms']:.2f} "
              f"| {rust['inference_mean_ms']:.2f} / {rust['inference_median_ms']:.2f} (seq. {seq['inference_mean_ms']:.2f}) "
              f"| {r['ratio_model_call_mean']:.2f}x / {r['ratio_model_call_median']:.2f}x (seq. {r['ratio_model_call_sequential_mean']:.2f}x) "
              f"| {1000 / py['e2e_mean_ms']:.1f} / {rust['images_per_second']:.1f} "
              f"| {py_ap} | {rust['ap']:.4f} | {seq['ap']:.4f} "
              f"| {rust['others_cpu_share']:.0%} / {py['others_cpu_share']:.0%} / {seq['others_cpu_share']:.0%} |")
    print("\nEvaluation inside `detbench run` (default `--eval after-run`: scoring starts after the timed "
          "pass, so all of it adds to the run's wall time): the scoring time against the whole "
          "detbench process, from start to exit.\n")
    print("| Model | evaluation s | timed pass s | process wall s | evaluation share of the run |")
    print("|---|---|---|---|---|")
    for r in rows:
        rust = r["rust"]
        share = rust["evaluation_seconds_after_pass"] / rust["process_wall_seconds"]
        print(f"| {r['model']} | {rust['evaluation_seconds_after_pass']:.3f} | {rust['timed_pass_seconds']:.2f} "
              f"| {rust['process_wall_seconds']:.2f} | {share:.2%} |")
    for r in rows:
        for key in ("rust", "rust_sequential"):
            notes = r[key]["validity_notes"]
            if notes:
                print(f"- {r['model']} ({key}): detbench flagged its timing: {'; '.join(notes)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "machine": cpu_model(), "cpus": os.cpu_count(),
                       "threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
