//! From a card (and what the file says about itself) to the configuration of the Ultralytics and
//! DETR-style pipelines: the file's own facts first ([`crate::autoconfig`]), every field the card
//! gives on top, and the card's output shape checked against the file's.

use detbench_backends::IoSpec;

use super::schema::{Align, Card, Colour, Family, OutputLayoutKind, Protocol, Task as CardTask};
use super::{CardError, check_output_shape};
use crate::autoconfig::AutoConfig;
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
/// `inputs` and `outputs`; `auto` is what the file alone gave (if anything) and `class_map` the
/// card's map resolved against the dataset ([`super::class_map`]).
pub fn configure(
    card: &Card,
    auto: Option<AutoConfig>,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    class_map: Vec<Option<u64>>,
) -> Result<AutoConfig, CardError> {
    let main = outputs.first();
    check_output_shape(
        card,
        main.map_or("output", |o| o.name.as_str()),
        main.and_then(|o| o.shape.as_deref()),
    )?;
    match card.family {
        Family::Ultralytics => {
            let mut config = match auto {
                Some(AutoConfig::Ultralytics { config, .. }) => config,
                _ => ultralytics_from_card(card, inputs, outputs)?,
            };
            apply_ultralytics(card, &mut config, class_map);
            Ok(AutoConfig::Ultralytics {
                config,
                metadata: None,
                names: card.classes.names.clone(),
            })
        }
        Family::Detr => {
            let mut config = match auto {
                Some(AutoConfig::Detr(config)) => config,
                _ => detr_from_card(card, inputs, outputs)?,
            };
            apply_detr(card, &mut config, class_map);
            Ok(AutoConfig::Detr(config))
        }
        other => Err(invalid(
            card,
            "family",
            format!(
                "{other:?} cards are opened through the built-in zoo's pipelines, not this builder"
            ),
        )),
    }
}

/// The layout a card describes, read against the file's outputs.
fn ultralytics_from_card(
    card: &Card,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
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
            "a card for a file without Ultralytics metadata gives the class count".into(),
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
        .map_err(|e| invalid(card, "output", e.to_string()))?;
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
                "the file's outputs read as {:?}, not {layout:?}",
                spec.layout
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
                "a card for a file without Ultralytics metadata gives [width, height]".into(),
            )
        })?;
    Ok(UltralyticsConfig::new(&input, size, spec, Vec::new()))
}

fn apply_ultralytics(card: &Card, config: &mut UltralyticsConfig, class_map: Vec<Option<u64>>) {
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
    config.class_map = class_map;
}

fn detr_from_card(
    card: &Card,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
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
                _ => return Err(invalid(card, "output.names", e.to_string())),
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
        class_map: Vec::new(),
        rgb: true,
        divisor: 255.0,
    })
}

fn apply_detr(card: &Card, config: &mut DetrConfig, class_map: Vec<Option<u64>>) {
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
    config.class_map = class_map;
}
