//! The per-family pipelines, each a `detbench_bench::Detector`, and [`open_family`], the one
//! place that maps a zoo entry's [`Family`] to its pipeline.
//!
//! To add a family: a `pub mod` line below, a [`Family`] variant (with the name results record)
//! in `zoo`, and one match arm in [`open_family`]. A family of one model and one pipeline
//! implements [`common::Pipeline`] and its arm is `single(entry, model_path, config, <pipeline>)`.

pub mod common;
pub mod d2go;
pub mod detr;
pub mod fastestdet;
pub mod nanodet;
pub mod nms;
pub mod numpy_math;
pub mod simplepose;
pub mod tf2;
pub mod torchvision;
pub mod ultralytics;
pub mod watch;
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
    let square = || square_input(entry);
    match entry.family {
        Family::Yolox => single(
            entry,
            model_path,
            config,
            yolox::Yolox::new(yolox::YoloxConfig {
                input_size: square()?,
                ..Default::default()
            }),
        ),
        Family::NanoDet => single(
            entry,
            model_path,
            config,
            nanodet::NanoDet::new(nanodet::NanoDetConfig {
                input_size: square()?,
                ..Default::default()
            }),
        ),
        Family::FastestDet => single(
            entry,
            model_path,
            config,
            fastestdet::FastestDet::new(fastestdet::FastestDetConfig {
                input_size: square()?,
                ..Default::default()
            }),
        ),
        Family::Tf2ObjectDetection => single(
            entry,
            model_path,
            config,
            tf2::Tf2ObjectDetection::new(tf2::Tf2Config::default()),
        ),
        Family::SimplePoseTopDown => Ok(Box::new(open_top_down(
            entry, model_path, model_dir, config,
        )?)),
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
    }
}

/// The `Detector` of a family made of one model and one pipeline (every such family's arm).
fn single<P: common::Pipeline + 'static>(
    entry: &ZooEntry,
    model_path: &Path,
    config: &BackendConfig,
    pipeline: P,
) -> Result<Box<dyn Detector>, ModelError> {
    Ok(Box::new(single_model(
        entry.name, model_path, config, pipeline,
    )?))
}

/// One model in one backend with one pipeline.
fn single_model<P: common::Pipeline>(
    name: &str,
    model_path: &Path,
    config: &BackendConfig,
    pipeline: P,
) -> Result<SingleModelDetector<P>, ModelError> {
    let backend = detbench_backends::open(model_path, config)?;
    SingleModelDetector::new(name, backend, pipeline).map_err(|source| ModelError::Pipeline {
        name: name.to_owned(),
        source,
    })
}

/// The zoo entry that provides a top-down keypoint model's person boxes.
pub const PERSON_DETECTOR: &str = "yolox_nano";

/// `simplepose_yolox`: the person detector ([`PERSON_DETECTOR`], from the same folder) and the
/// pose model.
pub fn open_top_down(
    entry: &ZooEntry,
    model_path: &Path,
    model_dir: &Path,
    config: &BackendConfig,
) -> Result<simplepose::TopDownDetector, ModelError> {
    let detector_entry = crate::entry(PERSON_DETECTOR)?;
    let detector_path = crate::model_file(detector_entry, model_dir)?;
    let pipeline = yolox::Yolox::new(yolox::YoloxConfig {
        input_size: square_input(detector_entry)?,
        ..Default::default()
    });
    let detector = single_model(detector_entry.name, &detector_path, config, pipeline)?;
    let pose_backend = detbench_backends::open(model_path, config)?;
    let (w, h) = entry
        .input_size
        .map_or((192, 256), |(w, h)| (w as usize, h as usize));
    let pose = simplepose::SimplePose::new(simplepose::SimplePoseConfig {
        input_size: (w, h),
        heatmap_size: (w / 4, h / 4),
        ..Default::default()
    });
    Ok(simplepose::TopDownDetector::new(
        entry.name,
        detector,
        pose_backend,
        pose,
    ))
}

/// The square network input side of a catalogue entry.
fn square_input(entry: &ZooEntry) -> Result<usize, ModelError> {
    match entry.input_size {
        Some((w, h)) if w == h => Ok(w as usize),
        other => Err(ModelError::NotSquare {
            name: entry.name.to_owned(),
            size: other,
        }),
    }
}
