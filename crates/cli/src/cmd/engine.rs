//! The engine options `detbench run` and `detbench show` share (one clap group), parsed into the
//! engine's types and turned into a `BackendConfig` per model. The libtorch settings fall back
//! to their environment variables (`TorchSettings::from_env`) where an option is not given; the
//! native engine's (`NativeSettings`) have only their defaults.

use std::path::PathBuf;

use anyhow::bail;
use detbench_backends::{
    BackendConfig, Device, EngineKind, ExecutionProvider, GradMode, GraphOptLevel, NativeMode,
    NativeSettings, Precision, QuantizedEngine, Spinning, TorchExecutor, TorchSettings,
};
use detbench_models::ZooEntry;

#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Inference engine [default: by model format: ort for .onnx, torch for TorchScript].
    #[arg(long, value_enum)]
    backend: Option<EngineKind>,

    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,

    /// Precision to run at (a quantized model file records its own, int8).
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    precision: Precision,

    /// Engine intra-op threads [default: the engine's choice].
    #[arg(long)]
    threads: Option<usize>,

    /// ONNX Runtime graph optimisation level.
    #[arg(long, value_enum, default_value_t = GraphOptLevel::All)]
    graph_opt: GraphOptLevel,

    /// ONNX Runtime: whether its intra-op threads spin-wait between parallel sections and after
    /// a run (on holds the cores, which decoding and pre/post-processing then wait for) [default:
    /// on, ONNX Runtime's own].
    #[arg(long, value_enum, default_value_t = Spinning::engine_default())]
    ort_spinning: Spinning,

    /// ONNX Runtime execution providers to try in order; cuda and tensorrt need an ONNX Runtime
    /// library built with them [default: the one the device implies].
    #[arg(
        long = "execution-provider",
        value_enum,
        value_delimiter = ',',
        ignore_case = true
    )]
    execution_providers: Vec<ExecutionProvider>,

    #[command(flatten)]
    torch: TorchArgs,

    #[command(flatten)]
    native: NativeArgs,
}

/// The help heading of the libtorch options.
const TORCH: &str = "libtorch engine";

/// libtorch settings; each falls back to its environment variable, then to the default.
#[derive(clap::Args, Debug, Clone)]
struct TorchArgs {
    /// Quantized engine [default: $DETBENCH_TORCH_QENGINE, else x86 on x86-64 (PyTorch's
    /// default, the D2Go reference's), else qnnpack].
    #[arg(long, value_enum, help_heading = TORCH)]
    torch_qengine: Option<QuantizedEngine>,

    /// cuDNN benchmark mode on CUDA: on or off (also yes/no, true/false, 1/0) [default: on;
    /// $DETBENCH_TORCH_CUDNN_BENCHMARK=0 turns it off].
    #[arg(
        long,
        value_name = "on|off",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_possible_values = true,
        help_heading = TORCH
    )]
    torch_cudnn_benchmark: Option<bool>,

    /// TorchScript graph executor [default: $DETBENCH_TORCH_EXECUTOR, else profiling].
    #[arg(long, value_enum, help_heading = TORCH)]
    torch_executor: Option<TorchExecutor>,

    /// Autograd mode of every call [default: $DETBENCH_TORCH_GRAD_MODE, else no-grad].
    #[arg(long, value_enum, help_heading = TORCH)]
    torch_grad_mode: Option<GradMode>,

    #[command(flatten)]
    libraries: TorchLibraryArgs,
}

/// Where libtorch's run-time pieces come from (`detbench run`, `show` and `train`).
#[derive(clap::Args, Debug, Clone)]
pub struct TorchLibraryArgs {
    /// torchvision's ops library, `.../torchvision/_C.so` [default: $DETBENCH_TORCHVISION_OPS,
    /// else .deps/torchvision/torchvision/_C.so].
    #[arg(long, value_name = "FILE", help_heading = TORCH)]
    torchvision_ops: Option<PathBuf>,

    /// libtorch_cuda.so [default: $DETBENCH_LIBTORCH_CUDA, else beside the loaded
    /// libtorch_cpu.so].
    #[arg(long, value_name = "FILE", help_heading = TORCH)]
    libtorch_cuda: Option<PathBuf>,
}

/// The help heading of the native engine's options.
const NATIVE: &str = "native engine (--backend native)";

/// The native engine's settings (`NativeSettings`); its libtorch library paths are the libtorch
/// options'.
#[derive(clap::Args, Debug, Clone)]
struct NativeArgs {
    /// fast (BatchNorm folded, channels-last, fused convolutions: the benchmarked settings) or
    /// exact (torchvision's arithmetic order, for parity checks).
    #[arg(long, value_enum, default_value_t = NativeMode::Fast, help_heading = NATIVE)]
    native_mode: NativeMode,

    /// One CUDA graph per input-size bucket: on or off.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = boolish(),
          action = clap::ArgAction::Set, hide_possible_values = true, help_heading = NATIVE)]
    native_cuda_graphs: bool,

    /// TF32 in cuDNN convolutions at fp32 (PyTorch's default): on or off (true fp32).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = boolish(),
          action = clap::ArgAction::Set, hide_possible_values = true, help_heading = NATIVE)]
    native_tf32: bool,

    /// cuDNN benchmark mode (every new bucket re-tunes): on or off.
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = boolish(),
          action = clap::ArgAction::Set, hide_possible_values = true, help_heading = NATIVE)]
    native_cudnn_benchmark: bool,

    /// Candidates per image the box head's class-wise NMS considers (an image with more is
    /// flagged inexact in the provenance).
    #[arg(long, value_name = "N", default_value_t = NativeSettings::default().nms_capacity,
          help_heading = NATIVE)]
    native_nms_capacity: usize,
}

/// on/off, yes/no, true/false, 1/0.
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

impl NativeArgs {
    fn settings(&self) -> anyhow::Result<NativeSettings> {
        if self.native_nms_capacity == 0 {
            bail!("--native-nms-capacity 0: the box head needs room for at least one candidate");
        }
        Ok(NativeSettings {
            mode: self.native_mode,
            cuda_graphs: self.native_cuda_graphs,
            allow_tf32: self.native_tf32,
            cudnn_benchmark: self.native_cudnn_benchmark,
            nms_capacity: self.native_nms_capacity,
        })
    }
}

impl TorchLibraryArgs {
    /// The environment's settings (or the defaults) with the options given applied.
    pub fn settings(&self) -> anyhow::Result<TorchSettings> {
        let mut settings = TorchSettings::from_env()?;
        if let Some(path) = &self.torchvision_ops {
            settings.torchvision_ops = Some(path.clone());
        }
        if let Some(path) = &self.libtorch_cuda {
            settings.libtorch_cuda = Some(path.clone());
        }
        Ok(settings)
    }
}

impl TorchArgs {
    /// The environment's settings (or the defaults), overridden by the options given.
    fn settings(&self) -> anyhow::Result<TorchSettings> {
        let mut settings = self.libraries.settings()?;
        if let Some(engine) = self.torch_qengine {
            settings.quantized_engine = engine;
        }
        if let Some(on) = self.torch_cudnn_benchmark {
            settings.cudnn_benchmark = on;
        }
        if let Some(executor) = self.torch_executor {
            settings.executor = executor;
        }
        if let Some(mode) = self.torch_grad_mode {
            settings.grad_mode = mode;
        }
        Ok(settings)
    }
}

/// The most threads a thread option takes: 4 per core. More only oversubscribes the machine,
/// and a mistyped count (100000) would spend minutes creating threads and their memory.
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Refuses a thread count above [`max_threads`], naming the option.
pub fn check_thread_count(option: &str, threads: usize) -> anyhow::Result<()> {
    let max = max_threads();
    if threads > max {
        bail!(
            "{option} {threads}: this machine has {} core(s); at most {max} threads (4 per core) \
             are allowed",
            max / 4
        );
    }
    Ok(())
}

/// The engine settings of a command, checked, with the engine left to each model's format when
/// `--backend` is not given.
#[derive(Debug, Clone)]
pub struct EngineChoice {
    engine: Option<EngineKind>,
    base: BackendConfig,
}

impl EngineArgs {
    pub fn resolve(&self) -> anyhow::Result<EngineChoice> {
        if self.threads == Some(0) {
            bail!("--threads 0: give at least 1, or leave it out for the engine's default");
        }
        if let Some(threads) = self.threads {
            check_thread_count("--threads", threads)?;
        }
        if self.precision == Precision::Int8 {
            bail!(
                "--precision int8: int8 is a property of a quantized model file (D2Go records \
                 it), not a precision to ask for; run it at fp32"
            );
        }
        Ok(EngineChoice {
            engine: self.backend,
            base: BackendConfig {
                engine: self.backend.unwrap_or(EngineKind::Ort),
                device: self.device,
                precision: self.precision,
                threads: self.threads,
                graph_opt: self.graph_opt,
                spinning: self.ort_spinning,
                execution_providers: self.execution_providers.clone(),
                torch: self.torch.settings()?,
                native: self.native.settings()?,
            },
        })
    }
}

impl EngineChoice {
    /// The engine `--backend` asked for, if any.
    pub fn requested(&self) -> Option<EngineKind> {
        self.engine
    }

    /// The configuration for `entry`: `--backend` when given, else the engine its card names
    /// (by default the engine of its format).
    pub fn for_model(&self, entry: &ZooEntry) -> BackendConfig {
        self.with_default(entry.default_engine())
    }

    /// The configuration with `--backend` when given, else `engine`.
    pub fn with_default(&self, engine: EngineKind) -> BackendConfig {
        BackendConfig {
            engine: self.engine.unwrap_or(engine),
            ..self.base.clone()
        }
    }
}
