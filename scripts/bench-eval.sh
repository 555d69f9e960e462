#!/usr/bin/env bash
# Runs tools/bench_eval.py (COCO evaluator benchmark) with the peers' venv and a fresh release
# binary. Arguments go to the script, e.g. scripts/bench-eval.sh --images 5000 --repeat 1
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${DETBENCH_DEPS:-$root/.deps}/venv/bin/python"
[ -x "$python" ] || { echo "bench-eval: $python missing; run scripts/setup.sh --peers" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p detbench)
exec "$python" "$root/tools/bench_eval.py" "$@"
