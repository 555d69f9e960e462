//! detbench-train: training throughput of torchvision detectors through libtorch, as NVIDIA's
//! Mask R-CNN tables report it (images/s at fp32, TF32 and AMP, per GPU), with torchvision's
//! reference recipe (`references/detection/train.py`, `engine.py`, `coco_utils.py`,
//! `presets.py`, `group_by_aspect_ratio.py`).
//!
//! Without the `torch` feature the crate is the data side, which needs no libtorch: the COCO
//! training set ([`coco`]), targets as `ConvertCocoPolysToMask` builds them ([`targets`]), the
//! samplers ([`sampler`]), the worker-thread loader ([`loader`]), the lr schedule
//! ([`schedule`]) and the typed results ([`results`]). With `torch`, [`torch`] runs the steps.

pub mod coco;
pub mod config;
pub mod error;
pub mod loader;
pub mod results;
pub mod sampler;
pub mod schedule;
pub mod targets;
#[cfg(feature = "torch")]
pub mod torch;

pub use config::{GroupBackend, ModelKind, Parallel, Precision, Recipe, Rendezvous, TrainConfig};
pub use detbench_backends::Device;
pub use error::{AnnotationIssue, Result, TrainError};
pub use loader::{check_batches, load_training_set};
pub use results::{PeakMemory, Stats, StepRecord, Throughput, TrainResults};
