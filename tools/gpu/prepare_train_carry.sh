#!/usr/bin/env bash
# Prepares .carry/ for tools/gpu/train_bench.sh on a GPU machine with Python torch 2.11 but no
# Rust: detbench-train built here with `--features torch` (stripped), plus what
# tools/gpu/prepare_carry.sh puts there (the detbench binary, used to evaluate the trained model,
# and the COCO subset). Needs `scripts/setup.sh --torch` first.
#
#   tools/gpu/prepare_train_carry.sh      # then carry `.carry` (and run tools/gpu/train_bench.sh)
#
# The binaries link the CPU half of libtorch only; CUDA (libtorch_cuda.so) and the CUDA shim
# (allocator statistics, NCCL) are opened at run time from the Python torch's lib folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
deps="${DETBENCH_DEPS:-$root/.deps}"
export LIBTORCH="$deps/torch/torch"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-torch}"
if [ "${SKIP_DETBENCH:-0}" != 1 ]; then
  tools/gpu/prepare_carry.sh
fi
cargo build --release -p detbench-train --features torch --bin detbench-train
mkdir -p .carry/bin
strip -o .carry/bin/detbench-train "$CARGO_TARGET_DIR/release/detbench-train"
du -sh .carry/bin/* .carry/shared 2>/dev/null || true
echo "carry: .carry   run: DEADLINE_S=450 tools/gpu/train_bench.sh table   then: DEADLINE_S=450 tools/gpu/train_bench.sh curves"
