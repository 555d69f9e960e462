//! A few models of the TensorFlow 2 Detection Model Zoo. They are distributed as SavedModels in
//! `.tar.gz` archives; detbench runs them after conversion to ONNX with tf2onnx (the
//! `Tf2ObjectDetection` family reads the exported graph's detection outputs). Names, download
//! URLs and COCO mAP come from the zoo's table: tensorflow/models @
//! 302a80d791b6b862b034eff6e5cc7d47322a349f : research/object_detection/g3doc/tf2_detection_zoo.md.

use detbench_eval::IouType;

use super::{Family, ModelFormat, Sha256, ZooEntry};

const SOURCE: &str = "TensorFlow 2 Detection Model Zoo: tensorflow/models @ 302a80d791b6b862b034eff6e5cc7d47322a349f : research/object_detection/g3doc/tf2_detection_zoo.md";

/// One entry; `$name` is the official model name (the archive's stem).
macro_rules! tf2_entry {
    ($name:literal, $input:literal, $map:expr) => {
        ZooEntry {
            name: $name,
            family: Family::Tf2ObjectDetection,
            iou_types: &[IouType::Bbox],
            // The exported graph takes the whole image and resizes it inside.
            input_size: None,
            input: $input,
            file_name: concat!($name, ".onnx"),
            format: ModelFormat::Other("TF2 SavedModel"),
            sha256: Sha256::Unknown,
            url: Some(concat!(
                "http://download.tensorflow.org/models/object_detection/tf2/20200711/",
                $name,
                ".tar.gz"
            )),
            licence: "Apache-2.0",
            upstream_accuracy: &[("box AP", $map)],
            source: SOURCE,
            how_to_get: concat!(
                "download http://download.tensorflow.org/models/object_detection/tf2/20200711/",
                $name,
                ".tar.gz and extract it; convert with `pip install tensorflow tf2onnx` then `python -m tf2onnx.convert --saved-model ",
                $name,
                "/saved_model --output ",
                $name,
                ".onnx --opset 13`; put ",
                $name,
                ".onnx in the models folder (or pass --model-dir)"
            ),
            shipped: false,
        }
    };
}

pub(super) static ENTRIES: &[ZooEntry] = &[
    tf2_entry!(
        "ssd_mobilenet_v2_320x320_coco17_tpu-8",
        "uint8 [1,H,W,3] RGB whole image; resized to 320x320 inside the graph",
        20.2
    ),
    tf2_entry!(
        "ssd_mobilenet_v1_fpn_640x640_coco17_tpu-8",
        "uint8 [1,H,W,3] RGB whole image; resized to 640x640 inside the graph",
        29.1
    ),
    tf2_entry!(
        "ssd_mobilenet_v2_fpnlite_320x320_coco17_tpu-8",
        "uint8 [1,H,W,3] RGB whole image; resized to 320x320 inside the graph",
        22.2
    ),
    tf2_entry!(
        "efficientdet_d0_coco17_tpu-32",
        "uint8 [1,H,W,3] RGB whole image; resized to 512x512 inside the graph",
        33.6
    ),
    tf2_entry!(
        "centernet_resnet50_v1_fpn_512x512_coco17_tpu-8",
        "uint8 [1,H,W,3] RGB whole image; resized to 512x512 inside the graph",
        31.2
    ),
    tf2_entry!(
        "faster_rcnn_resnet50_v1_640x640_coco17_tpu-8",
        "uint8 [1,H,W,3] RGB whole image; resized to 640x640 inside the graph",
        29.3
    ),
];
