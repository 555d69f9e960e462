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
//!   around it measures the whole inference. It
//!   runs under `NoGradGuard` (no autograd graph), or under `torch.inference_mode()` with
//!   `$DETBENCH_TORCH_GRAD_MODE=inference`.
//! * CUDA settings: cuDNN benchmark mode on; TorchScript's tensor-expression fuser (NNC) off,
//!   because on torch 2.11 the kernel it fuses for scripted detection models fails on the
//!   second call with "Global alloc not supported yet" (../shared/notes/torchscript-cuda.md).
//! * CPU settings: the quantized engine is pinned (default `x86`, PyTorch's default on x86-64
//!   and what the reference pipelines used; `$DETBENCH_TORCH_QENGINE` selects another), and the
//!   intra-op thread count follows [`BackendConfig::threads`].
//!
//! Every such setting is recorded in [`Backend::describe`]'s options. The libraries loaded at
//! run time (CUDA, torchvision ops) are explained in [`runtime`].

pub mod runtime;
mod values;

use std::path::Path;

use tch::{CModule, Device as TchDevice, IValue, Kind};

use crate::{
    Backend, BackendConfig, BackendDescription, BackendError, Device, IoSpec, Outputs, Precision,
};

const ENGINE: &str = "libtorch";
/// Environment variable selecting the quantized engine (`x86`, `fbgemm`, `qnnpack`, `onednn`).
pub const QENGINE_ENV: &str = "DETBENCH_TORCH_QENGINE";
/// Environment variable turning cuDNN's benchmark mode off on CUDA (`0`); it is on by default.
/// Benchmark mode tunes convolution algorithms for every new input shape, which detection models
/// with varying image sizes and box counts pay again and again.
pub const CUDNN_BENCHMARK_ENV: &str = "DETBENCH_TORCH_CUDNN_BENCHMARK";
/// Environment variable selecting how TorchScript's graph executor optimises:
/// * `profiling` (libtorch's default): profiling runs, then a graph specialised to the shapes
///   seen, re-specialised when a guard fails, up to the bailout depth;
/// * `no-profiling` (`torch._C._jit_set_profiling_mode(False)`): one no-grad optimised graph, no
///   profiling runs, no shape specialisation;
/// * `no-optimize` (`torch.jit.optimized_execution(False)`, i.e.
///   `torch::jit::setGraphExecutorOptimize(false)`): the scripted graph as written, run by the
///   interpreter with no optimisation passes, closest to eager dispatch.
pub const EXECUTOR_ENV: &str = "DETBENCH_TORCH_EXECUTOR";
/// Environment variable selecting the autograd mode of every call: `no-grad` (`torch.no_grad()`)
/// or `inference` (`torch.inference_mode()`, as torchvision's detection evaluation
/// `references/detection/engine.py` runs its models).
pub const GRAD_MODE_ENV: &str = "DETBENCH_TORCH_GRAD_MODE";

/// One TorchScript module loaded on one device.
pub struct TorchBackend {
    module: CModule,
    device: TchDevice,
    half: bool,
    /// `false` for `$DETBENCH_TORCH_EXECUTOR=no-optimize`. libtorch keeps this setting per thread
    /// and reads it when a method is first planned, so `run` sets it on the calling thread.
    optimize_graphs: bool,
    /// `true`: calls run under `torch.inference_mode()`; `false`: under `torch.no_grad()`.
    inference_mode: bool,
    description: BackendDescription,
}

/// Opens a TorchScript file with the settings of `config` (see the module documentation).
pub fn open(path: &Path, config: &BackendConfig) -> Result<TorchBackend, BackendError> {
    let mut options: Vec<(String, String)> = Vec::new();
    // CUDA must be loaded before anything asks libtorch about it (runtime::ensure_cuda).
    let device = match config.device {
        Device::Cpu => TchDevice::Cpu,
        Device::Cuda(index) => {
            let cuda = runtime::ensure_cuda().map_err(unavailable)?;
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
            TchDevice::Cuda(index)
        }
    };
    let half = match config.precision {
        Precision::Fp32 => false,
        Precision::Fp16 if device.is_cuda() => true,
        Precision::Fp16 => {
            return Err(BackendError::Unsupported(
                "libtorch fp16 runs on CUDA only (--device cuda); on the CPU use fp32".into(),
            ));
        }
    };
    let libtorch = runtime::libtorch();
    options.push(("libtorch".into(), libtorch.lib_dir.display().to_string()));

    if let Some(threads) = config.threads {
        tch::set_num_threads(threads as i32);
    }
    options.push((
        "intra_op_threads".into(),
        tch::get_num_threads().to_string(),
    ));

    let qengine = std::env::var(QENGINE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default_qengine().to_owned());
    runtime::set_quantized_engine(&qengine).map_err(|reason| {
        BackendError::Unsupported(format!("quantized engine `{qengine}`: {reason}"))
    })?;
    options.push(("quantized_engine".into(), runtime::quantized_engine()));

    let ops = runtime::ensure_torchvision_ops().map_err(unavailable)?;
    options.push((
        "torchvision_ops".into(),
        match ops {
            runtime::TorchvisionOps::AlreadyRegistered => "registered before loading".into(),
            runtime::TorchvisionOps::Loaded(path) => path.display().to_string(),
            runtime::TorchvisionOps::Missing { .. } => "not loaded (not found)".into(),
        },
    ));

    let mut optimize_graphs = true;
    match std::env::var(EXECUTOR_ENV).ok().as_deref() {
        None | Some("") | Some("profiling") => {}
        Some("no-profiling") => {
            tch::jit::f_set_profiling_mode(false).map_err(|e| load_error(path, e))?
        }
        Some("no-optimize") => optimize_graphs = false,
        Some(other) => {
            return Err(BackendError::Unsupported(format!(
                "${EXECUTOR_ENV}={other}: expected `profiling`, `no-profiling` or `no-optimize`"
            )));
        }
    }
    let inference_mode = match std::env::var(GRAD_MODE_ENV).ok().as_deref() {
        None | Some("") | Some("no-grad") => false,
        Some("inference") => true,
        Some(other) => {
            return Err(BackendError::Unsupported(format!(
                "${GRAD_MODE_ENV}={other}: expected `no-grad` or `inference`"
            )));
        }
    };
    options.push((
        "grad_mode".into(),
        if inference_mode {
            "inference_mode"
        } else {
            "no_grad"
        }
        .into(),
    ));
    if device.is_cuda() {
        let benchmark = !matches!(std::env::var(CUDNN_BENCHMARK_ENV).as_deref(), Ok("0"));
        tch::Cuda::cudnn_set_benchmark(benchmark);
        options.push(("cudnn_benchmark".into(), on_off(benchmark).into()));
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

    let mut module = CModule::load_on_device(path, TchDevice::Cpu).map_err(|e| {
        let mut reason = e.to_string();
        if let runtime::TorchvisionOps::Missing { looked_in } = ops
            && reason.contains("torchvision::")
        {
            reason.push_str(&format!(
                "\n(torchvision's ops library was not found; looked in: {looked_in}. Run \
                 `scripts/setup.sh --torch`, or set ${}=/path/to/torchvision/_C.so)",
                runtime::TORCHVISION_OPS_ENV
            ));
        }
        BackendError::Load {
            engine: ENGINE.into(),
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
                engine: ENGINE.into(),
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
    Ok(TorchBackend {
        module,
        device,
        half,
        optimize_graphs,
        inference_mode,
        description: BackendDescription {
            engine: ENGINE.into(),
            engine_version: libtorch.version.clone(),
            device: config.device.to_string(),
            precision: config.precision.as_str().into(),
            options,
        },
    })
}

/// PyPI torch's default quantized engine on x86-64 (`x86`, fbgemm-based); elsewhere qnnpack.
fn default_qengine() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86"
    } else {
        "qnnpack"
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn unavailable(reason: String) -> BackendError {
    BackendError::EngineUnavailable {
        engine: ENGINE.into(),
        reason,
    }
}

fn load_error(path: &Path, e: tch::TchError) -> BackendError {
    BackendError::Load {
        engine: ENGINE.into(),
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Runs a tch call that has no fallible variant (it panics on a libtorch error) and turns the
/// panic into an error message.
fn catch_torch_panic(work: impl FnOnce()) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libtorch failed".into())
    })
}

impl TorchBackend {
    /// Waits for every kernel queued on the model's CUDA device (nothing on the CPU). An
    /// asynchronous kernel failure surfaces here, as an error of this call.
    fn synchronize(&self) -> Result<(), BackendError> {
        if let TchDevice::Cuda(index) = self.device {
            catch_torch_panic(|| tch::Cuda::synchronize(index as i64))
                .map_err(BackendError::Run)?;
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
            Some(runtime::InferenceModeGuard::enter().map_err(BackendError::Run)?)
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
