#!/usr/bin/env bash
# Prepares .carry/ for tools/gpu/train_bench.sh on a GPU machine with Python torch 2.11 but no
# Rust: the detbench binary built here with `--features torch` (stripped; `detbench train` is in
# it), its system libraries and the COCO subset, all by tools/gpu/prepare_carry.sh, then a check
# that the carried binary has the `train` subcommand. Needs `scripts/setup.sh --torch` first.
#
#   tools/gpu/prepare_train_carry.sh      # then carry `.carry` (and run tools/gpu/train_bench.sh)
#
# The binary links the CPU half of libtorch only; CUDA (libtorch_cuda.so) and the trainer's CUDA
# shim (allocator statistics, NCCL) are opened at run time from the Python torch's lib folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
deps="${DETBENCH_DEPS:-$root/.deps}"
if [ "${SKIP_DETBENCH:-0}" != 1 ]; then
  tools/gpu/prepare_carry.sh
fi
LD_LIBRARY_PATH="$deps/torch/torch/lib" .carry/bin/detbench train --help >/dev/null \
  || { echo "prepare_train_carry: .carry/bin/detbench has no working \`train\` subcommand" >&2; exit 1; }
mkdir -p .carry/whl
# pycocotools for the PyTorch side on the GPU image (Python 3.12 there, no package index).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .carry/whl pycocotools==2.0.11
du -sh .carry/bin/* .carry/shared 2>/dev/null || true
echo "carry: .carry (bin, lib, shared, whl)   run: DEADLINE_S=450 tools/gpu/train_bench.sh table   then: DEADLINE_S=450 tools/gpu/train_bench.sh curves"
