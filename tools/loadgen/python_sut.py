#!/usr/bin/env python3
"""Check (2) of issue 13, the LoadGen side: the real LoadGen (mlcommons-loadgen==6.0.17)
driving a Python onnxruntime SUT with the reference pipeline of ../shared/tools/reference,
for comparison with `detbench run --scenario ...` on the same model, images and threads.

  * QSL: the 206 COCO val2017 subset images (sorted by image id, as
    ../shared/tools/reference/common.py::image_lists orders them); loading a sample decodes it
    (cv2.imread, BGR) into memory, outside the timed section, as LoadGen's QSL contract has it.
  * SUT: one worker thread, first in first out, one sample at a time (YOLOX-Nano's ONNX graph
    has a fixed batch of 1): the model's reference preprocess, session.run, postprocess and
    COCO result rows; then QuerySamplesComplete with the detections as float32 rows
    (image_id, x, y, w, h, score, category_id), which become mlperf_log_accuracy.json's data.
    onnxruntime: CPUExecutionProvider, intra_op_num_threads=--threads, inter_op 1, sequential,
    ORT_ENABLE_ALL (../shared/tools/reference/run_onnx.py::make_session).
  * Settings: LoadGen's defaults, then --user-conf (LoadGen's FromConfig: its built-in
    mlperf.conf, then the file), then the flags given here.
  * Accuracy mode: the accuracy log is decoded and scored with pycocotools (box AP).

Writes LoadGen's logs and python_sut_result.json (the summary's numbers, the settings, the
AP in accuracy mode) into --outdir. Needs numpy, opencv, onnxruntime and pycocotools beside
mlcommons-loadgen (e.g. /work/venvs/loadgen, or the peers' venv once setup.sh installs
LoadGen into it).

Examples:
  python_sut.py --scenario single-stream --min-duration-ms 60000 --outdir runs/lg-ss
  python_sut.py --scenario server --target-qps 20 --target-latency-ms 100 --outdir runs/lg-server
  python_sut.py --scenario server --mode find-peak --target-qps 5 --outdir runs/lg-peak
  python_sut.py --scenario offline --mode accuracy --outdir runs/lg-acc
"""
import argparse
import json
import os
import queue
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lg_common as c  # noqa: E402

SHARED = os.environ.get("DETBENCH_SHARED", os.path.join(os.path.dirname(c.ROOT), "shared"))
sys.path.insert(0, os.path.join(SHARED, "tools", "reference"))
os.environ.setdefault("DETBENCH_SHARED", SHARED)

SCENARIOS = {"single-stream": "SingleStream", "multi-stream": "MultiStream",
             "server": "Server", "offline": "Offline"}
MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly",
         "find-peak": "FindPeakPerformance", "submission": "SubmissionRun"}


class ImageQsl:
    """The 206 subset images; decoded BGR arrays held while loaded."""

    def __init__(self, load_bgr, images):
        self.load_bgr = load_bgr
        self.images = images  # [(image_id, path)]
        self.loaded = {}

    def load(self, indices):
        for i in indices:
            if i not in self.loaded:
                self.loaded[i] = self.load_bgr(self.images[i][1])

    def unload(self, indices):
        for i in indices:
            self.loaded.pop(i, None)


class OnnxSut:
    """One FIFO worker: preprocess, session.run, postprocess per sample."""

    def __init__(self, lg, model, sess, qsl):
        self.lg, self.model, self.sess, self.qsl = lg, model, sess, qsl
        self.queue = queue.Queue()
        self.worker = threading.Thread(target=self._run, daemon=True)
        self.worker.start()

    def issue(self, samples):
        for s in samples:
            self.queue.put((s.id, s.index))

    def stop(self):
        self.queue.put(None)
        self.worker.join()

    def _run(self):
        import numpy as np
        from common import to_coco_results
        while True:
            item = self.queue.get()
            if item is None:
                return
            rid, index = item
            iid = self.qsl.images[index][0]
            feeds, meta = self.model.preprocess(self.qsl.loaded[index])
            outs = self.sess.run(None, feeds)
            b, s, k = self.model.postprocess(outs, meta, **self.model.PRIMARY)
            rows = np.asarray([[r["image_id"], *r["bbox"], r["score"], r["category_id"]]
                               for r in to_coco_results(iid, b, s, k)], np.float32).reshape(-1, 7)
            self.lg.QuerySamplesComplete(
                [self.lg.QuerySampleResponse(rid, rows.ctypes.data, rows.nbytes)])


def build_settings(lg, args):
    s = lg.TestSettings()
    scenario = SCENARIOS[args.scenario]
    if args.user_conf:
        rc = s.FromConfig(args.user_conf, args.conf_model, scenario)
        if rc != 0:
            sys.exit(f"python_sut: LoadGen could not read {args.user_conf} (FromConfig returned {rc})")
    s.scenario = getattr(lg.TestScenario, scenario)
    s.mode = getattr(lg.TestMode, MODES[args.mode])
    flags = {
        "min_duration_ms": args.min_duration_ms,
        "min_query_count": args.min_query_count,
        "max_duration_ms": args.max_duration_ms,
        "server_target_qps": args.target_qps if scenario == "Server" else None,
        "offline_expected_qps": args.target_qps if scenario == "Offline" else None,
        "server_target_latency_ns": (None if args.target_latency_ms is None
                                     else int(args.target_latency_ms * 1e6)),
        "single_stream_expected_latency_ns": (None if args.expected_latency_ms is None or scenario != "SingleStream"
                                              else args.expected_latency_ms * 1e6),
        "multi_stream_expected_latency_ns": (None if args.expected_latency_ms is None or scenario != "MultiStream"
                                             else args.expected_latency_ms * 1e6),
        "multi_stream_samples_per_query": args.samples_per_query,
        "performance_sample_count_override": args.performance_sample_count,
        "server_find_peak_qps_decimals_of_precision": args.peak_decimals,
    }
    for key, value in flags.items():
        if value is not None:
            setattr(s, key, value)
    return s


def accuracy_ap(outdir):
    import numpy as np
    from common import coco_eval
    with open(os.path.join(outdir, "mlperf_log_accuracy.json")) as f:
        entries = json.load(f)
    seen, results = set(), []
    for e in entries:
        if e["qsl_idx"] in seen:  # MultiStream and Offline may issue a sample twice
            continue
        seen.add(e["qsl_idx"])
        rows = np.frombuffer(bytes.fromhex(e["data"]), np.float32).reshape(-1, 7)
        for r in rows:
            results.append({"image_id": int(r[0]), "bbox": [float(x) for x in r[1:5]],
                            "score": float(r[5]), "category_id": int(r[6])})
    stats, _ = coco_eval(results)
    return {"samples_scored": len(seen), "detections": len(results), "bbox_AP": stats[0],
            "bbox_AP50": stats[1], "stats": stats}


def parse_summary(text):
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("="):
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", required=True, choices=SCENARIOS)
    ap.add_argument("--mode", default="performance", choices=MODES)
    ap.add_argument("--model", default="yolox_nano_416", help="a model of models.py::get_model")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--user-conf", help="a LoadGen user.conf (applied over LoadGen's mlperf.conf)")
    ap.add_argument("--conf-model", default="yolo", help="the model name for --user-conf keys (default yolo)")
    ap.add_argument("--min-duration-ms", type=int)
    ap.add_argument("--max-duration-ms", type=int)
    ap.add_argument("--min-query-count", type=int)
    ap.add_argument("--target-qps", type=float, help="Server: target QPS; Offline: expected QPS")
    ap.add_argument("--target-latency-ms", type=float, help="Server latency bound")
    ap.add_argument("--expected-latency-ms", type=float, help="SingleStream/MultiStream schedule hint")
    ap.add_argument("--samples-per-query", type=int, help="MultiStream samples per query")
    ap.add_argument("--peak-decimals", type=int,
                    help="find-peak: decimal places of the found QPS (LoadGen's default 1)")
    ap.add_argument("--performance-sample-count", type=int,
                    help="images held in memory for performance runs (default: all 206)")
    args = ap.parse_args()

    import onnxruntime  # noqa: F401  (fail early, before LoadGen starts)
    from common import image_lists
    from models import get_model, load_bgr
    from run_onnx import make_session
    lg = c.import_loadgen()
    model = get_model(args.model)
    sess = make_session(model.onnx, threads=args.threads)
    images, _ = image_lists()
    os.makedirs(args.outdir, exist_ok=True)
    qsl_store = ImageQsl(load_bgr, images)
    sut_impl = OnnxSut(lg, model, sess, qsl_store)
    # Warm-up outside LoadGen: one full pipeline pass per image of the first ten.
    for _iid, path in images[:10]:
        feeds, meta = model.preprocess(load_bgr(path))
        model.postprocess(sess.run(None, feeds), meta, **model.PRIMARY)
    sut = lg.ConstructSUT(sut_impl.issue, lambda: None)
    perf_count = args.performance_sample_count or len(images)
    qsl = lg.ConstructQSL(len(images), perf_count, qsl_store.load, qsl_store.unload)
    settings = build_settings(lg, args)
    log = lg.LogSettings()
    log.log_output.outdir = args.outdir
    load_before = os.getloadavg()
    t0 = time.time()
    lg.StartTestWithLogSettings(sut, qsl, settings, log, "")
    wall = time.time() - t0
    sut_impl.stop()
    lg.DestroyQSL(qsl)
    lg.DestroySUT(sut)

    with open(os.path.join(args.outdir, "mlperf_log_summary.txt")) as f:
        summary = f.read()
    result = {
        "tool": f"mlcommons-loadgen=={c.LOADGEN_VERSION} + Python onnxruntime SUT",
        "model": args.model, "scenario": SCENARIOS[args.scenario], "mode": MODES[args.mode],
        "threads": args.threads, "wall_s": wall,
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "args": vars(args), "summary": parse_summary(summary),
    }
    if args.mode in ("accuracy", "submission"):
        result["accuracy"] = accuracy_ap(args.outdir)
    with open(os.path.join(args.outdir, "python_sut_result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(summary)
    if "accuracy" in result:
        print(f"bbox AP {result['accuracy']['bbox_AP']:.4f} over {result['accuracy']['samples_scored']} images")


if __name__ == "__main__":
    main()
