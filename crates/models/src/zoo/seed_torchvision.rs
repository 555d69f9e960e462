//! torchvision's COCO detection models (the seed architectures of the published GPU tables),
//! run as TorchScript exported by `tools/gpu/export_torchvision.py`.
//!
//! The runnable file is `<name>.pt`, made by that script from the official checkpoint when the
//! user has it (`--weights-dir`), else from random weights under a fixed seed (speed only, AP
//! ~0). Its checksum depends on the export, so the catalogue has none for it; the official
//! checkpoints' names, URLs and sha256 prefixes (torchvision puts the first 8 hex digits of the
//! sha256 in the file name, `torchvision/models/_api.py` `check_hash`) are in
//! [`OFFICIAL_WEIGHTS`], and the export script checks them. Accuracy claims are torchvision
//! 0.26's `_metrics` for the DEFAULT weights (`torchvision/models/detection/*.py`), COCO val2017.

use detbench_eval::IouType;

use super::{Family, ModelFormat, Sha256, ZooEntry};

/// An official torchvision checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialWeights {
    /// The zoo name it belongs to.
    pub model: &'static str,
    /// The weights enum value (torchvision 0.26, the builder's DEFAULT).
    pub weights: &'static str,
    pub file_name: &'static str,
    pub url: &'static str,
    /// First 8 hex digits of the file's sha256 (the suffix of its name).
    pub sha256_prefix: &'static str,
}

pub static OFFICIAL_WEIGHTS: &[OfficialWeights] = &[
    OfficialWeights {
        model: "fasterrcnn_resnet50_fpn",
        weights: "FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
        file_name: "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
        url: "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
        sha256_prefix: "258fb6c6",
    },
    OfficialWeights {
        model: "fasterrcnn_mobilenet_v3_large_fpn",
        weights: "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1",
        file_name: "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        url: "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        sha256_prefix: "fb6a3cc7",
    },
    OfficialWeights {
        model: "fasterrcnn_mobilenet_v3_large_320_fpn",
        weights: "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1",
        file_name: "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        url: "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        sha256_prefix: "907ea3f9",
    },
    OfficialWeights {
        model: "retinanet_resnet50_fpn",
        weights: "RetinaNet_ResNet50_FPN_Weights.COCO_V1",
        file_name: "retinanet_resnet50_fpn_coco-eeacb38b.pth",
        url: "https://download.pytorch.org/models/retinanet_resnet50_fpn_coco-eeacb38b.pth",
        sha256_prefix: "eeacb38b",
    },
    OfficialWeights {
        model: "ssd300_vgg16",
        weights: "SSD300_VGG16_Weights.COCO_V1",
        file_name: "ssd300_vgg16_coco-b556d3b4.pth",
        url: "https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth",
        sha256_prefix: "b556d3b4",
    },
    OfficialWeights {
        model: "ssdlite320_mobilenet_v3_large",
        weights: "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1",
        file_name: "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        url: "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        sha256_prefix: "a79551df",
    },
    OfficialWeights {
        model: "maskrcnn_resnet50_fpn",
        weights: "MaskRCNN_ResNet50_FPN_Weights.COCO_V1",
        file_name: "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        url: "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
        sha256_prefix: "bf2d0c1e",
    },
    OfficialWeights {
        model: "keypointrcnn_resnet50_fpn",
        weights: "KeypointRCNN_ResNet50_FPN_Weights.COCO_V1",
        file_name: "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        url: "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        sha256_prefix: "fc266e95",
    },
];

const LICENCE: &str = "BSD-3-Clause (torchvision code and weights)";
const INPUT: &str = "list of CHW float RGB images, pixel / 255, original size; the model normalises and resizes inside";

macro_rules! how_to_get {
    ($file:literal, $url:literal, $name:literal) => {
        concat!(
            "export TorchScript on a machine with torch 2.11 + torchvision 0.26: download ",
            $url,
            " into a folder W, then `python3 tools/gpu/export_torchvision.py --out DIR --weights-dir W --models ",
            $name,
            "` (checks the sha256 prefix of ",
            $file,
            "), and run detbench with --model-dir DIR. Without --weights-dir the script exports random weights (seed 0): speed only, AP ~0; \
             add --calibrate for a realistic post-processing load (RetinaNet's classification bias, with which random weights detect something; \
             export_manifest.json beside the files records it, and each run's provenance records the manifest's entry)"
        )
    };
}

macro_rules! source {
    ($weights:literal, $file:literal) => {
        concat!(
            "torchvision 0.26 torchvision/models/detection, weights ",
            $weights,
            " (",
            $file,
            "); exported with torch.jit.script by tools/gpu/export_torchvision.py"
        )
    };
}

pub(super) static ENTRIES: &[ZooEntry] = &[
    ZooEntry {
        name: "fasterrcnn_resnet50_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: None,
        input: INPUT,
        file_name: "fasterrcnn_resnet50_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some("https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 37.0)],
        source: source!(
            "FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
            "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth"
        ),
        how_to_get: how_to_get!(
            "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
            "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
            "fasterrcnn_resnet50_fpn"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "fasterrcnn_mobilenet_v3_large_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: None,
        input: INPUT,
        file_name: "fasterrcnn_mobilenet_v3_large_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 32.8)],
        source: source!(
            "FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1",
            "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth"
        ),
        how_to_get: how_to_get!(
            "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
            "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
            "fasterrcnn_mobilenet_v3_large_fpn"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "fasterrcnn_mobilenet_v3_large_320_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: None,
        input: INPUT,
        file_name: "fasterrcnn_mobilenet_v3_large_320_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 22.8)],
        source: source!(
            "FasterRCNN_MobileNet_V3_Large_320_FPN_Weights.COCO_V1",
            "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth"
        ),
        how_to_get: how_to_get!(
            "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
            "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
            "fasterrcnn_mobilenet_v3_large_320_fpn"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "retinanet_resnet50_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: None,
        input: INPUT,
        file_name: "retinanet_resnet50_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some("https://download.pytorch.org/models/retinanet_resnet50_fpn_coco-eeacb38b.pth"),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 36.4)],
        source: source!(
            "RetinaNet_ResNet50_FPN_Weights.COCO_V1",
            "retinanet_resnet50_fpn_coco-eeacb38b.pth"
        ),
        how_to_get: how_to_get!(
            "retinanet_resnet50_fpn_coco-eeacb38b.pth",
            "https://download.pytorch.org/models/retinanet_resnet50_fpn_coco-eeacb38b.pth",
            "retinanet_resnet50_fpn"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "ssd300_vgg16",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: Some((300, 300)),
        input: "list of CHW float RGB images, pixel / 255, original size; the model resizes to 300x300 and normalises inside",
        file_name: "ssd300_vgg16.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some("https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth"),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 25.1)],
        source: source!(
            "SSD300_VGG16_Weights.COCO_V1",
            "ssd300_vgg16_coco-b556d3b4.pth"
        ),
        how_to_get: how_to_get!(
            "ssd300_vgg16_coco-b556d3b4.pth",
            "https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth",
            "ssd300_vgg16"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "ssdlite320_mobilenet_v3_large",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox],
        input_size: Some((320, 320)),
        input: "list of CHW float RGB images, pixel / 255, original size; the model resizes to 320x320 and normalises inside",
        file_name: "ssdlite320_mobilenet_v3_large.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 21.3)],
        source: source!(
            "SSDLite320_MobileNet_V3_Large_Weights.COCO_V1",
            "ssdlite320_mobilenet_v3_large_coco-a79551df.pth"
        ),
        how_to_get: how_to_get!(
            "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
            "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
            "ssdlite320_mobilenet_v3_large"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "maskrcnn_resnet50_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox, IouType::Segm],
        input_size: None,
        input: INPUT,
        file_name: "maskrcnn_resnet50_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some("https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 37.9), ("mask AP", 34.6)],
        source: source!(
            "MaskRCNN_ResNet50_FPN_Weights.COCO_V1",
            "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
        ),
        how_to_get: how_to_get!(
            "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
            "maskrcnn_resnet50_fpn"
        ),
        shipped: false,
    },
    ZooEntry {
        name: "keypointrcnn_resnet50_fpn",
        family: Family::TorchvisionDetection,
        iou_types: &[IouType::Bbox, IouType::Keypoints],
        input_size: None,
        input: INPUT,
        file_name: "keypointrcnn_resnet50_fpn.pt",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 54.6), ("keypoint AP", 65.0)],
        source: source!(
            "KeypointRCNN_ResNet50_FPN_Weights.COCO_V1",
            "keypointrcnn_resnet50_fpn_coco-fc266e95.pth"
        ),
        how_to_get: how_to_get!(
            "keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
            "https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
            "keypointrcnn_resnet50_fpn"
        ),
        shipped: false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_weights_agree_with_the_entries() {
        assert_eq!(OFFICIAL_WEIGHTS.len(), ENTRIES.len());
        for weights in OFFICIAL_WEIGHTS {
            let entry = ENTRIES.iter().find(|e| e.name == weights.model).unwrap();
            assert_eq!(entry.url, Some(weights.url), "{}", weights.model);
            assert!(weights.url.ends_with(weights.file_name));
            assert!(entry.source.contains(weights.file_name));
            assert!(entry.how_to_get.contains(weights.file_name));
            // torchvision's names end in -<first 8 hex digits of the sha256>.pth.
            let stem = weights.file_name.strip_suffix(".pth").unwrap();
            assert!(stem.ends_with(&format!("-{}", weights.sha256_prefix)));
            assert_eq!(entry.file_name, format!("{}.pt", weights.model));
        }
    }
}
