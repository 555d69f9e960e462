//! The [`Backend`] trait: one model loaded in one inference engine, fed named tensors and
//! returning named values. The harness and the model families only ever see this trait; the
//! engines (ONNX Runtime through `ort`, libtorch through `tch`) sit behind cargo features.

pub mod config;
pub mod names;
mod native_settings;
pub mod onnx_info;
#[cfg(feature = "ort")]
pub mod ort_backend;
pub mod tensor;
#[cfg(feature = "torch")]
pub mod torch;

pub use config::{
    BackendConfig, ConfigError, Device, ENGINES, Engine, EngineKind, ExecutionProvider, GradMode,
    GraphOptLevel, NativeMode, NativeSettings, Precision, QuantizedEngine, Spinning, TorchExecutor,
    TorchSettings,
};
pub use names::UnknownName;
pub use tensor::{DType, Tensor, TensorData, Value};

use serde::{Deserialize, Serialize};

/// What a run records about the engine it used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendDescription {
    /// Recorded as `onnxruntime` or `libtorch` (the engine table's names).
    pub engine: EngineKind,
    /// The engine library's own version string (empty for an engine that was asked for but
    /// could not be opened).
    pub engine_version: String,
    /// Recorded as `cpu`, `cuda:0`, ...
    pub device: Device,
    /// The precision the model runs at: the one asked for, or the model file's own (`int8`).
    pub precision: Precision,
    /// Intra-op threads the engine runs with, where known (the store's `threads` column).
    /// Not written: `results.json` keeps its schema-1 layout, in which `options` carries the
    /// thread count under the engine's own key; read when present.
    #[serde(default, skip_serializing)]
    pub threads: Option<usize>,
    /// Engine options that change speed or results (threads, graph optimisation, execution
    /// provider, quantized engine, fuser settings, ...), as `key = value` pairs.
    pub options: Vec<(String, String)>,
}

impl BackendDescription {
    /// What a run records for an engine it asked for but could not open (a failed row): no
    /// version, and the settings asked for under the keys an opened engine records them by.
    pub fn requested(config: &BackendConfig) -> Self {
        let options = match config.engine {
            EngineKind::Ort => config.ort_session_options(),
            EngineKind::Native => {
                let mut options = vec![threads_option(config)];
                options.extend(config.native.options());
                options
            }
            EngineKind::Torch => vec![threads_option(config)],
        };
        BackendDescription {
            engine: config.engine,
            engine_version: String::new(),
            device: config.device,
            precision: config.precision,
            threads: config.threads,
            options,
        }
    }

    /// "onnxruntime 1.31.1 cpu fp32": what tables show in their backend column.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.engine.with_version(&self.engine_version),
            self.device,
            self.precision
        )
    }
}

/// The thread count a failed native or libtorch row records, under the key the opened engines
/// record it by (`engine default` when none was asked for).
fn threads_option(config: &BackendConfig) -> (String, String) {
    let threads = config
        .threads
        .map_or("engine default".to_owned(), |t| t.to_string());
    ("intra_op_threads".to_owned(), threads)
}

/// Shape and type of one model input or output, as the model file declares it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoSpec {
    pub name: String,
    /// Dimensions; `None` where the model leaves a dimension dynamic (e.g. batch).
    pub shape: Option<Vec<Option<usize>>>,
    pub dtype: Option<DType>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("model file {path} not found; `detbench zoo` lists the models and where to get them")]
    ModelNotFound { path: String },
    #[error("cannot load the {engine} library: {reason}")]
    EngineUnavailable { engine: EngineKind, reason: String },
    #[error("{engine} could not load {path}: {reason}")]
    Load {
        engine: EngineKind,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("input `{name}`: {reason}")]
    BadInput { name: String, reason: String },
    #[error("the model has no output `{name}` (it has: {available})")]
    MissingOutput { name: String, available: String },
    #[error("inference failed: {0}")]
    Run(String),
}

/// One model loaded in one engine.
///
/// `run` returns only when the outputs are complete and on the host: a GPU engine synchronises
/// its device before returning, so that a clock read around `run` measures the whole inference.
pub trait Backend: Send {
    fn describe(&self) -> BackendDescription;
    fn inputs(&self) -> &[IoSpec];
    fn outputs(&self) -> &[IoSpec];
    /// Runs the model. Inputs are given by name (positional engines take them in the order
    /// given); outputs come back named (positional engines name them "0", "1", ...).
    fn run(&mut self, inputs: Vec<(String, Value)>) -> Result<Outputs, BackendError>;

    /// [`run`](Self::run), keeping only the outputs named in `wanted`. An engine that can leave
    /// the other outputs on the device (libtorch: a model that also returns its input images,
    /// as D2Go's wrapper does) does not copy them to the host, so they cost no time in the
    /// timed call; the default runs everything and drops the rest.
    fn run_selected(
        &mut self,
        inputs: Vec<(String, Value)>,
        wanted: &[&str],
    ) -> Result<Outputs, BackendError> {
        let Outputs(all) = self.run(inputs)?;
        Ok(Outputs(
            all.into_iter()
                .filter(|(name, _)| wanted.contains(&name.as_str()))
                .collect(),
        ))
    }
}

/// Opens `model_path` in the engine `config.engine` names, with its options.
///
/// An engine left out of this build (cargo feature off) is an error saying which feature to
/// enable.
pub fn open(
    model_path: &std::path::Path,
    config: &BackendConfig,
) -> Result<Box<dyn Backend>, BackendError> {
    if !model_path.is_file() {
        return Err(BackendError::ModelNotFound {
            path: model_path.display().to_string(),
        });
    }
    match config.engine {
        #[cfg(feature = "ort")]
        EngineKind::Ort => Ok(Box::new(ort_backend::open(model_path, config)?)),
        #[cfg(feature = "torch")]
        EngineKind::Torch => Ok(Box::new(torch::open(model_path, config)?)),
        EngineKind::Native => Err(BackendError::Unsupported(format!(
            "the {} engine runs whole torchvision detectors, not single model files: `detbench \
             run --backend {}` opens it (crate detbench-native)",
            EngineKind::Native,
            EngineKind::Native.cli_name()
        ))),
        #[allow(unreachable_patterns)]
        engine => Err(not_built(engine)),
    }
}

/// The error for an engine whose cargo feature is off in this build.
fn not_built(engine: EngineKind) -> BackendError {
    BackendError::EngineUnavailable {
        engine,
        reason: format!(
            "this build has no {engine} engine: rebuild with `--features {}` (README, \"{}\")",
            engine.info().feature,
            engine.info().readme
        ),
    }
}

/// A model's outputs, by name.
#[derive(Debug, Default)]
pub struct Outputs(pub Vec<(String, Value)>);

impl Outputs {
    pub fn get(&self, name: &str) -> Result<&Value, BackendError> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| BackendError::MissingOutput {
                name: name.to_owned(),
                available: self
                    .0
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The output `name`, which must be a tensor.
    pub fn tensor(&self, name: &str) -> Result<&Tensor, BackendError> {
        match self.get(name)? {
            Value::Tensor(t) => Ok(t),
            other => Err(BackendError::Run(format!(
                "output `{name}` is a {}, expected a tensor",
                other.kind()
            ))),
        }
    }
}
