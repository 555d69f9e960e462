//! Test helpers: the reference parity files (`../shared/reference/<model>/parity/`) and result
//! files, read through detbench-assets.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use detbench_backends::{Outputs, Tensor, Value};
use detbench_eval::Detection;
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

/// The three parity images of the detection models.
pub const PARITY_IMAGES: [&str; 3] = ["000000000139", "000000000802", "000000005001"];

pub fn reference_dir(model: &str) -> PathBuf {
    detbench_assets::shared::reference().unwrap().join(model)
}

/// One parity record: the `.npz` tensors and the `.json` metadata.
pub struct Parity {
    pub npz: NpzReader<std::fs::File>,
    pub json: serde_json::Value,
}

pub fn parity(model: &str, stem: &str) -> Parity {
    let dir = reference_dir(model).join("parity");
    let npz_path = dir.join(format!("{stem}.npz"));
    let json_path = dir.join(format!("{stem}.json"));
    Parity {
        npz: NpzReader::new(std::fs::File::open(&npz_path).unwrap()).unwrap(),
        json: serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap(),
    }
}

impl Parity {
    pub fn array(&mut self, key: &str) -> ArrayD<f32> {
        self.npz
            .by_name(key)
            .unwrap_or_else(|e| panic!("parity key {key}: {e}"))
    }

    pub fn tensor(&mut self, key: &str) -> Tensor {
        let a = self.array(key);
        Tensor::f32(a.shape().to_vec(), a.into_raw_vec_and_offset().0)
    }

    /// Outputs named as the model names them, from parity keys `out_<i>_<name>`.
    pub fn outputs(&mut self, names: &[&str]) -> Outputs {
        Outputs(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    (
                        name.to_string(),
                        Value::Tensor(self.tensor(&format!("out_{i}_{name}"))),
                    )
                })
                .collect(),
        )
    }

    pub fn image_id(&self) -> u64 {
        self.json["image_id"].as_u64().unwrap()
    }

    /// (width, height) of the original image.
    pub fn size(&self) -> (usize, usize) {
        let hw = self.json["orig_hw"].as_array().unwrap();
        (
            hw[1].as_u64().unwrap() as usize,
            hw[0].as_u64().unwrap() as usize,
        )
    }

    pub fn detections(&self) -> Vec<Detection> {
        serde_json::from_value(self.json["detections"].clone()).unwrap()
    }
}

/// Asserts two detection lists are identical, entry by entry, with a readable message.
pub fn assert_same_detections(got: &[Detection], want: &[Detection], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: detection count");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: detection {k}");
    }
}

/// Opens the shipped Ultralytics export at `path` on ONNX Runtime with 2 threads and returns
/// the engine with the configuration detbench reads from the file itself (no card).
pub fn open_ultralytics(
    path: &Path,
) -> (
    Box<dyn detbench_backends::Backend>,
    detbench_models::families::ultralytics::UltralyticsConfig,
) {
    let engine = detbench_backends::BackendConfig {
        threads: Some(2),
        ..Default::default()
    };
    let backend = detbench_backends::open(path, &engine).unwrap();
    let detbench_models::autoconfig::AutoConfig::Ultralytics { config, .. } =
        detbench_models::autoconfig::autoconfigure(path, backend.inputs(), backend.outputs())
            .unwrap()
    else {
        panic!("{} is an Ultralytics export", path.display())
    };
    (backend, config)
}

/// Runs `detector` over the images of the shipped subset that `annotations` lists, one image a
/// call, and returns one evaluation summary per IoU type, in the order asked for.
pub fn evaluate_subset(
    detector: &mut dyn detbench_bench::Detector,
    annotations: &Path,
    iou_types: &[detbench_eval::IouType],
) -> Vec<detbench_eval::EvalSummary> {
    use detbench_eval::{EvalParams, Evaluator, GroundTruth};
    let data = detbench_bench::dataset::Dataset::coco(
        &detbench_assets::shared::coco_images().unwrap(),
        annotations,
        None,
    )
    .unwrap();
    let gt = std::sync::Arc::new(GroundTruth::load(annotations).unwrap());
    let mut evaluators: Vec<Evaluator> = iou_types
        .iter()
        .map(|&t| Evaluator::new(gt.clone(), EvalParams::new(t)).unwrap())
        .collect();
    let mut clock = detbench_bench::StageClock::new();
    for image in &data.images {
        let bgr = detbench_imgproc::decode_file(&image.path).unwrap();
        let input = detbench_bench::ImageInput {
            image_id: image.id,
            image: &bgr,
        };
        let dets = detector.detect(&[input], &mut clock).unwrap();
        for evaluator in &mut evaluators {
            evaluator.add_image(image.id, &dets[0]).unwrap();
        }
    }
    evaluators
        .into_iter()
        .map(|e| e.finish().unwrap())
        .collect()
}
