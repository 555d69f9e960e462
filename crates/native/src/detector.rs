//! The native engine as a harness [`Detector`]: decoded images in, COCO detections out, with the
//! same conversion as the torchvision family (crates/models/src/families/torchvision.rs, after
//! torchvision's references/detection/coco_eval.py): `x2 - x1` in f32 for the width, labels in
//! torchvision's 11 "N/A" slots dropped and counted, masks `> 0.5` run-length encoded.
//!
//! The engine call is the `inference` stage (upload, preprocessing on the device, the forward
//! pass, mask pasting, download); the COCO conversion is `postprocess`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use detbench_backends::{BackendConfig, BackendDescription};
use detbench_bench::{BatchSupport, Detector, DetectorError, ImageInput, StageClock};
use detbench_eval::{Detection, IouType};
#[cfg(feature = "cuda")]
use detbench_models::families::torchvision::is_coco_category;
use detbench_models::{Family, ZooEntry};

use crate::NativeError;

/// The zoo names (torchvision builders) of the architectures the engine implements.
pub const ARCHITECTURES: [&str; 3] = [
    "fasterrcnn_resnet50_fpn",
    "maskrcnn_resnet50_fpn",
    "retinanet_resnet50_fpn",
];

/// Whether the engine runs a catalogued model: a torchvision detector of [`ARCHITECTURES`]. The
/// error names the model and what the engine runs (checked before a run; the engine also
/// recognises the architecture in the file itself when it opens it).
pub fn supports(entry: &ZooEntry) -> Result<(), NativeError> {
    if entry.family == Family::TorchvisionDetection && ARCHITECTURES.contains(&entry.name.as_str())
    {
        return Ok(());
    }
    Err(NativeError::UnknownArchitecture(format!(
        "the native engine does not run `{}` ({} family): it runs torchvision's {}; use --backend \
         {} or {} for the others",
        entry.name,
        entry.family,
        ARCHITECTURES.join(", "),
        detbench_backends::EngineKind::Torch.cli_name(),
        detbench_backends::EngineKind::Ort.cli_name(),
    )))
}

/// A torchvision detector on the native engine.
pub struct NativeDetector {
    name: String,
    masks: bool,
    backend: BackendDescription,
    description: serde_json::Value,
    /// The export that made the model file (`export_manifest.json` beside it), when known.
    export: Option<serde_json::Value>,
    dropped_labels: AtomicU64,
    inexact_images: AtomicU64,
    #[cfg(feature = "cuda")]
    engine: crate::engine::NativeEngine,
}

impl NativeDetector {
    /// Opens `path` (a TorchScript file of a torchvision detector) under the zoo name `name`, with
    /// the device, precision and native settings of `config` (`config.engine` is not read).
    #[cfg(feature = "cuda")]
    pub fn open(name: &str, path: &Path, config: &BackendConfig) -> Result<Self, NativeError> {
        let threads = crate::engine::set_threads(config.threads);
        let mut engine = crate::engine::NativeEngine::open(path, config)?;
        let description = engine.describe();
        let masks = description["architecture"] == "maskrcnn_resnet50_fpn";
        Ok(NativeDetector {
            name: name.to_owned(),
            masks,
            backend: crate::engine::describe_backend(config, threads, &description),
            description,
            export: detbench_models::families::torchvision::export_record(path),
            dropped_labels: AtomicU64::new(0),
            inexact_images: AtomicU64::new(0),
            engine,
        })
    }

    /// Without the `cuda` feature there is no engine: a clear error.
    #[cfg(not(feature = "cuda"))]
    pub fn open(_name: &str, _path: &Path, _config: &BackendConfig) -> Result<Self, NativeError> {
        Err(NativeError::NotBuilt)
    }

    /// The engine, for timings and profiles.
    #[cfg(feature = "cuda")]
    pub fn engine(&mut self) -> &mut crate::engine::NativeEngine {
        &mut self.engine
    }

    /// Images so far whose NMS capacity overflowed (see [`detbench_backends::NativeSettings::nms_capacity`]).
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
            "engine": self.description,
            "export": self.export,
            "dropped_non_coco_labels": self.dropped_labels.load(Ordering::Relaxed),
            "inexact_images": self.inexact_images(),
        })
    }

    fn backend(&self) -> Option<BackendDescription> {
        Some(self.backend.clone())
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

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_opening_says_how_to_build() {
        let err = NativeDetector::open("x", Path::new("x.pt"), &BackendConfig::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }

    #[test]
    fn only_the_three_architectures_are_supported() {
        for name in ARCHITECTURES {
            supports(detbench_models::entry(name).unwrap()).unwrap();
        }
        let ssd = detbench_models::entry("ssd300_vgg16").unwrap();
        let err = supports(ssd).unwrap_err();
        assert!(
            matches!(err, NativeError::UnknownArchitecture(_)),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("`ssd300_vgg16`"), "{message}");
        assert!(message.contains("retinanet_resnet50_fpn"), "{message}");
        let yolox = detbench_models::entry("yolox_nano").unwrap();
        assert!(
            supports(yolox)
                .unwrap_err()
                .to_string()
                .contains("Yolox family")
        );
    }
}
