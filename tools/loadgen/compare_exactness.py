#!/usr/bin/env python3
"""Check (1) of issue 13: LoadGen and detbench-loadgen side by side on one replayed latency
sequence, every scenario.

For each case both tools run the same synthetic SUT (lg_common.ReplaySUT under LoadGen, the
`replay` example under detbench-loadgen: one FIFO worker replaying a fixed, seeded latency
sequence) under the same settings, one after the other. Three checks:

  A. identical choices: the loaded sample set, the number of generated queries, the length of
     the generated schedule (ns), the sample index of every issued sample, the number of
     queries issued (Server, where the schedule fixes it) and each validity line (VALID or
     INVALID, performance constraints, min duration, min queries, early stopping);
  B. identical statistics: LoadGen's own per-sample latencies (from its trace) put through
     detbench-loadgen (the `loadgen_stats` example) give LoadGen's summary line for line: every
     percentile, mean, early-stopping estimate and verdict; the two rate lines that divide by a
     wall-clock time the trace gives only to the microsecond may differ in the last digit;
  C. each tool's own measurement: the medians agree within the harnesses' overhead and the
     machine's noise (--tol-us / --tol-rel). p90, p99 and the early-stopping estimate are
     printed but not judged: LoadGen's Python binding adds tens of microseconds to every
     completion, which queueing in the Server cases amplifies, and on a shared 2-core machine
     the tail is the scheduler's.

Usage (the venv with mlcommons-loadgen==6.0.17):
    /work/venvs/loadgen/bin/python tools/loadgen/compare_exactness.py [--cases a,b] [--json OUT]
Exit status 1 if anything that must agree does not.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lg_common as c  # noqa: E402
from make_goldens import CASES  # noqa: E402

PERF_CASES = [n for n, case in CASES.items() if case[0].get("mode", "PerformanceOnly") != "AccuracyOnly"]
# Live runs see the machine's noise: give the Server bound LoadGen's default for detection
# (100 ms) where a case is meant to pass, so a scheduler hiccup cannot flip the verdict.
OVERRIDES = {"server_valid": {"server_target_latency_ns": 100_000_000}}
RATE_LINES = ("QPS w/ loadgen overhead", "Completed samples per second")
VALIDITY_LINES = ("Result is :", "  Performance constraints satisfied :", "  Min duration satisfied :",
                  "  Min queries satisfied :", "  Early stopping satisfied:")


def summary_values(text):
    """The summary's `name : value` lines as a dict (first occurrence wins)."""
    out = {}
    for line in text.splitlines():
        if " : " in line or ": " in line:
            key, _, value = line.partition(":")
            out.setdefault(key.rstrip(), value.strip())
    return out


def early_stopping_estimate(text):
    for line in text.splitlines():
        if "th percentile estimate:" in line:
            return int(line.rsplit(":", 1)[1])
    return None


def ours_sample_order(outdir):
    with open(os.path.join(outdir, "mlperf_log_accuracy.json")) as f:
        return [e["qsl_idx"] for e in sorted(json.load(f), key=lambda e: e["seq_id"])]


def loadgen_stats(record, path):
    with open(path, "w") as f:
        json.dump(record, f)
    exe = os.path.join(c.ROOT, "target", "release", "examples", "loadgen_stats")
    return subprocess.run([exe, path], check=True, capture_output=True, text=True).stdout


def diff_summaries(theirs, ours):
    """Lines that differ, allowing the last digit of the two rate lines."""
    a, b = theirs.splitlines(), ours.splitlines()
    if len(a) != len(b):
        return [f"summary has {len(b)} lines, LoadGen's {len(a)}"]
    out = []
    for x, y in zip(a, b):
        if x == y:
            continue
        if x.startswith(RATE_LINES) and y.startswith(RATE_LINES):
            vx, vy = float(x.rsplit(":", 1)[1]), float(y.rsplit(":", 1)[1])
            if abs(vx - vy) <= max(0.011, 2e-4 * vx):
                continue
        out.append(f"LoadGen '{x}' vs detbench '{y}'")
    return out


def compare_case(name, workdir, tol_ns, tol_rel):
    fields, total, perf, median, sigma, seed = CASES[name]
    # Log every response in both tools, so each one's sample order can be read back.
    fields = dict(fields, accuracy_log_probability=1.0, **OVERRIDES.get(name, {}))
    latencies = c.lognormal_latencies(4096, median, sigma, seed)
    lg_dir, db_dir = os.path.join(workdir, name, "loadgen"), os.path.join(workdir, name, "detbench")
    c.run_loadgen(fields, total, perf, lg_dir, latencies)
    c.run_detbench(fields, total, perf, db_dir, latencies)
    lg = c.read_loadgen_logs(lg_dir)
    record = c.loadgen_record(lg_dir, fields, total, perf)
    with open(os.path.join(db_dir, "mlperf_log_summary.txt")) as f:
        db_summary = f.read()
    db_detail = {}
    with open(os.path.join(db_dir, "mlperf_log_detail.txt")) as f:
        for line in f:
            rec = json.loads(line[len(":::MLLOG "):])
            db_detail.setdefault(rec["key"], []).append(rec["value"])
    problems = []

    def same(what, a, b):
        if a != b:
            problems.append(f"A. {what}: LoadGen {a!r} vs detbench {b!r}")

    for key in ("loaded_qsl_set", "generated_query_count", "generated_query_duration"):
        same(key, lg["detail"].get(key), db_detail.get(key))
    lg_order = [e["qsl_idx"] for e in sorted(lg["accuracy"], key=lambda e: e["seq_id"])]
    db_order = ours_sample_order(db_dir)
    n = min(len(lg_order), len(db_order))
    same("sample order (common prefix)", lg_order[:n], db_order[:n])
    if fields["scenario"] == "Server":
        same("queries issued", len(lg_order), len(db_order))
    lg_lines = [l for l in lg["summary"].splitlines() if l.startswith(VALIDITY_LINES)]
    db_lines = [l for l in db_summary.splitlines() if l.startswith(VALIDITY_LINES)]
    same("validity lines", lg_lines, db_lines)

    stats_summary = loadgen_stats(record, os.path.join(workdir, name, "record.json"))
    problems += [f"B. {d}" for d in diff_summaries(lg["summary"], stats_summary)]

    lv, dv = summary_values(lg["summary"]), summary_values(db_summary)
    measured = {}
    for key in [k for k in lv if k.endswith("percentile latency (ns)")]:
        a, b = int(lv[key]), int(dv.get(key, -1))
        measured[key] = (a, b)
        if key.startswith("50.00") and abs(a - b) > max(tol_ns, tol_rel * a):
            problems.append(f"C. {key}: LoadGen {a} vs detbench {b}")
    measured["early stopping estimate (ns)"] = (early_stopping_estimate(lg["summary"]),
                                                early_stopping_estimate(db_summary))
    for key in ("Samples per second", "Completed samples per second", "QPS w/ loadgen overhead"):
        if key in lv:
            measured[key] = (float(lv[key]), float(dv.get(key, "nan")))
    return {
        "case": name,
        "settings": fields,
        "validity": (lv.get("Result is"), dv.get("Result is")),
        "queries": (len(lg_order), len(db_order)),
        "summary_lines_checked": len(lg["summary"].splitlines()),
        "measured": measured,
        "problems": problems,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(PERF_CASES))
    ap.add_argument("--tol-us", type=float, default=300.0,
                    help="allowed |LoadGen - detbench| for a measured latency, us (default 300)")
    ap.add_argument("--tol-rel", type=float, default=0.10,
                    help="or this fraction of LoadGen's value, whichever is larger (default 0.10)")
    ap.add_argument("--json", help="write the raw comparison here")
    ap.add_argument("--keep", help="keep both tools' logs under this folder")
    args = ap.parse_args()
    c.build_detbench()
    subprocess.run(["cargo", "build", "--release", "-p", "detbench-loadgen", "--example",
                    "loadgen_stats"], cwd=c.ROOT, check=True)
    workdir = args.keep or tempfile.mkdtemp(prefix="lg-exact-")
    rows = []
    for name in args.cases.split(","):
        print(f"[exactness] {name}", flush=True)
        rows.append(compare_case(name, workdir, args.tol_us * 1000, args.tol_rel))
    print()
    print("Each cell: LoadGen / detbench-loadgen. A, B: must be identical; C: p50 within tolerance.")
    print()
    print("| case | result | queries | p50 (ns) | p90 (ns) | p99 (ns) | early-stopping estimate (ns) | A, B, C |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["measured"]
        p50 = m.get("50.00 percentile latency (ns)", ("", ""))
        p90 = m.get("90.00 percentile latency (ns)", ("", ""))
        p99 = m.get("99.00 percentile latency (ns)", ("", ""))
        es = m.get("early stopping estimate (ns)", (None, None))
        es = "-" if es[0] is None and es[1] is None else f"{es[0]} / {es[1]}"
        verdict = "".join("ok " if not any(p.startswith(k) for p in r["problems"]) else "FAIL "
                          for k in ("A.", "B.", "C.")).strip()
        print(f"| {r['case']} | {r['validity'][0]} / {r['validity'][1]} | {r['queries'][0]} / {r['queries'][1]} "
              f"| {p50[0]} / {p50[1]} | {p90[0]} / {p90[1]} | {p99[0]} / {p99[1]} | {es} | {verdict} |")
    bad = [r for r in rows if r["problems"]]
    for r in bad:
        for p in r["problems"]:
            print(f"[exactness] {r['case']}: {p}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
