//! How a user asks for an engine: which one, on which device, at which precision, with which
//! options. Every setting is a type here, parsed once at the edge (the CLI through clap with the
//! `clap` feature, the store when it reads back what it wrote) and kept typed until it is written
//! out.
//!
//! **The engine table.** [`engines!`] below is the one place that names the engines: the CLI's
//! name (`--backend ort`), the name recorded in results and the store (`onnxruntime`), the aliases
//! accepted when parsing, and the cargo feature that compiles the engine in. Adding an engine is one
//! line there, then its module and its arm in [`crate::open`].
//!
//! **libtorch settings** ([`TorchSettings`]) are filled by the CLI; the `DETBENCH_TORCH_*`,
//! `DETBENCH_TORCHVISION_OPS` and `DETBENCH_LIBTORCH_CUDA` environment variables are read only
//! by [`TorchSettings::from_env`], the documented fallback for options not given on the command
//! line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::names::{UnknownName, one_of};
pub use crate::native_settings::{NativeMode, NativeSettings};

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    UnknownName(#[from] UnknownName),
    #[error("${variable}={value}: {reason}")]
    Environment {
        variable: &'static str,
        value: String,
        reason: String,
    },
}

/// One engine's names (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub kind: EngineKind,
    /// What the CLI shows (`--backend ort`).
    pub cli: &'static str,
    /// What results and the store record (`onnxruntime`), and what the engine calls itself.
    pub name: &'static str,
    /// Other spellings accepted when parsing.
    pub aliases: &'static [&'static str],
    /// The cargo feature that compiles the engine in.
    pub feature: &'static str,
    /// The README section that says how to build and install it.
    pub readme: &'static str,
}

/// Defines [`EngineKind`] and [`ENGINES`] from one row per engine.
macro_rules! engines {
    ($( $(#[$doc:meta])* $variant:ident: cli $cli:literal, recorded $name:literal,
        aliases [$($alias:literal),*], feature $feature:literal, readme $readme:literal; )+) => {
        /// An inference engine. Its names come only from [`ENGINES`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EngineKind {
            $( $(#[$doc])* $variant, )+
        }

        /// Every engine detbench knows, one row each, in [`EngineKind`] order.
        pub const ENGINES: &[Engine] = &[
            $( Engine {
                kind: EngineKind::$variant,
                cli: $cli,
                name: $name,
                aliases: &[$($alias),*],
                feature: $feature,
                readme: $readme,
            }, )+
        ];

        impl EngineKind {
            /// Every engine, in table order.
            pub const ALL: &'static [EngineKind] = &[$(EngineKind::$variant),+];

            /// Whether this build has the engine (its cargo feature was on).
            pub fn is_built(self) -> bool {
                match self {
                    $( EngineKind::$variant => cfg!(feature = $feature), )+
                }
            }
        }
    };
}

engines! {
    /// ONNX Runtime, through the `ort` crate (`.onnx` files).
    Ort: cli "ort", recorded "onnxruntime", aliases ["onnx"], feature "ort", readme "Quick start";
    /// libtorch, through the `tch` crate (TorchScript files).
    Torch: cli "torch", recorded "libtorch", aliases ["tch"], feature "torch", readme "libtorch / CUDA";
    /// detbench's own engine for torchvision's R50-FPN detectors (crate `detbench-native`, on
    /// libtorch's ATen, CUDA graphs and NVRTC kernels); whole detectors, not a [`crate::Backend`].
    Native: cli "native", recorded "native", aliases [], feature "cuda", readme "Native engine (CUDA)";
}

impl EngineKind {
    /// The engine's row of [`ENGINES`].
    pub fn info(self) -> &'static Engine {
        &ENGINES[self as usize]
    }

    /// The name results and the store record (`onnxruntime`, `libtorch`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The name the CLI shows (`ort`, `torch`).
    pub fn cli_name(self) -> &'static str {
        self.info().cli
    }

    /// "onnxruntime 1.31.1": the engine with its library version (just the name when the
    /// version is not known), as tables show it.
    pub fn with_version(self, version: &str) -> String {
        if version.is_empty() {
            self.name().to_owned()
        } else {
            format!("{} {version}", self.name())
        }
    }

    fn spellings(self) -> impl Iterator<Item = &'static str> {
        let info = self.info();
        [info.cli, info.name]
            .into_iter()
            .chain(info.aliases.iter().copied())
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = UnknownName;
    /// Any spelling of the table: CLI name, recorded name or alias.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EngineKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.spellings().any(|name| name == s))
            .ok_or_else(|| UnknownName {
                what: "engine",
                given: s.to_owned(),
                expected: one_of(EngineKind::ALL.iter().map(|k| k.cli_name())),
            })
    }
}

impl Serialize for EngineKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EngineKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for EngineKind {
    fn value_variants<'a>() -> &'a [Self] {
        EngineKind::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let info = self.info();
        Some(
            clap::builder::PossibleValue::new(info.cli)
                .alias(info.name)
                .aliases(info.aliases.iter().copied()),
        )
    }
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = UnknownName;
    /// `cpu`, `cuda` (device 0), `gpu` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| UnknownName {
                    what: "device",
                    given: s.to_owned(),
                    expected: "cpu, cuda or cuda:N".to_owned(),
                }),
        }
    }
}

impl Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

crate::named_enum! {
    /// Numeric precision of a model's weights and arithmetic.
    pub enum Precision as "precision" {
        Fp32 = "fp32" | "float32",
        Fp16 = "fp16" | "float16" | "half",
        /// Fixed by a quantized model file (D2Go); recorded, not asked for.
        Int8 = "int8",
    }
}

crate::named_enum! {
    /// ONNX Runtime graph optimisation level (`GraphOptimizationLevel`).
    pub enum GraphOptLevel as "graph optimisation level" {
        Disable = "disable",
        Basic = "basic",
        Extended = "extended",
        All = "all",
    }
}

crate::named_enum! {
    /// Whether ONNX Runtime's intra-op pool threads spin-wait for work between parallel sections
    /// and after a run (session option `session.intra_op.allow_spinning`, on in ONNX Runtime).
    /// Spinning threads hold their cores after a run ends, so work on the same cores between runs
    /// (decoding, pre- and post-processing, the next request) waits for them.
    pub enum Spinning as "intra-op spinning" {
        On = "on",
        Off = "off",
    }
}

crate::named_enum! {
    /// An ONNX Runtime execution provider.
    pub enum ExecutionProvider as "execution provider" {
        Cpu = "cpu",
        Cuda = "cuda",
        TensorRt = "tensorrt" | "trt",
    }
}

crate::named_enum! {
    /// libtorch's quantized engine (`torch.backends.quantized.engine`).
    pub enum QuantizedEngine as "quantized engine" {
        /// PyTorch's default on x86-64 (fbgemm-based); the D2Go reference's.
        X86 = "x86",
        Fbgemm = "fbgemm",
        /// PyTorch's default elsewhere; its kernels do not depend on the CPU's vector extensions.
        Qnnpack = "qnnpack",
        Onednn = "onednn",
    }
}

impl Spinning {
    /// ONNX Runtime's own default (spinning on), what a configuration that predates the setting
    /// ran with.
    pub fn engine_default() -> Self {
        Spinning::On
    }
}

impl QuantizedEngine {
    /// PyPI torch's default on this architecture: `x86` on x86-64, else `qnnpack`.
    pub fn platform_default() -> Self {
        if cfg!(target_arch = "x86_64") {
            QuantizedEngine::X86
        } else {
            QuantizedEngine::Qnnpack
        }
    }
}

crate::named_enum! {
    /// How TorchScript's graph executor optimises.
    pub enum TorchExecutor as "TorchScript executor" {
        /// libtorch's default: profiling runs, then a graph specialised to the shapes seen,
        /// re-specialised when a guard fails, up to the bailout depth.
        Profiling = "profiling",
        /// `torch._C._jit_set_profiling_mode(False)`: one no-grad optimised graph, no profiling
        /// runs, no shape specialisation.
        NoProfiling = "no-profiling",
        /// `torch.jit.optimized_execution(False)` (`setGraphExecutorOptimize(false)`): the
        /// scripted graph as written, run by the interpreter, closest to eager dispatch.
        NoOptimize = "no-optimize",
    }
}

crate::named_enum! {
    /// The autograd mode every libtorch call runs under.
    pub enum GradMode as "autograd mode" {
        /// `torch.no_grad()`.
        NoGrad = "no-grad",
        /// `torch.inference_mode()`, as torchvision's `references/detection/engine.py` evaluates.
        Inference = "inference",
    }
}

#[cfg(feature = "clap")]
crate::clap_value_enum!(Precision);
#[cfg(feature = "clap")]
crate::clap_value_enum!(GraphOptLevel);
#[cfg(feature = "clap")]
crate::clap_value_enum!(ExecutionProvider);
#[cfg(feature = "clap")]
crate::clap_value_enum!(Spinning);
#[cfg(feature = "clap")]
crate::clap_value_enum!(QuantizedEngine);
#[cfg(feature = "clap")]
crate::clap_value_enum!(TorchExecutor);
#[cfg(feature = "clap")]
crate::clap_value_enum!(GradMode);

/// Fallback for [`TorchSettings::quantized_engine`] (`x86`, `fbgemm`, `qnnpack`, `onednn`).
pub const QENGINE_ENV: &str = "DETBENCH_TORCH_QENGINE";
/// Fallback for [`TorchSettings::cudnn_benchmark`]: `0` turns it off.
pub const CUDNN_BENCHMARK_ENV: &str = "DETBENCH_TORCH_CUDNN_BENCHMARK";
/// Fallback for [`TorchSettings::executor`] (`profiling`, `no-profiling`, `no-optimize`).
pub const EXECUTOR_ENV: &str = "DETBENCH_TORCH_EXECUTOR";
/// Fallback for [`TorchSettings::grad_mode`] (`no-grad`, `inference`).
pub const GRAD_MODE_ENV: &str = "DETBENCH_TORCH_GRAD_MODE";
/// Fallback for [`TorchSettings::torchvision_ops`].
pub const TORCHVISION_OPS_ENV: &str = "DETBENCH_TORCHVISION_OPS";
/// Fallback for [`TorchSettings::libtorch_cuda`].
pub const LIBTORCH_CUDA_ENV: &str = "DETBENCH_LIBTORCH_CUDA";

/// The libtorch engine's settings (the torch backend's module documentation says what each
/// does); ONNX Runtime ignores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchSettings {
    /// libtorch has one quantized engine per process: a second model asking for another one in
    /// the same process is refused.
    pub quantized_engine: QuantizedEngine,
    /// cuDNN's benchmark mode on CUDA (on by default): it tunes convolution algorithms for every
    /// new input shape, which detection models with varying image sizes pay again and again.
    pub cudnn_benchmark: bool,
    pub executor: TorchExecutor,
    pub grad_mode: GradMode,
    /// torchvision's ops library (`.../torchvision/_C.so`); `None`: the one
    /// `scripts/setup.sh --torch` installs into `.deps/`.
    pub torchvision_ops: Option<PathBuf>,
    /// `libtorch_cuda.so`; `None`: beside the `libtorch_cpu.so` the process loaded.
    pub libtorch_cuda: Option<PathBuf>,
}

impl Default for TorchSettings {
    fn default() -> Self {
        TorchSettings {
            quantized_engine: QuantizedEngine::platform_default(),
            cudnn_benchmark: true,
            executor: TorchExecutor::Profiling,
            grad_mode: GradMode::NoGrad,
            torchvision_ops: None,
            libtorch_cuda: None,
        }
    }
}

impl TorchSettings {
    /// The defaults, overridden by the environment variables that are set and not empty
    /// ([`QENGINE_ENV`], [`CUDNN_BENCHMARK_ENV`], [`EXECUTOR_ENV`], [`GRAD_MODE_ENV`],
    /// [`TORCHVISION_OPS_ENV`], [`LIBTORCH_CUDA_ENV`]). The CLI starts from this and applies its
    /// options on top.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_variables(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `lookup`.
    pub fn from_variables(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut settings = TorchSettings::default();
        if let Some(value) = get(QENGINE_ENV) {
            settings.quantized_engine = parse_variable(QENGINE_ENV, &value)?;
        }
        if let Some(value) = get(CUDNN_BENCHMARK_ENV) {
            // Only `0` turns it off, as before the setting had a command-line option.
            settings.cudnn_benchmark = value != "0";
        }
        if let Some(value) = get(EXECUTOR_ENV) {
            settings.executor = parse_variable(EXECUTOR_ENV, &value)?;
        }
        if let Some(value) = get(GRAD_MODE_ENV) {
            settings.grad_mode = parse_variable(GRAD_MODE_ENV, &value)?;
        }
        settings.torchvision_ops = get(TORCHVISION_OPS_ENV).map(PathBuf::from);
        settings.libtorch_cuda = get(LIBTORCH_CUDA_ENV).map(PathBuf::from);
        Ok(settings)
    }
}

/// A named value of an environment variable, with the variable in the error.
fn parse_variable<T>(variable: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr<Err = UnknownName>,
{
    value
        .parse()
        .map_err(|e: UnknownName| ConfigError::Environment {
            variable,
            value: value.to_owned(),
            reason: {
                let quoted: Vec<String> = e
                    .expected
                    .split(", ")
                    .flat_map(|part| part.split(" or "))
                    .map(|name| format!("`{name}`"))
                    .collect();
                format!("expected {}", one_of(quoted.iter().map(String::as_str)))
            },
        })
}

/// Everything that selects and tunes an engine for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendConfig {
    pub engine: EngineKind,
    pub device: Device,
    pub precision: Precision,
    /// Intra-op threads; `None` lets the engine choose.
    pub threads: Option<usize>,
    /// ONNX Runtime only.
    pub graph_opt: GraphOptLevel,
    /// ONNX Runtime only: whether its intra-op threads spin-wait (see [`Spinning`]).
    #[serde(default = "Spinning::engine_default")]
    pub spinning: Spinning,
    /// ONNX Runtime execution providers to try in order; none: the one the device implies.
    pub execution_providers: Vec<ExecutionProvider>,
    /// libtorch only (its library paths also serve the native engine).
    pub torch: TorchSettings,
    /// The native engine only.
    #[serde(default)]
    pub native: NativeSettings,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            engine: EngineKind::Ort,
            device: Device::Cpu,
            precision: Precision::Fp32,
            threads: None,
            graph_opt: GraphOptLevel::All,
            spinning: Spinning::engine_default(),
            execution_providers: Vec::new(),
            torch: TorchSettings::default(),
            native: NativeSettings::default(),
        }
    }
}

impl BackendConfig {
    /// The ONNX Runtime session options this configuration asks for, as recorded with every
    /// result: one list for a session that opened and for one that failed (a failed row), so
    /// both use the same keys. Execution providers and the library path are added by the
    /// backend once it knows them.
    pub fn ort_session_options(&self) -> Vec<(String, String)> {
        let threads = self.threads.map_or_else(
            || "default (one per physical core)".to_owned(),
            |t| t.to_string(),
        );
        vec![
            ("graph_optimization".into(), self.graph_opt.as_str().into()),
            ("inter_op_threads".into(), "1".into()),
            ("execution_mode".into(), "sequential".into()),
            ("intra_op_spinning".into(), self.spinning.as_str().into()),
            ("intra_op_threads".into(), threads),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_table_is_in_enum_order_and_parses_every_spelling() {
        for (index, row) in ENGINES.iter().enumerate() {
            assert_eq!(row.kind as usize, index, "{row:?}");
            assert_eq!(row.kind.info(), row);
        }
        for spelling in ["ort", "onnxruntime", "onnx"] {
            assert_eq!(spelling.parse::<EngineKind>().unwrap(), EngineKind::Ort);
        }
        assert_eq!("tch".parse::<EngineKind>().unwrap(), EngineKind::Torch);
        assert_eq!(EngineKind::Torch.to_string(), "libtorch");
        assert_eq!(
            serde_json::to_string(&EngineKind::Ort).unwrap(),
            "\"onnxruntime\""
        );
        let err = "tflite".parse::<EngineKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown engine `tflite`: expected ort, torch or native"
        );
        assert_eq!("native".parse::<EngineKind>().unwrap(), EngineKind::Native);
    }

    #[test]
    fn devices_and_precisions_keep_their_recorded_spelling() {
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap().to_string(), "cuda:3");
        assert!("cuda:x".parse::<Device>().is_err());
        assert_eq!(serde_json::to_string(&Device::Cpu).unwrap(), "\"cpu\"");
        assert_eq!("half".parse::<Precision>().unwrap(), Precision::Fp16);
        assert_eq!(serde_json::to_string(&Precision::Int8).unwrap(), "\"int8\"");
        assert_eq!(GraphOptLevel::Extended.as_str(), "extended");
    }

    #[test]
    fn a_failed_row_records_the_keys_an_opened_engine_records() {
        let config = BackendConfig {
            threads: Some(2),
            graph_opt: GraphOptLevel::Basic,
            ..BackendConfig::default()
        };
        let options = crate::BackendDescription::requested(&config).options;
        assert_eq!(options, config.ort_session_options());
        assert!(options.contains(&("graph_optimization".into(), "basic".into())));
        assert!(options.contains(&("intra_op_threads".into(), "2".into())));
        // libtorch and the native engine record their thread count under the same key.
        for engine in [EngineKind::Torch, EngineKind::Native] {
            let config = BackendConfig {
                engine,
                ..config.clone()
            };
            let options = crate::BackendDescription::requested(&config).options;
            assert_eq!(options[0], ("intra_op_threads".into(), "2".into()));
        }
    }

    #[test]
    fn torch_settings_fall_back_to_the_environment_and_name_bad_values() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let settings = TorchSettings::from_variables(vars(&[
            (QENGINE_ENV, "qnnpack"),
            (CUDNN_BENCHMARK_ENV, "0"),
            (GRAD_MODE_ENV, "inference"),
            (EXECUTOR_ENV, ""),
        ]))
        .unwrap();
        assert_eq!(settings.quantized_engine, QuantizedEngine::Qnnpack);
        assert!(!settings.cudnn_benchmark);
        assert_eq!(settings.grad_mode, GradMode::Inference);
        assert_eq!(settings.executor, TorchExecutor::Profiling);
        let err = TorchSettings::from_variables(vars(&[(EXECUTOR_ENV, "bogus")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "$DETBENCH_TORCH_EXECUTOR=bogus: expected `profiling`, `no-profiling` or \
             `no-optimize`"
        );
        let err = TorchSettings::from_variables(vars(&[(GRAD_MODE_ENV, "bogus")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`inference`"), "{err}");
    }
}
