//! The libtorch engine (cargo feature `torch`), through the `tch` crate: TorchScript models on
//! the CPU or a CUDA device, in fp32 or fp16.
//!
//! * Loading: `torch::jit::load` on the CPU, eval mode, then `module.to(device, dtype)`, which
//!   moves parameters and buffers only, as `model.to("cuda")` in Python. (Loading straight onto
//!   the device, `torch.jit.load(map_location=...)`, would also move tensor *attributes* such as
//!   SSD's `DefaultBoxGenerator._wh_pairs`, which the model combines with CPU tensors: "Expected
//!   all tensors to be on the same device".) fp16 converts the parameters and buffers to half
//!   (`model.half()`) and every float input tensor too.
//! * Inputs are positional, in the order given; `Value::List` of tensors becomes a
//!   `List[Tensor]` (torchvision and D2Go detection models take a list of CHW images, one per
//!   image of the batch). Outputs come back on the host, named "0", "1", ... after the
//!   elements of a returned tuple (a single non-tuple result is "0").
//! * Timing: `run` synchronises the CUDA device after the forward pass and copies every output to
//!   host memory before returning (`run_selected`: only the outputs named), so a clock read
//!   around it measures the whole inference. It runs under `NoGradGuard` (no autograd graph), or
//!   under `torch.inference_mode()` with [`GradMode::Inference`].
//! * CUDA settings: cuDNN benchmark mode on unless [`TorchSettings::cudnn_benchmark`](crate::TorchSettings::cudnn_benchmark) is off;
//!   TorchScript's tensor-expression fuser (NNC) off,
//!   because on torch 2.11 the kernel it fuses for scripted detection models fails on the
//!   second call with "Global alloc not supported yet" (../shared/notes/torchscript-cuda.md).
//! * CPU settings: the quantized engine is pinned (default `x86`, PyTorch's default on x86-64
//!   and what the reference pipelines used; [`TorchSettings::quantized_engine`](crate::TorchSettings::quantized_engine) selects
//!   another), and the intra-op thread count follows [`BackendConfig::threads`].
//! * Graph executor: [`TorchSettings::executor`](crate::TorchSettings::executor) ([`TorchExecutor`]).
//!
//! Every setting comes from [`BackendConfig`] (the CLI fills it; [`TorchSettings::from_env`](crate::TorchSettings::from_env) is
//! the environment fallback); nothing here reads the environment. Every such setting is recorded in [`Backend::describe`]'s options. The libraries loaded at
//! run time (CUDA, torchvision ops) are explained in [`runtime`].

pub mod runtime;
mod values;

use std::path::Path;

use tch::{CModule, Device as TchDevice, IValue, Kind};

use crate::{
    Backend, BackendConfig, BackendDescription, BackendError, Device, EngineKind, GradMode, IoSpec,
    Outputs, Precision, TorchExecutor,
};

const ENGINE: EngineKind = EngineKind::Torch;

/// One TorchScript module loaded on one device.
pub struct TorchBackend {
    module: CModule,
    device: TchDevice,
    half: bool,
    /// `false` for [`TorchExecutor::NoOptimize`]. libtorch keeps this setting per thread and
    /// reads it when a method is first planned, so `run` sets it on the calling thread.
    optimize_graphs: bool,
    /// `true`: calls run under `torch.inference_mode()`; `false`: under `torch.no_grad()`.
    inference_mode: bool,
    description: BackendDescription,
}

/// Engine options recorded in the backend's description, in the order they are set.
type Options = Vec<(String, String)>;

/// Opens a TorchScript file with the settings of `config` (see the module documentation).
pub fn open(path: &Path, config: &BackendConfig) -> Result<TorchBackend, BackendError> {
    let settings = &config.torch;
    let mut options = Options::new();
    // CUDA must be loaded before anything asks libtorch about it (runtime::ensure_cuda).
    let device = select_device(config, &mut options)?;
    let half = match config.precision {
        Precision::Fp32 => false,
        Precision::Fp16 if device.is_cuda() => true,
        Precision::Fp16 => {
            return Err(BackendError::Unsupported(
                "libtorch fp16 runs on CUDA only (--device cuda); on the CPU use fp32".into(),
            ));
        }
        Precision::Int8 => {
            return Err(BackendError::Unsupported(
                "int8 is a property of a quantized model file, not an engine precision; ask \
                 for fp32 (a quantized model runs its int8 kernels as it is)"
                    .into(),
            ));
        }
    };
    let libtorch = runtime::libtorch();
    // Keyed by the engine's name: the libtorch folder.
    options.push((ENGINE.name().into(), libtorch.lib_dir.display().to_string()));
    let threads = apply_cpu_settings(config, &mut options)?;
    let ops = runtime::ensure_torchvision_ops(settings.torchvision_ops.as_deref())
        .map_err(|e| unavailable(e.to_string()))?;
    options.push(("torchvision_ops".into(), ops.describe()));
    let optimize_graphs = apply_executor(settings.executor).map_err(|e| load_error(path, e))?;
    options.push((
        "grad_mode".into(),
        grad_mode_name(settings.grad_mode).into(),
    ));
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(settings.cudnn_benchmark);
        options.push((
            "cudnn_benchmark".into(),
            on_off(settings.cudnn_benchmark).into(),
        ));
        tch::jit::f_set_tensor_expr_fuser_enabled(false).map_err(|e| load_error(path, e))?;
    }
    options.push((
        "texpr_fuser".into(),
        on_off(tch::jit::get_tensor_expr_fuser_enabled()).into(),
    ));
    options.push((
        "profiling_executor".into(),
        on_off(tch::jit::get_profiling_mode()).into(),
    ));
    options.push((
        "graph_executor_optimize".into(),
        on_off(optimize_graphs).into(),
    ));
    let module = load_module(path, device, half, ops, &mut options)?;
    Ok(TorchBackend {
        module,
        device,
        half,
        optimize_graphs,
        inference_mode: settings.grad_mode == GradMode::Inference,
        description: BackendDescription {
            engine: ENGINE,
            engine_version: libtorch.version.clone(),
            device: config.device,
            precision: config.precision,
            threads: Some(threads),
            options,
        },
    })
}

/// The libtorch device for `config.device`; on CUDA, loads CUDA and records its libraries.
fn select_device(config: &BackendConfig, options: &mut Options) -> Result<TchDevice, BackendError> {
    let Device::Cuda(index) = config.device else {
        return Ok(TchDevice::Cpu);
    };
    let cuda = runtime::ensure_cuda(config.torch.libtorch_cuda.as_deref())
        .map_err(|e| unavailable(e.to_string()))?;
    if index as i64 >= cuda.device_count {
        return Err(unavailable(format!(
            "cuda:{index} was asked for, but libtorch sees {} CUDA device(s)",
            cuda.device_count
        )));
    }
    options.push(("cuda_library".into(), cuda.library.display().to_string()));
    options.push((
        "cuda_runtime_version".into(),
        tch::utils::version_cudart().to_string(),
    ));
    options.push((
        "cudnn_version".into(),
        tch::utils::version_cudnn().to_string(),
    ));
    Ok(TchDevice::Cuda(index))
}

/// Intra-op threads and the quantized engine (process-wide settings); returns the thread count
/// libtorch runs with.
fn apply_cpu_settings(
    config: &BackendConfig,
    options: &mut Options,
) -> Result<usize, BackendError> {
    if let Some(threads) = config.threads {
        tch::set_num_threads(threads as i32);
    }
    let threads = tch::get_num_threads();
    options.push(("intra_op_threads".into(), threads.to_string()));
    let qengine = config.torch.quantized_engine;
    runtime::set_quantized_engine(qengine)
        .map_err(|e| BackendError::Unsupported(format!("quantized engine `{qengine}`: {e}")))?;
    options.push(("quantized_engine".into(), runtime::quantized_engine()));
    Ok(threads.max(0) as usize)
}

/// Applies the graph executor setting; returns whether graphs are optimised.
fn apply_executor(executor: TorchExecutor) -> Result<bool, tch::TchError> {
    match executor {
        TorchExecutor::Profiling => Ok(true),
        TorchExecutor::NoProfiling => tch::jit::f_set_profiling_mode(false).map(|()| true),
        TorchExecutor::NoOptimize => Ok(false),
    }
}

/// The name the run records for the autograd mode.
fn grad_mode_name(mode: GradMode) -> &'static str {
    match mode {
        GradMode::NoGrad => "no_grad",
        GradMode::Inference => "inference_mode",
    }
}

/// Loads the module on the CPU in eval mode, then moves it to `device` (see the module
/// documentation for why not straight onto the device).
fn load_module(
    path: &Path,
    device: TchDevice,
    half: bool,
    ops: &runtime::TorchvisionOps,
    options: &mut Options,
) -> Result<CModule, BackendError> {
    let mut module = CModule::load_on_device(path, TchDevice::Cpu).map_err(|e| {
        let mut reason = e.to_string();
        if let runtime::TorchvisionOps::Missing { looked_in } = ops
            && reason.contains("torchvision::")
        {
            reason.push_str(&format!(
                "\n(torchvision's ops library was not found; looked in: {looked_in}. Run \
                 `scripts/setup.sh --torch`, or set ${}=/path/to/torchvision/_C.so)",
                crate::config::TORCHVISION_OPS_ENV
            ));
        }
        BackendError::Load {
            engine: ENGINE,
            path: path.display().to_string(),
            reason,
        }
    })?;
    module.f_set_eval().map_err(|e| load_error(path, e))?;
    if device.is_cuda() {
        // tch's `to` always names a dtype; libtorch's Module::to applies it to every parameter
        // and buffer (integer ones too, e.g. BatchNorm's unused `num_batches_tracked`).
        let kind = if half { Kind::Half } else { Kind::Float };
        catch_torch_panic(|| module.to(device, kind, false)).map_err(|reason| {
            BackendError::Load {
                engine: ENGINE,
                path: path.display().to_string(),
                reason: format!("moving the module to {device:?} as {kind:?}: {reason}"),
            }
        })?;
        runtime::keep_large_buffers_resident();
        options.push((
            "malloc".into(),
            "mmap off, trim off (output buffers reuse resident memory)".into(),
        ));
    }
    Ok(module)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn unavailable(reason: String) -> BackendError {
    BackendError::EngineUnavailable {
        engine: ENGINE,
        reason,
    }
}

fn load_error(path: &Path, e: tch::TchError) -> BackendError {
    BackendError::Load {
        engine: ENGINE,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Runs a tch call that has no fallible variant (it panics on a libtorch error) and returns the
/// panic's message as the error.
fn catch_torch_panic(work: impl FnOnce()) -> Result<(), BackendError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .map_err(|panic| BackendError::Run(detbench_assets::panic_message(panic.as_ref())))
}

impl TorchBackend {
    /// Waits for every kernel queued on the model's CUDA device (nothing on the CPU). An
    /// asynchronous kernel failure surfaces here, as an error of this call.
    fn synchronize(&self) -> Result<(), BackendError> {
        if let TchDevice::Cuda(index) = self.device {
            catch_torch_panic(|| tch::Cuda::synchronize(index as i64))?;
        }
        Ok(())
    }
}

impl Backend for TorchBackend {
    fn describe(&self) -> BackendDescription {
        self.description.clone()
    }

    /// TorchScript declares no input shapes; inputs are positional.
    fn inputs(&self) -> &[IoSpec] {
        &[]
    }

    /// TorchScript declares no output shapes; outputs are named "0", "1", ...
    fn outputs(&self) -> &[IoSpec] {
        &[]
    }

    fn run(&mut self, inputs: Vec<(String, crate::Value)>) -> Result<Outputs, BackendError> {
        self.run_keeping(inputs, |_| true)
    }

    fn run_selected(
        &mut self,
        inputs: Vec<(String, crate::Value)>,
        wanted: &[&str],
    ) -> Result<Outputs, BackendError> {
        self.run_keeping(inputs, |name| wanted.contains(&name))
    }
}

impl TorchBackend {
    /// One forward call; the outputs `keep` accepts (by name: "0", "1", ... for a tuple) are
    /// copied to the host, the others are dropped where they are.
    fn run_keeping(
        &mut self,
        inputs: Vec<(String, crate::Value)>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Outputs, BackendError> {
        let _no_grad = tch::no_grad_guard();
        let _inference = if self.inference_mode {
            Some(
                runtime::InferenceModeGuard::enter()
                    .map_err(|e| BackendError::Run(e.to_string()))?,
            )
        } else {
            None
        };
        if !self.optimize_graphs {
            tch::jit::f_set_graph_executor_optimize(false)
                .map_err(|e| BackendError::Run(e.to_string()))?;
        }
        let arguments = inputs
            .into_iter()
            .map(|(name, value)| values::to_ivalue(value, self.device, self.half, &name))
            .collect::<Result<Vec<IValue>, _>>()?;
        let result = self
            .module
            .forward_is(&arguments)
            .map_err(|e| BackendError::Run(e.to_string()))?;
        drop(arguments);
        self.synchronize()?;
        let outputs = match result {
            IValue::Tuple(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| (i.to_string(), item))
                .filter(|(name, _)| keep(name))
                .map(|(name, item)| {
                    let value = values::from_ivalue(item, &name)?;
                    Ok((name, value))
                })
                .collect::<Result<Vec<_>, BackendError>>()?,
            single if keep("0") => vec![("0".to_owned(), values::from_ivalue(single, "0")?)],
            _ => Vec::new(),
        };
        Ok(Outputs(outputs))
    }
}
