# Source me: puts the ultralytics venv's python first and torch/torchvision from .deps on
# PYTHONPATH; Ultralytics' settings go to a private folder and nothing is fetched at run time.
#   source tools/ultralytics/env.sh [VENV]
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_deps="${DETBENCH_DEPS:-$_root/.deps}"
ULTRALYTICS_VENV="${1:-$_deps/venv-ultralytics}"
export ULTRALYTICS_PY="$ULTRALYTICS_VENV/bin/python"
export PYTHONPATH="$_deps/torch:$_deps/torchvision${PYTHONPATH:+:$PYTHONPATH}"
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$_deps/ultralytics-config}"
export YOLO_OFFLINE=1 YOLO_VERBOSE=False
mkdir -p "$YOLO_CONFIG_DIR"
unset _root _deps
