//! Configuration from a model file alone, so that `--model-file yolov8n.onnx` needs no card:
//!
//! 1. an Ultralytics export (its ONNX metadata has `task` and `names`): the Ultralytics family,
//!    input size from `imgsz` (else the graph), layout from the outputs and the metadata;
//! 2. a DETR-style export (recognised from its inputs and outputs,
//!    [`crate::families::detr::recognise`]);
//!
//! A YOLOv5 export (metadata `stride` and `names`, objectness rows) counts as an Ultralytics one.
//! Output shapes alone are not trusted (YOLOX's raw `[1, N, 85]` looks like YOLOv5's): a file
//! without such metadata and not DETR-style needs a card.
//!
//! Otherwise the error lists the inputs and outputs found and the card fields to fill.
//!
//! Class indices map to category ids as Ultralytics' validator maps them: the 80 COCO names in
//! COCO's order give COCO's ids (`coco80_to_coco91_class`), other names give `index + 1`
//! (`list(range(1, len(names) + 1))`); a DETR export without names with 80 classes is COCO's 80,
//! with 91 its label is already the category id. A card or the dataset's categories (matched by
//! name, [`crate::card::class_map`]) replace this.

use std::path::Path;

use detbench_backends::IoSpec;
use detbench_backends::onnx_info::read_onnx_info;
use detbench_eval::labels::{COCO80_NAMES, COCO80_TO_91};

use crate::Family;
use crate::families::detr::{self, DetrConfig};
use crate::families::ultralytics::UltralyticsConfig;
use crate::families::ultralytics::layout::{self, describe_specs};
use crate::families::ultralytics::metadata::{MetadataError, UltralyticsMetadata};

/// A file's pipeline configuration, as recognised.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // made once per model; boxing would only add noise
pub enum AutoConfig {
    Ultralytics {
        config: UltralyticsConfig,
        metadata: Option<UltralyticsMetadata>,
        /// Class names (metadata `names`), when known.
        names: Option<Vec<String>>,
    },
    Detr(DetrConfig),
}

impl AutoConfig {
    /// The family the file was recognised as.
    pub fn family(&self) -> Family {
        match self {
            AutoConfig::Ultralytics { .. } => Family::Ultralytics,
            AutoConfig::Detr(_) => Family::Detr,
        }
    }
}

/// Why a file could not be configured without a card.
#[derive(Debug, thiserror::Error)]
pub enum AutoConfigError {
    #[error("{path}: {source}")]
    Metadata {
        path: String,
        #[source]
        source: detbench_backends::BackendError,
    },
    #[error("{path}: Ultralytics {source}")]
    BadMetadata { path: String, source: MetadataError },
    #[error(
        "{path}: only ONNX files describe themselves (an Ultralytics export's metadata, a DETR-style \
         export's inputs and outputs); give this one a model card (`--card FILE`; `detbench zoo --card NAME` \
         prints one to start from)"
    )]
    NotOnnx { path: String },
    #[error(
        "{path}: no known model layout. Inputs: [{inputs}]; outputs: [{outputs}]. Ultralytics YOLO: {yolo}. \
         DETR-style: {detr}. Write a model card for it (`detbench zoo --card NAME` prints one to start from): \
         `family`, `[input] size/layout`, `[preprocess] resize/pad/colour/scale/mean/std`, `[output] layout/task/classes`, \
         `[classes]`"
    )]
    Unrecognised {
        path: String,
        inputs: String,
        outputs: String,
        yolo: String,
        detr: String,
    },
}

/// Whether the ONNX file at `path` was quantized (its producer is ONNX Runtime's quantization
/// tool, `onnx.quantize`, or its metadata says `onnx.infer = onnxruntime.quant`, as the shipped
/// int8 exports have), for the "detects nothing" warning.
pub fn is_quantized(path: &Path) -> bool {
    read_onnx_info(path).is_ok_and(|info| {
        info.producer_name
            .as_deref()
            .is_some_and(|p| p.contains("quantiz"))
            || info
                .metadata
                .get("onnx.infer")
                .is_some_and(|v| v.contains("quant"))
    })
}

/// The category id of each of `classes` class indices, from their names when known.
pub fn default_class_map(names: Option<&[String]>, classes: usize) -> Vec<u64> {
    let coco =
        names.is_some_and(|n| n.len() == 80 && n.iter().zip(COCO80_NAMES).all(|(a, b)| a == b));
    if coco || (names.is_none() && classes == 80) {
        COCO80_TO_91.to_vec()
    } else if names.is_none() && classes == 91 {
        (0..91).collect()
    } else {
        (1..=classes as u64).collect()
    }
}

/// Configures the model at `path` (with its declared `inputs` and `outputs`) from what the file
/// says about itself.
pub fn autoconfigure(
    path: &Path,
    inputs: &[IoSpec],
    outputs: &[IoSpec],
) -> Result<AutoConfig, AutoConfigError> {
    let shown = path.display().to_string();
    let is_onnx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let metadata = if is_onnx {
        let info = read_onnx_info(path).map_err(|source| AutoConfigError::Metadata {
            path: shown.clone(),
            source,
        })?;
        UltralyticsMetadata::from_map(&info.metadata).map_err(|source| {
            AutoConfigError::BadMetadata {
                path: shown.clone(),
                source,
            }
        })?
    } else {
        None
    };
    // Output shapes alone are ambiguous (YOLOX's raw [1, N, 85] looks like YOLOv5's), so a YOLO
    // layout is recognised only in a file whose metadata says it is an Ultralytics or YOLOv5
    // export; other files need a card.
    let yolo = match &metadata {
        Some(m) => match ultralytics_config(inputs, outputs, Some(m)) {
            Ok(config) => {
                let names = Some(m.names.clone());
                return Ok(AutoConfig::Ultralytics {
                    config,
                    metadata,
                    names,
                });
            }
            Err(NotYolo(why)) => why,
        },
        None => "no Ultralytics metadata (`task`, `names`) in the file".to_owned(),
    };
    let detr = match detr::recognise(inputs, outputs) {
        Ok((input_name, input_size, detr_outputs)) if metadata.is_none() => {
            let classes = match &detr_outputs {
                detr::DetrOutputs::Logits { logits, .. } => {
                    logits_classes(outputs_declared(outputs, logits))
                }
                detr::DetrOutputs::LabelsBoxesScores { .. } => 80,
            };
            return Ok(AutoConfig::Detr(DetrConfig {
                input_name,
                input_size,
                outputs: detr_outputs,
                score_threshold: 0.0,
                class_map: default_class_map(None, classes)
                    .into_iter()
                    .map(Some)
                    .collect(),
                rgb: true,
                divisor: 255.0,
            }));
        }
        Ok(_) => "an Ultralytics export is not DETR-style".to_owned(),
        Err(e) => e.reason,
    };
    Err(AutoConfigError::Unrecognised {
        path: shown,
        inputs: describe_specs(inputs),
        outputs: describe_specs(outputs),
        yolo,
        detr,
    })
}

/// The declared output named `name`.
fn outputs_declared<'a>(outputs: &'a [IoSpec], name: &str) -> Option<&'a IoSpec> {
    outputs.iter().find(|o| o.name == name)
}

/// The class count of a `[N, Q, C]` logits output (80, COCO's, when it is dynamic).
fn logits_classes(spec: Option<&IoSpec>) -> usize {
    match spec.and_then(|s| s.shape.as_deref()) {
        Some([_, _, Some(c)]) => *c,
        _ => 80,
    }
}

/// The Ultralytics configuration of a file, or why its outputs are no YOLO layout.
/// Why a file with Ultralytics metadata gives no YOLO configuration.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotYolo(String);

fn ultralytics_config(
    inputs: &[IoSpec],
    outputs: &[IoSpec],
    metadata: Option<&UltralyticsMetadata>,
) -> Result<UltralyticsConfig, NotYolo> {
    let why = |text: &str| NotYolo(text.to_owned());
    let spec = layout::recognise(inputs, outputs, metadata).map_err(|e| NotYolo(e.reason))?;
    let input = inputs
        .iter()
        .find(|s| matches!(s.shape.as_deref(), Some([_, Some(3), _, _])))
        .ok_or_else(|| why("no [N, 3, H, W] image input"))?;
    let graph_size = match input.shape.as_deref() {
        Some([_, _, Some(h), Some(w)]) => Some((*w, *h)),
        _ => None,
    };
    let size = metadata
        .and_then(|m| m.imgsz.map(|(h, w)| (w, h)))
        .or(graph_size)
        .ok_or_else(|| {
            why("the image input has a dynamic size and no `imgsz` metadata gives it")
        })?;
    let names = metadata.map(|m| m.names.as_slice());
    let class_map = default_class_map(names, spec.classes)
        .into_iter()
        .map(Some)
        .collect();
    Ok(UltralyticsConfig::new(&input.name, size, spec, class_map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_names_map_to_coco_ids_and_others_count_from_one() {
        let coco: Vec<String> = COCO80_NAMES.iter().map(|s| s.to_string()).collect();
        assert_eq!(default_class_map(Some(&coco), 80)[79], 90);
        let custom = vec!["cat".to_owned(), "dog".to_owned()];
        assert_eq!(default_class_map(Some(&custom), 2), vec![1, 2]);
        assert_eq!(default_class_map(None, 80)[11], 13);
        assert_eq!(default_class_map(None, 91)[7], 7);
    }
}
