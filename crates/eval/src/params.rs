//! Evaluation settings: which IoU type, how many detections per image, which area ranges and
//! images — pycocotools' `Params`, with its defaults — and how an in-memory detection gets its
//! area.

use std::str::FromStr;

use crate::error::{EvalError, Result};
use crate::types::IouType;

/// An area range as pycocotools' `areaRng` / `areaRngLbl` pair: objects with
/// `min <= area <= max` (pixels²) count in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AreaRange {
    pub label: String,
    pub min: f64,
    pub max: f64,
}

impl AreaRange {
    pub fn new(label: &str, min: f64, max: f64) -> Self {
        Self {
            label: label.to_owned(),
            min,
            max,
        }
    }
}

/// Which geometry gives an in-memory detection its `area` (the area decides which area range
/// an unmatched detection is ignored in).
///
/// pycocotools' `COCO.loadRes` decides this from the first result of a results file: when it
/// has a `bbox` the area is the box's `w * h`; else when it has a `segmentation` the area is
/// the mask's pixel count; else it is the extent of the keypoints. Model pipelines that write
/// results files (detectron2, mmdetection, YOLOX, torchvision's references) always write
/// `bbox`, so [`DetectionArea::Box`] is the default; the other two reproduce results files
/// that carry only masks or only keypoints. Files are read by hotcoco's `load_res`, which
/// applies the rule itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DetectionArea {
    /// Area `w * h` of the detection's box (results files with `bbox`).
    #[default]
    Box,
    /// Area is the mask's pixel count (results files with `segmentation` and no `bbox`).
    Mask,
    /// Area of the keypoints' extent (results files with only `keypoints`).
    Keypoints,
}

/// Which detection cap each summary stat is read at when `max_dets` is not the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SummaryMaxDets {
    /// As pycocotools' `summarize()`: the first AP at 100 detections whatever the list is (-1
    /// when 100 is not in it), AR1/AR10 at the first two values, the rest at the third; every
    /// keypoint stat at 20.
    #[default]
    Pycocotools,
    /// Every stat pycocotools reads at a fixed 100 (or 20 for keypoints) at the largest value
    /// of the list instead (hotcoco's reading).
    Largest,
}

/// The settings of one COCO evaluation. [`EvalParams::new`] gives pycocotools' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalParams {
    pub iou_type: IouType,
    /// Detections kept per image (the largest value) and the caps the AR stats are read at:
    /// `[1, 10, 100]` for bbox and segm (exactly three values, as pycocotools' summary reads
    /// `maxDets[0..3]`), `[20]` for keypoints (exactly one value).
    pub max_dets: Vec<usize>,
    /// Area ranges; the summary reads the ones labelled `all`, `small`, `medium` and `large`
    /// (a label that is missing gives -1 for its stats).
    pub area_ranges: Vec<AreaRange>,
    /// Evaluate only these images (pycocotools' `params.imgIds`); `None`: every image of the
    /// ground truth, as pycocotools does by default.
    pub image_ids: Option<Vec<u64>>,
    /// How in-memory detections get their area; see [`DetectionArea`].
    pub detection_area: DetectionArea,
    /// Which cap the summary reads each stat at; see [`SummaryMaxDets`].
    pub summary_max_dets: SummaryMaxDets,
}

impl EvalParams {
    /// pycocotools' defaults for `iou_type` (`Params.setDetParams` / `setKpParams`).
    pub fn new(iou_type: IouType) -> Self {
        let defaults = hotcoco::Params::new(to_hotcoco_iou_type(iou_type));
        Self {
            iou_type,
            max_dets: defaults.max_dets,
            area_ranges: defaults
                .area_ranges
                .into_iter()
                .map(|range| AreaRange::new(&range.label, range.range[0], range.range[1]))
                .collect(),
            image_ids: None,
            detection_area: DetectionArea::Box,
            summary_max_dets: SummaryMaxDets::Pycocotools,
        }
    }

    /// Checks that the summary can be computed from these settings; sorts `max_dets` as
    /// pycocotools' `evaluate()` does.
    pub fn validated(mut self) -> Result<Self> {
        self.max_dets.sort_unstable();
        let wanted = match self.iou_type {
            IouType::Keypoints => 1,
            IouType::Bbox | IouType::Segm => 3,
        };
        if self.max_dets.len() != wanted {
            return Err(EvalError::InvalidParams(format!(
                "{} evaluation needs exactly {wanted} max-detection value(s) (pycocotools' summary \
                 reads them by position), got {:?}",
                self.iou_type, self.max_dets
            )));
        }
        if self.max_dets.contains(&0) {
            return Err(EvalError::InvalidParams(format!(
                "max-detection values must be at least 1, got {:?}",
                self.max_dets
            )));
        }
        if self.area_ranges.is_empty() {
            return Err(EvalError::InvalidParams(
                "at least one area range is needed".into(),
            ));
        }
        for (i, range) in self.area_ranges.iter().enumerate() {
            if !(range.min.is_finite() && range.max >= range.min) || range.max.is_nan() {
                return Err(EvalError::InvalidParams(format!(
                    "area range `{}` = [{}, {}]: expected a finite minimum no larger than the maximum",
                    range.label, range.min, range.max
                )));
            }
            if self.area_ranges[..i].iter().any(|r| r.label == range.label) {
                return Err(EvalError::InvalidParams(format!(
                    "area range label `{}` is given twice",
                    range.label
                )));
            }
        }
        Ok(self)
    }

    /// The hotcoco parameters these settings stand for.
    pub(crate) fn to_hotcoco(&self) -> hotcoco::Params {
        let mut params = hotcoco::Params::new(to_hotcoco_iou_type(self.iou_type));
        params.max_dets = self.max_dets.clone();
        params.area_ranges = self
            .area_ranges
            .iter()
            .map(|range| hotcoco::AreaRange {
                label: range.label.clone(),
                range: [range.min, range.max],
            })
            .collect();
        if let Some(ids) = &self.image_ids {
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            params.img_ids = ids;
        }
        params
    }
}

pub(crate) fn to_hotcoco_iou_type(iou_type: IouType) -> hotcoco::params::IouType {
    match iou_type {
        IouType::Bbox => hotcoco::params::IouType::Bbox,
        IouType::Segm => hotcoco::params::IouType::Segm,
        IouType::Keypoints => hotcoco::params::IouType::Keypoints,
    }
}

/// Parses `1,10,100` into max-detection values.
pub fn parse_max_dets(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|item| {
            usize::from_str(item.trim()).map_err(|_| {
                EvalError::InvalidParams(format!(
                    "max-dets `{text}`: `{item}` is not a whole number (expected e.g. 1,10,100)"
                ))
            })
        })
        .collect()
}

/// Parses image ids given as a comma-separated list (`139,285`) or as the text of a file: a
/// JSON list of ids, or ids separated by commas, spaces or new lines.
pub fn parse_image_ids(text: &str) -> Result<Vec<u64>> {
    if let Ok(ids) = serde_json::from_str::<Vec<u64>>(text) {
        return Ok(ids);
    }
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(|item| {
            u64::from_str(item).map_err(|_| {
                EvalError::InvalidParams(format!(
                    "image id `{item}` is not a whole number (expected ids such as 139,285, a \
                     JSON list of ids, or one id per line)"
                ))
            })
        })
        .collect()
}

/// Parses `all=0:1e10,small=0:1024,medium=1024:9216,large=9216:1e10` into area ranges
/// (bounds in pixels², as in pycocotools' `areaRng`).
pub fn parse_area_ranges(text: &str) -> Result<Vec<AreaRange>> {
    let bad = |item: &str, why: &str| {
        EvalError::InvalidParams(format!(
            "area range `{item}`: {why} (expected LABEL=MIN:MAX, e.g. \
             all=0:1e10,small=0:1024,medium=1024:9216,large=9216:1e10)"
        ))
    };
    text.split(',')
        .map(|item| {
            let (label, bounds) = item.split_once('=').ok_or_else(|| bad(item, "no `=`"))?;
            let (min, max) = bounds.split_once(':').ok_or_else(|| bad(item, "no `:`"))?;
            let min =
                f64::from_str(min.trim()).map_err(|_| bad(item, "minimum is not a number"))?;
            let max =
                f64::from_str(max.trim()).map_err(|_| bad(item, "maximum is not a number"))?;
            let label = label.trim();
            if label.is_empty() {
                return Err(bad(item, "empty label"));
            }
            Ok(AreaRange::new(label, min, max))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pycocotools() {
        let bbox = EvalParams::new(IouType::Bbox);
        assert_eq!(bbox.max_dets, vec![1, 10, 100]);
        let labels: Vec<&str> = bbox.area_ranges.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["all", "small", "medium", "large"]);
        assert_eq!(bbox.area_ranges[1].max, 32.0 * 32.0);
        assert_eq!(bbox.area_ranges[3].min, 96.0 * 96.0);
        assert_eq!(bbox.area_ranges[0].max, 1e10);
        let kp = EvalParams::new(IouType::Keypoints);
        assert_eq!(kp.max_dets, vec![20]);
        let labels: Vec<&str> = kp.area_ranges.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["all", "medium", "large"]);
    }

    #[test]
    fn parses_and_checks_settings() {
        assert_eq!(parse_max_dets("100, 1,10").unwrap(), vec![100, 1, 10]);
        let err = parse_max_dets("1,ten").unwrap_err().to_string();
        assert!(err.contains("`ten` is not a whole number"), "{err}");
        let ranges = parse_area_ranges("all=0:1e10,small=0:1024").unwrap();
        assert_eq!(ranges[1], AreaRange::new("small", 0.0, 1024.0));
        let err = parse_area_ranges("all=0-5").unwrap_err().to_string();
        assert!(err.contains("no `:`"), "{err}");

        let mut params = EvalParams::new(IouType::Bbox);
        params.max_dets = vec![100, 1, 10];
        assert_eq!(params.validated().unwrap().max_dets, vec![1, 10, 100]);
        let mut params = EvalParams::new(IouType::Bbox);
        params.max_dets = vec![1, 100];
        let err = params.validated().unwrap_err().to_string();
        assert!(err.contains("exactly 3"), "{err}");
        let mut params = EvalParams::new(IouType::Bbox);
        params.area_ranges = parse_area_ranges("all=5:1").unwrap();
        assert!(params.validated().is_err());
    }
}
