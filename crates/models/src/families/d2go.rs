//! D2Go Faster R-CNN FBNetV3A-dsmask C4, int8 TorchScript (`d2go_fasterrcnn_fbnetv3a_int8`,
//! pytorch/android-demo-app `D2Go/ObjectDetection/app/src/main/assets/d2go.pt`), as
//! `../shared/reference/d2go_fasterrcnn_fbnetv3a/SPEC.md` specifies it:
//!
//! - input: a list holding **one** `[3, H, W]` float tensor at the original size, channels
//!   **BGR** (the traced model's `pixel_mean` is detectron2's BGR [103.53, 116.28, 123.675]),
//!   values `pixel / 255` (the wrapper multiplies by 255 and resizes the short side to 320
//!   itself);
//! - output: `(inputs, [dict(boxes, labels, scores)])`, boxes x1, y1, x2, y2 in original-image
//!   pixels, labels already COCO category ids (the wrapper's `coco_idx`), at most 100, sorted by
//!   score;
//! - post-processing: none beyond `[x1, y1, x2 - x1, y2 - y1]` in f32.
//!
//! It runs on the CPU through the libtorch engine with the **x86** quantized engine (the
//! reference's; qnnpack gives AP 0.1998 instead of 0.2126), which the torch backend pins by
//! default. The pipeline is the list-model one of [`super::torchvision`] with BGR input and a
//! batch of one image (the wrapper reads `inputs[0]` only).

use std::path::Path;

use detbench_backends::{BackendConfig, EngineKind, Precision};

use super::torchvision::{ChannelOrder, ListModelConfig, ListModelDetector};
use crate::ModelError;
use crate::zoo::ZooEntry;

/// The D2Go wrapper's input and output conventions (SPEC.md).
pub fn config() -> ListModelConfig {
    ListModelConfig {
        channel_order: ChannelOrder::Bgr,
        detections_output: "1".into(),
        masks: false,
        keypoints: false,
        mask_threshold: 0.5,
        max_batch: Some(1),
        weights_precision: Some(Precision::Int8),
        source: "../shared/reference/d2go_fasterrcnn_fbnetv3a/SPEC.md: list of one CHW float \
                 tensor, BGR, pixel / 255, original size; output (inputs, [dict(boxes, labels, \
                 scores)]) with COCO ids; quantized engine x86"
            .into(),
        export: None,
    }
}

/// Opens the D2Go pipeline on the libtorch engine (the file is TorchScript, so the engine is
/// libtorch whatever `config.engine` says).
pub fn open(
    entry: &ZooEntry,
    model_path: &Path,
    config: &BackendConfig,
) -> Result<ListModelDetector, ModelError> {
    let config = BackendConfig {
        engine: EngineKind::Torch,
        ..config.clone()
    };
    let backend = detbench_backends::open(model_path, &config)?;
    Ok(ListModelDetector::new(&entry.name, backend, self::config()))
}
