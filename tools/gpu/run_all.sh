#!/usr/bin/env bash
# The GPU latency table of docs/BENCHMARKS.md, on a CUDA machine with Python torch 2.11 +
# torchvision 0.26 (the `device` machine's python3). Run from the repository root:
#
#   tools/gpu/run_all.sh smoke|table|batch|repeat|variants|native
#
# It expects, made on the build machine (see tools/gpu/prepare_carry.sh):
#   .carry/bin/detbench   built with `--features cuda` (the torch backend and the native engine;
#                         CUDA is opened at run time)
#   .carry/shared/        README.md + coco/val2017 + coco/annotations (the shipped subset)
# and writes logs and results under $OUT (default ./gpu-out).
#
#   smoke  one model exported, 8 images, fp32 + fp16, detbench and eager
#   table  the 8 torchvision models, batch 1, fp32 and fp16, detbench and eager ($LIMIT images)
#   batch  Faster R-CNN R50 and Mask R-CNN at batch 2, 4, 8, fp32 and fp16 ($BATCH_LIMIT images)
#   repeat the batch-1 table in $ROUNDS rounds (rounds $FIRST_ROUND..$ROUNDS, so that rounds can
#          be split over calls), the side that goes first alternating per round
#   native the three architectures of detbench's own engine (crates/native) at $PRECISIONS
#          (default fp16 fp32), batch 1: `detbench run --backend native` beside `--backend torch`
#          and eager, in $ROUNDS rounds (order alternating); RetinaNet calibrated
#          (export_torchvision.py --calibrate, models in $MODELS_DIR/calibrated)
#   variants  $VARIANT_MODELS (default ssd300_vgg16) at $PRECISIONS (default fp16), batch 1, in
#          $ROUNDS rounds: eager and detbench under each TorchScript executor setting, each also
#          pinned to one CPU core ($PIN_CORE), with the GPU's clocks logged throughout
#
# Every mode honours $DEADLINE_S (see past_deadline): set it below the device call's limit so
# that a slow round cannot take the finished runs with it, e.g.
#   CUDNN_BENCHMARK=0 PRECISIONS=fp16 ROUNDS=3 LIMIT=60 DEADLINE_S=480 tools/gpu/run_all.sh repeat
#
# libtorch comes from the Python torch (LD_LIBRARY_PATH=<torch>/lib); torchvision's ops from
# its _C.so (DETBENCH_TORCHVISION_OPS). The models are exported here by export_torchvision.py
# (random weights, seed 0, unless $WEIGHTS_DIR holds the official checkpoints).
set -uo pipefail
mode="${1:-smoke}"
OUT="${OUT:-$PWD/gpu-out}"
LIMIT="${LIMIT:-100}"
BATCH_LIMIT="${BATCH_LIMIT:-64}"
WARMUP="${WARMUP:-10}"
# cuDNN benchmark mode for both sides (1 = on, detbench's default). Detection models see a new
# input shape for most images (sizes, box counts), and benchmark mode re-tunes for each one.
CUDNN_BENCHMARK="${CUDNN_BENCHMARK:-1}"
export DETBENCH_TORCH_CUDNN_BENCHMARK="$CUDNN_BENCHMARK"
MODELS_DIR="${MODELS_DIR:-/tmp/detbench-torchvision}"
mkdir -p "$OUT"
log="$OUT/log_${mode}.txt"
exec > >(tee -a "$log") 2>&1

say() { echo "[run_all $(date -u +%H:%M:%S)] $*"; }
root="$PWD"
bin="$root/.carry/bin/detbench"
shared="$root/.carry/shared"
py=python3
torch_dir="$($py -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
tv_dir="$($py -c 'import torchvision, os; print(os.path.dirname(torchvision.__file__))')"
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# .carry/lib: system libraries of the build machine that the binary links and the GPU image may
# lack (libfreetype and its dependencies, for the report's charts; see prepare_carry.sh). Last on
# the path, and for detbench only, so that the image's own copies win where they exist.
bin_env=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$root/.carry/lib")
export DETBENCH_TORCHVISION_OPS="$tv_dir/_C.so"
export DETBENCH_SHARED="$shared"
export PYTHONUNBUFFERED=1
instances="$shared/coco/annotations/instances_val2017_subset.json"
keypoints="$shared/coco/annotations/person_keypoints_val2017_subset.json"
images="$shared/coco/val2017"

{
  say "environment"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  nvidia-smi | head -5
  $py -c 'import torch, torchvision, platform; print("torch", torch.__version__, "torchvision", torchvision.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "python", platform.python_version(), torch.cuda.get_device_name(0))'
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  echo "DETBENCH_TORCHVISION_OPS=$DETBENCH_TORCHVISION_OPS"
  nproc; uname -r
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

export_models() {  # export_models a,b,...: TorchScript files into $MODELS_DIR (kept across calls)
  local missing=() model
  for model in ${1//,/ }; do [ -f "$MODELS_DIR/$model.pt" ] || missing+=("$model"); done
  if [ ${#missing[@]} -gt 0 ]; then
    local list; list="$(IFS=,; echo "${missing[*]}")"
    say "exporting $list"
    $py tools/gpu/export_torchvision.py --out "$MODELS_DIR" --models "$list" ${WEIGHTS_DIR:+--weights-dir "$WEIGHTS_DIR"} \
      ${CALIBRATE:+--calibrate} || return 1
  fi
  cp "$MODELS_DIR/export_manifest.json" "$OUT/export_manifest.json"
}

# $DEADLINE_S: seconds after which no further run starts (the device's calls end at 10 minutes,
# and a call cut off mid-run returns nothing of what it measured); the table and the archive are
# still made from the runs that finished.
started_at=$SECONDS
past_deadline() {
  if [ -n "${DEADLINE_S:-}" ] && [ $(( SECONDS - started_at )) -ge "$DEADLINE_S" ]; then
    say "deadline ($DEADLINE_S s) passed: skipping $1"
    return 0
  fi
  return 1
}

detbench_run() {  # detbench_run NAME MODELS PRECISION BATCHES LIMIT (env: BACKEND (torch), DETBENCH_TORCH_EXECUTOR, PIN)
  local name="$1" models="$2" precision="$3" batches="$4" limit="$5"
  past_deadline "detbench $name" && return 0
  say "detbench $name: ${BACKEND:-torch} $models $precision batch $batches, $limit images${PIN:+, pinned to CPU $PIN}"
  ${PIN:+taskset -c "$PIN"} "${bin_env[@]}" "$bin" run --model "$models" --backend "${BACKEND:-torch}" --device cuda --precision "$precision" \
    --batch "$batches" --limit "$limit" --warmup "$WARMUP" --model-dir "$MODELS_DIR" \
    --out "$OUT/work/detbench_$name" --no-store --quiet \
    || say "detbench $name exited with $?"
}

eager_run() {  # eager_run NAME MODELS PRECISION BATCH LIMIT ANNOTATIONS [--scripted] (env: PIN)
  local name="$1" models="$2" precision="$3" batch="$4" limit="$5" annotations="$6" extra="${7:-}"
  past_deadline "eager $name" && return 0
  say "eager $name: $models $precision batch $batch, $limit images $extra${PIN:+, pinned to CPU $PIN}"
  ${PIN:+taskset -c "$PIN"} $py tools/gpu/eager_bench.py --models-dir "$MODELS_DIR" --images "$images" --annotations "$annotations" \
    --models "$models" --precision "$precision" --batch "$batch" --limit "$limit" --warmup "$WARMUP" \
    --cudnn-benchmark "$CUDNN_BENCHMARK" $extra --out "$OUT/work/eager_$name.json" || say "eager $name exited with $?"
}

mkdir -p "$OUT/work"
# Host load and CPU steal time (vmstat's `st`) every second, to tell a slow stretch of calls
# caused by the shared host from one caused by the process.
if command -v vmstat >/dev/null; then
  vmstat -t 1 > "$OUT/vmstat.txt" 2>&1 &
  vmstat_pid=$!
fi
case "$mode" in
  smoke)
    m=fasterrcnn_mobilenet_v3_large_320_fpn
    "${bin_env[@]}" "$bin" --version || say "detbench does not start"
    export_models "$m,keypointrcnn_resnet50_fpn" || exit 1
    for precision in fp32 fp16; do
      detbench_run "smoke_$precision" "$m,keypointrcnn_resnet50_fpn" "$precision" 1 8
      eager_run "smoke_$precision" "$m" "$precision" 1 8 "$instances"
      eager_run "smoke_kp_$precision" keypointrcnn_resnet50_fpn "$precision" 1 8 "$keypoints"
    done
    ;;
  table)
    box="fasterrcnn_resnet50_fpn,fasterrcnn_mobilenet_v3_large_fpn,fasterrcnn_mobilenet_v3_large_320_fpn,retinanet_resnet50_fpn,ssd300_vgg16,ssdlite320_mobilenet_v3_large,maskrcnn_resnet50_fpn"
    export_models "$box,keypointrcnn_resnet50_fpn" || exit 1
    # Alternate which side goes first, so neither always runs on a colder or warmer GPU.
    for precision in fp32 fp16; do
      if [ "$precision" = fp32 ]; then
        detbench_run "table_$precision" "$box,keypointrcnn_resnet50_fpn" "$precision" 1 "$LIMIT"
        eager_run "table_$precision" "$box" "$precision" 1 "$LIMIT" "$instances"
        eager_run "table_kp_$precision" keypointrcnn_resnet50_fpn "$precision" 1 "$LIMIT" "$keypoints"
      else
        eager_run "table_$precision" "$box" "$precision" 1 "$LIMIT" "$instances"
        eager_run "table_kp_$precision" keypointrcnn_resnet50_fpn "$precision" 1 "$LIMIT" "$keypoints"
        detbench_run "table_$precision" "$box,keypointrcnn_resnet50_fpn" "$precision" 1 "$LIMIT"
      fi
      DETBENCH_TORCH_EXECUTOR=no-profiling detbench_run "noprof_table_$precision" "$box,keypointrcnn_resnet50_fpn" "$precision" 1 "$LIMIT"
    done
    ;;
  batch)
    models="${BATCH_MODELS:-fasterrcnn_resnet50_fpn,maskrcnn_resnet50_fpn}"
    export_models "$models" || exit 1
    for precision in ${PRECISIONS:-fp32 fp16}; do
      detbench_run "batch_$precision" "$models" "$precision" 2,4,8 "$BATCH_LIMIT"
      for b in ${EAGER_BATCHES:-2 4 8}; do
        eager_run "batch${b}_$precision" "$models" "$precision" "$b" "$BATCH_LIMIT" "$instances"
      done
    done
    ;;
  repeat)
    # Rounds of the batch-1 table ($ROUNDS, default 3), alternating which side goes first in
    # each round, so that one run's luck cannot decide a row. repeat_table.py reports, per row,
    # the median of the rounds' medians on each side and every round's ratio.
    # $REPEAT_MODELS: the box models to repeat (default: all seven); keypointrcnn_resnet50_fpn
    # joins unless REPEAT_KEYPOINTS=0.
    box="${REPEAT_MODELS:-fasterrcnn_resnet50_fpn,fasterrcnn_mobilenet_v3_large_fpn,fasterrcnn_mobilenet_v3_large_320_fpn,retinanet_resnet50_fpn,ssd300_vgg16,ssdlite320_mobilenet_v3_large,maskrcnn_resnet50_fpn}"
    all="$box"
    [ "${REPEAT_KEYPOINTS:-1}" = 1 ] && all="$box,keypointrcnn_resnet50_fpn"
    export_models "$all" || exit 1
    for round in $(seq "${FIRST_ROUND:-1}" "${ROUNDS:-3}"); do
      for precision in ${PRECISIONS:-fp32 fp16}; do
        if [ $(( round % 2 )) = 1 ]; then
          detbench_run "r${round}_$precision" "$all" "$precision" 1 "$LIMIT"
        fi
        eager_run "r${round}_$precision" "$box" "$precision" 1 "$LIMIT" "$instances"
        if [ "${REPEAT_KEYPOINTS:-1}" = 1 ]; then
          eager_run "r${round}_kp_$precision" keypointrcnn_resnet50_fpn "$precision" 1 "$LIMIT" "$keypoints"
        fi
        if [ $(( round % 2 )) = 0 ]; then
          detbench_run "r${round}_$precision" "$all" "$precision" 1 "$LIMIT"
        fi
      done
    done
    say "repeat table"
    $py tools/gpu/repeat_table.py "$OUT/work" | tee "$OUT/table_repeat.md"
    ;;
  native)
    # detbench's own engine beside the torch backend and eager, on the three architectures it
    # implements (crates/native/README.md); rows detbench_native_* are read by latency_table.py
    # --native (which keeps the last round of each row: use ROUNDS=1, or repeat_table.py's
    # pooling by hand). Per round the side that goes first alternates.
    models=fasterrcnn_resnet50_fpn,retinanet_resnet50_fpn,maskrcnn_resnet50_fpn
    MODELS_DIR="$MODELS_DIR/calibrated"
    CALIBRATE=1 export_models "$models" || exit 1
    for round in $(seq "${FIRST_ROUND:-1}" "${ROUNDS:-1}"); do
      for precision in ${PRECISIONS:-fp16 fp32}; do
        if [ $(( round % 2 )) = 1 ]; then
          BACKEND=native detbench_run "native_r${round}_$precision" "$models" "$precision" 1 "$LIMIT"
          detbench_run "r${round}_$precision" "$models" "$precision" 1 "$LIMIT"
          eager_run "r${round}_$precision" "$models" "$precision" 1 "$LIMIT" "$instances"
        else
          eager_run "r${round}_$precision" "$models" "$precision" 1 "$LIMIT" "$instances"
          detbench_run "r${round}_$precision" "$models" "$precision" 1 "$LIMIT"
          BACKEND=native detbench_run "native_r${round}_$precision" "$models" "$precision" 1 "$LIMIT"
        fi
      done
    done
    ;;
  variants)
    # Which setting makes a host-bound row (SSD300 fp16) steady? Per round: eager and detbench
    # with each TorchScript executor setting (crates/backends/src/torch/mod.rs, EXECUTOR_ENV),
    # under torch.no_grad() or torch.inference_mode() (GRAD_MODE_ENV), and pinned to one core
    # with taskset (host-thread migration). The order of the runs reverses every other round. The GPU's SM clock, power and utilisation are logged every
    # 200 ms to gpu_clocks.csv, to see whether the slow calls follow the GPU's clock.
    models="${VARIANT_MODELS:-ssd300_vgg16}"
    pin="${PIN_CORE:-2}"
    export_models "$models" || exit 1
    nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu,pstate \
      --format=csv -lms 200 > "$OUT/gpu_clocks.csv" 2>&1 &
    smi_pid=$!
    # A run's name says how it runs: [pinned-]SIDE[+inference], SIDE = eager or a detbench
    # executor setting; +inference = torch.inference_mode() instead of torch.no_grad().
    runs=(${VARIANT_RUNS:-eager eager+inference profiling no-profiling no-optimize profiling+inference no-optimize+inference pinned-eager pinned-profiling})
    for round in $(seq "${FIRST_ROUND:-1}" "${ROUNDS:-3}"); do
      order=("${runs[@]}")
      if [ $(( round % 2 )) = 0 ]; then
        order=(); for (( i=${#runs[@]}-1; i>=0; i-- )); do order+=("${runs[$i]}"); done
      fi
      for precision in ${PRECISIONS:-fp16}; do
        for run in "${order[@]}"; do
          unset PIN
          side="${run#pinned-}"
          [ "$side" != "$run" ] && export PIN="$pin"
          grad=no-grad
          [ "${side%+inference}" != "$side" ] && grad=inference
          side="${side%+inference}"
          if [ "$side" = eager ]; then
            eager_run "${run}_r${round}_$precision" "$models" "$precision" 1 "$LIMIT" "$instances" "--grad-mode $grad"
          else
            DETBENCH_TORCH_EXECUTOR="$side" DETBENCH_TORCH_GRAD_MODE="$grad" \
              detbench_run "${run}_r${round}_$precision" "$models" "$precision" 1 "$LIMIT"
          fi
        done
      done
    done
    unset PIN
    kill "$smi_pid" 2>/dev/null
    say "variants table"
    $py tools/gpu/variants_table.py "$OUT/work" "$OUT/gpu_clocks.csv" | tee "$OUT/table_variants.md"
    ;;
  *) echo "usage: $0 smoke|table|batch|repeat|variants|native" >&2; exit 2 ;;
esac

if [ "$mode" != repeat ] && [ "$mode" != variants ]; then
say "table"
detbench_files=$(ls "$OUT"/work/detbench_[!n]*/results.json 2>/dev/null)
noprof_files=$(ls "$OUT"/work/detbench_noprof_*/results.json 2>/dev/null)
native_files=$(ls "$OUT"/work/detbench_native_*/results.json 2>/dev/null)
eager_files=$(ls "$OUT"/work/eager_*.json 2>/dev/null)
if [ -n "$detbench_files" ] && [ -n "$eager_files" ]; then
  $py tools/gpu/latency_table.py --detbench $detbench_files --eager $eager_files \
    ${noprof_files:+--detbench-no-profiling $noprof_files} ${native_files:+--native $native_files} | tee "$OUT/table_${mode}.md"
fi
fi
[ -n "${vmstat_pid:-}" ] && kill "$vmstat_pid" 2>/dev/null
# At most 8 files come back: pack the per-run folders into one archive.
tar -C "$OUT" -czf "$OUT/work_${mode}.tgz" work && rm -rf "$OUT/work"
ls -la "$OUT"
