//! The per-family pipelines, each a `detbench_bench::Detector`, and [`open_family`], the one
//! place that maps a zoo entry's [`Family`] to its pipeline, configured from the entry's card.
//!
//! To add a family: a `pub mod` line below, a [`Family`] variant (with the name results record
//! and the spelling cards use) in `zoo`, and one match arm in [`open_family`]. A family of one
//! model and one pipeline implements [`common::Pipeline`] and its arm is
//! `single(entry, model_path, config, <pipeline built from the card>)`.

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

use detbench_backends::{Backend, BackendConfig};
use detbench_bench::Detector;

use crate::autoconfig::{AutoConfig, AutoConfigError, autoconfigure, is_quantized};
use crate::card::{self, CardError, DatasetCategory};
use crate::zoo::{Family, ModelFormat, Zoo, ZooEntry};
use crate::{ModelError, model_file};
use common::{Pipeline, SingleModelDetector};
use watch::{BelowThresholdWatch, DEFAULT_WINDOW};

/// What opening a model needs besides its entry.
#[derive(Clone, Copy)]
pub struct OpenContext<'a> {
    /// Where model files (and a top-down model's companion detector) are looked up.
    pub model_dir: &'a Path,
    pub config: &'a BackendConfig,
    /// The dataset's categories, which the card's class map is resolved against (`None`: take
    /// the map as the card gives it, as for a speed-only run).
    pub categories: Option<&'a [DatasetCategory]>,
    /// The zoo companions are found in.
    pub zoo: &'a Zoo,
}

/// Opens the pipeline of `entry` with its model file at `model_path` (already checked to exist),
/// configured from its card.
pub fn open_family(
    entry: &ZooEntry,
    model_path: &Path,
    ctx: &OpenContext<'_>,
) -> Result<Box<dyn Detector>, ModelError> {
    let card = &entry.card;
    let config = ctx.config;
    let categories = ctx.categories;
    let bad_card = |source: CardError| ModelError::Card {
        name: entry.name.clone(),
        source: Box::new(source),
    };
    match entry.family {
        Family::Yolox => {
            let pipeline =
                yolox::Yolox::new(card::configs::yolox(card, categories).map_err(bad_card)?);
            single(entry, model_path, config, pipeline)
        }
        Family::NanoDet => {
            let config_ = card::configs::nanodet(card, categories).map_err(bad_card)?;
            single(entry, model_path, config, nanodet::NanoDet::new(config_))
        }
        Family::FastestDet => {
            let config_ = card::configs::fastestdet(card, categories).map_err(bad_card)?;
            single(
                entry,
                model_path,
                config,
                fastestdet::FastestDet::new(config_),
            )
        }
        Family::Tf2ObjectDetection => single(
            entry,
            model_path,
            config,
            tf2::Tf2ObjectDetection::new(tf2::Tf2Config::default()),
        ),
        Family::Ultralytics | Family::Detr => open_configured(entry, model_path, ctx),
        Family::SimplePoseTopDown => Ok(Box::new(open_top_down(entry, model_path, ctx)?)),
        Family::D2Go => Ok(Box::new(d2go::open(entry, model_path, config)?)),
        Family::TorchvisionDetection => Ok(Box::new(torchvision::open(entry, model_path, config)?)),
        Family::Detectron2 => Err(ModelError::Unsupported {
            name: entry.name.clone(),
            family: Family::Detectron2,
            reason: "detbench has no detectron2 pipeline yet: a detectron2 TorchScript export \
                     takes image dicts and returns Instances fields, which the torchvision \
                     list-model pipeline does not read (see `detbench zoo` for the export)"
                .to_owned(),
        }),
    }
}

/// The `Detector` of a family made of one model and one pipeline (every such family's arm).
fn single<P: Pipeline + 'static>(
    entry: &ZooEntry,
    model_path: &Path,
    config: &BackendConfig,
    pipeline: P,
) -> Result<Box<dyn Detector>, ModelError> {
    let backend = detbench_backends::open(model_path, config)?;
    Ok(Box::new(single_model(&entry.name, backend, pipeline)?))
}

/// One model in one backend with one pipeline.
fn single_model<P: Pipeline>(
    name: &str,
    backend: Box<dyn Backend>,
    pipeline: P,
) -> Result<SingleModelDetector<P>, ModelError> {
    SingleModelDetector::new(name, backend, pipeline).map_err(|source| ModelError::Pipeline {
        name: name.to_owned(),
        source,
    })
}

/// An Ultralytics or DETR-style model: what the file says about itself
/// ([`autoconfigure`]), the card on top ([`card::pipelines::configure`]), the class map resolved
/// against the dataset; a quantized file is watched for "detects nothing".
fn open_configured(
    entry: &ZooEntry,
    model_path: &Path,
    ctx: &OpenContext<'_>,
) -> Result<Box<dyn Detector>, ModelError> {
    let backend = detbench_backends::open(model_path, ctx.config)?;
    let auto = match entry.format {
        ModelFormat::Onnx => autoconfigure(model_path, backend.inputs(), backend.outputs()),
        _ => Err(AutoConfigError::NotOnnx {
            path: model_path.display().to_string(),
        }),
    };
    let configured = card::pipelines::configure(
        &entry.card,
        auto,
        backend.inputs(),
        backend.outputs(),
        ctx.categories,
    )
    .map_err(|source| ModelError::Card {
        name: entry.name.clone(),
        source: Box::new(source),
    })?;
    let quantized = entry.format == ModelFormat::Onnx && is_quantized(model_path);
    let name = entry.name.as_str();
    let watch =
        |threshold: f32| BelowThresholdWatch::new(name, threshold, quantized, DEFAULT_WINDOW);
    Ok(match configured {
        AutoConfig::Ultralytics { config, .. } => {
            let conf = config.nms.conf;
            let pipeline =
                ultralytics::Ultralytics::new(config).map_err(|source| ModelError::Pipeline {
                    name: name.to_owned(),
                    source,
                })?;
            Box::new(single_model(name, backend, pipeline)?.with_watch(watch(conf)))
        }
        AutoConfig::Detr(config) => {
            let threshold = config.score_threshold;
            let pipeline = detr::Detr::new(config);
            Box::new(single_model(name, backend, pipeline)?.with_watch(watch(threshold)))
        }
    })
}

/// A top-down keypoint model: the person detector its card names as `companion` (a YOLOX card,
/// from the same zoo and model folder) and the pose model.
pub fn open_top_down(
    entry: &ZooEntry,
    model_path: &Path,
    ctx: &OpenContext<'_>,
) -> Result<simplepose::TopDownDetector, ModelError> {
    let bad_card = |name: &str, source: CardError| ModelError::Card {
        name: name.to_owned(),
        source: Box::new(source),
    };
    let companion = entry.card.companion.as_deref().ok_or_else(|| {
        bad_card(
            &entry.name,
            CardError::Config {
                model: entry.name.clone(),
                field: "companion".to_owned(),
                reason: "a top-down keypoint card names its person detector's card".to_owned(),
            },
        )
    })?;
    let detector_entry = ctx.zoo.get(companion)?;
    if detector_entry.family != Family::Yolox {
        return Err(bad_card(
            &entry.name,
            CardError::Config {
                model: entry.name.clone(),
                field: "companion".to_owned(),
                reason: format!(
                    "the person detector `{companion}` is a `{}` model; top-down keypoints take YOLOX boxes",
                    detector_entry.family
                ),
            },
        ));
    }
    let detector_path = model_file(detector_entry, ctx.model_dir)?;
    // The detector's boxes are person proposals, whatever the dataset's categories.
    let detector_config = card::configs::yolox(&detector_entry.card, None)
        .map_err(|e| bad_card(&detector_entry.name, e))?;
    let detector_backend = detbench_backends::open(&detector_path, ctx.config)?;
    let detector = single_model(
        &detector_entry.name,
        detector_backend,
        yolox::Yolox::new(detector_config),
    )?;
    let pose_backend = detbench_backends::open(model_path, ctx.config)?;
    let pose_config =
        card::configs::simplepose(&entry.card).map_err(|e| bad_card(&entry.name, e))?;
    Ok(simplepose::TopDownDetector::new(
        &entry.name,
        detector,
        pose_backend,
        simplepose::SimplePose::new(pose_config),
    ))
}
