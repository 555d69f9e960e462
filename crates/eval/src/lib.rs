//! detbench's accuracy layer over [hotcoco]: detections go in as plain Rust values, COCO stats,
//! per-class AP and precision/recall curves come out as detbench's own types.
//!
//! Nothing here knows about models or engines; every crate that produces detections speaks the
//! types of [`types`].

pub mod labels;
pub mod types;

pub use types::{Detection, IouType, Rle};
