#!/usr/bin/env bash
# GPU runs of detbench's native engine (issue 15), on a CUDA machine with Python torch 2.11 +
# torchvision 0.26 and no Rust. What it needs comes in the carry made on the build machine by
# tools/native/prepare_carry.sh: $CARRY (default .carry/native) holds the bench binary and these
# scripts; the images are the shipped COCO subset in $SHARED (default $CARRY/../shared, i.e. the
# .carry/shared of tools/gpu/prepare_carry.sh; else $CARRY/shared, a standalone carry's).
#
#   CARRY=.carry/native OUT=... DEADLINE_S=390 MODE=check|final|bench|diagnose|exact16 bash $CARRY/tools/gpu_run.sh
#
# MODE=check (first call): environment, model export (random weights, RetinaNet calibrated),
#   per-stage parity, correctness of fp32/fp16 against eager, one timing round of every peer,
#   backbone profile.
# MODE=final: correctness (fast and exact settings, TF32 on and off), stage parity, backbone
#   profile, then what MODE=bench runs.
# MODE=bench: the speed tables, interleaved: steady-state batch 8 of Faster R-CNN and RetinaNet
#   (one untimed pass over every batch first, on every side), batch-1 round 1 of all three
#   architectures (native fp16/fp32, the torch backend, eager fp32/AMP/channels_last+AMP), rounds
#   2..$ROUNDS of Faster R-CNN and RetinaNet with the order reversed every other round, then (as
#   time allows) exact-mode fp16 stage dumps of Faster R-CNN against eager on one image (the fp16
#   parity gap's diagnosis) and Mask R-CNN at batch 8; table.py pools the rounds.
# MODE=exact16: the exact-fp16 stage diagnosis, then exact and fast fp16 against eager fp16 on
#   every model (correctness only).
# MODE=diagnose: what no bench call reached: the exact-fp16 stage dumps of Faster R-CNN against
#   eager, `detbench run --backend native` with batches 1,$OOM_BATCH,2 while another process holds
#   all but $OOM_FREE_GIB GiB of the GPU (the large batch must fail its row, the run go on), then
#   Mask R-CNN at batch 8 (needs $CARRY/../bin/detbench, tools/gpu/prepare_carry.sh's, for the
#   out-of-memory rows).
# $DEADLINE_S (seconds from the start) is passed down to every run: no run starts after it, so
# that the finished runs come back; everything is written under $OUT.
set -uo pipefail
CARRY="${CARRY:-.carry/native}"
OUT="${OUT:-$PWD/native-out}"
MODE="${MODE:-check}"
LIMIT="${LIMIT:-60}"
BATCH8_LIMIT="${BATCH8_LIMIT:-96}"
ROUNDS="${ROUNDS:-3}"
MODELS="${MODELS:-fasterrcnn_resnet50_fpn,retinanet_resnet50_fpn,maskrcnn_resnet50_fpn}"
MODELS_DIR="${MODELS_DIR:-/tmp/native-models}"
SHARED="${SHARED:-$CARRY/../shared}"
[ -d "$SHARED/coco/val2017" ] || SHARED="$CARRY/shared"
mkdir -p "$OUT/work"
exec > >(tee -a "$OUT/log_$MODE.txt") 2>&1
started=$SECONDS
say() { echo "[gpu_run $(date -u +%H:%M:%S) +$((SECONDS - started))s] $*"; }
late() { [ -n "${DEADLINE_S:-}" ] && [ $((SECONDS - started)) -ge "$DEADLINE_S" ] && { say "deadline: skipping $1"; return 0; }; return 1; }
# The seconds left before the deadline, as a --deadline-s for a run's tool (none without one).
left() { [ -n "${DEADLINE_S:-}" ] && echo "--deadline-s $((DEADLINE_S - (SECONDS - started)))"; }

py=python3
torch_dir="$($py -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
tv_dir="$($py -c 'import torchvision, os; print(os.path.dirname(torchvision.__file__))')"
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export DETBENCH_TORCHVISION_OPS="$tv_dir/_C.so" PYTHONUNBUFFERED=1
bin="$CARRY/bin/detbench-native-bench"
images="$SHARED/coco/val2017"
ann="$SHARED/coco/annotations/instances_val2017_subset.json"
common=(--models-dir "$MODELS_DIR" --images "$images" --annotations "$ann")

{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $py -c 'import torch, torchvision, platform; print("torch", torch.__version__, "torchvision", torchvision.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "python", platform.python_version(), torch.cuda.get_device_name(0))'
  nproc; uname -r
  ldd "$bin" | grep -i "not found" || echo "ldd: all libraries found"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

say "export $MODELS"
mkdir -p "$MODELS_DIR"
$py "$CARRY/tools/export_torchvision.py" --out "$MODELS_DIR" --models "$MODELS" --calibrate || exit 1
cp "$MODELS_DIR/export_manifest.json" "$OUT/"

native() {  # native NAME BATCH LIMIT RUNS [extra args]   (models: $RUN_MODELS, default $MODELS)
  local name="$1" batch="$2" limit="$3" runs="$4"; shift 4
  late "native $name" && return 0
  say "native $name: $runs b$batch"
  "$bin" "${common[@]}" --models "${RUN_MODELS:-$MODELS}" --runs "$runs" --batch "$batch" --limit "$limit" \
    --out "$OUT/work/native_$name.json" --detections-dir "$OUT/work/dets" ${PREWARM:+--prewarm-all} $(left) "$@" \
    || say "native $name exited $?"
}
eager() {  # eager NAME BATCH LIMIT VARIANTS
  local name="$1" batch="$2" limit="$3" variants="$4"
  late "eager $name" && return 0
  say "eager $name: $variants b$batch"
  $py "$CARRY/tools/eager_peers.py" "${common[@]}" --models "${RUN_MODELS:-$MODELS}" --variants "$variants" --batch "$batch" \
    --limit "$limit" --out "$OUT/work/eager_$name.json" --detections-dir "$OUT/work/dets" ${PREWARM:+--prewarm-all} $(left) \
    || say "eager $name exited $?"
}
correctness() {  # correctness BATCH: fp32 and fp16 detections against eager's
  late "correctness" && return 0
  for m in ${MODELS//,/ }; do
    $py "$CARRY/tools/compare.py" "$OUT/work/dets/${m}_eager-fp32_b$1.json" "$OUT/work/dets/${m}_native-fp32_b$1.json" \
      --iou 0.99 --score 1e-3 --json "$OUT/work/compare_${m}_fp32_b$1.json" || true
    $py "$CARRY/tools/compare.py" "$OUT/work/dets/${m}_eager-fp16_b$1.json" "$OUT/work/dets/${m}_native-fp16_b$1.json" \
      --iou 0.95 --score 1e-2 --json "$OUT/work/compare_${m}_fp16_b$1.json" || true
  done
}
pair() {  # pair LABEL EAGER_RUN NATIVE_RUN IOU SCORE: compare one pair of detection files per model
  late "compare $1" && return 0
  for m in ${MODELS//,/ }; do
    $py "$CARRY/tools/compare.py" "$OUT/work/dets/${m}_$2_b1.json" "$OUT/work/dets/${m}_$3_b1.json" \
      --iou "$4" --score "$5" --json "$OUT/work/compare_${m}_$1.json" || true
  done
}
mkdir -p "$OUT/work/dets"

round_b1() {  # round_b1 ROUND MODELS: one batch-1 round, the order reversed every other round
  local round="$1"
  export RUN_MODELS="$2"
  # The torch backend's runs are slow to warm up (profiling executor): one precision a round.
  local torch=torch-fp32
  [ $((round % 2)) = 0 ] && torch=torch-fp16
  if [ $((round % 2)) = 1 ]; then
    native "r${round}_b1" 1 "$LIMIT" "native-fp16,native-fp32,$torch"
    eager "r${round}_b1" 1 "$LIMIT" fp32,amp,cl_amp
  else
    eager "r${round}_b1" 1 "$LIMIT" cl_amp,amp,fp32
    native "r${round}_b1" 1 "$LIMIT" "$torch,native-fp16,native-fp32"
  fi
  unset RUN_MODELS
}

round_b8() {  # round_b8 NAME MODELS: steady-state batch 8 (one untimed pass over every batch first)
  export RUN_MODELS="$2" PREWARM=1
  native "$1_b8" 8 "$BATCH8_LIMIT" native-fp16,torch-fp16
  eager "$1_b8" 8 "$BATCH8_LIMIT" amp,cl_amp,fp32
  unset RUN_MODELS PREWARM
}

diagnose_fp16() {  # exact-mode fp16 stages of Faster R-CNN on its worst image of phase 1, against eager
  local id=151938
  late "fp16 diagnosis" && return 0
  RUN_MODELS=fasterrcnn_resnet50_fpn native diag 1 206 "" --stages "$OUT/work/stages_exact" \
    --stages-mode exact --stages-precisions fp16 --stages-image "$id"
  late "stage parity (exact fp16)" || $py "$CARRY/tools/stage_parity.py" --models-dir "$MODELS_DIR" \
    --image "$images/$(printf '%012d' "$id").jpg" --stages "$OUT/work/stages_exact" \
    --models fasterrcnn_resnet50_fpn --out "$OUT/work/stage_parity_exact_fp16.json"
  rm -rf "$OUT/work/stages_exact"
}

oom_rows() {  # `detbench run --backend native` with another process holding all but $OOM_FREE_GIB of
  # the GPU's memory, batches 1,$OOM_BATCH,2: the large batch must fail its row (out of memory,
  # named) and the run go on to batch 2 (README, "Native engine (CUDA)"; issue 15).
  local det="${DETBENCH:-$CARRY/../bin/detbench}" free_gib="${OOM_FREE_GIB:-6}" large="${OOM_BATCH:-64}"
  late "out-of-memory rows" && return 0
  [ -x "$det" ] || { say "no $det: skipping the out-of-memory rows"; return 0; }
  rm -f "$OUT/work/hog_ready"
  $py - "$free_gib" "$OUT/work/hog_ready" <<'PY' &
import sys, time, torch
free, total = torch.cuda.mem_get_info()
held = torch.empty(free - (int(sys.argv[1]) << 30), dtype=torch.uint8, device="cuda")
with open(sys.argv[2], "w") as f:
    print(f"free before {free >> 20} MiB of {total >> 20} MiB; held {held.numel() >> 20} MiB", file=f)
time.sleep(300)
PY
  local hog=$! waited=0
  while [ ! -f "$OUT/work/hog_ready" ] && [ $waited -lt 60 ] && kill -0 $hog 2>/dev/null; do sleep 1; waited=$((waited + 1)); done
  say "memory hog: $(cat "$OUT/work/hog_ready" 2>/dev/null || echo 'not ready')"
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv | tee "$OUT/work/oom_memory.txt"
  say "detbench run --backend native fp16, batches 1,$large,2, with $free_gib GiB free"
  env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$CARRY/../lib" DETBENCH_SHARED="$SHARED" timeout 240 "$det" run \
    --backend native --device cuda --precision fp16 --model fasterrcnn_resnet50_fpn --model-dir "$MODELS_DIR" \
    --batch "1,$large,2" --limit "$large" --warmup 2 --out "$OUT/work/oom" --no-store \
    > "$OUT/work/oom_stdout.txt" 2> "$OUT/work/oom_stderr.txt"
  say "detbench exited $? (stderr tail:)"; tail -n 15 "$OUT/work/oom_stderr.txt"
  kill $hog 2>/dev/null; wait $hog 2>/dev/null
  $py - "$OUT/work/oom/results.json" <<'PY' || true
import json, sys
for row in json.load(open(sys.argv[1]))["models"]:  # a failed row's status holds the reason
    print("[oom row]", row["name"], "batch", row["batch_size"], row["status"][:300],
          (row.get("bbox") or {}).get("stats", [None])[0])
PY
}

bench_rounds() {  # the speed tables, what is still unmeasured first (the deadline cuts the tail)
  local two=fasterrcnn_resnet50_fpn,retinanet_resnet50_fpn
  round_b8 r1 "$two"
  round_b1 1 "$MODELS"
  for round in $(seq 2 "$ROUNDS"); do round_b1 "$round" "$two"; done
  diagnose_fp16
  round_b8 mask maskrcnn_resnet50_fpn
}

case "$MODE" in
  check)
    native check 1 "$LIMIT" native-fp16,native-fp32 --stages "$OUT/work/stages" --profile-backbone 1x800x1088,8x800x1344
    eager check 1 "$LIMIT" fp32,fp16,amp,cl_amp
    correctness 1
    late "stage parity" || $py "$CARRY/tools/stage_parity.py" --models-dir "$MODELS_DIR" \
      --image "$images/$(ls "$images" | sort | head -1)" --stages "$OUT/work/stages" --models "$MODELS" \
      --out "$OUT/work/stage_parity.json"
    rm -rf "$OUT/work/stages"
    native torch_peer 1 "$LIMIT" torch-fp32,torch-fp16
    native b8 8 "$BATCH8_LIMIT" native-fp16
    eager b8 8 "$BATCH8_LIMIT" amp
    ;;
  final)
    # 1. Correctness: every model, fast and exact settings, TF32 on (PyTorch's default) and off.
    native corr 1 "$LIMIT" native-fp32,native-fp16,native+notf32-fp32,native+exact+notf32-fp32,native+exact-fp16 \
      --stages "$OUT/work/stages" --profile-backbone 1x800x1088,8x800x1344
    eager corr 1 "$LIMIT" fp32,fp32_notf32,fp16
    pair fp32 eager-fp32 native-fp32 0.99 1e-3
    pair fp32_notf32 eager-fp32_notf32 native+notf32-fp32 0.99 1e-3
    pair exact_fp32_notf32 eager-fp32_notf32 native+exact+notf32-fp32 0.99 1e-3
    pair fp16 eager-fp16 native-fp16 0.95 1e-2
    pair exact_fp16 eager-fp16 native+exact-fp16 0.95 1e-2
    late "stage parity" || $py "$CARRY/tools/stage_parity.py" --models-dir "$MODELS_DIR" \
      --image "$images/$(ls "$images" | sort | head -1)" --stages "$OUT/work/stages" --models "$MODELS" \
      --out "$OUT/work/stage_parity.json"
    rm -rf "$OUT/work/stages"
    bench_rounds
    ;;
  bench)
    bench_rounds
    ;;
  exact16)
    # After the fp16 level-mapping fix (2026-12-04): the stage diagnosis again, then exact and
    # fast fp16 against eager fp16 on every model.
    diagnose_fp16
    native corr 1 "$LIMIT" native+exact-fp16,native-fp16
    eager corr 1 "$LIMIT" fp16
    pair exact_fp16 eager-fp16 native+exact-fp16 0.95 1e-2
    pair fp16 eager-fp16 native-fp16 0.95 1e-2
    ;;
  diagnose)
    # What no earlier call reached: the exact-fp16 stage diagnosis of Faster R-CNN, the
    # out-of-memory rows, then Mask R-CNN at batch 8.
    diagnose_fp16
    oom_rows
    round_b8 mask maskrcnn_resnet50_fpn
    ;;
esac
say "table"
$py "$CARRY/tools/table.py" "$OUT/work" | tee "$OUT/table_$MODE.md"
rm -rf "$OUT/work/dets"
tar -C "$OUT" -czf "$OUT/work_$MODE.tgz" work && rm -rf "$OUT/work"
ls -la "$OUT"
