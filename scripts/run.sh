#!/usr/bin/env bash
# Quick start: installs what is needed, builds detbench (release) and runs `detbench run`.
# With no arguments this benchmarks the embedded default: YOLOX-Nano on the shipped 206-image
# val2017 subset, on the CPU through ONNX Runtime. Any arguments go to `detbench run`.
# The binary is the one cargo builds (`cargo run`), wherever CARGO_TARGET_DIR or a cargo
# config puts it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
target_dir="$(cargo metadata --format-version 1 --no-deps \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
if [ -x "${target_dir:-target}/release/detbench" ]; then
  echo "[run] building detbench if its sources changed (cargo build --release, seconds)" >&2
else
  echo "[run] first build of detbench (release, into ${target_dir:-target}): about 300 crates," \
    "roughly 8 minutes on 2 cores, 2 on 8; cargo shows its progress below" >&2
fi
echo "[run] detbench run $*" >&2
exec cargo run --release -p detbench -- run "$@"
