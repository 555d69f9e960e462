//! The ONNX Runtime engine, through the `ort` crate with `load-dynamic`: the library is the
//! PyPI `onnxruntime` wheel's `libonnxruntime.so` that `scripts/setup.sh` installs into `.deps/`
//! (or `$ORT_DYLIB_PATH`), loaded once per process at the first [`open`].
//!
//! Options from [`BackendConfig`]: intra-op threads and whether they spin-wait (inter-op is 1,
//! sequential execution, as the reference pipelines run), graph optimisation level, and execution
//! providers. Inputs and outputs are taken by name from the session's metadata.
//!
//! Execution providers: `cpu` (always there), `cuda` and `tensorrt`. CUDA and TensorRT exist only
//! in a GPU build of ONNX Runtime (PyPI `onnxruntime-gpu`, with CUDA/cuDNN/TensorRT libraries on
//! the loader path); asking for one that the loaded library lacks, or that fails to register, is
//! an error, never a silent fallback to the CPU. The CPU-only wheel that `scripts/setup.sh`
//! installs has neither, so the GPU paths cannot be tested on the CPU machines this project is
//! developed on; the unit tests only check that asking for them fails clearly.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::ep::{self, ExecutionProvider as _};
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::{DynValue, TensorElementType, ValueType};

use crate::{
    Backend, BackendConfig, BackendDescription, BackendError, DType, Device, EngineKind,
    ExecutionProvider, GraphOptLevel, IoSpec, Outputs, Precision, Spinning, Tensor, TensorData,
    Value,
};

const ENGINE: EngineKind = EngineKind::Ort;

/// The process-wide ONNX Runtime: the loaded library and its environment.
struct Runtime {
    environment: ort::environment::Environment,
    version: String,
    library: PathBuf,
}

/// Why the ONNX Runtime library could not be used.
#[derive(Debug, thiserror::Error)]
enum RuntimeError {
    #[error(transparent)]
    NotFound(#[from] detbench_assets::AssetError),
    #[error("cannot load {}: {reason}", library.display())]
    Load { library: PathBuf, reason: String },
    #[error("{} is not an ONNX Runtime library (no OrtGetApiBase: {reason})", library.display())]
    NotOnnxRuntime { library: PathBuf, reason: String },
    #[error("{}: OrtGetApiBase returned null", library.display())]
    NoApiBase { library: PathBuf },
    #[error("cannot create the environment of {}: {reason}", library.display())]
    Environment { library: PathBuf, reason: String },
}

static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();

/// Loads the ONNX Runtime library once per process (later calls reuse it).
fn runtime() -> Result<&'static Runtime, BackendError> {
    RUNTIME
        .get_or_init(load_runtime)
        .as_ref()
        .map_err(|reason| BackendError::EngineUnavailable {
            engine: ENGINE,
            reason: reason.to_string(),
        })
}

fn load_runtime() -> Result<Runtime, RuntimeError> {
    let library = detbench_assets::onnxruntime_library()?;
    let version = library_version(&library)?;
    let builder = ort::init_from(&library).map_err(|e| RuntimeError::Load {
        library: library.clone(),
        reason: e.to_string(),
    })?;
    let environment = builder
        .with_name("detbench")
        .with_telemetry(false)
        .build()
        .map_err(|e| RuntimeError::Environment {
            library: library.clone(),
            reason: e.to_string(),
        })?;
    // Warnings such as "initializer appears in graph inputs" (NanoDet exports) are noise here.
    environment.set_log_level(ort::logging::LogLevel::Error);
    Ok(Runtime {
        environment,
        version,
        library,
    })
}

/// The library's own version string (`OrtGetApiBase()->GetVersionString()`), read through a
/// second handle to the same shared object (`ort` keeps its own private).
fn library_version(library: &Path) -> Result<String, RuntimeError> {
    // SAFETY: loading the ONNX Runtime shared library runs no initialisers with preconditions;
    // `OrtGetApiBase` has the C signature declared here and returns a pointer to a static struct
    // whose `GetVersionString` returns a static NUL-terminated string.
    unsafe {
        let lib = libloading::Library::new(library).map_err(|e| RuntimeError::Load {
            library: library.to_path_buf(),
            reason: e.to_string(),
        })?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase")
                .map_err(|e| RuntimeError::NotOnnxRuntime {
                    library: library.to_path_buf(),
                    reason: e.to_string(),
                })?;
        let base = get_base();
        if base.is_null() {
            return Err(RuntimeError::NoApiBase {
                library: library.to_path_buf(),
            });
        }
        let version = std::ffi::CStr::from_ptr(((*base).GetVersionString)());
        Ok(version.to_string_lossy().into_owned())
    }
}

/// One model in one ONNX Runtime session.
pub struct OrtBackend {
    session: Session,
    inputs: Vec<IoSpec>,
    outputs: Vec<IoSpec>,
    description: BackendDescription,
}

/// Opens `model_path` in ONNX Runtime with the engine options of `config`.
pub fn open(model_path: &Path, config: &BackendConfig) -> Result<OrtBackend, BackendError> {
    if !model_path.is_file() {
        return Err(BackendError::ModelNotFound {
            path: model_path.display().to_string(),
        });
    }
    let runtime = runtime()?;
    let load_error = |reason: String| BackendError::Load {
        engine: ENGINE,
        path: model_path.display().to_string(),
        reason,
    };
    let providers = execution_providers(config);
    let mut options = config.ort_session_options();

    let mut builder = Session::builder(&runtime.environment)
        .map_err(|e| load_error(e.to_string()))?
        .with_optimization_level(optimisation_level(config.graph_opt))
        .map_err(|e| load_error(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| load_error(e.to_string()))?
        .with_parallel_execution(false)
        .map_err(|e| load_error(e.to_string()))?
        .with_intra_op_spinning(config.spinning == Spinning::On)
        .map_err(|e| load_error(e.to_string()))?;
    if let Some(threads) = config.threads {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| load_error(e.to_string()))?;
    }
    builder = register_providers(builder, &providers, config)?;
    options.push((
        "execution_providers".into(),
        providers
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(","),
    ));

    let session = builder
        .commit_from_file(model_path)
        .map_err(|e| load_error(e.to_string()))?;
    let inputs = session.inputs().iter().map(io_spec).collect();
    let outputs = session.outputs().iter().map(io_spec).collect();
    options.push(("library".into(), runtime.library.display().to_string()));
    let description = BackendDescription {
        engine: ENGINE,
        engine_version: runtime.version.clone(),
        device: config.device,
        precision: config.precision,
        threads: config.threads,
        options,
    };
    Ok(OrtBackend {
        session,
        inputs,
        outputs,
        description,
    })
}

fn optimisation_level(level: GraphOptLevel) -> GraphOptimizationLevel {
    match level {
        GraphOptLevel::Disable => GraphOptimizationLevel::Disable,
        GraphOptLevel::Basic => GraphOptimizationLevel::Level1,
        GraphOptLevel::Extended => GraphOptimizationLevel::Level2,
        GraphOptLevel::All => GraphOptimizationLevel::All,
    }
}

/// The providers of `config`, in order; none named means the one the device implies.
fn execution_providers(config: &BackendConfig) -> Vec<ExecutionProvider> {
    if config.execution_providers.is_empty() {
        return vec![match config.device {
            Device::Cpu => ExecutionProvider::Cpu,
            Device::Cuda(_) => ExecutionProvider::Cuda,
        }];
    }
    config.execution_providers.clone()
}

/// Registers the GPU providers asked for (the CPU provider is always there, last), failing when
/// the loaded library lacks one instead of falling back to the CPU.
fn register_providers(
    builder: SessionBuilder,
    providers: &[ExecutionProvider],
    config: &BackendConfig,
) -> Result<SessionBuilder, BackendError> {
    let gpu_wanted = providers.iter().any(|p| *p != ExecutionProvider::Cpu);
    let device_id = match config.device {
        Device::Cuda(i) => i as i32,
        Device::Cpu if gpu_wanted => {
            return Err(BackendError::Unsupported(format!(
                "execution providers {} need a CUDA device; pass --device cuda[:N]",
                providers
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        Device::Cpu => 0,
    };
    if let Device::Cuda(_) = config.device
        && !gpu_wanted
    {
        return Err(BackendError::Unsupported(
            "device cuda with only the cpu execution provider: add cuda or tensorrt".to_owned(),
        ));
    }
    if config.precision == Precision::Fp16 && !providers.contains(&ExecutionProvider::TensorRt) {
        return Err(BackendError::Unsupported(
            "fp16 with ONNX Runtime needs the tensorrt execution provider (or an fp16 model file run as fp32)"
                .to_owned(),
        ));
    }
    let mut dispatch = Vec::new();
    for provider in providers {
        let (available, name) = match provider {
            ExecutionProvider::Cpu => continue,
            ExecutionProvider::Cuda => (ep::CUDA::is_available(), ep::CUDA::NAME),
            ExecutionProvider::TensorRt => (ep::TensorRT::is_available(), ep::TensorRT::NAME),
        };
        let runtime = runtime()?;
        match available {
            Ok(true) => {}
            Ok(false) => {
                return Err(BackendError::EngineUnavailable {
                    engine: ENGINE,
                    reason: format!(
                        "{} (version {}) has no {name}; it is a CPU-only build. Install a GPU build \
                         (PyPI onnxruntime-gpu) and point ORT_DYLIB_PATH at its libonnxruntime.so",
                        runtime.library.display(),
                        runtime.version
                    ),
                });
            }
            Err(e) => {
                return Err(BackendError::EngineUnavailable {
                    engine: ENGINE,
                    reason: format!("cannot list the execution providers: {e}"),
                });
            }
        }
        dispatch.push(match provider {
            ExecutionProvider::Cuda => ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure(),
            ExecutionProvider::TensorRt => ep::TensorRT::default()
                .with_device_id(device_id)
                .with_fp16(config.precision == Precision::Fp16)
                .build()
                .error_on_failure(),
            ExecutionProvider::Cpu => unreachable!("skipped above"),
        });
    }
    if dispatch.is_empty() {
        return Ok(builder);
    }
    builder
        .with_execution_providers(dispatch)
        .map_err(|e| BackendError::EngineUnavailable {
            engine: ENGINE,
            reason: format!("registering the execution providers failed: {e}"),
        })
}

fn io_spec(outlet: &ort::value::Outlet) -> IoSpec {
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => IoSpec {
            name: outlet.name().to_owned(),
            shape: Some(
                shape
                    .iter()
                    .map(|&d| if d >= 0 { Some(d as usize) } else { None })
                    .collect(),
            ),
            dtype: dtype_of(*ty),
        },
        _ => IoSpec {
            name: outlet.name().to_owned(),
            shape: None,
            dtype: None,
        },
    }
}

fn dtype_of(ty: TensorElementType) -> Option<DType> {
    match ty {
        TensorElementType::Float32 => Some(DType::F32),
        TensorElementType::Float16 => Some(DType::F16),
        TensorElementType::Int64 => Some(DType::I64),
        TensorElementType::Int32 => Some(DType::I32),
        TensorElementType::Uint8 => Some(DType::U8),
        TensorElementType::Bool => Some(DType::Bool),
        _ => None,
    }
}

/// The engine value of one input, taking ownership of its buffer (no copy).
fn to_ort_value(name: &str, value: Value) -> Result<DynValue, BackendError> {
    let bad = |reason: String| BackendError::BadInput {
        name: name.to_owned(),
        reason,
    };
    let Value::Tensor(Tensor { shape, data }) = value else {
        return Err(bad(format!(
            "ONNX Runtime takes tensors, got a {}",
            value.kind()
        )));
    };
    let made = match data {
        TensorData::F32(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::I64(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
        TensorData::U8(v) => ort::value::Tensor::from_array((shape, v)).map(|t| t.into_dyn()),
    };
    made.map_err(|e| bad(e.to_string()))
}

/// Copies one engine output into an engine-neutral tensor (f32, i64, i32 widened to i64, u8).
fn from_ort_value(name: &str, value: &DynValue) -> Result<Value, BackendError> {
    let run_error = |e: ort::Error| BackendError::Run(format!("output `{name}`: {e}"));
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(BackendError::Run(format!(
            "output `{name}` is a {:?}, expected a tensor",
            value.dtype()
        )));
    };
    let tensor = match ty {
        TensorElementType::Float32 => {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_error)?;
            Tensor {
                shape: dims(shape),
                data: TensorData::F32(data.to_vec()),
            }
        }
        TensorElementType::Int64 => {
            let (shape, data) = value.try_extract_tensor::<i64>().map_err(run_error)?;
            Tensor {
                shape: dims(shape),
                data: TensorData::I64(data.to_vec()),
            }
        }
        TensorElementType::Int32 => {
            let (shape, data) = value.try_extract_tensor::<i32>().map_err(run_error)?;
            Tensor {
                shape: dims(shape),
                data: TensorData::I64(data.iter().map(|&x| x as i64).collect()),
            }
        }
        TensorElementType::Uint8 => {
            let (shape, data) = value.try_extract_tensor::<u8>().map_err(run_error)?;
            Tensor {
                shape: dims(shape),
                data: TensorData::U8(data.to_vec()),
            }
        }
        other => {
            return Err(BackendError::Run(format!(
                "output `{name}` has element type {other:?}; detbench reads f32, i64, i32 and u8"
            )));
        }
    };
    Ok(Value::Tensor(tensor))
}

fn dims(shape: &ort::value::Shape) -> Vec<usize> {
    shape.iter().map(|&d| d.max(0) as usize).collect()
}

impl Backend for OrtBackend {
    fn describe(&self) -> BackendDescription {
        self.description.clone()
    }

    fn inputs(&self) -> &[IoSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[IoSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: Vec<(String, Value)>) -> Result<Outputs, BackendError> {
        let mut feeds: Vec<(String, ort::session::SessionInputValue<'static>)> =
            Vec::with_capacity(inputs.len());
        for (name, value) in inputs {
            if !self.inputs.iter().any(|spec| spec.name == name) {
                return Err(BackendError::BadInput {
                    reason: format!(
                        "the model has no such input (it has: {})",
                        self.inputs
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    name,
                });
            }
            let value = to_ort_value(&name, value)?;
            feeds.push((name, value.into()));
        }
        let outputs = self
            .session
            .run(feeds)
            .map_err(|e| BackendError::Run(e.to_string()))?;
        let mut named = Vec::with_capacity(outputs.len());
        for (name, value) in outputs.iter() {
            named.push((name.to_owned(), from_ort_value(name, &value)?));
        }
        Ok(Outputs(named))
    }
}
