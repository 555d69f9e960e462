#!/usr/bin/env bash
# Quick start: installs what is needed, builds detbench (release) and runs `detbench run`.
# With no arguments this benchmarks the embedded default: YOLOX-Nano on the shipped 206-image
# val2017 subset, on the CPU through ONNX Runtime. Any arguments go to `detbench run`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
echo "[run] building detbench (cargo build --release)" >&2
cargo build --release --quiet -p detbench
echo "[run] target/release/detbench run $*" >&2
exec target/release/detbench run "$@"
