//! The one place the CLI opens a detector: a family pipeline of the model crate on ONNX Runtime
//! or libtorch, or, for `--backend native`, detbench's own engine (crate `detbench-native`),
//! which runs whole torchvision detectors and depends on the model crate (so that crate cannot
//! open it). [`check_native`] refuses what the native engine cannot run before anything runs.

use anyhow::bail;
use detbench_backends::{BackendConfig, Device, EngineKind, Precision};
use detbench_bench::{Detector, DetectorError};
use detbench_models::{OpenContext, ZooEntry};

/// Refuses, before anything runs, what the native engine cannot run: a build without it, a model
/// it does not implement, fp16 on the CPU.
pub fn check_native(entries: &[&ZooEntry], config: &BackendConfig) -> anyhow::Result<()> {
    let engine = EngineKind::Native;
    if !cfg!(feature = "cuda") {
        bail!(
            "--backend {}: this build has no {engine} engine; rebuild with `--features {}` \
             (README, \"{}\")",
            engine.cli_name(),
            engine.info().feature,
            engine.info().readme
        );
    }
    for entry in entries {
        detbench_native::supports(entry)
            .map_err(|e| anyhow::anyhow!("--backend {}: {e}", engine.cli_name()))?;
    }
    if config.device == Device::Cpu && config.precision == Precision::Fp16 {
        bail!(
            "--backend {} --precision fp16 runs on CUDA only (--device cuda); on the CPU use fp32",
            engine.cli_name()
        );
    }
    Ok(())
}

/// The detector of `entry` (its file in the context's model folder) on the engine the context's
/// configuration names: the model crate's family pipelines, or the native engine.
pub fn open(entry: &ZooEntry, ctx: &OpenContext<'_>) -> Result<Box<dyn Detector>, DetectorError> {
    if ctx.config.engine != EngineKind::Native {
        return Ok(detbench_models::open_entry(entry, ctx)?);
    }
    let path = detbench_models::model_file(entry, ctx.model_dir)?;
    Ok(Box::new(detbench_native::NativeDetector::open(
        &entry.name,
        &path,
        ctx.config,
    )?))
}
