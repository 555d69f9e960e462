#!/usr/bin/env bash
# Prepares the folder a GPU call of the native engine needs (tools/native/gpu_run.sh), on the
# build machine: the bench binary built with `--features cuda` (stripped; the engine library is
# embedded in it), the scripts, and the first $IMAGES images (by id) of the shipped COCO subset
# with their annotations.
#
#   tools/native/prepare_carry.sh DEST      # e.g. <the session's checkout>/.carry/native
#
# Needs libtorch (scripts/setup.sh --torch) and the CUDA crt/cccl headers (build.rs says where).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest="${1:?usage: prepare_carry.sh DEST}"
images="${IMAGES:-120}"
cd "$root"
export LIBTORCH="${LIBTORCH:-$root/.deps/torch/torch}"
cargo build --release -p detbench-native --features cuda --bin detbench-native-bench
target="${CARGO_TARGET_DIR:-$root/target}"
shared="$(cd "${DETBENCH_SHARED:-$root/../shared}" && pwd)"
rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/tools" "$dest/shared/coco/annotations" "$dest/shared/coco/val2017"
strip -o "$dest/bin/detbench-native-bench" "$target/release/detbench-native-bench"
cp tools/native/*.py tools/native/gpu_run.sh tools/gpu/export_torchvision.py "$dest/tools/"
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
du -sh "$dest/bin/detbench-native-bench" "$dest"
