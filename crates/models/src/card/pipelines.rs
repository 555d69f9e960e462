//! From a card (and what the file says about itself) to the configuration of the Ultralytics and
//! DETR-style pipelines: the file's own facts first ([`crate::autoconfig`]), every field the card
//! gives on top, and the card's output shape checked against the file's.

use detbench_backends::IoSpec;

use super::schema::{Align, Card, Colour, Family, OutputLayoutKind, Protocol, Task as CardTask};
use super::{CardError, DatasetCategory, check_output_shape, class_map};
use crate::autoconfig::{AutoConfig, AutoConfigError};
use crate::families::detr::{self, DetrConfig, DetrOutputs};
use crate::families::ultralytics::layout::{self, Layout, Task};
use crate::families::ultralytics::metadata::UltralyticsMetadata;
use crate::families::ultralytics::{Geometry, MaskMode, UltralyticsConfig};

fn invalid(card: &Card, field: &str, reason: String) -> CardError {
    CardError::Config {
        model: card.name.clone(),
        field: field.to_owned(),
        reason,
    }
}

/// The pipeline configuration of a card of family `ultralytics` or `detr` for a file with
/// `inputs` and `outputs`: `auto` is what the file alone gave ([`crate::autoconfig`]), the card's
/// fields go on top, and the class map is resolved against the dataset's `categories`
/// ([`super::class_map`]). Where the file says nothing the card must say it; the error then
/// names the card field and repeats why the file alone was not enough.
pub fn configure(
    card: &Card,
    auto: Result<AutoConfig, AutoConfigError>,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    categories: Option<&[DatasetCategory]>,
) -> Result<AutoConfig, CardError> {
    let main = outputs.first();
    check_output_shape(
        card,
        main.map_or("output", |o| o.name.as_str()),
        main.and_then(|o| o.shape.as_deref()),
    )?;
    match (card.family, auto) {
        (Family::Ultralytics, Ok(AutoConfig::Ultralytics { config, names, .. })) => {
            ultralytics(card, config, names, categories)
        }
        (Family::Ultralytics, Err(why)) => {
            let config = ultralytics_from_card(card, inputs, outputs, &why)?;
            ultralytics(card, config, None, categories)
        }
        (Family::Detr, Ok(AutoConfig::Detr(config))) => detr(card, config, categories),
        (Family::Detr, Err(why)) => {
            let config = detr_from_card(card, inputs, outputs, &why)?;
            detr(card, config, categories)
        }
        (family @ (Family::Ultralytics | Family::Detr), Ok(found)) => Err(invalid(
            card,
            "family",
            format!(
                "the file reads as a {} export, not `{family}`; set `family = \"{}\"` or remove it",
                found.family(),
                found.family().aliases()[0]
            ),
        )),
        (other, _) => Err(invalid(
            card,
            "family",
            format!("`{other}` cards are opened through that family's own pipeline"),
        )),
    }
}

fn ultralytics(
    card: &Card,
    mut config: UltralyticsConfig,
    file_names: Option<Vec<String>>,
    categories: Option<&[DatasetCategory]>,
) -> Result<AutoConfig, CardError> {
    apply_ultralytics(card, &mut config);
    config.class_map = class_map(
        &card.name,
        &card.classes,
        config.output.classes,
        file_names.as_deref(),
        categories,
    )?;
    let names = card.classes.names.clone().or(file_names);
    Ok(AutoConfig::Ultralytics {
        config,
        metadata: None,
        names,
    })
}

fn detr(
    card: &Card,
    mut config: DetrConfig,
    categories: Option<&[DatasetCategory]>,
) -> Result<AutoConfig, CardError> {
    apply_detr(card, &mut config);
    let classes = card.output.classes.unwrap_or(config.class_map.len());
    config.class_map = class_map(&card.name, &card.classes, classes, None, categories)?;
    Ok(AutoConfig::Detr(config))
}

/// The layout a card describes, read against the file's outputs.
fn ultralytics_from_card(
    card: &Card,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    why: &AutoConfigError,
) -> Result<UltralyticsConfig, CardError> {
    let task = match card.output.task.unwrap_or(CardTask::Detect) {
        CardTask::Detect => "detect",
        CardTask::Segment => "segment",
        CardTask::Pose => "pose",
    };
    let classes = card.output.classes.ok_or_else(|| {
        invalid(
            card,
            "output.classes",
            format!("a card for a file without Ultralytics metadata gives the class count ({why})"),
        )
    })?;
    let metadata = UltralyticsMetadata {
        task: task.to_owned(),
        names: card
            .classes
            .names
            .clone()
            .unwrap_or_else(|| (0..classes).map(|i| format!("class{i}")).collect()),
        imgsz: card.input.size.map(|[w, h]| (h as usize, w as usize)),
        stride: None,
        batch: None,
        kpt_shape: card.output.keypoints.map(|[k, d]| (k, d)),
        end2end: card.output.layout == Some(OutputLayoutKind::EndToEnd),
        dynamic: false,
        version: None,
        yolov5: card.output.layout == Some(OutputLayoutKind::Objectness),
    };
    let spec = layout::recognise(inputs, outputs, Some(&metadata))
        .map_err(|e| invalid(card, "output.layout", e.to_string()))?;
    let expected = match card.output.layout {
        Some(OutputLayoutKind::ChannelsFirst) => Some(Layout::ChannelsFirst),
        Some(OutputLayoutKind::Objectness) => Some(Layout::Objectness),
        Some(OutputLayoutKind::EndToEnd) => Some(Layout::EndToEnd),
        _ => None,
    };
    if let Some(layout) = expected.filter(|l| *l != spec.layout) {
        return Err(invalid(
            card,
            "output.layout",
            format!(
                "the file's outputs read as `{}`, not `{}`",
                spec.layout.as_str(),
                layout.as_str()
            ),
        ));
    }
    if spec.task == Task::Pose && spec.keypoints.is_none() {
        return Err(invalid(
            card,
            "output.keypoints",
            "a pose model needs keypoints = [k, d]".into(),
        ));
    }
    let input = card
        .input
        .name
        .clone()
        .or_else(|| inputs.first().map(|i| i.name.clone()))
        .unwrap_or_default();
    let size = card
        .input
        .size
        .map(|[w, h]| (w as usize, h as usize))
        .ok_or_else(|| {
            invalid(
                card,
                "input.size",
                format!(
                    "a card for a file without Ultralytics metadata gives [width, height] ({why})"
                ),
            )
        })?;
    Ok(UltralyticsConfig::new(&input, size, spec, Vec::new()))
}

fn apply_ultralytics(card: &Card, config: &mut UltralyticsConfig) {
    if let Some([w, h]) = card.input.size {
        config.input_size = (w as usize, h as usize);
    }
    if let Some(p) = &card.preprocess {
        config.centre = p.align != Some(Align::TopLeft);
        config.pad_value = p.pad.unwrap_or(config.pad_value);
        config.rgb = p.colour == Colour::Rgb;
        if let Some(Ok(Some(divisor))) = p.scale.as_ref().map(|s| s.divisor()) {
            config.divisor = divisor;
        }
    }
    let post = &card.postprocess;
    config.nms.conf = post.score_threshold.unwrap_or(config.nms.conf);
    config.nms.iou = post.nms_iou.unwrap_or(config.nms.iou);
    config.nms.agnostic = post.agnostic.unwrap_or(config.nms.agnostic);
    config.nms.max_det = post.max_detections.unwrap_or(config.nms.max_det);
    if post.protocol == Some(Protocol::Validator) {
        config.nms.multi_label = true;
        config.geometry = Geometry::Validator;
        config.masks = MaskMode::Validator;
    }
}

fn detr_from_card(
    card: &Card,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    why: &AutoConfigError,
) -> Result<DetrConfig, CardError> {
    let (input_name, input_size, detr_outputs) = match detr::recognise(inputs, outputs) {
        Ok(found) => found,
        Err(e) => {
            let names = card.output.names.clone().unwrap_or_default();
            let input = card
                .input
                .name
                .clone()
                .or_else(|| inputs.first().map(|i| i.name.clone()));
            let size = card.input.size.map(|[w, h]| (w as usize, h as usize));
            let outputs = match (card.output.layout, names.as_slice(), inputs.get(1)) {
                (Some(OutputLayoutKind::LabelsBoxesScores), [l, b, s], Some(sizes)) => {
                    DetrOutputs::LabelsBoxesScores {
                        sizes_input: sizes.name.clone(),
                        labels: l.clone(),
                        boxes: b.clone(),
                        scores: s.clone(),
                    }
                }
                (Some(OutputLayoutKind::LogitsBoxes), [l, b], _) => DetrOutputs::Logits {
                    logits: l.clone(),
                    boxes: b.clone(),
                    top_k: card.postprocess.max_detections.unwrap_or(300),
                },
                _ => {
                    return Err(invalid(
                        card,
                        "output.names",
                        format!("{e} (and the file alone: {why})"),
                    ));
                }
            };
            match (input, size) {
                (Some(input), Some(size)) => (input, size, outputs),
                _ => {
                    return Err(invalid(
                        card,
                        "input.size",
                        "give [input] name and size".into(),
                    ));
                }
            }
        }
    };
    Ok(DetrConfig {
        input_name,
        input_size,
        outputs: detr_outputs,
        score_threshold: 0.0,
        class_map: vec![None; card.output.classes.unwrap_or(80)],
        rgb: true,
        divisor: 255.0,
    })
}

fn apply_detr(card: &Card, config: &mut DetrConfig) {
    if let Some([w, h]) = card.input.size {
        config.input_size = (w as usize, h as usize);
    }
    if let Some(p) = &card.preprocess {
        config.rgb = p.colour == Colour::Rgb;
        if let Some(Ok(Some(divisor))) = p.scale.as_ref().map(|s| s.divisor()) {
            config.divisor = divisor;
        }
    }
    config.score_threshold = card
        .postprocess
        .score_threshold
        .unwrap_or(config.score_threshold);
    if let (DetrOutputs::Logits { top_k, .. }, Some(max)) =
        (&mut config.outputs, card.postprocess.max_detections)
    {
        *top_k = max;
    }
}
