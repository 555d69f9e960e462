//! Bad input gets a clear error of the right kind, no panic: a file that is no known detector, an
//! unsupported precision, CUDA asked for where there is none, a missing model file.
#![cfg(feature = "cuda")]

use std::path::Path;

mod common;

use common::config;
use detbench_backends::{Device, Precision};
use detbench_native::NativeError;
use detbench_native::engine::NativeEngine;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

#[test]
fn an_unknown_architecture_is_named() {
    let err = NativeEngine::open(
        &fixture("not_a_detector.pt"),
        &config(Device::Cpu, Precision::Fp32),
    )
    .err()
    .unwrap();
    match err {
        NativeError::UnknownArchitecture(message) => {
            assert!(
                message.contains("torch.nn.modules.linear.Linear"),
                "{message}"
            );
            assert!(message.contains("fasterrcnn_resnet50_fpn"), "{message}");
        }
        other => panic!("expected UnknownArchitecture, got {other:?}"),
    }
}

#[test]
fn fp16_on_the_cpu_is_refused() {
    let err = NativeEngine::open(
        &fixture("not_a_detector.pt"),
        &config(Device::Cpu, Precision::Fp16),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, NativeError::UnsupportedPrecision(m) if m.contains("CUDA only")),
        "{err:?}"
    );
}

#[test]
fn cuda_without_a_device_says_so() {
    if std::path::Path::new("/dev/nvidia0").exists() {
        return; // a GPU machine: nothing to refuse
    }
    let err = NativeEngine::open(
        &fixture("not_a_detector.pt"),
        &config(Device::Cuda(0), Precision::Fp16),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, NativeError::CudaLibrary(m) if m.contains("no CUDA device")),
        "{err:?}"
    );
}

#[test]
fn a_missing_model_file_is_named() {
    let err = NativeEngine::open(
        Path::new("/nonexistent/model.pt"),
        &config(Device::Cpu, Precision::Fp32),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, NativeError::ModelFile(m) if m.contains("/nonexistent/model.pt")),
        "{err:?}"
    );
}
