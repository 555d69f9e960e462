#!/usr/bin/env bash
# Prepares .carry/ (ignored by git) for tools/gpu/run_all.sh on a GPU machine that has Python
# torch 2.11 but no Rust toolchain and no ../shared: the detbench binary built here with
# `--features cuda` (stripped; the torch backend and the native engine, `--backend native`), and
# the shipped COCO subset with its annotations (which tools/native/prepare_carry.sh's carry
# reads too).
#
#   tools/gpu/prepare_carry.sh      # then carry `.carry` to the GPU machine
#
# Needs `scripts/setup.sh --torch` first (libtorch under .deps/torch). The binary links the
# CPU half of libtorch only; on the GPU machine it opens libtorch_cuda.so from the Python torch's
# lib folder at run time (LD_LIBRARY_PATH), so the same binary runs here and there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
export LIBTORCH="${LIBTORCH:-${DETBENCH_DEPS:-$root/.deps}/torch/torch}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target-torch}"
cargo build --release -p detbench --features cuda
shared="$(cd "${DETBENCH_SHARED:-$root/../shared}" && pwd)"
rm -rf .carry/bin .carry/shared .carry/lib
mkdir -p .carry/bin .carry/shared/coco/annotations
strip -o .carry/bin/detbench "$CARGO_TARGET_DIR/release/detbench"
# System libraries the binary links besides libtorch and glibc/libstdc++ (the GPU image may lack
# them): libfreetype (plotters' text) and its dependencies.
mkdir -p .carry/lib
for lib in libfreetype.so.6 libpng16.so.16 libbrotlidec.so.1 libbrotlicommon.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" .carry/lib/
done
cp "$shared/README.md" .carry/shared/
cp "$shared"/coco/annotations/instances_val2017_subset.json "$shared"/coco/annotations/person_keypoints_val2017_subset.json .carry/shared/coco/annotations/
cp -r "$shared/coco/val2017" .carry/shared/coco/
du -sh .carry/bin/detbench .carry/shared
