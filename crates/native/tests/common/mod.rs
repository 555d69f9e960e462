//! What the native engine's integration tests share.

use detbench_backends::{BackendConfig, Device, EngineKind, Precision};

/// The native engine on `device` at `precision`, with the defaults and the environment's
/// libtorch library paths (`$DETBENCH_LIBTORCH_CUDA`, `$DETBENCH_TORCHVISION_OPS`).
pub fn config(device: Device, precision: Precision) -> BackendConfig {
    BackendConfig {
        engine: EngineKind::Native,
        device,
        precision,
        torch: detbench_backends::TorchSettings::from_env().unwrap(),
        ..BackendConfig::default()
    }
}
