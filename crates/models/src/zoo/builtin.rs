//! The built-in zoo: the cards in `crates/models/cards/`, embedded in the binary, in catalogue
//! order (shipped models first). Adding a model to the built-in zoo is a card file and its line
//! here.

/// `(file stem, card text)` of every built-in card.
macro_rules! cards {
    ($($stem:literal),+ $(,)?) => {
        &[$(($stem, include_str!(concat!("../../cards/", $stem, ".toml")))),+]
    };
}

pub(super) static CARDS: &[(&str, &str)] = cards![
    // Shipped in ../shared/models.
    "yolox_nano",
    "nanodet_m_320",
    "nanodet_m_416",
    "fastestdet",
    "simplepose_yolox",
    "yolov8n_int8_640",
    "yolo11n_int8_320",
    "yolov8n-seg_int8_320",
    "deimv2_hgnetv2_atto_coco",
    "deimv2_hgnetv2_femto_coco",
    "d2go_fasterrcnn_fbnetv3a_int8",
    // torchvision's COCO detection models, exported by tools/gpu/export_torchvision.py.
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
    "maskrcnn_resnet50_fpn",
    "keypointrcnn_resnet50_fpn",
    // TensorFlow 2 Detection Model Zoo, converted to ONNX with tf2onnx.
    "ssd_mobilenet_v2_320x320_coco17_tpu-8",
    "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8",
    "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8",
    "efficientdet_d0_coco17_tpu-32",
    "centernet_resnet50_v1_fpn_512x512_coco17_tpu-8",
    "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8",
    // detectron2 model zoo (no pipeline yet).
    "detectron2_faster_rcnn_R_50_FPN_3x",
    "detectron2_mask_rcnn_R_50_FPN_3x",
    "detectron2_keypoint_rcnn_R_50_FPN_3x",
];
