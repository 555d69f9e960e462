//! How a user asks for an engine: which one, on which device, at which precision, with which
//! options. Parsing lives here so that the CLI and the results store spell them the same way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// ONNX Runtime, through the `ort` crate (`.onnx` files).
    Ort,
    /// libtorch, through the `tch` crate (TorchScript `.pt` files).
    Torch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" | "float32" => Ok(Precision::Fp32),
            "fp16" | "float16" | "half" => Ok(Precision::Fp16),
            _ => Err(format!("unknown precision `{s}`: expected fp32 or fp16")),
        }
    }
}

/// ONNX Runtime graph optimisation level (`GraphOptimizationLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphOptLevel {
    Disable,
    Basic,
    Extended,
    All,
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
    /// ONNX Runtime execution providers to try in order (`cpu`, `cuda`, `tensorrt`).
    pub execution_providers: Vec<String>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            engine: EngineKind::Ort,
            device: Device::Cpu,
            precision: Precision::Fp32,
            threads: None,
            graph_opt: GraphOptLevel::All,
            execution_providers: Vec::new(),
        }
    }
}
