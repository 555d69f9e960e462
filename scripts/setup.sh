#!/usr/bin/env bash
# Installs what detbench needs to build and run, idempotently, and says what it does.
#   scripts/setup.sh            system packages + ONNX Runtime library (default build)
#   scripts/setup.sh --torch    also libtorch (PyPI torch wheel) for `--features torch`
#   scripts/setup.sh --peers    also the Python peers used by the benchmark scripts
# Everything project-local goes under .deps/ (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${DETBENCH_DEPS:-$root/.deps}"
ORT_VERSION=1.31.1
TORCH_VERSION=2.11.0
want_torch=0
want_peers=0
for arg in "$@"; do
  case "$arg" in
    --torch) want_torch=1 ;;
    --peers) want_peers=1 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done
say() { echo "[setup] $*" >&2; }
mkdir -p "$deps"

# 1. System packages: turbojpeg builds its bundled libjpeg-turbo 3.x with cmake and nasm.
missing=()
for tool in cmake nasm; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]} (needed to build libjpeg-turbo)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
else
  say "cmake and nasm present"
fi

pip_target() {  # pip_target DIR SPEC...: install wheels without dependencies into DIR
  local dir="$1"; shift
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "$@"
}

# 2. ONNX Runtime shared library from the PyPI wheel (ort crate with load-dynamic).
ort_lib="$deps/onnxruntime/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
if [ -f "$ort_lib" ]; then
  say "ONNX Runtime $ORT_VERSION present: $ort_lib"
else
  say "installing ONNX Runtime $ORT_VERSION from PyPI into $deps/onnxruntime"
  rm -rf "$deps/onnxruntime"
  pip_target "$deps/onnxruntime" "onnxruntime==$ORT_VERSION"
  [ -f "$ort_lib" ] || { echo "setup: $ort_lib missing after install" >&2; exit 1; }
fi

# 3. libtorch from the PyPI torch wheel (only for --features torch).
if [ $want_torch -eq 1 ]; then
  torch_dir="$deps/torch/torch"
  if [ -f "$torch_dir/lib/libtorch_cpu.so" ]; then
    say "libtorch (torch $TORCH_VERSION) present: $torch_dir"
  else
    say "installing torch $TORCH_VERSION from PyPI into $deps/torch (large download)"
    rm -rf "$deps/torch"
    pip_target "$deps/torch" "torch==$TORCH_VERSION"
  fi
fi

# 4. Python peers for the benchmark scripts, in a venv.
if [ $want_peers -eq 1 ]; then
  venv="$deps/venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating Python venv $venv"
    python3 -m venv "$venv"
  fi
  say "installing Python peers into $venv (pycocotools, faster-coco-eval, hotcoco, onnxruntime, opencv, numpy)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    numpy pycocotools==2.0.11 faster-coco-eval hotcoco "onnxruntime==$ORT_VERSION" opencv-python-headless psutil
fi
say "done"
