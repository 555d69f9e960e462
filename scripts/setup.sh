#!/usr/bin/env bash
# Installs what detbench needs to build and run, idempotently, and says what it does.
#   scripts/setup.sh            system packages + ONNX Runtime library (default build)
#   scripts/setup.sh --torch    also libtorch (PyPI torch wheel) for `--features torch`
#   scripts/setup.sh --peers    also the Python peers used by the benchmark scripts
#   scripts/setup.sh --train    --torch, plus what detbench-train's tests need: Python torch +
#                               torchvision importable from .deps (their pure-Python dependencies
#                               and pycocotools/opencv/pillow in .deps/venv)
#   scripts/setup.sh --services the services scripts/test.sh starts for the store and cluster
#                               tests: Debian's postgresql (server binaries; its own cluster is
#                               not started), slurm-wlm and munge (their daemons are not enabled)
# Everything project-local goes under .deps/ (ignored by git).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${DETBENCH_DEPS:-$root/.deps}"
ORT_VERSION=1.31.1
TORCH_VERSION=2.11.0
LOADGEN_VERSION=6.0.17
want_torch=0
want_peers=0
want_train=0
want_services=0
for arg in "$@"; do
  case "$arg" in
    --torch) want_torch=1 ;;
    --peers) want_peers=1 ;;
    --train) want_torch=1; want_train=1 ;;
    --services) want_services=1 ;;
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

# 1b. Chart text (`detbench report --charts`, `detbench show`) is drawn with a sans-serif font
# found through fontconfig (loaded at run time; nothing needed to build).
if command -v fc-match >/dev/null && [ -n "$(fc-list :style=Book 2>/dev/null | head -n 1)" ]; then
  say "fontconfig and a font present"
else
  say "installing Debian packages: fontconfig fonts-dejavu-core (text in charts and annotated images)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq fontconfig fonts-dejavu-core >/dev/null
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

# 3. libtorch from the PyPI torch wheel (only for --features torch), with what it needs at run time:
#    - the CUDA 13 runtime libraries torch 2.11 declares (nvidia-* wheels). libtorch_cpu.so itself
#      links libcudart/libcupti, and torchvision's ops library links libtorch_cuda.so, so even a
#      CPU-only run needs them present (no GPU or driver is needed). They go to $deps/torch/nvidia,
#      where the wheel's RPATH ($ORIGIN/../../nvidia/...) finds them.
#    - torchvision's ops library (nms, roi_align) from the matching torchvision wheel.
#    Build with LIBTORCH=$deps/torch/torch; run with LD_LIBRARY_PATH=$deps/torch/torch/lib.
TORCHVISION_VERSION=0.26.0
# The exact pins of torch 2.11.0's Requires-Dist (cuda-toolkit 13.0.2 extras, cudnn, cusparselt, nccl, nvshmem).
TORCH_CUDA_WHEELS=(
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.1.0.3 nvidia-cufft==12.0.0.61 nvidia-cufile==1.15.1.6 nvidia-curand==10.4.0.35
  nvidia-cusolver==12.0.4.66 nvidia-cusparse==12.6.3.3 nvidia-nvjitlink==13.0.88 nvidia-nvtx==13.0.85
  nvidia-cudnn-cu13==9.19.0.56 nvidia-cusparselt-cu13==0.8.0 nvidia-nccl-cu13==2.28.9
  nvidia-nvshmem-cu13==3.4.5
)
if [ $want_torch -eq 1 ]; then
  # crates/train's C++ shim: ProcessGroupGloo's header includes gloo's (not in the torch wheel).
  # Its CUDA half and the native engine (crates/native, feature `cuda`) compile against libtorch's
  # CUDA headers, which include CUDA 13's crt/ and CCCL (nv/target) headers: headers only, from
  # nvidia-cuda-crt and nvidia-cuda-cccl (the torch wheel's runtime wheels leave them out).
  if [ -f /usr/include/gloo/algorithm.h ]; then
    say "gloo headers present"
  else
    say "installing Debian package libgloo-dev (gloo headers for detbench-train's c10d shim)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libgloo-dev >/dev/null
  fi
  crt="$deps/cuda-crt/nvidia/cu13/include"
  if [ -f "$crt/crt/host_config.h" ] && [ -f "$crt/crt/host_defines.h" ] && [ -f "$crt/nv/target" ]; then
    say "CUDA crt/CCCL headers present: $deps/cuda-crt"
  else
    say "installing CUDA 13.0 crt and CCCL headers (nvidia-cuda-crt, nvidia-cuda-cccl) into $deps/cuda-crt"
    rm -rf "$deps/cuda-crt" "$deps/.cuda-crt.tmp" "$deps/.cuda-cccl.tmp"
    pip_target "$deps/.cuda-crt.tmp" nvidia-cuda-crt==13.0.88
    pip_target "$deps/.cuda-cccl.tmp" nvidia-cuda-cccl==13.0.85
    mkdir -p "$deps/cuda-crt/nvidia/cu13/include"
    cp -r "$deps/.cuda-crt.tmp/nvidia/cu13/include/." "$deps/.cuda-cccl.tmp/nvidia/cu13/include/." "$deps/cuda-crt/nvidia/cu13/include/"
    rm -rf "$deps/.cuda-crt.tmp" "$deps/.cuda-cccl.tmp"
  fi
  torch_dir="$deps/torch/torch"
  if [ -f "$torch_dir/lib/libtorch_cpu.so" ] && grep -q "^Version: $TORCH_VERSION\$" "$deps"/torch/torch-*.dist-info/METADATA 2>/dev/null; then
    say "libtorch (torch $TORCH_VERSION) present: $torch_dir"
  else
    say "installing torch $TORCH_VERSION from PyPI into $deps/torch (large download)"
    rm -rf "$deps/torch"
    pip_target "$deps/torch" "torch==$TORCH_VERSION"
  fi
  if [ -f "$deps/torch/nvidia/cu13/lib/libcudart.so.13" ] && [ -f "$deps/torch/nvidia/cudnn/lib/libcudnn.so.9" ] \
     && [ -f "$deps/torch/nvidia/nvshmem/lib/libnvshmem_host.so.3" ]; then
    say "CUDA runtime libraries for torch present: $deps/torch/nvidia"
  else
    say "installing the CUDA runtime libraries torch $TORCH_VERSION links (nvidia-* wheels, ~2.7 GB) into $deps/torch/nvidia"
    tmp="$deps/.torch-nvidia.tmp"
    rm -rf "$tmp"
    pip_target "$tmp" "${TORCH_CUDA_WHEELS[@]}"
    rm -rf "$deps/torch/nvidia"
    mv "$tmp/nvidia" "$deps/torch/nvidia"
    rm -rf "$tmp"
  fi
  tv_ops="$deps/torchvision/torchvision/_C.so"
  if [ -f "$tv_ops" ] && grep -q "^Version: $TORCHVISION_VERSION\$" "$deps"/torchvision/torchvision-*.dist-info/METADATA 2>/dev/null; then
    say "torchvision $TORCHVISION_VERSION ops library present: $tv_ops"
  else
    say "installing torchvision $TORCHVISION_VERSION from PyPI into $deps/torchvision (for its ops library)"
    rm -rf "$deps/torchvision"
    pip_target "$deps/torchvision" "torchvision==$TORCHVISION_VERSION"
  fi
fi

# 4. Python peers for the benchmark scripts, in a venv.
if [ $want_peers -eq 1 ]; then
  venv="$deps/venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating Python venv $venv"
    python3 -m venv "$venv"
  fi
  say "installing Python peers into $venv (pycocotools, faster-coco-eval, hotcoco, onnxruntime, opencv, numpy, mlcommons-loadgen)"
  # mlcommons-loadgen: MLPerf LoadGen itself (its cp311 manylinux_2_28 wheel), for the side-by-side
  # scripts in tools/loadgen/ (python_sut.py drives the reference pipeline with it).
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    numpy pycocotools==2.0.11 faster-coco-eval hotcoco "onnxruntime==$ORT_VERSION" opencv-python-headless psutil \
    "mlcommons-loadgen==$LOADGEN_VERSION"
fi
# 5. detbench-train's parity tests run torch + torchvision from .deps/torch and .deps/torchvision
#    (PYTHONPATH); those wheels were installed without dependencies, so their pure-Python ones
#    (torch 2.11.0's and torchvision 0.26.0's Requires-Dist) go into the venv, with the reference
#    data pipeline's pycocotools, opencv and numpy.
if [ $want_train -eq 1 ]; then
  venv="$deps/venv"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating Python venv $venv"
    python3 -m venv "$venv"
  fi
  if PYTHONPATH="$deps/torch:$deps/torchvision" "$venv/bin/python" -c "import torch, torchvision, cv2, pycocotools, PIL" 2>/dev/null; then
    say "Python torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION importable from $venv"
  else
    say "installing torch's and torchvision's Python dependencies into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      filelock "typing-extensions>=4.10.0" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 "fsspec>=0.8.5" \
      "setuptools<82" numpy pillow pycocotools==2.0.11 opencv-python-headless
  fi
fi
# 6. Services for the store and cluster tests (scripts/test.sh starts and stops its own
#    throwaway instances in temporary folders; nothing here is started or enabled).
if [ $want_services -eq 1 ]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
  command -v munged >/dev/null || missing+=(munge)
  if [ ${#missing[@]} -eq 0 ]; then
    say "PostgreSQL server, Slurm and munge present"
  else
    say "installing Debian packages: ${missing[*]} (PostgreSQL store tests, Slurm job-array test)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >/dev/null
    # policy-rc.d keeps the packages from starting their system-wide daemons on install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
      $sudo_cmd chmod +x /usr/sbin/policy-rc.d
      remove_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "${remove_policy:-0}" = 1 ] && $sudo_cmd rm -f /usr/sbin/policy-rc.d
  fi
fi
say "done"
