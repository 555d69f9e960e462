//! detbench's accuracy layer over [hotcoco]: detections go in as plain Rust values, COCO stats,
//! per-class AP and precision/recall curves come out as detbench's own types.
//!
//! - [`GroundTruth`]: a COCO annotation file, loaded once and shared through an `Arc`.
//! - [`Evaluator`]: in-memory, image-by-image evaluation of one IoU type (hotcoco's
//!   `StreamingEval`); [`BackgroundEvaluator`] runs several on their own thread.
//! - [`evaluate_results_file`]: a COCO results file, as `detbench eval` does it.
//! - [`EvalSummary`]: stats, per-class AP, PR curves and pycocotools' summary lines.
//!
//! Nothing here knows about models or engines; every crate that produces detections speaks the
//! types of [`types`].

pub mod background;
mod capture;
mod diagnose;
pub mod error;
pub mod evaluator;
pub mod files;
pub mod ground_truth;
pub mod labels;
mod lenient;
pub mod params;
pub mod summary;
pub mod types;
pub mod validate;

pub use background::BackgroundEvaluator;
pub use error::EvalError;
pub use evaluator::{Evaluator, IMAGES_PER_UPDATE, iou_types_of};
pub use files::{
    ImageScope, check_results, evaluate_results_file, evaluate_results_file_in, load_results,
};
pub use ground_truth::GroundTruth;
pub use params::{
    AreaRange, DetectionArea, EvalParams, SummaryMaxDets, parse_area_ranges, parse_image_ids,
    parse_max_dets,
};
pub use summary::{ClassAp, EvalSummary, PrCurve, SummaryRow};
pub use types::{CocoResult, CompressedRle, Detection, IouType, Rle};
