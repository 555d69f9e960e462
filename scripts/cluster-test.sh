#!/usr/bin/env bash
# The cluster paths end to end, with the release binary (scripts/test.sh runs this after the
# cargo tests, with a throwaway PostgreSQL in $DETBENCH_TEST_POSTGRES):
# 1. Slurm: a one-node cluster (scripts/lib/slurm.sh) runs deploy/slurm/detbench-array.sbatch
#    as `sbatch --array=0-3` over the shipped subset; `detbench merge` of the four shards must
#    equal the unsharded run (stats, per-class AP, detections per image, failed images, agreement
#    with the reference, and the detections file byte for byte). The merge is recorded in the
#    PostgreSQL store and read back with `detbench report`. Where Slurm cannot run (not root,
#    packages missing) the same script runs as four local processes with the Slurm array
#    variables set, and this says why (DETBENCH_TEST_SLURM=local asks for that path).
# 2. Kubernetes Indexed Job: deploy/kubernetes/run-shard.sh runs as the Job's pods would
#    (JOB_COMPLETION_INDEX 0..N-1, DETBENCH_SHARD_COUNT from job.yaml), merged and compared
#    likewise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/slurm.sh"
bin="${DETBENCH_BIN:-$root/target/release/detbench}"
# The shards run from folders under $TMPDIR, where detbench's search for `../shared` can find
# another copy (CI's machine has a /tmp/shared) than the unsharded run does from the checkout,
# and the dataset's path is part of the results compared: pin the copy beside the checkout for
# every process this starts (sbatch passes the environment on to the array tasks).
if [ -z "${DETBENCH_SHARED:-}" ] && [ -d "$root/../shared" ]; then
  DETBENCH_SHARED="$(cd "$root/../shared" && pwd)"
  export DETBENCH_SHARED
fi
[ -x "$bin" ] || { echo "[cluster] $bin missing: build it (cargo build --release -p detbench)" >&2; exit 1; }
export DETBENCH="$bin"
say() { echo "[cluster] $*" >&2; }
work="$(mktemp -d "${TMPDIR:-/tmp}/detbench-cluster.XXXXXX")"
cleanup() { slurm_stop; rm -rf "$work"; }
trap cleanup EXIT
started=$(date +%s)
run_args=(--model yolox_nano --warmup 2 --quiet)

# Asserts that two results.json files hold the same accuracy, row by row, and the same
# detections files.
same_accuracy() {
  python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(p))["models"] for p in sys.argv[1:3])
assert len(a) == len(b), (len(a), len(b))
for x, y in zip(a, b):
    for key in ("status", "bbox", "segm", "keypoints", "detections_per_image", "failed_images",
                "reference_agreement", "dataset"):
        assert x.get(key) == y.get(key), f"{x['name']}: {key} differs:\n{x.get(key)}\n{y.get(key)}"
    assert x["bbox"]["stats"][0] > 0.2, x["bbox"]["stats"]
print(f"[cluster] equal: {len(a)} row(s), bbox AP {a[0]['bbox']['stats'][0]:.6f}", file=sys.stderr)
PY
  if [ $# -ge 4 ]; then cmp "$3" "$4" && say "detections files equal byte for byte"; fi
}

# --- 1. Slurm job array -------------------------------------------------------------------
say "unsharded reference run over the shipped subset"
"$bin" run "${run_args[@]}" --no-store --out "$work/full" --save-detections "$work/full.json" >/dev/null
why_not="$(slurm_why_not)"
[ "${DETBENCH_TEST_SLURM:-}" = local ] && why_not="DETBENCH_TEST_SLURM=local asks for the fallback"
mkdir -p "$work/slurm"
if [ -z "$why_not" ]; then
  slurm_start
  job="$(cd "$work/slurm" && sbatch --parsable --array=0-3 --output="$work/slurm/task-%a.log" \
         "$root/deploy/slurm/detbench-array.sbatch" "${run_args[@]}")"
  say "submitted array job $job (4 tasks); waiting"
  while [ -n "$(squeue -h -j "$job" 2>/dev/null)" ]; do sleep 0.5; done
  codes="$(scontrol -o show job "$job" | grep -o 'ExitCode=[0-9:]*' | sort | uniq -c | tr -s ' ')"
  say "array job $job done: $codes"
  if echo "$codes" | grep -qv 'ExitCode=0:0'; then
    tail -n 20 "$work"/slurm/task-*.log >&2
    exit 1
  fi
  shards="$work/slurm/runs/slurm-$job"
else
  say "Slurm cannot run here: $why_not."
  say "fallback: deploy/slurm/detbench-array.sbatch as 4 local processes with the Slurm array variables"
  pids=()
  for task in 0 1 2 3; do
    (cd "$work/slurm" && SLURM_ARRAY_JOB_ID=local SLURM_ARRAY_TASK_ID=$task SLURM_ARRAY_TASK_COUNT=4 \
      SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=3 \
      bash "$root/deploy/slurm/detbench-array.sbatch" "${run_args[@]}" >"$work/slurm/task-$task.log" 2>&1) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  shards="$work/slurm/runs/slurm-local"
fi
store=()
if [ -n "${DETBENCH_TEST_POSTGRES:-}" ]; then store=(--db "$DETBENCH_TEST_POSTGRES"); else store=(--no-store); fi
"$bin" merge "$shards" --out "$work/merged" --save-detections "$work/merged.json" "${store[@]}" >/dev/null
same_accuracy "$work/full/results.json" "$work/merged/results.json" "$work/full.json" "$work/merged.json"
if [ -n "${DETBENCH_TEST_POSTGRES:-}" ]; then
  listed="$("$bin" report --list-runs --format csv --db "$DETBENCH_TEST_POSTGRES")"
  echo "$listed" | grep -q "merge $shards" || { echo "$listed" >&2; say "the merge is not in PostgreSQL"; exit 1; }
  say "the merged run is in PostgreSQL and \`detbench report\` reads it"
fi

# --- 2. Kubernetes Indexed Job --------------------------------------------------------------
manifest="$root/deploy/kubernetes/job.yaml"
completions="$(sed -n 's/^ *completions: *\([0-9]*\).*/\1/p' "$manifest")"
count="$(grep -A1 'name: DETBENCH_SHARD_COUNT' "$manifest" | sed -n 's/.*value: *"\([0-9]*\)".*/\1/p')"
grep -q 'completionMode: Indexed' "$manifest" || { say "$manifest is not an Indexed Job"; exit 1; }
[ -n "$completions" ] && [ "$completions" = "$count" ] \
  || { say "$manifest: completions ($completions) and DETBENCH_SHARD_COUNT ($count) differ"; exit 1; }
say "Kubernetes Indexed Job: run-shard.sh as the Job's $completions pods (JOB_COMPLETION_INDEX 0..$((completions - 1)))"
k8s_args=(--model yolox_nano --warmup 2 --quiet --limit 40)
"$bin" run "${k8s_args[@]}" --no-store --out "$work/k8s-full" >/dev/null
pids=()
for index in $(seq 0 $((completions - 1))); do
  JOB_COMPLETION_INDEX=$index DETBENCH_SHARD_COUNT=$count DETBENCH_RESULTS="$work/k8s" \
    sh "$root/deploy/kubernetes/run-shard.sh" "${k8s_args[@]}" >"$work/k8s-$index.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { cat "$work"/k8s-*.log >&2; exit 1; }; done
"$bin" merge "$work/k8s" --out "$work/k8s-merged" --no-store >/dev/null
same_accuracy "$work/k8s-full/results.json" "$work/k8s-merged/results.json"
say "done in $(( $(date +%s) - started )) s"
