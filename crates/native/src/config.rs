//! The native engine's settings, typed once at the edge. `detbench run` will set them from its
//! flags (phase 2); the bench binary and the tests build them directly.

use detbench_backends::{Device, Precision};
use serde::Serialize;

/// How the native engine runs a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NativeSettings {
    pub device: Device,
    pub precision: Precision,
    /// Capture each input-size bucket's forward pass as a CUDA graph (CUDA only).
    pub cuda_graphs: bool,
    /// cuDNN's fused convolution + bias + ReLU (+ residual) kernels (CUDA only).
    pub fused_conv: bool,
    /// Channels-last (NHWC) activations and weights.
    pub channels_last: bool,
    /// cuDNN's benchmark mode (off: its heuristics choose; every new bucket would re-tune).
    pub cudnn_benchmark: bool,
    /// TF32 in cuDNN convolutions at fp32 (PyTorch's default, `torch.backends.cudnn.allow_tf32`).
    pub allow_tf32: bool,
    /// Candidates per image the box head's class-wise NMS considers (past it, an image is flagged
    /// inexact unless its detections_per_img boxes were already kept).
    pub nms_capacity: usize,
    /// torchvision's own arithmetic order where the fast path changes it (BatchNorm kept apart,
    /// no merged layers, NCHW, unfused convolutions): for bitwise parity checks, not for speed.
    pub exact: bool,
}

impl NativeSettings {
    /// The defaults for a device and precision.
    pub fn new(device: Device, precision: Precision) -> Self {
        NativeSettings {
            device,
            precision,
            cuda_graphs: true,
            fused_conv: true,
            channels_last: true,
            cudnn_benchmark: false,
            allow_tf32: true,
            nms_capacity: 8192,
            exact: false,
        }
    }

    /// The settings that reproduce torchvision's arithmetic (see [`NativeSettings::exact`]).
    pub fn exact(device: Device, precision: Precision) -> Self {
        NativeSettings {
            exact: true,
            channels_last: false,
            fused_conv: false,
            ..Self::new(device, precision)
        }
    }
}
