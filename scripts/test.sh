#!/usr/bin/env bash
# Runs every test: installs what is needed (idempotent), starts the services the store and
# cluster tests use (PostgreSQL, Slurm: throwaway instances in temporary folders, stopped after),
# then the whole workspace's tests and the cluster test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh --services
# A throwaway PostgreSQL (temporary folder, free port, Unix socket in that folder) for the store
# tests, which run the same suite against SQLite and against it; stopped on exit, pass or fail.
source scripts/lib/postgres.sh
trap pg_stop EXIT
pg_start
echo "[test] cargo test --release --workspace" >&2
cargo test --release --workspace

# Slurm job array over the shipped subset (a one-node cluster it starts and stops), merged
# and compared with the unsharded run; the Kubernetes Indexed Job script likewise.
echo "[test] scripts/cluster-test.sh (Slurm sbatch --array=0-3, Kubernetes Indexed Job, merge into PostgreSQL)" >&2
scripts/cluster-test.sh
pg_stop

# Everything that needs libtorch, in ONE cargo invocation so that libtorch's bindings and the
# native engine's C++ (about five minutes) are compiled once for every crate that uses them:
# - the libtorch engine (feature `torch`): the torch backend's tests, the D2Go subset AP test,
#   LoadGen scenarios on libtorch;
# - detbench's native engine (`cuda`, crates/native) on the CPU: its operations against
#   torchvision fixtures, every NVRTC kernel compiled for Hopper, bad input, (with
#   $DETBENCH_NATIVE_MODELS) the whole Faster R-CNN against eager, and `detbench run --backend
#   native`'s clear errors and its three architectures against torchvision eager (live, Python
#   torch from setup.sh --train);
# - detbench-train: one training step against PyTorch (live, same TorchScript file), AMP, bad
#   input and two Gloo processes (crates/train/tests).
# Skip with DETBENCH_TEST_TORCH=0.
if [ "${DETBENCH_TEST_TORCH:-1}" = "1" ]; then
  scripts/setup.sh --torch --train
  deps="${DETBENCH_DEPS:-$root/.deps}"
  export LIBTORCH="$deps/torch/torch"
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "[test] cargo test --release --features torch,cuda (torch backend, D2Go AP, LoadGen on libtorch, native engine on the CPU, detbench-train parity and Gloo)" >&2
  cargo test --release -p detbench-backends -p detbench-models -p detbench-native -p detbench-train -p detbench \
    --features detbench-backends/torch,detbench-models/torch,detbench-native/cuda,detbench-train/torch,detbench/cuda \
    --lib --test torch_backend --test torch_qnnpack --test torch_settings --test d2go_ap --test torch_scenario \
    --test ops_parity --test kernels_compile --test bad_input --test missing_cuda_library \
    --test cpu_model_parity --test native_errors --test native_run \
    --test parity --test distributed --test amp
fi
