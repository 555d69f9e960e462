#!/usr/bin/env bash
# The training benchmark of issue 14 on a CUDA machine with Python torch 2.11 + torchvision 0.26
# (the `device` machine's python3), `detbench train` (Rust, libtorch) against torchvision's training
# step in Python (tools/train/python_train_bench.py), interleaved in one run. From the repo root:
#
#   tools/gpu/train_bench.sh table|curves|all
#
#   table   Mask R-CNN R50-FPN batch 2, 4, 8 x fp32, tf32, amp and Faster R-CNN R50-FPN batch 2, 8
#           x amp; per row `detbench train` and PyTorch eager, the side that goes first alternating;
#           $WARMUP steps skipped, $TIMED timed (defaults 10 and 50)
#   curves  $CURVE_STEPS (200) steps of Mask R-CNN batch 2 amp on both sides (loss curves), then
#           the long run: $LONG_EPOCHS (20) epochs of Mask R-CNN batch 8 amp on the 206-image subset
#           by `detbench train`, saved with --save
#           (weights kept in $TRAINED_DIR on this machine), then the inference table (infer)
#   infer   `detbench run` on the trained weights at fp32 and fp16, batch 1: latency, bbox/segm AP
#           and detections per image ("trained N steps on the 206-image subset")
#   all     table then curves (longer than one 10-minute device call: prefer two calls)
#
# It expects, made on the build machine by tools/gpu/prepare_train_carry.sh:
#   .carry/bin/detbench        built with --features torch (CUDA opened at run time): `detbench
#                              train`, and `detbench run` for the trained model's evaluation
#   .carry/shared/             the COCO subset (README.md, coco/val2017, coco/annotations)
# and writes raw per-step results under $OUT (default ./gpu-out): work_train_<mode>.tgz with one
# results folder per Rust run (results.json with its `training` section, results.md,
# training.csv, training_steps.csv, loss_curves.png) and one JSON per Python run, logs,
# environment.txt, table_train.md (tools/train/train_table.py), and train.db, the results store
# holding every Rust run (`detbench report --db gpu-out/train.db` renders the training tables).
#
# Every mode honours $DEADLINE_S: no run starts once that many seconds have passed, and the table
# and archive are still made from the runs that finished, e.g.
#   DEADLINE_S=450 tools/gpu/train_bench.sh table
set -uo pipefail
mode="${1:-table}"
OUT="${OUT:-$PWD/gpu-out}"
WARMUP="${WARMUP:-10}"
TIMED="${TIMED:-50}"
CURVE_STEPS="${CURVE_STEPS:-200}"
LONG_EPOCHS="${LONG_EPOCHS:-20}"
SEED="${SEED:-0}"
MODELS_DIR="${MODELS_DIR:-/tmp/detbench-train-models}"
TRAINED_DIR="${TRAINED_DIR:-/tmp/detbench-train-trained}"
mkdir -p "$OUT/work" "$MODELS_DIR"
exec > >(tee -a "$OUT/log_train_${mode}.txt") 2>&1

say() { echo "[train_bench $(date -u +%H:%M:%S)] $*"; }
root="$PWD"
detbench="$root/.carry/bin/detbench"
shared="$root/.carry/shared"
py=python3
# The PyTorch side builds its data set with pycocotools, which the GPU image lacks: install the
# wheel prepare_train_carry.sh put in .carry/whl (nothing can be downloaded there).
if ! $py -c 'import pycocotools' 2>/dev/null; then
  if ls "$root"/.carry/whl/pycocotools-*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/detbench-site "$root"/.carry/whl/pycocotools-*.whl \
      && export PYTHONPATH="/tmp/detbench-site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  $py -c 'import pycocotools' 2>/dev/null || { say "no pycocotools for the PyTorch side (carry .carry/whl)"; exit 1; }
fi
torch_dir="$($py -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
tv_dir="$($py -c 'import torchvision, os; print(os.path.dirname(torchvision.__file__))')"
export LD_LIBRARY_PATH="$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bin_env=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$root/.carry/lib")
export DETBENCH_TORCHVISION_OPS="$tv_dir/_C.so"
export DETBENCH_SHARED="$shared"
export PYTHONUNBUFFERED=1
instances="$shared/coco/annotations/instances_val2017_subset.json"
images="$shared/coco/val2017"

{
  say "environment"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $py -c 'import torch, torchvision, platform; print("torch", torch.__version__, "torchvision", torchvision.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version(), "python", platform.python_version(), torch.cuda.get_device_name(0))'
  "${bin_env[@]}" "$detbench" --version
  nproc; uname -r
} > "$OUT/environment_train.txt" 2>&1
cat "$OUT/environment_train.txt"

started_at=$SECONDS
past_deadline() {
  if [ -n "${DEADLINE_S:-}" ] && [ $(( SECONDS - started_at )) -ge "$DEADLINE_S" ]; then
    say "deadline ($DEADLINE_S s) passed: skipping $1"
    return 0
  fi
  return 1
}

export_models() {  # random weights, seed $SEED, torchvision's default sizes (800/1333)
  local missing=() m
  for m in ${1//,/ }; do [ -f "$MODELS_DIR/$m.pt" ] || missing+=("$m"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "exporting ${missing[*]}"
    $py tools/train/export_train_models.py --out "$MODELS_DIR" --seed "$SEED" \
      --models "$(IFS=,; echo "${missing[*]}")" || return 1
  fi
  cp "$MODELS_DIR/export_train_manifest.json" "$OUT/" 2>/dev/null || true
}

rust_run() {  # rust_run NAME MODEL PRECISION BATCH WARMUP TIMED [extra...]
  local name="$1" model="$2" precision="$3" batch="$4" warmup="$5" timed="$6"; shift 6
  past_deadline "detbench train $name" && return 0
  say "detbench train $name: $model $precision batch $batch ($warmup + $timed steps)"
  "${bin_env[@]}" "$detbench" train --model "$model" --model-file "$MODELS_DIR/$model.pt" --device cuda \
    --precision "$precision" --batch "$batch" --warmup-steps "$warmup" --steps "$timed" --seed "$SEED" \
    --annotations "$instances" --images "$images" --quiet --db "$OUT/train.db" --out "$OUT/work/rust_$name" "$@" \
    || say "detbench train $name exited with $?"
}

python_run() {  # python_run NAME MODEL PRECISION BATCH WARMUP TIMED
  local name="$1" model="$2" precision="$3" batch="$4" warmup="$5" timed="$6"
  past_deadline "pytorch $name" && return 0
  say "pytorch $name: $model $precision batch $batch ($warmup + $timed steps)"
  $py tools/train/python_train_bench.py --model "$model" --model-file "$MODELS_DIR/$model.pt" --device cuda \
    --precision "$precision" --batch "$batch" --warmup-steps "$warmup" --steps "$timed" --seed "$SEED" \
    --annotations "$instances" --images "$images" --out "$OUT/work/python_$name.json" \
    || say "pytorch $name exited with $?"
}

pair() {  # pair NAME MODEL PRECISION BATCH WARMUP TIMED ORDER(0: rust first, 1: python first)
  if [ "$7" = 0 ]; then rust_run "${@:1:6}"; python_run "${@:1:6}"
  else python_run "${@:1:6}"; rust_run "${@:1:6}"; fi
}

# The table's rows as model:precision:batch, in the order they run ($ROWS overrides it, e.g. to put
# the rows that matter most first when $DEADLINE_S may cut the run short).
DEFAULT_ROWS="$(for p in fp32 tf32 amp; do for b in 2 4 8; do printf 'maskrcnn:%s:%s ' "$p" "$b"; done; done) fasterrcnn:amp:2 fasterrcnn:amp:8"
ROWS="${ROWS:-$DEFAULT_ROWS}"

mode_table() {
  export_models maskrcnn_resnet50_fpn,fasterrcnn_resnet50_fpn || exit 1
  local order=0 row short precision batch
  for row in $ROWS; do
    IFS=: read -r short precision batch <<< "$row"
    pair "${short}_${precision}_b${batch}" "${short}_resnet50_fpn" "$precision" "$batch" "$WARMUP" "$TIMED" $order
    order=$(( 1 - order ))
  done
}

mode_curves() {
  export_models maskrcnn_resnet50_fpn || exit 1
  pair "curve_maskrcnn_amp_b2" maskrcnn_resnet50_fpn amp 2 0 "$CURVE_STEPS" 0
  # ~20 epochs at batch 8: 204 images -> 25 batches per epoch; lr drops at epochs 16 and 22.
  # The trained module (~170 MB) stays on this machine under $TRAINED_DIR (too large to come
  # back through $OUT), where a later call's inference runs find it while the machine is warm.
  mkdir -p "$TRAINED_DIR"
  rust_run "long_maskrcnn_amp_b8" maskrcnn_resnet50_fpn amp 8 0 0 --epochs "$LONG_EPOCHS" \
    --save "$TRAINED_DIR/maskrcnn_resnet50_fpn.pt"
  mode_infer
}

mode_infer() {  # the inference table on trained weights: fp32 and fp16, batch 1, AP + detections/image
  if [ ! -f "$TRAINED_DIR/maskrcnn_resnet50_fpn.pt" ] || [ ! -x "$detbench" ]; then
    say "no trained model in $TRAINED_DIR or no .carry/bin/detbench: skipping the inference table"
    return 0
  fi
  local precision
  for precision in fp32 fp16; do
    past_deadline "inference $precision" && return 0
    say "detbench run on the trained Mask R-CNN ($precision, batch 1, the 206-image subset)"
    "${bin_env[@]}" "$detbench" run --model maskrcnn_resnet50_fpn --backend torch --device cuda \
      --precision "$precision" --batch 1 --warmup 10 --model-dir "$TRAINED_DIR" \
      --out "$OUT/work/infer_trained_$precision" --no-store --quiet || say "detbench run exited with $?"
  done
}

case "$mode" in
  table) mode_table ;;
  curves) mode_curves ;;
  infer) mode_infer ;;
  all) mode_table; mode_curves ;;
  *) echo "usage: $0 table|curves|infer|all" >&2; exit 2 ;;
esac

say "table"
$py tools/train/train_table.py "$OUT/work" | tee "$OUT/table_train_${mode}.md"
tar -C "$OUT" -czf "$OUT/work_train_${mode}.tgz" work && rm -rf "$OUT/work"
ls -la "$OUT"
