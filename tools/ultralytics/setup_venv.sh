#!/usr/bin/env bash
# Makes a Python venv with the `ultralytics` package (CPU) for the parity fixtures and the
# side-by-side benchmarks, without a second multi-GB torch: ultralytics and its light
# dependencies go into the venv, and torch + torchvision are the wheels scripts/setup.sh --torch
# already unpacked into $DETBENCH_DEPS/torch and $DETBENCH_DEPS/torchvision (put on PYTHONPATH
# by tools/ultralytics/env.sh).
#   tools/ultralytics/setup_venv.sh [VENV]     (default: $DETBENCH_DEPS/venv-ultralytics)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
deps="${DETBENCH_DEPS:-$root/.deps}"
venv="${1:-$deps/venv-ultralytics}"
ULTRALYTICS_VERSION=8.4.190
say() { echo "[ultralytics-venv] $*" >&2; }
if [ ! -f "$deps/torch/torch/__init__.py" ] || [ ! -d "$deps/torchvision/torchvision" ]; then
  say "torch/torchvision missing under $deps: running scripts/setup.sh --torch"
  "$root/scripts/setup.sh" --torch
fi
[ -x "$venv/bin/python" ] || { say "creating $venv"; python3 -m venv "$venv"; }
pip() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
if "$venv/bin/python" -c "import ultralytics, sys; sys.exit(ultralytics.__version__ != '$ULTRALYTICS_VERSION')" 2>/dev/null; then
  say "ultralytics $ULTRALYTICS_VERSION present in $venv"
else
  say "installing ultralytics $ULTRALYTICS_VERSION (no torch; torch comes from $deps/torch)"
  # ultralytics' own requirements minus torch/torchvision (and opencv-python: the headless build
  # provides the same cv2 module), plus torch's pure-Python requirements, onnx for the exports,
  # pycocotools for RLE, faster-coco-eval for `val`'s own COCO mAP.
  pip numpy matplotlib opencv-python-headless pillow polars psutil pyyaml requests \
    filelock sympy networkx jinja2 fsspec typing_extensions \
    onnx "onnxruntime==1.31.1" "pycocotools==2.0.11" faster-coco-eval
  pip --no-deps "ultralytics==$ULTRALYTICS_VERSION" ultralytics-thop ultralytics-platform nvidia-ml-py
fi
say "done: source tools/ultralytics/env.sh $venv"
