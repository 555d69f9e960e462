//! The card of a model file that came without one: what the file says about itself
//! ([`crate::autoconfig`]) written out as a card, so that `detbench run --model-file` runs it
//! and `detbench zoo --card FILE` prints it as a card to start from.
//!
//! Thresholds: an Ultralytics file is scored as Ultralytics' validator scores it for COCO mAP
//! (`conf=0.001`, `iou=0.7`, `max_det=300`, multi-label, its image geometry and mask path:
//! `protocol = "validator"`); a DETR-style file keeps every result (score 0), as the upstream
//! COCO evaluator does. The class map is left to the dataset: names matched by name when both
//! are known, else COCO's ids for COCO's 80 classes ([`super::class_map`]).

use detbench_backends::EngineKind;
use detbench_eval::IouType;

use super::schema::{
    Card, Classes, Colour, Input, InputLayout, InputType, Output, OutputLayoutKind, Postprocess,
    Preprocess, Protocol, Resize, Scale, Task,
};
use crate::autoconfig::AutoConfig;
use crate::families::detr::{DetrConfig, DetrOutputs};
use crate::families::ultralytics::UltralyticsConfig;
use crate::families::ultralytics::layout::{Layout, Task as UltralyticsTask};
use crate::zoo::ModelFormat;

/// What the card of a file says about where it came from.
const UNSTATED: &str = "not stated in the file";

/// The card of the ONNX file `file` named `name`, as `auto` recognised it.
pub fn card_from_file(name: &str, file: &str, auto: &AutoConfig) -> Card {
    let base = Card {
        name: name.to_owned(),
        description: None,
        file: file.to_owned(),
        format: ModelFormat::Onnx,
        engine: Some(EngineKind::Ort),
        family: auto.family(),
        tasks: vec![IouType::Bbox],
        shipped: false,
        sha256: None,
        sha256_prefix: None,
        url: None,
        source: None,
        how_to_get: None,
        licence: UNSTATED.to_owned(),
        companion: None,
        input: Input::default(),
        preprocess: None,
        output: Output::default(),
        postprocess: Postprocess::default(),
        classes: Classes::default(),
        upstream: Vec::new(),
    };
    match auto {
        AutoConfig::Ultralytics { config, names, .. } => ultralytics(base, config, names.clone()),
        AutoConfig::Detr(config) => detr(base, config),
    }
}

fn ultralytics(mut card: Card, config: &UltralyticsConfig, names: Option<Vec<String>>) -> Card {
    let spec = &config.output;
    let (w, h) = config.input_size;
    card.description = Some(format!(
        "Ultralytics YOLO {} export (configured from the file's metadata)",
        task_name(spec.task)
    ));
    card.tasks = match spec.task {
        UltralyticsTask::Detect => vec![IouType::Bbox],
        UltralyticsTask::Segment => vec![IouType::Bbox, IouType::Segm],
        UltralyticsTask::Pose => vec![IouType::Keypoints],
    };
    card.input = image_input(&config.input_name, (w, h));
    card.preprocess = Some(Preprocess {
        resize: Resize::Letterbox,
        align: Some(if config.centre {
            super::schema::Align::Centre
        } else {
            super::schema::Align::TopLeft
        }),
        pad: Some(config.pad_value),
        colour: if config.rgb { Colour::Rgb } else { Colour::Bgr },
        scale: Some(Scale::Fraction(format!("1/{}", config.divisor))),
        mean: None,
        std: None,
    });
    card.output = Output {
        layout: Some(match spec.layout {
            Layout::ChannelsFirst => OutputLayoutKind::ChannelsFirst,
            Layout::Objectness => OutputLayoutKind::Objectness,
            Layout::EndToEnd => OutputLayoutKind::EndToEnd,
        }),
        task: Some(match spec.task {
            UltralyticsTask::Detect => Task::Detect,
            UltralyticsTask::Segment => Task::Segment,
            UltralyticsTask::Pose => Task::Pose,
        }),
        classes: Some(spec.classes),
        keypoints: spec.keypoints.map(|(k, d)| [k, d]),
        names: Some(
            std::iter::once(spec.output.clone())
                .chain(spec.prototypes.clone())
                .collect(),
        ),
        shape: None,
    };
    card.postprocess = Postprocess {
        score_threshold: Some(0.001),
        nms_iou: Some(0.7),
        agnostic: Some(false),
        max_detections: Some(300),
        protocol: Some(Protocol::Validator),
    };
    card.classes = Classes {
        names,
        ..Classes::default()
    };
    card
}

fn detr(mut card: Card, config: &DetrConfig) -> Card {
    card.description =
        Some("DETR-style export (configured from its inputs and outputs)".to_owned());
    card.input = image_input(&config.input_name, config.input_size);
    card.preprocess = Some(Preprocess {
        resize: Resize::Stretch,
        align: None,
        pad: None,
        colour: if config.rgb { Colour::Rgb } else { Colour::Bgr },
        scale: Some(Scale::Fraction(format!("1/{}", config.divisor))),
        mean: None,
        std: None,
    });
    let (layout, names, top_k) = match &config.outputs {
        DetrOutputs::LabelsBoxesScores {
            labels,
            boxes,
            scores,
            ..
        } => (
            OutputLayoutKind::LabelsBoxesScores,
            vec![labels.clone(), boxes.clone(), scores.clone()],
            None,
        ),
        DetrOutputs::Logits {
            logits,
            boxes,
            top_k,
        } => (
            OutputLayoutKind::LogitsBoxes,
            vec![logits.clone(), boxes.clone()],
            Some(*top_k),
        ),
    };
    card.output = Output {
        layout: Some(layout),
        task: Some(Task::Detect),
        classes: Some(config.class_map.len()),
        keypoints: None,
        names: Some(names),
        shape: None,
    };
    card.postprocess = Postprocess {
        score_threshold: Some(config.score_threshold),
        max_detections: top_k,
        ..Postprocess::default()
    };
    card
}

/// The image input; its batch dimension is the file's to say.
fn image_input(name: &str, (w, h): (usize, usize)) -> Input {
    Input {
        name: Some(name.to_owned()),
        size: Some([w as u32, h as u32]),
        layout: Some(InputLayout::Nchw),
        dtype: Some(InputType::F32),
        batch: None,
        description: None,
    }
}

fn task_name(task: UltralyticsTask) -> &'static str {
    match task {
        UltralyticsTask::Detect => "detect",
        UltralyticsTask::Segment => "segment",
        UltralyticsTask::Pose => "pose",
    }
}
