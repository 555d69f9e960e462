#!/usr/bin/env python3
"""Golden fixtures from the real LoadGen for detbench-loadgen's tests.

Runs mlcommons-loadgen==6.0.17 on a set of cases with a synthetic SUT that replays a fixed,
seeded latency sequence (lg_common.ReplaySUT), and records what LoadGen chose and measured:

  * `loaded_qsl_set`, `generated_query_count`, `generated_query_duration` (detail log), and
    per sample its `sample_idx`, `query_seq`, latency and issue delay (trace), so the Rust
    tests can check the seeded sample and schedule generation draw for draw;
  * the summary text and the detail log's result records, so the Rust tests can feed LoadGen's
    own latencies into detbench-loadgen's statistics and compare every number and line.

Writes crates/loadgen/tests/data/loadgen_goldens.json. Run it with the venv holding LoadGen:

    /work/venvs/loadgen/bin/python tools/loadgen/make_goldens.py [--out PATH]
"""
import argparse
import datetime
import json
import os
import platform
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lg_common as c  # noqa: E402

MLPERF_SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}

# name: (settings, total samples, performance samples, latency median ns, sigma, seed)
CASES = {
    "single_stream": ({"scenario": "SingleStream", "min_duration_ms": 1000, "min_query_count": 100,
                       "single_stream_expected_latency_ns": 2e6}, 50, 20, 2_000_000, 0.3, 1),
    "single_stream_p99": ({"scenario": "SingleStream", "min_duration_ms": 1000, "min_query_count": 100,
                           "single_stream_expected_latency_ns": 4e5, **MLPERF_SEEDS},
                          500, 64, 400_000, 0.5, 2),
    "single_stream_short": ({"scenario": "SingleStream", "min_duration_ms": 1000, "min_query_count": 100,
                             "max_query_count": 40, "single_stream_expected_latency_ns": 1e6},
                            50, 20, 1_000_000, 0.2, 3),
    "single_stream_equal_issue": ({"scenario": "SingleStream", "min_duration_ms": 200, "min_query_count": 100,
                                   "single_stream_expected_latency_ns": 1e6,
                                   "sample_concatenate_permutation": True},
                                  40, 40, 200_000, 0.2, 4),
    "single_stream_unique": ({"scenario": "SingleStream", "min_duration_ms": 200, "min_query_count": 10,
                              "performance_issue_unique": True}, 60, 60, 300_000, 0.2, 5),
    "multi_stream": ({"scenario": "MultiStream", "min_duration_ms": 500, "min_query_count": 700,
                      "multi_stream_expected_latency_ns": 1.5e6, **MLPERF_SEEDS},
                     300, 64, 1_200_000, 0.2, 6),
    "server_valid": ({"scenario": "Server", "min_duration_ms": 2000, "min_query_count": 100,
                      "server_target_qps": 300, "server_target_latency_ns": 20_000_000},
                     100, 100, 1_000_000, 0.5, 7),
    "server_invalid": ({"scenario": "Server", "min_duration_ms": 1500, "min_query_count": 100,
                        "server_target_qps": 400, "server_target_latency_ns": 8_000_000, **MLPERF_SEEDS},
                       100, 64, 2_000_000, 0.6, 8),
    "server_fast": ({"scenario": "Server", "min_duration_ms": 1000, "min_query_count": 100,
                     "server_target_qps": 1000, **MLPERF_SEEDS}, 1000, 64, 50_000, 0.2, 9),
    "offline_valid": ({"scenario": "Offline", "min_duration_ms": 300, "min_query_count": 100,
                       "offline_expected_qps": 1000}, 100, 50, 1_000_000, 0.2, 10),
    "offline_short": ({"scenario": "Offline", "min_duration_ms": 2000, "min_query_count": 100,
                       "offline_expected_qps": 100}, 100, 50, 1_000_000, 0.2, 11),
    "accuracy_single_stream": ({"scenario": "SingleStream", "mode": "AccuracyOnly", **MLPERF_SEEDS},
                               50, 20, 200_000, 0.2, 12),
    "accuracy_multi_stream": ({"scenario": "MultiStream", "mode": "AccuracyOnly"}, 45, 20, 200_000, 0.2, 13),
    "accuracy_offline": ({"scenario": "Offline", "mode": "AccuracyOnly"}, 45, 20, 200_000, 0.2, 14),
}

def run_case(name, case, workdir):
    fields, total, perf, median, sigma, seed = case
    latencies = c.lognormal_latencies(4096, median, sigma, seed)
    out = os.path.join(workdir, name)
    c.run_loadgen(fields, total, perf, out, latencies)
    return c.loadgen_record(out, fields, total, perf)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(c.ROOT, "crates", "loadgen", "tests", "data",
                                                  "loadgen_goldens.json"))
    ap.add_argument("--cases", default=",".join(CASES))
    args = ap.parse_args()
    lg = c.import_loadgen()
    goldens = {
        "made_by": "tools/loadgen/make_goldens.py",
        "loadgen": f"mlcommons-loadgen=={c.LOADGEN_VERSION} ({lg.__file__})",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
                   f"Python {platform.python_version()}",
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.cases.split(","):
            print(f"[goldens] {name}", flush=True)
            goldens["cases"][name] = run_case(name, CASES[name], workdir)
    with open(args.out, "w") as f:
        json.dump(goldens, f, separators=(",", ":"))
        f.write("\n")
    print(f"[goldens] wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
