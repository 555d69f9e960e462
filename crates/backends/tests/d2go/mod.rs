//! Shared by the libtorch backend tests: the shipped D2Go model, its reference parity tensors
//! (one file per quantized engine) and one call of the model.
#![allow(dead_code)]

use std::path::PathBuf;

use detbench_backends::{BackendConfig, EngineKind, QuantizedEngine, Tensor, TorchSettings, Value};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

pub const D2GO: &str = "d2go_fasterrcnn_fbnetv3a_int8.pt";
pub const D2GO_REFERENCE: &str = "d2go_fasterrcnn_fbnetv3a";

pub fn model(file: &str) -> PathBuf {
    detbench_assets::shared::models().unwrap().join(file)
}

pub fn torch_cpu() -> BackendConfig {
    BackendConfig {
        engine: EngineKind::Torch,
        threads: Some(2),
        ..Default::default()
    }
}

/// [`torch_cpu`] with another quantized engine (a process-wide setting: one per test binary).
pub fn torch_cpu_with(quantized_engine: QuantizedEngine) -> BackendConfig {
    BackendConfig {
        torch: TorchSettings {
            quantized_engine,
            ..TorchSettings::default()
        },
        ..torch_cpu()
    }
}

/// The reference tensors of one parity image for a quantized engine (`x86` or `qnnpack`).
pub fn parity(image: &str, engine: &str) -> NpzReader<std::fs::File> {
    let path = detbench_assets::shared::reference()
        .unwrap()
        .join(D2GO_REFERENCE)
        .join("parity")
        .join(format!("{image}_{engine}.npz"));
    NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap()
}

pub fn array_f32(npz: &mut NpzReader<std::fs::File>, name: &str) -> ArrayD<f32> {
    npz.by_name(&format!("{name}.npy")).unwrap()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The D2Go outputs for one parity image: (boxes, scores, labels) of the single result dict.
pub fn run_d2go(
    backend: &mut dyn detbench_backends::Backend,
    input: &ArrayD<f32>,
) -> (Tensor, Tensor, Tensor) {
    let image = Tensor::f32(input.shape().to_vec(), input.iter().copied().collect());
    let outputs = backend
        .run(vec![(
            "inputs".into(),
            Value::List(vec![Value::Tensor(image)]),
        )])
        .unwrap();
    // The wrapper returns (inputs, [dict(boxes, labels, scores)]).
    let echoed = outputs.get("0").unwrap();
    assert!(matches!(echoed, Value::List(items) if items.len() == 1));
    let Value::List(results) = outputs.get("1").unwrap() else {
        panic!("output 1 is not a list")
    };
    assert_eq!(results.len(), 1);
    let dict = &results[0];
    let get = |key: &str| {
        dict.dict_get(key)
            .and_then(Value::as_tensor)
            .unwrap()
            .clone()
    };
    (get("boxes"), get("scores"), get("labels"))
}

/// CPUs with AVX512-VNNI: there, PyTorch's int8 x86/fbgemm kernels give other outputs than the
/// reference's (measured on an AVX-512 VNNI EPYC: 16 instead of 17 boxes on 000000000139, scores
/// off by up to 0.4, 2.6% of the subset's detections matched, AP 0.2141 against 0.2126). The
/// likely cause: VNNI's `vpdpbusd` accumulates without the int16 saturation of the AVX2 path
/// (`vpmaddubsw`) on which the reference ran. qnnpack's kernels do not depend on it.
pub fn cpu_has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs the three parity images' reference input tensors through `backend` and compares the
/// outputs with the reference's for `engine`: the box count and the labels must be equal.
/// Returns (image, max |box difference| in px, max |score difference|) per image.
pub fn compare_with_reference(
    backend: &mut dyn detbench_backends::Backend,
    engine: &str,
) -> Vec<(&'static str, f32, f32)> {
    let mut differences = Vec::new();
    for image in ["000000000139", "000000000802", "000000005001"] {
        let mut npz = parity(image, engine);
        let input = array_f32(&mut npz, "input_chw_bgr_0_1");
        let want_boxes = array_f32(&mut npz, "boxes");
        let want_scores = array_f32(&mut npz, "scores");
        let want_labels: ArrayD<i64> = npz.by_name("labels.npy").unwrap();

        let (boxes, scores, labels) = run_d2go(backend, &input);
        assert_eq!(boxes.shape, want_boxes.shape(), "{image}: box count");
        assert_eq!(
            labels.as_i64().unwrap(),
            want_labels.as_slice().unwrap(),
            "{image}: labels"
        );
        let box_diff = max_abs_diff(boxes.as_f32().unwrap(), want_boxes.as_slice().unwrap());
        let score_diff = max_abs_diff(scores.as_f32().unwrap(), want_scores.as_slice().unwrap());
        eprintln!(
            "{engine} {image}: max |box diff| {box_diff:e} px, max |score diff| {score_diff:e}"
        );
        differences.push((image, box_diff, score_diff));
    }
    differences
}
