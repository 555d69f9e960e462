//! detbench's own engine for torchvision's detectors (issue 15): Faster R-CNN, Mask R-CNN and
//! RetinaNet R50-FPN (v1) rebuilt on ATen from the same TorchScript files the `torch` backend
//! runs, with BatchNorm folded into the convolutions, channels-last fp16/fp32 convolutions (cuDNN,
//! fused with bias and ReLU), the whole forward pass captured as one CUDA graph per input-size
//! bucket, and NVRTC-compiled kernels for NMS, RoIAlign and mask pasting that keep every count on
//! the device: one host synchronisation per call. The same C++ runs on the CPU without graphs,
//! which is how CI proves it equals torchvision.
//!
//! * the engine's settings are [`NativeSettings`] in `detbench-backends` (beside the other
//!   engines', in [`detbench_backends::BackendConfig`]); [`ARCHITECTURES`] are the models it runs;
//! * [`NativeError`]: what can go wrong, by kind;
//! * [`rle`]: COCO run-length encoding straight from the engine's mask bit planes;
//! * `engine` (feature `cuda`): the engine behind a safe handle ([`engine::NativeEngine`]);
//! * [`detector`]: the engine as a harness [`detbench_bench::Detector`].
//!
//! The C++ lives in `cpp/`; build.rs turns it into a shared library that is embedded in the
//! binary and loaded at run time, after libtorch's CUDA half (`ffi`).

pub mod detector;
#[cfg(feature = "cuda")]
pub mod engine;
mod error;
#[cfg(feature = "cuda")]
mod ffi;
pub mod rle;

pub use detbench_backends::{NativeMode, NativeSettings};
pub use detector::{ARCHITECTURES, NativeDetector, supports};
pub use error::NativeError;
