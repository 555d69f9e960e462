//! The training set: a COCO annotation file read as torchvision's `references/detection/
//! coco_utils.py` reads it for training (`get_coco(..., image_set="train")`).
//!
//! * Images in `CocoDetection`'s order: `sorted(coco.imgs.keys())`, annotations of an image in
//!   file order (`coco.getAnnIds(imgIds=...)`).
//! * `_coco_remove_images_without_annotations`: an image is kept when it has at least one
//!   annotation (crowd included), not all of whose boxes have a side <= 1, and, for keypoint
//!   files, at least 10 visible keypoints in all.
//! * What each model needs is checked here, before any timed work, with an error naming the
//!   file, the annotation and the image: a box on every annotation (the reference reads
//!   `obj["bbox"]`), a segmentation on every non-crowd annotation for Mask R-CNN (the reference
//!   rasterises `obj["segmentation"]` of each), keypoint triples for Keypoint R-CNN.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hotcoco::{Annotation, Dataset, Segmentation};

use crate::config::ModelKind;
use crate::error::{AnnotationIssue, Result, TrainError};

/// coco_utils.py: `min_keypoints_per_image = 10`.
pub const MIN_KEYPOINTS_PER_IMAGE: usize = 10;

/// One image of the training set with the annotations that become its target.
#[derive(Debug, Clone)]
pub struct TrainImage {
    pub image_id: u64,
    pub file: PathBuf,
    /// From the annotation file (used for the aspect-ratio groups, as the reference does).
    pub width: u32,
    pub height: u32,
    /// Non-crowd annotations in file order (ConvertCocoPolysToMask drops crowd ones first).
    pub objects: Vec<Annotation>,
}

/// The training set after the reference's filtering.
#[derive(Debug, Clone)]
pub struct TrainSet {
    pub annotations: PathBuf,
    pub images_dir: PathBuf,
    pub model: ModelKind,
    pub images: Vec<TrainImage>,
    /// Images of the file that `_coco_remove_images_without_annotations` removed.
    pub removed: usize,
}

impl TrainSet {
    /// Reads `annotations` and keeps what the reference keeps for `model`.
    pub fn load(annotations: &Path, images_dir: &Path, model: ModelKind) -> Result<Self> {
        let text = std::fs::read_to_string(annotations).map_err(|e| TrainError::Annotations {
            path: annotations.to_path_buf(),
            reason: format!("cannot read: {e}"),
        })?;
        let dataset: Dataset =
            serde_json::from_str(&text).map_err(|e| TrainError::Annotations {
                path: annotations.to_path_buf(),
                reason: format!("not a COCO annotation file: {e}"),
            })?;
        Self::from_dataset(dataset, annotations, images_dir, model)
    }

    /// As [`TrainSet::load`], from a parsed file.
    pub fn from_dataset(
        dataset: Dataset,
        annotations: &Path,
        images_dir: &Path,
        model: ModelKind,
    ) -> Result<Self> {
        let mut by_image: BTreeMap<u64, Vec<Annotation>> = BTreeMap::new();
        let known: BTreeMap<u64, usize> = dataset
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| (img.id, i))
            .collect();
        for ann in dataset.annotations {
            if known.contains_key(&ann.image_id) {
                by_image.entry(ann.image_id).or_default().push(ann);
            }
        }
        let mut images = Vec::new();
        let mut removed = 0;
        // BTreeMap iteration = sorted image ids, as CocoDetection's `sorted(coco.imgs.keys())`.
        for (&image_id, &position) in &known {
            let anns = by_image.remove(&image_id).unwrap_or_default();
            let info = &dataset.images[position];
            let check = |ann: &Annotation, reason: AnnotationIssue| TrainError::Annotation {
                path: annotations.to_path_buf(),
                ann_id: ann.id,
                image_id,
                reason,
            };
            for ann in &anns {
                if ann.bbox.is_none() {
                    return Err(check(ann, AnnotationIssue::NoBox));
                }
            }
            if !has_valid_annotation(&anns) {
                removed += 1;
                continue;
            }
            let objects: Vec<Annotation> = anns.into_iter().filter(|a| !a.iscrowd).collect();
            for ann in &objects {
                if model.needs_masks() {
                    check_segmentation(ann, model).map_err(|reason| check(ann, reason))?;
                }
                if model.needs_keypoints() {
                    check_keypoints(ann, model).map_err(|reason| check(ann, reason))?;
                }
            }
            images.push(TrainImage {
                image_id,
                file: images_dir.join(&info.file_name),
                width: info.width,
                height: info.height,
                objects,
            });
        }
        if model.needs_keypoints() && images.is_empty() {
            return Err(TrainError::Annotations {
                path: annotations.to_path_buf(),
                reason: format!(
                    "no image has {MIN_KEYPOINTS_PER_IMAGE} visible keypoints; {} needs a person \
                     keypoints file (person_keypoints_*.json)",
                    model
                ),
            });
        }
        Ok(TrainSet {
            annotations: annotations.to_path_buf(),
            images_dir: images_dir.to_path_buf(),
            model,
            images,
            removed,
        })
    }

    /// Width / height of each image, from the annotation file
    /// (`_compute_aspect_ratios_coco_dataset`).
    pub fn aspect_ratios(&self) -> Vec<f64> {
        self.images
            .iter()
            .map(|i| f64::from(i.width) / f64::from(i.height))
            .collect()
    }

    /// Keeps the first `n` images (in dataset order).
    pub fn truncate(&mut self, n: usize) {
        self.images.truncate(n);
    }
}

/// `_has_valid_annotation` of coco_utils.py (with `cat_list=None`).
fn has_valid_annotation(anns: &[Annotation]) -> bool {
    if anns.is_empty() {
        return false;
    }
    // `_has_only_empty_bbox`: all(any(o <= 1 for o in obj["bbox"][2:]) for obj in anno)
    let only_empty = anns.iter().all(|a| {
        let b = a.bbox.unwrap_or([0.0; 4]);
        b[2] <= 1.0 || b[3] <= 1.0
    });
    if only_empty {
        return false;
    }
    // "if "keypoints" not in anno[0]: return True"
    if anns[0].keypoints.is_none() {
        return true;
    }
    let visible: usize = anns
        .iter()
        .map(|a| {
            a.keypoints.as_deref().map_or(0, |k| {
                k.iter().skip(2).step_by(3).filter(|&&v| v > 0.0).count()
            })
        })
        .sum();
    visible >= MIN_KEYPOINTS_PER_IMAGE
}

/// What `pycocotools.mask.frPyObjects(obj["segmentation"], h, w)` accepts, checked up front.
fn check_segmentation(ann: &Annotation, model: ModelKind) -> Result<(), AnnotationIssue> {
    match &ann.segmentation {
        None => Err(AnnotationIssue::NoSegmentation { model }),
        Some(Segmentation::Polygon(polys)) => {
            let Some(first) = polys.first() else {
                return Err(AnnotationIssue::EmptyPolygonList);
            };
            if first.len() == 4 {
                // frPyObjects reads the list as boxes [x, y, w, h] when the first has 4 values.
                if let Some(bad) = polys.iter().find(|p| p.len() != 4) {
                    return Err(AnnotationIssue::BoxesMixedWithPolygons { values: bad.len() });
                }
            } else if first.len() < 4 {
                return Err(AnnotationIssue::ShortPolygon {
                    values: first.len(),
                });
            }
            Ok(())
        }
        Some(_) => Ok(()),
    }
}

fn check_keypoints(ann: &Annotation, model: ModelKind) -> Result<(), AnnotationIssue> {
    match &ann.keypoints {
        None => Err(AnnotationIssue::NoKeypoints { model }),
        Some(k) if k.len() % 3 != 0 || k.is_empty() => {
            Err(AnnotationIssue::KeypointValues { values: k.len() })
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(json: serde_json::Value) -> Dataset {
        serde_json::from_value(json).unwrap()
    }

    fn image(id: u64) -> serde_json::Value {
        serde_json::json!({"id": id, "file_name": format!("{id}.jpg"), "width": 40, "height": 20})
    }

    #[test]
    fn images_without_valid_annotations_are_removed_and_crowd_is_dropped() {
        let d = dataset(serde_json::json!({
            "images": [image(3), image(1), image(2), image(4)],
            "annotations": [
                {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0,
                 "segmentation": [[0, 0, 5, 0, 5, 5]]},
                {"id": 11, "image_id": 1, "category_id": 2, "bbox": [0, 0, 5, 5], "iscrowd": 1,
                 "segmentation": {"size": [20, 40], "counts": [800]}},
                // only an empty box: removed
                {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 5], "iscrowd": 0,
                 "segmentation": [[0, 0, 1, 0, 1, 5]]},
                // crowd only: kept (the validity check sees crowd too), with no objects
                {"id": 13, "image_id": 4, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 1,
                 "segmentation": {"size": [20, 40], "counts": [800]}}
            ]
        }));
        let set = TrainSet::from_dataset(
            d,
            Path::new("a.json"),
            Path::new("img"),
            ModelKind::MaskrcnnResnet50Fpn,
        )
        .unwrap();
        let ids: Vec<u64> = set.images.iter().map(|i| i.image_id).collect();
        assert_eq!(ids, vec![1, 4]);
        assert_eq!(set.removed, 2);
        assert_eq!(set.images[0].objects.len(), 1);
        assert!(set.images[1].objects.is_empty());
        assert_eq!(set.images[0].file, Path::new("img/1.jpg"));
    }

    #[test]
    fn a_missing_segmentation_is_an_error_for_mask_rcnn_only() {
        let json = serde_json::json!({
            "images": [image(7)],
            "annotations": [{"id": 70, "image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "iscrowd": 0}]
        });
        let e = TrainSet::from_dataset(
            dataset(json.clone()),
            Path::new("boxes.json"),
            Path::new("i"),
            ModelKind::MaskrcnnResnet50Fpn,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("boxes.json") && e.contains("annotation id 70") && e.contains("image 7"),
            "{e}"
        );
        assert!(e.contains("segmentation"), "{e}");
        TrainSet::from_dataset(
            dataset(json),
            Path::new("boxes.json"),
            Path::new("i"),
            ModelKind::FasterrcnnResnet50Fpn,
        )
        .unwrap();
    }

    #[test]
    fn keypoint_images_need_ten_visible_keypoints() {
        let kp = |visible: usize| {
            let mut k = vec![0.0; 51];
            for j in 0..visible {
                k[3 * j] = 1.0;
                k[3 * j + 2] = 2.0;
            }
            k
        };
        let d = dataset(serde_json::json!({
            "images": [image(1), image(2)],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "keypoints": kp(9)},
                {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "keypoints": kp(6)},
                {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "keypoints": kp(4)}
            ]
        }));
        let set = TrainSet::from_dataset(
            d,
            Path::new("k.json"),
            Path::new("i"),
            ModelKind::KeypointrcnnResnet50Fpn,
        )
        .unwrap();
        assert_eq!(set.images.len(), 1);
        assert_eq!(set.images[0].image_id, 2);
    }
}
