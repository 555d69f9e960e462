//! The configuration of the built-in families (YOLOX, NanoDet, FastestDet, SimplePose) from
//! a card: the input size, thresholds, padding and normalisation the card gives, the family's
//! upstream defaults for what it leaves out, and the class map resolved against the dataset.
//! These families decode a fixed head (80 COCO classes); a card asking for what their upstream
//! pipeline does not do (another class count, class-agnostic NMS, another colour order) is
//! refused, naming the field.

use super::schema::{Card, Colour, Preprocess};
use super::{CardError, DatasetCategory, class_map};
use crate::families::common::ClassMap;
use crate::families::fastestdet::FastestDetConfig;
use crate::families::nanodet::NanoDetConfig;
use crate::families::simplepose::SimplePoseConfig;
use crate::families::yolox::YoloxConfig;

/// Classes of the built-in families' heads.
const HEAD_CLASSES: usize = 80;

fn refuse(card: &Card, field: &str, reason: String) -> CardError {
    CardError::Config {
        model: card.name.clone(),
        field: field.to_owned(),
        reason,
    }
}

/// The square input side the card gives (`default` when it gives none).
fn square(card: &Card, default: usize) -> Result<usize, CardError> {
    match card.input.size {
        None => Ok(default),
        Some([w, h]) if w == h => Ok(w as usize),
        Some([w, h]) => Err(refuse(
            card,
            "input.size",
            format!(
                "family `{}` takes a square input; got [{w}, {h}]",
                card.family
            ),
        )),
    }
}

/// Checks what the built-in heads cannot vary: 80 classes, class-aware NMS, the colour order.
fn check_head(card: &Card, colour: Colour) -> Result<(), CardError> {
    if let Some(classes) = card.output.classes.filter(|&c| c != HEAD_CLASSES) {
        return Err(refuse(
            card,
            "output.classes",
            format!(
                "family `{}` decodes a head of {HEAD_CLASSES} classes; got {classes}",
                card.family
            ),
        ));
    }
    if card.postprocess.agnostic == Some(true) {
        return Err(refuse(
            card,
            "postprocess.agnostic",
            format!(
                "family `{}` runs class-aware NMS, as its upstream evaluation does",
                card.family
            ),
        ));
    }
    match card.preprocess.as_ref().map(|p| p.colour) {
        Some(given) if given != colour => Err(refuse(
            card,
            "preprocess.colour",
            format!(
                "family `{}` feeds {} pixels",
                card.family,
                match colour {
                    Colour::Rgb => "RGB",
                    Colour::Bgr => "BGR",
                }
            ),
        )),
        _ => Ok(()),
    }
}

/// The class map of an 80-class COCO head on the dataset with `categories`.
fn head_class_map(
    card: &Card,
    categories: Option<&[DatasetCategory]>,
) -> Result<ClassMap, CardError> {
    Ok(ClassMap(class_map(
        &card.name,
        &card.classes,
        HEAD_CLASSES,
        None,
        categories,
    )?))
}

fn preprocess(card: &Card) -> Option<&Preprocess> {
    card.preprocess.as_ref()
}

/// YOLOX from its card.
pub fn yolox(
    card: &Card,
    categories: Option<&[DatasetCategory]>,
) -> Result<YoloxConfig, CardError> {
    check_head(card, Colour::Bgr)?;
    let d = YoloxConfig::default();
    let post = &card.postprocess;
    Ok(YoloxConfig {
        input_size: square(card, d.input_size)?,
        score_threshold: post.score_threshold.unwrap_or(d.score_threshold),
        nms_iou: post.nms_iou.unwrap_or(d.nms_iou),
        max_detections: post.max_detections.or(d.max_detections),
        pad_value: preprocess(card).and_then(|p| p.pad).unwrap_or(d.pad_value),
        output_name: main_output(card).unwrap_or(d.output_name),
        input_name: card.input.name.clone().unwrap_or(d.input_name),
        class_map: head_class_map(card, categories)?,
    })
}

/// NanoDet from its card.
pub fn nanodet(
    card: &Card,
    categories: Option<&[DatasetCategory]>,
) -> Result<NanoDetConfig, CardError> {
    check_head(card, Colour::Bgr)?;
    let d = NanoDetConfig::default();
    let post = &card.postprocess;
    Ok(NanoDetConfig {
        input_size: square(card, d.input_size)?,
        score_threshold: post.score_threshold.unwrap_or(d.score_threshold),
        nms_iou: post.nms_iou.unwrap_or(d.nms_iou),
        max_detections: post.max_detections.or(d.max_detections),
        mean: preprocess(card).and_then(|p| p.mean).unwrap_or(d.mean),
        std: preprocess(card).and_then(|p| p.std).unwrap_or(d.std),
        input_name: card.input.name.clone().unwrap_or(d.input_name),
        class_map: head_class_map(card, categories)?,
        ..d
    })
}

/// FastestDet from its card.
pub fn fastestdet(
    card: &Card,
    categories: Option<&[DatasetCategory]>,
) -> Result<FastestDetConfig, CardError> {
    check_head(card, Colour::Bgr)?;
    let d = FastestDetConfig::default();
    let post = &card.postprocess;
    Ok(FastestDetConfig {
        input_size: square(card, d.input_size)?,
        score_threshold: post.score_threshold.unwrap_or(d.score_threshold),
        nms_iou: post.nms_iou.unwrap_or(d.nms_iou),
        max_detections: post.max_detections.or(d.max_detections),
        input_name: card.input.name.clone().unwrap_or(d.input_name),
        output_name: main_output(card).unwrap_or(d.output_name),
        class_map: head_class_map(card, categories)?,
    })
}

/// The SimplePose model of a top-down card (its heatmap is a quarter of the input).
pub fn simplepose(card: &Card) -> Result<SimplePoseConfig, CardError> {
    let d = SimplePoseConfig::default();
    let (w, h) = card
        .input
        .size
        .map_or(d.input_size, |[w, h]| (w as usize, h as usize));
    Ok(SimplePoseConfig {
        input_size: (w, h),
        heatmap_size: (w / 4, h / 4),
        mean: preprocess(card).and_then(|p| p.mean).unwrap_or(d.mean),
        std: preprocess(card).and_then(|p| p.std).unwrap_or(d.std),
        input_name: card.input.name.clone().unwrap_or(d.input_name),
        output_name: main_output(card).unwrap_or(d.output_name),
        ..d
    })
}

/// The card's main output name (`[output] names`, first).
fn main_output(card: &Card) -> Option<String> {
    card.output.names.as_ref().and_then(|n| n.first().cloned())
}
