//! The harness. It loads a dataset, decodes images ahead of the model on a bounded queue, times
//! every stage, feeds detections to the accuracy layer and produces results.
//!
//! Like MLPerf LoadGen, it never knows which model or engine it drives: it talks to the
//! [`Detector`] trait of [`sut`].

mod batch_run;
pub mod cache;
pub mod contention;
pub mod dataset;
pub mod interrupt;
pub mod merge;
pub mod mlperf;
pub mod prefetch;
pub mod results;
pub mod runner;
pub mod scenario;
pub mod shard;
pub mod sut;
pub mod timing;

pub use sut::{BatchSupport, Detector, DetectorError, ImageInput, Stage, StageClock};
