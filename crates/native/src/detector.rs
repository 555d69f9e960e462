//! The native engine as a harness [`Detector`]: decoded images in, COCO detections out, with the
//! same conversion as the torchvision family (crates/models/src/families/torchvision.rs, after
//! torchvision's references/detection/coco_eval.py): `x2 - x1` in f32 for the width, labels in
//! torchvision's 11 "N/A" slots dropped and counted, masks `> 0.5` run-length encoded.
//!
//! The engine call is the `inference` stage (upload, preprocessing on the device, the forward
//! pass, mask pasting, download); the COCO conversion is `postprocess`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, StageClock};
use detbench_eval::{Detection, IouType, labels::COCO80_TO_91};

use crate::{NativeError, NativeSettings};

/// A torchvision detector on the native engine.
pub struct NativeDetector {
    name: String,
    settings: NativeSettings,
    masks: bool,
    description: serde_json::Value,
    dropped_labels: AtomicU64,
    inexact_images: AtomicU64,
    #[cfg(feature = "cuda")]
    engine: crate::engine::NativeEngine,
}

/// The COCO category ids (torchvision's 91 label slots minus the 11 "N/A" ones).
pub fn is_coco_category(label: i64) -> bool {
    label > 0 && COCO80_TO_91.contains(&(label as u64))
}

impl NativeDetector {
    /// Opens `path` (a TorchScript file of a torchvision detector) under the zoo name `name`.
    #[cfg(feature = "cuda")]
    pub fn open(name: &str, path: &Path, settings: NativeSettings) -> Result<Self, NativeError> {
        let mut engine = crate::engine::NativeEngine::open(path, &settings)?;
        let description = engine.describe();
        let masks = description["architecture"] == "maskrcnn_resnet50_fpn";
        Ok(NativeDetector {
            name: name.to_owned(),
            settings,
            masks,
            description,
            dropped_labels: AtomicU64::new(0),
            inexact_images: AtomicU64::new(0),
            engine,
        })
    }

    /// Without the `cuda` feature there is no engine: a clear error.
    #[cfg(not(feature = "cuda"))]
    pub fn open(_name: &str, _path: &Path, _settings: NativeSettings) -> Result<Self, NativeError> {
        Err(NativeError::NotBuilt)
    }

    /// The engine, for timings and profiles.
    #[cfg(feature = "cuda")]
    pub fn engine(&mut self) -> &mut crate::engine::NativeEngine {
        &mut self.engine
    }

    /// Images so far whose NMS capacity overflowed (see [`NativeSettings::nms_capacity`]).
    pub fn inexact_images(&self) -> u64 {
        self.inexact_images.load(Ordering::Relaxed)
    }

    #[cfg(feature = "cuda")]
    fn convert(
        &self,
        found: &crate::engine::ImageDetections,
        input: &ImageInput<'_>,
    ) -> Vec<Detection> {
        if found.inexact {
            self.inexact_images.fetch_add(1, Ordering::Relaxed);
        }
        let mut out = Vec::with_capacity(found.scores.len());
        for (k, [x1, y1, x2, y2]) in found.boxes.iter().copied().enumerate() {
            if !is_coco_category(found.labels[k]) {
                self.dropped_labels.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let mask = found
                .masks
                .get(k)
                .map(|bits| crate::rle::encode_bits(bits, input.image.height, input.image.width));
            out.push(Detection {
                image_id: input.image_id,
                category_id: found.labels[k] as u64,
                bbox: [x1 as f64, y1 as f64, (x2 - x1) as f64, (y2 - y1) as f64],
                score: found.scores[k] as f64,
                mask,
                keypoints: None,
            });
        }
        out
    }
}

impl Detector for NativeDetector {
    fn name(&self) -> &str {
        &self.name
    }

    fn batch_support(&self) -> BatchSupport {
        BatchSupport::Dynamic { max: None }
    }

    fn iou_types(&self) -> Vec<IouType> {
        if self.masks {
            vec![IouType::Bbox, IouType::Segm]
        } else {
            vec![IouType::Bbox]
        }
    }

    fn provenance(&self) -> serde_json::Value {
        serde_json::json!({
            "pipeline": "torchvision 0.26 GeneralizedRCNNTransform + eval post-processing, rebuilt by detbench's native engine (crates/native)",
            "settings": self.settings,
            "engine": self.description,
            "dropped_non_coco_labels": self.dropped_labels.load(Ordering::Relaxed),
            "inexact_images": self.inexact_images(),
        })
    }

    #[cfg(feature = "cuda")]
    fn detect(
        &mut self,
        batch: &[ImageInput<'_>],
        clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        use detbench_bench::Stage;
        let images: Vec<_> = batch.iter().map(|input| input.image).collect();
        let found = clock.time(Stage::Inference, || self.engine.detect(&images))?;
        Ok(clock.time(Stage::Postprocess, || {
            found
                .iter()
                .zip(batch)
                .map(|(f, input)| self.convert(f, input))
                .collect()
        }))
    }

    #[cfg(not(feature = "cuda"))]
    fn detect(
        &mut self,
        _batch: &[ImageInput<'_>],
        _clock: &mut StageClock,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        Err(Box::new(NativeError::NotBuilt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_coco_ids_are_categories() {
        assert!(is_coco_category(1) && is_coco_category(90));
        for na in [0, 12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91] {
            assert!(!is_coco_category(na), "{na}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_opening_says_how_to_build() {
        let settings = NativeSettings::new(
            detbench_backends::Device::Cpu,
            detbench_backends::Precision::Fp32,
        );
        let err = NativeDetector::open("x", Path::new("x.pt"), settings)
            .err()
            .unwrap();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
