#!/usr/bin/env bash
# The set of `detbench run`s whose outputs tools/compare_run_outputs.py compares between two
# builds: box models at batch 1 and 1,2 (skipped rows), a speed-only folder, every present model
# (keypoints, reference agreement, a failed row where libtorch is not built in, saved
# detections), each decode mode with both scoring modes, thread and graph settings, and a failed
# fp16 row. With a libtorch build (second argument `torch`), D2Go (int8 recorded) and a failed
# CPU fp16 libtorch row too.
#
#   tools/same_runs.sh path/to/detbench OUT_DIR [torch]
#
# OUT_DIR gets run1..run10 and store.db; the command lines recorded use the relative paths, so
# two OUT_DIRs compare cell by cell.
set -uo pipefail
bin="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
out="$2"
mkdir -p "$out/imgs"
cd "$out"
cp "$bin" ./detbench
images="${DETBENCH_SHARED:-../shared}/coco/val2017"
ls "$images" | sort | head -12 | while read -r f; do cp "$images/$f" imgs/; done
run() { ./detbench run "$@" --db store.db -q >/dev/null 2>&1 || echo "(exit $? for: $*)"; }
run --model yolox_nano,fastestdet --limit 20 --out run1
run --model yolox_nano,fastestdet --limit 20 --batch 1,2 --out run2
run --model yolox_nano,fastestdet --images imgs --out run3
run --model all --limit 20 --out run4 --save-detections run4/dets.json
run --model nanodet_m_320 --limit 20 --decode prefetch --eval overlap --out run5
run --model fastestdet --limit 10 --decode inline --threads 1 --graph-opt basic --out run6
run --model fastestdet --limit 10 --decode preload --precision fp16 --out run7
run --model yolox_nano --limit 10 --decode-chunk 4 --decode-threads 1 --out run8
if [ "${3:-}" = "torch" ]; then
  run --model d2go_fasterrcnn_fbnetv3a_int8,yolox_nano --limit 8 --threads 2 --out run9
  run --model d2go_fasterrcnn_fbnetv3a_int8 --limit 4 --backend torch --precision fp16 --out run10
fi
rm -f detbench
