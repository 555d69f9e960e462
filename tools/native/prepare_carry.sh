#!/usr/bin/env bash
# Prepares the folder a GPU call of the native engine needs (tools/native/gpu_run.sh), on the
# build machine: the bench binary built with `--features cuda` (stripped; the engine library is
# embedded in it) and the scripts. The images are the shipped COCO subset that
# tools/gpu/prepare_carry.sh puts in .carry/shared: when DEST's parent folder has that `shared/`
# (DEST = .carry/native), nothing more is copied and gpu_run.sh reads it from there; otherwise the
# first $IMAGES images (by id) and their annotations are copied into DEST/shared (a standalone
# carry).
#
#   tools/gpu/prepare_carry.sh                      # .carry/bin/detbench (--features cuda), .carry/shared
#   tools/native/prepare_carry.sh .carry/native     # + the bench binary and the scripts
#
# Carry `.carry` as a whole (it must stay under the device's 64 MiB; the sizes are printed).
# Needs libtorch (scripts/setup.sh --torch, which also installs the CUDA crt/cccl headers).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:?usage: prepare_carry.sh DEST}"
images="${IMAGES:-120}"
cd "$root"
export LIBTORCH="${LIBTORCH:-${DETBENCH_DEPS:-$root/.deps}/torch/torch}"
cargo build --release -p detbench-native --features cuda --bin detbench-native-bench
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
combined=""
rm -rf "$dest/bin" "$dest/tools" "$dest/shared"
mkdir -p "$dest/bin" "$dest/tools"
strip -o "$dest/bin/detbench-native-bench" "$target/release/detbench-native-bench"
cp tools/native/*.py tools/native/gpu_run.sh tools/gpu/export_torchvision.py "$dest/tools/"
parent="$(dirname "$dest")"
if [ -f "$parent/shared/coco/annotations/instances_val2017_subset.json" ] && [ -d "$parent/shared/coco/val2017" ]; then
  echo "[prepare_carry] images: $parent/shared (tools/gpu/prepare_carry.sh's), not copied" >&2
  combined="$parent"
else
  shared="$(cd "${DETBENCH_SHARED:-$root/../shared}" && pwd)"
  echo "[prepare_carry] no $parent/shared: copying the first $images images into $dest/shared" >&2
  mkdir -p "$dest/shared/coco/annotations" "$dest/shared/coco/val2017"
  python3 - "$shared" "$dest" "$images" <<'EOF'
import json, shutil, sys
shared, dest, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(f"{shared}/coco/annotations/instances_val2017_subset.json") as f:
    coco = json.load(f)
keep = sorted(coco["images"], key=lambda im: im["id"])[:limit]
ids = {im["id"] for im in keep}
coco["images"] = keep
coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
with open(f"{dest}/shared/coco/annotations/instances_val2017_subset.json", "w") as f:
    json.dump(coco, f)
for im in keep:
    shutil.copy(f"{shared}/coco/val2017/{im['file_name']}", f"{dest}/shared/coco/val2017/")
EOF
fi
du -sh "$dest/bin/detbench-native-bench" "$dest" ${combined:+"$combined"}
