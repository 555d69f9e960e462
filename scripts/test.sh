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

# The libtorch engine (cargo feature `torch`) on the CPU: the torch backend's tests and the D2Go
# subset AP test. One extra build of the crates the feature changes (third-party crates are
# reused from the build above) plus torch-sys. Skip with DETBENCH_TEST_TORCH=0.
if [ "${DETBENCH_TEST_TORCH:-1}" = "1" ]; then
  scripts/setup.sh --torch
  deps="${DETBENCH_DEPS:-$root/.deps}"
  export LIBTORCH="$deps/torch/torch"
  export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "[test] cargo test --release --features torch (torch backend, D2Go AP, LoadGen scenarios on libtorch)" >&2
  cargo test --release -p detbench-backends -p detbench-models \
    --features detbench-backends/torch,detbench-models/torch --lib --test torch_backend --test torch_qnnpack --test torch_settings --test d2go_ap --test torch_scenario

  # detbench-train: one training step against PyTorch (live, same TorchScript file) and two
  # Gloo processes (crates/train/tests). Needs Python torch + torchvision (setup.sh --train).
  scripts/setup.sh --train
  echo "[test] cargo test --release -p detbench-train --features torch (parity with PyTorch, Gloo)" >&2
  cargo test --release -p detbench-train --features torch --lib --test parity --test distributed --test bad_input --test amp
fi
