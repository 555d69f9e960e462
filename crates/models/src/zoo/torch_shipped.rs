//! The TorchScript model that ships in `../shared/models`: D2Go Faster R-CNN FBNetV3A int8
//! (sha256, source and layout from its MANIFEST.md and
//! `../shared/reference/d2go_fasterrcnn_fbnetv3a/SPEC.md`).

use detbench_eval::IouType;

use super::{Family, ModelFormat, Sha256, ZooEntry};

pub(super) static ENTRIES: &[ZooEntry] = &[ZooEntry {
    name: "d2go_fasterrcnn_fbnetv3a_int8",
    family: Family::D2Go,
    iou_types: &[IouType::Bbox],
    input_size: None,
    input: "list of one CHW float BGR image, pixel / 255, original size; the wrapper resizes the short side to 320 inside (int8, CPU, x86 quantized engine)",
    file_name: "d2go_fasterrcnn_fbnetv3a_int8.pt",
    format: ModelFormat::TorchScript,
    sha256: Sha256::Full("a83b0798d5c4fce6c96fe27f9f0b22408d64a3faf76285b0e45047fab322ecdd"),
    url: Some(
        "https://github.com/pytorch/android-demo-app/raw/d347168e212b8e6244019b5f49e2b3d6a6f4e816/D2Go/ObjectDetection/app/src/main/assets/d2go.pt",
    ),
    licence: "Apache-2.0 (D2Go); the android-demo-app repository states no licence",
    upstream_accuracy: &[("box AP (float model, d2go test size 224/320)", 21.06)],
    source: "pytorch/android-demo-app @ d347168e212b8e6244019b5f49e2b3d6a6f4e816 : D2Go/ObjectDetection/app/src/main/assets/d2go.pt (d2go faster_rcnn_fbnetv3a_dsmask_C4, torchscript_int8@tracing in a scripted wrapper)",
    how_to_get: "ships in the shared models folder (../shared/models); point --model-dir at a copy if it is elsewhere. Needs a build with `--features torch`",
    shipped: true,
}];
