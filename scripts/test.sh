#!/usr/bin/env bash
# Runs every test: installs what is needed (idempotent), then the whole workspace's tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
echo "[test] cargo test --release --workspace" >&2
cargo test --release --workspace
