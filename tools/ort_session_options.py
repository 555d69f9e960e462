#!/usr/bin/env python3
"""Does any ONNX Runtime session setting make a model call faster on this machine?

    .deps/venv/bin/python tools/ort_session_options.py [--model yolox_nano.onnx] [--calls 300] [--rounds 2]

Times `session.run` alone (median of --calls calls after 30 warm-up calls, a fixed random input
of the model's shape) for the settings detbench's `ort` backend could use: graph optimisation
level, intra-op spinning, thread count, thread affinity and the dynamic block base. Every setting
starts from the benchmark's baseline: 2 intra-op threads, 1 inter-op thread, ORT_ENABLE_ALL. The
rounds repeat all settings in the same order. Prints a Markdown table of medians (ms).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench_eval import shared_dir  # the same script folder; standard library only


SETTINGS = {
    "baseline (ORT_ENABLE_ALL, 2 threads, spinning)": lambda so: None,
    "ORT_ENABLE_EXTENDED": lambda so: setattr(so, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
    "ORT_ENABLE_BASIC": lambda so: setattr(so, "graph_optimization_level", ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
    "no intra-op spinning": lambda so: so.add_session_config_entry("session.intra_op.allow_spinning", "0"),
    "1 intra-op thread": lambda so: setattr(so, "intra_op_num_threads", 1),
    "worker thread pinned to CPU 2": lambda so: so.add_session_config_entry("session.intra_op_thread_affinities", "2"),
    "dynamic_block_base 4": lambda so: so.add_session_config_entry("session.dynamic_block_base", "4"),
    "denormals as zero": lambda so: so.add_session_config_entry("session.set_denormal_as_zero", "1"),
}


def median_call_ms(model, configure, calls):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    configure(so)
    session = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in spec.shape]
    x = np.random.RandomState(0).rand(*shape).astype(np.float32) * 255
    for _ in range(30):
        session.run(None, {spec.name: x})
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, {spec.name: x})
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="yolox_nano.onnx", help="file name in ../shared/models, or a path")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    model = Path(args.model)
    if not model.is_file():
        model = shared_dir() / "models" / args.model
    results = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, configure in SETTINGS.items():
            results[name].append(median_call_ms(model, configure, args.calls))
            print(f"{name}: {results[name][-1]:.2f} ms", file=sys.stderr, flush=True)
    print(f"{model.name}, onnxruntime {ort.__version__}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; median ms per call, per round\n")
    print("| setting | " + " | ".join(f"round {r + 1}" for r in range(args.rounds)) + " |")
    print("|---|" + "--:|" * args.rounds)
    for name, values in results.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
