//! A missing CUDA library is named, with how to point to it (a process of its own: the engine
//! library is loaded once per process).
#![cfg(feature = "cuda")]

use std::path::Path;

mod common;

use common::config;
use detbench_backends::{Device, Precision};
use detbench_native::NativeError;
use detbench_native::engine::NativeEngine;

#[test]
fn a_missing_libtorch_cuda_is_named() {
    // SAFETY: set before any thread of this test process reads the environment.
    unsafe { std::env::set_var("DETBENCH_LIBTORCH_CUDA", "/nonexistent/libtorch_cuda.so") };
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/not_a_detector.pt");
    let err = NativeEngine::open(&model, &config(Device::Cpu, Precision::Fp32))
        .err()
        .unwrap();
    match err {
        NativeError::CudaLibrary(message) => {
            assert!(
                message.contains("/nonexistent/libtorch_cuda.so"),
                "{message}"
            );
            assert!(message.contains("DETBENCH_LIBTORCH_CUDA"), "{message}");
        }
        other => panic!("expected CudaLibrary, got {other:?}"),
    }
}
