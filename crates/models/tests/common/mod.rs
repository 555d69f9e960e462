//! Test helpers: the reference parity files (`../shared/reference/<model>/parity/`) and result
//! files, read through detbench-assets.
#![allow(dead_code)]

use std::path::PathBuf;

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
