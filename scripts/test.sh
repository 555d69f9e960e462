#!/usr/bin/env bash
# Runs every test: installs what is needed (idempotent), then the whole workspace's tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
echo "[test] cargo test --release --workspace" >&2
cargo test --release --workspace

# The libtorch engine (cargo feature `torch`) and detbench's native engine (`cuda`, crates/native)
# on the CPU, in ONE cargo invocation so that libtorch's bindings and the engine's C++ (about five
# minutes) are compiled once for every crate that uses them: the torch backend's tests and the
# D2Go subset AP test; the native engine's operations against torchvision fixtures, every NVRTC
# kernel compiled for Hopper, bad input, and (with $DETBENCH_NATIVE_MODELS) the whole Faster R-CNN
# against eager; `detbench run --backend native`'s clear errors and its three architectures
# against torchvision eager (live, Python torch from setup.sh --train). Skip with DETBENCH_TEST_TORCH=0.
if [ "${DETBENCH_TEST_TORCH:-1}" = "1" ]; then
  scripts/setup.sh --torch --train
  deps="${DETBENCH_DEPS:-$root/.deps}"
  export LIBTORCH="$deps/torch/torch"
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "[test] cargo test --release --features torch,cuda (torch backend, D2Go AP, native engine on the CPU)" >&2
  cargo test --release -p detbench-backends -p detbench-models -p detbench-native -p detbench \
    --features detbench-backends/torch,detbench-models/torch,detbench-native/cuda,detbench/cuda \
    --lib --test torch_backend --test torch_qnnpack --test torch_settings --test d2go_ap \
    --test ops_parity --test kernels_compile --test bad_input --test missing_cuda_library \
    --test cpu_model_parity --test native_errors --test native_run

  # detbench-train: one training step against PyTorch (live, same TorchScript file) and two
  # Gloo processes (crates/train/tests). Needs Python torch + torchvision (setup.sh --train).
  echo "[test] cargo test --release -p detbench-train --features torch (parity with PyTorch, Gloo)" >&2
  cargo test --release -p detbench-train --features torch --lib --test parity --test distributed --test bad_input --test amp
fi
