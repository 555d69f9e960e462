//! The per-family pipelines, each a `detbench_bench::Detector`, and [`open_family`], the one
//! place that maps a zoo entry's [`Family`] to its pipeline.
//!
//! To add a family: a `pub mod` line below and one match arm in [`open_family`].

pub mod common;
pub mod d2go;
pub mod fastestdet;
pub mod nanodet;
pub mod nms;
pub mod numpy_math;
pub mod tf2;
pub mod torchvision;
pub mod yolox;

use std::path::Path;

use detbench_backends::BackendConfig;
use detbench_bench::Detector;

use crate::ModelError;
use crate::zoo::{Family, ZooEntry};
use common::SingleModelDetector;

/// Opens the pipeline of `entry` with its model file at `model_path` (already checked to exist).
/// `model_dir` is where companion models are looked up (a top-down keypoint model's detector).
pub fn open_family(
    entry: &ZooEntry,
    model_path: &Path,
    model_dir: &Path,
    config: &BackendConfig,
) -> Result<Box<dyn Detector>, ModelError> {
    let _ = model_dir;
    let wrap = |e: common::FamilyError| ModelError::Other(format!("{}: {e}", entry.name));
    match entry.family {
        Family::Yolox => {
            let pipeline = yolox::Yolox::new(yolox::YoloxConfig {
                input_size: square_input(entry)?,
                ..Default::default()
            });
            let backend = detbench_backends::open(model_path, config)?;
            let input = pipeline.config.input_name.clone();
            Ok(Box::new(
                SingleModelDetector::new(entry.name, backend, &input, pipeline).map_err(wrap)?,
            ))
        }
        Family::NanoDet => {
            let pipeline = nanodet::NanoDet::new(nanodet::NanoDetConfig {
                input_size: square_input(entry)?,
                ..Default::default()
            });
            let backend = detbench_backends::open(model_path, config)?;
            let input = pipeline.config.input_name.clone();
            Ok(Box::new(
                SingleModelDetector::new(entry.name, backend, &input, pipeline).map_err(wrap)?,
            ))
        }
        Family::FastestDet => {
            let pipeline = fastestdet::FastestDet::new(fastestdet::FastestDetConfig {
                input_size: square_input(entry)?,
                ..Default::default()
            });
            let backend = detbench_backends::open(model_path, config)?;
            let input = pipeline.config.input_name.clone();
            Ok(Box::new(
                SingleModelDetector::new(entry.name, backend, &input, pipeline).map_err(wrap)?,
            ))
        }
        Family::Tf2ObjectDetection => {
            let pipeline = tf2::Tf2ObjectDetection::new(tf2::Tf2Config::default());
            let backend = detbench_backends::open(model_path, config)?;
            let input = pipeline.config.input_name.clone();
            Ok(Box::new(
                SingleModelDetector::new(entry.name, backend, &input, pipeline).map_err(wrap)?,
            ))
        }
        Family::D2Go => Ok(Box::new(d2go::open(entry, model_path, config)?)),
        Family::TorchvisionDetection => Ok(Box::new(torchvision::open(entry, model_path, config)?)),
        Family::Detectron2 => Err(ModelError::Unsupported {
            name: entry.name.to_owned(),
            family: Family::Detectron2,
            reason: "detbench has no detectron2 pipeline yet: a detectron2 TorchScript export \
                     takes image dicts and returns Instances fields, which the torchvision \
                     list-model pipeline does not read (see `detbench zoo` for the export)"
                .to_owned(),
        }),
        other => Err(ModelError::Unsupported {
            name: entry.name.to_owned(),
            family: other,
            reason: "no pipeline for this family in this build".to_owned(),
        }),
    }
}

/// The square network input side of a catalogue entry.
fn square_input(entry: &ZooEntry) -> Result<usize, ModelError> {
    match entry.input_size {
        Some((w, h)) if w == h => Ok(w as usize),
        other => Err(ModelError::Other(format!(
            "{}: catalogue input size {other:?} is not square; this family needs a square input",
            entry.name
        ))),
    }
}
