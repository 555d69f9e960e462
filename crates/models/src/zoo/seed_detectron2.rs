//! detectron2 model-zoo baselines (R50-FPN 3x Faster, Mask and Keypoint R-CNN), catalogued so
//! that their accuracy claims and files are known. detbench has no detectron2 pipeline yet: a
//! TorchScript export (`tools/deploy/export_model.py --format torchscript`) takes and returns
//! detectron2's own structures (image dicts in, `Instances` fields out), which the torchvision
//! list-model pipeline does not read, so opening one is `ModelError::Unsupported`.
//!
//! Numbers, model ids and file names: detectron2 `MODEL_ZOO.md` (COCO val2017). detectron2's
//! file names carry an **md5** prefix, not sha256, so the sha256 is unknown here. Weights are
//! CC BY-SA 3.0 (MODEL_ZOO.md, "License"); the code is Apache-2.0.

use detbench_eval::IouType;

use super::{Family, ModelFormat, Sha256, ZooEntry};

const LICENCE: &str = "CC-BY-SA-3.0 (weights, detectron2 MODEL_ZOO.md); Apache-2.0 (code)";
const INPUT: &str = "detectron2 image dict: CHW float BGR 0-255 at test size (short side 800, max 1333), resized outside the graph";
const HOW_TO_GET: &str = "not runnable in detbench yet (no Detectron2 pipeline). To export: install detectron2, download the .pkl, then `python tools/deploy/export_model.py --config-file <config> --format torchscript --export-method scripting --output DIR MODEL.WEIGHTS <file.pkl> MODEL.DEVICE cuda`";

pub(super) static ENTRIES: &[ZooEntry] = &[
    ZooEntry {
        name: "detectron2_faster_rcnn_R_50_FPN_3x",
        family: Family::Detectron2,
        iou_types: &[IouType::Bbox],
        input_size: None,
        input: INPUT,
        file_name: "detectron2_faster_rcnn_R_50_FPN_3x.ts",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://dl.fbaipublicfiles.com/detectron2/COCO-Detection/faster_rcnn_R_50_FPN_3x/137849458/model_final_280758.pkl",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 40.2)],
        source: "detectron2 MODEL_ZOO.md, COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml, model id 137849458, model_final_280758.pkl (md5 prefix 280758)",
        how_to_get: HOW_TO_GET,
        shipped: false,
    },
    ZooEntry {
        name: "detectron2_mask_rcnn_R_50_FPN_3x",
        family: Family::Detectron2,
        iou_types: &[IouType::Bbox, IouType::Segm],
        input_size: None,
        input: INPUT,
        file_name: "detectron2_mask_rcnn_R_50_FPN_3x.ts",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://dl.fbaipublicfiles.com/detectron2/COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x/137849600/model_final_f10217.pkl",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 41.0), ("mask AP", 37.2)],
        source: "detectron2 MODEL_ZOO.md, COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml, model id 137849600, model_final_f10217.pkl (md5 prefix f10217)",
        how_to_get: HOW_TO_GET,
        shipped: false,
    },
    ZooEntry {
        name: "detectron2_keypoint_rcnn_R_50_FPN_3x",
        family: Family::Detectron2,
        iou_types: &[IouType::Bbox, IouType::Keypoints],
        input_size: None,
        input: INPUT,
        file_name: "detectron2_keypoint_rcnn_R_50_FPN_3x.ts",
        format: ModelFormat::TorchScript,
        sha256: Sha256::Unknown,
        url: Some(
            "https://dl.fbaipublicfiles.com/detectron2/COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x/137849621/model_final_a6e10b.pkl",
        ),
        licence: LICENCE,
        upstream_accuracy: &[("box AP", 55.4), ("keypoint AP", 65.5)],
        source: "detectron2 MODEL_ZOO.md, COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml, model id 137849621, model_final_a6e10b.pkl (md5 prefix a6e10b)",
        how_to_get: HOW_TO_GET,
        shipped: false,
    },
];
