//! The ONNX models that ship in `../shared/models` (sha256, sources and layouts from its
//! MANIFEST.md; accuracy claims from each upstream README).

use detbench_eval::IouType;

use super::{Family, ModelFormat, Sha256, ZooEntry};

const SHIPPED: &str = "ships in the shared models folder (../shared/models); point --model-dir at a copy if it is elsewhere";

pub(super) static ENTRIES: &[ZooEntry] = &[
    ZooEntry {
        name: "yolox_nano",
        family: Family::Yolox,
        iou_types: &[IouType::Bbox],
        input_size: Some((416, 416)),
        input: "416x416 top-left letterbox (pad 114), BGR 0-255, no normalisation",
        file_name: "yolox_nano.onnx",
        format: ModelFormat::Onnx,
        sha256: Sha256::Full("695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"),
        url: Some(
            "https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/3d4f1119d0694200671c08069ecb847aa0d8495a/model/yolox_nano.onnx",
        ),
        licence: "Apache-2.0",
        upstream_accuracy: &[("box AP", 25.8)],
        source: "Kazuhito00/YOLOX-ONNX-TFLite-Sample @ 3d4f1119d0694200671c08069ecb847aa0d8495a : model/yolox_nano.onnx (official Megvii YOLOX 0.1.1rc0 yolox_nano.pth, exported without decode)",
        how_to_get: SHIPPED,
        shipped: true,
    },
    ZooEntry {
        name: "nanodet_m_320",
        family: Family::NanoDet,
        iou_types: &[IouType::Bbox],
        input_size: Some((320, 320)),
        input: "320x320 centred letterbox (warpPerspective, pad 0), BGR, (x - mean) / std",
        file_name: "nanodet_m_320.onnx",
        format: ModelFormat::Onnx,
        sha256: Sha256::Full("88e9fb97a54bb0030127ad323a10f88b4531b6aa82617e7ef79e35ffcc9bb3e1"),
        url: Some(
            "https://github.com/Kazuhito00/NanoDet-ONNX-Sample/raw/610a874a9163369f6432bf7360ae6c66fc605680/model/nanodet_m_320.onnx",
        ),
        licence: "Apache-2.0",
        upstream_accuracy: &[("box AP", 20.6)],
        source: "Kazuhito00/NanoDet-ONNX-Sample @ 610a874a9163369f6432bf7360ae6c66fc605680 : model/nanodet_m_320.onnx (RangiLyu/nanodet legacy nanodet_m.ckpt)",
        how_to_get: SHIPPED,
        shipped: true,
    },
    ZooEntry {
        name: "nanodet_m_416",
        family: Family::NanoDet,
        iou_types: &[IouType::Bbox],
        input_size: Some((416, 416)),
        input: "416x416 centred letterbox (warpPerspective, pad 0), BGR, (x - mean) / std",
        file_name: "nanodet_m_416.onnx",
        format: ModelFormat::Onnx,
        sha256: Sha256::Full("08b62b9ee4a7878e7a64d6ef4faf3074322c033a0252c83a20f41b86c76e8146"),
        url: Some(
            "https://github.com/Kazuhito00/NanoDet-ONNX-Sample/raw/610a874a9163369f6432bf7360ae6c66fc605680/model/nanodet_m_416.onnx",
        ),
        licence: "Apache-2.0",
        upstream_accuracy: &[("box AP", 23.5)],
        source: "Kazuhito00/NanoDet-ONNX-Sample @ 610a874a9163369f6432bf7360ae6c66fc605680 : model/nanodet_m_416.onnx (RangiLyu/nanodet legacy nanodet_m_416.ckpt)",
        how_to_get: SHIPPED,
        shipped: true,
    },
    ZooEntry {
        name: "fastestdet",
        family: Family::FastestDet,
        iou_types: &[IouType::Bbox],
        input_size: Some((352, 352)),
        input: "352x352 stretch resize, BGR / 255",
        file_name: "fastestdet.onnx",
        format: ModelFormat::Onnx,
        sha256: Sha256::Full("31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"),
        url: Some(
            "https://github.com/dog-qiuqiu/FastestDet/raw/50473cd155cb088aa4a99e64ff6a4b3c24fa07e1/example/onnx-runtime/FastestDet.onnx",
        ),
        licence: "BSD-3-Clause",
        upstream_accuracy: &[("box AP", 13.0), ("box AP50", 25.3)],
        source: "dog-qiuqiu/FastestDet @ 50473cd155cb088aa4a99e64ff6a4b3c24fa07e1 : example/onnx-runtime/FastestDet.onnx",
        how_to_get: SHIPPED,
        shipped: true,
    },
    ZooEntry {
        name: "simplepose_yolox",
        family: Family::SimplePoseTopDown,
        iou_types: &[IouType::Keypoints],
        input_size: Some((192, 256)),
        input: "person boxes from yolox_nano; per person a 192x256 affine crop (1.25x box, aspect 0.75), RGB, ImageNet mean/std",
        file_name: "ultralight_simplepose.onnx",
        format: ModelFormat::Onnx,
        sha256: Sha256::Full("401b3204f5998970c17678f8acc53d798ec79ce5c7b02167067c5b71c954a786"),
        url: Some(
            "https://github.com/dog-qiuqiu/Ultralight-SimplePose/raw/40f9b5d13ef53851d2c2747e2ad884cfb1476291/model/deploy.onnx",
        ),
        licence: "none stated (the source repository has no licence file)",
        // Upstream README claim; the boxes it used are not stated (GluonCV validation uses
        // ground-truth boxes), so compare with the ground-truth-box protocol.
        upstream_accuracy: &[(
            "keypoint AP (README; boxes not stated, GluonCV validates on ground-truth person boxes)",
            51.8,
        )],
        source: "dog-qiuqiu/Ultralight-SimplePose @ 40f9b5d13ef53851d2c2747e2ad884cfb1476291 : model/deploy.onnx (Ultralight-Nano-SimplePose); person boxes from yolox_nano.onnx",
        how_to_get: "ships in the shared models folder (../shared/models) together with yolox_nano.onnx, which provides the person boxes; both must be in the same folder",
        shipped: true,
    },
];
