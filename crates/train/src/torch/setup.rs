//! Process-wide libtorch settings of a run, applied once before the model loads and recorded in
//! the results (`options`): the libraries loaded at run time (CUDA, torchvision's ops, through
//! crates/backends' `runtime`), intra-op threads, deterministic algorithms, TF32, cuDNN
//! benchmark mode, and TorchScript's tensor-expression fuser (off on CUDA, as the inference
//! backend: on torch 2.11 its fused kernels fail on the second call of a scripted detector,
//! ../shared/notes/torchscript-cuda.md).

use tch::{Device, Kind};

use detbench_backends::EngineKind;
use detbench_backends::config::TORCHVISION_OPS_ENV;
use detbench_backends::torch::runtime;

use crate::config::{Precision, TrainConfig};
use crate::error::{Result, TrainError};
use crate::torch::ffi;

/// The device and settings of a run.
pub struct Engine {
    pub device: Device,
    /// The autocast dtype (amp: fp16, bf16: bf16), `None` for fp32/tf32.
    pub autocast: Option<Kind>,
    pub options: Vec<(String, String)>,
}

impl Engine {
    /// Waits for the device's queued work (nothing on the CPU).
    pub fn synchronize(&self) -> Result<()> {
        if let Device::Cuda(i) = self.device {
            std::panic::catch_unwind(|| tch::Cuda::synchronize(i as i64)).map_err(|_| {
                TrainError::Torch("CUDA synchronize failed (an earlier kernel failed)".into())
            })?;
        }
        Ok(())
    }
}

fn on_off(b: bool) -> String {
    if b { "on".into() } else { "off".into() }
}

/// Applies the settings of `config` and says what was applied.
pub fn prepare_engine(config: &TrainConfig) -> Result<Engine> {
    let mut options: Vec<(String, String)> = Vec::new();
    let device = match config.device {
        detbench_backends::Device::Cpu => Device::Cpu,
        detbench_backends::Device::Cuda(index) => {
            let cuda = runtime::ensure_cuda(config.libtorch_cuda.as_deref())?;
            if index as i64 >= cuda.device_count {
                return Err(TrainError::Config(format!(
                    "cuda:{index} was asked for, but libtorch sees {} CUDA device(s)",
                    cuda.device_count
                )));
            }
            options.push(("cuda_library".into(), cuda.library.display().to_string()));
            options.push((
                "cudnn_version".into(),
                tch::utils::version_cudnn().to_string(),
            ));
            Device::Cuda(index)
        }
    };
    let libtorch = runtime::libtorch();
    options.push((EngineKind::Torch.name().into(), libtorch.version.clone()));
    match runtime::ensure_torchvision_ops(config.torchvision_ops.as_deref())? {
        runtime::TorchvisionOps::Missing { looked_in } => {
            return Err(TrainError::Torch(format!(
                "torchvision's ops library (roi_align, nms) was not found (looked in: {looked_in}); \
                 run `scripts/setup.sh --torch` or set ${TORCHVISION_OPS_ENV}"
            )));
        }
        runtime::TorchvisionOps::Loaded(p) => {
            options.push(("torchvision_ops".into(), p.display().to_string()))
        }
        runtime::TorchvisionOps::AlreadyRegistered => {
            options.push(("torchvision_ops".into(), "registered".into()))
        }
    }
    if let Some(t) = config.threads {
        tch::set_num_threads(t as i32);
    }
    options.push((
        "intra_op_threads".into(),
        tch::get_num_threads().to_string(),
    ));
    ffi::set_deterministic(config.deterministic)?;
    options.push((
        "deterministic_algorithms".into(),
        on_off(config.deterministic),
    ));
    let tf32 = config.precision.allows_tf32();
    ffi::set_tf32(tf32, tf32);
    let (matmul, cudnn) = ffi::tf32();
    options.push(("tf32_matmul".into(), on_off(matmul)));
    options.push(("tf32_cudnn".into(), on_off(cudnn)));
    if device.is_cuda() {
        let benchmark = config.cudnn_benchmark && !config.deterministic;
        tch::Cuda::cudnn_set_benchmark(benchmark);
        options.push(("cudnn_benchmark".into(), on_off(benchmark)));
        tch::jit::f_set_tensor_expr_fuser_enabled(false)
            .map_err(|e| TrainError::Torch(e.to_string()))?;
    }
    options.push((
        "texpr_fuser".into(),
        on_off(tch::jit::get_tensor_expr_fuser_enabled()),
    ));
    let autocast = match config.precision {
        Precision::Amp => Some(Kind::Half),
        Precision::Bf16 => Some(Kind::BFloat16),
        Precision::Fp32 | Precision::Tf32 => None,
    };
    let autocast_name = match config.precision {
        Precision::Amp => "fp16",
        Precision::Bf16 => "bf16",
        Precision::Fp32 | Precision::Tf32 => "off",
    };
    options.push(("autocast".into(), autocast_name.into()));
    options.push((
        "grad_scaler".into(),
        on_off(config.precision == Precision::Amp),
    ));
    options.push(("workers".into(), config.workers.to_string()));
    options.push((
        "prefetch_batches".into(),
        (config.workers * config.prefetch).to_string(),
    ));
    Ok(Engine {
        device,
        autocast,
        options,
    })
}
