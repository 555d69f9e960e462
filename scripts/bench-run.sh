#!/usr/bin/env bash
# Runs tools/bench_run_vs_python.py (detbench run beside the Python reference pipeline) with the
# peers' venv and a fresh release binary. Arguments go to the script, e.g.
#   scripts/bench-run.sh --models yolox_nano --json /tmp/bench.json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${DETBENCH_DEPS:-$root/.deps}/venv/bin/python"
[ -x "$python" ] || { echo "bench-run: $python missing; run scripts/setup.sh --peers" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p detbench)
exec "$python" "$root/tools/bench_run_vs_python.py" --python "$python" "$@"
