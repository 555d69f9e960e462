//! The in-memory evaluator: a model's detections go to hotcoco image by image, with no results
//! file in between, and are matched while the run goes on (hotcoco's `StreamingEval`), so that
//! only accumulation is left when the last image is done.
//!
//! hotcoco's `StreamingEval::update` runs the same `evaluate()` as the batch evaluator over the
//! images it is given and keeps only the per-image match records; `finalize()` lays them out
//! in the order the batch evaluator uses. The numbers are the batch evaluator's bit for bit
//! (the conformance tests check it against pycocotools' goldens). Images are handed to hotcoco
//! a few at a time ([`IMAGES_PER_UPDATE`]) because each update builds a small dataset and
//! evaluator; the per-image cost is measured in docs/BENCHMARKS.md.

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;

use hotcoco::types::{Annotation, Segmentation};
use hotcoco::{EvalMode, Image, StreamingEval};

use crate::error::{EvalError, Result};
use crate::ground_truth::GroundTruth;
use crate::params::{DetectionArea, EvalParams};
use crate::summary::{self, EvalSummary};
use crate::types::{Detection, IouType};
use crate::validate::{self, Requirements};

/// Images buffered before they are matched: enough to amortise hotcoco's per-update setup,
/// few enough that matching keeps pace with the run.
pub const IMAGES_PER_UPDATE: usize = 16;

fn added_twice(image_id: u64) -> EvalError {
    EvalError::InvalidDetection(format!("image {image_id} was added twice"))
}

/// The IoU types a set of detections can be scored with: bbox always, segm when any detection
/// has a mask, keypoints when any has keypoints.
pub fn iou_types_of(detections: &[Detection]) -> Vec<IouType> {
    let mut types = vec![IouType::Bbox];
    if detections.iter().any(|d| d.mask.is_some()) {
        types.push(IouType::Segm);
    }
    if detections.iter().any(|d| d.keypoints.is_some()) {
        types.push(IouType::Keypoints);
    }
    types
}

/// Evaluates one IoU type against one ground truth, image by image.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use detbench_eval::{Evaluator, EvalParams, GroundTruth, IouType, Detection};
/// # fn main() -> Result<(), detbench_eval::EvalError> {
/// let gt = Arc::new(GroundTruth::load("instances_val2017.json")?);
/// let mut evaluator = Evaluator::new(gt, EvalParams::new(IouType::Bbox))?;
/// # let outputs: Vec<(u64, Vec<Detection>)> = Vec::new();
/// for (image_id, detections) in outputs {
///     evaluator.add_image(image_id, &detections)?;
/// }
/// let summary = evaluator.finish()?;
/// println!("{}", summary.summary_lines().join("\n"));
/// # Ok(()) }
/// ```
pub struct Evaluator {
    gt: Arc<GroundTruth>,
    params: EvalParams,
    needs: Requirements,
    stream: StreamingEval,
    /// `params.image_ids` as a set, when given.
    scope: Option<HashSet<u64>>,
    seen: HashSet<u64>,
    pending_images: Vec<Image>,
    pending_gt: Vec<Annotation>,
    pending_detections: Vec<Annotation>,
    detections: usize,
}

impl Evaluator {
    /// An evaluator of `params.iou_type` against `gt`. Checks `params` (see
    /// [`EvalParams::validated`]).
    pub fn new(gt: Arc<GroundTruth>, params: EvalParams) -> Result<Self> {
        let params = params.validated()?;
        let hotcoco_params = params.to_hotcoco();
        let needs = Requirements {
            iou_type: params.iou_type,
            keypoint_values: 3 * hotcoco_params.kpt_oks_sigmas.len(),
        };
        let stream = StreamingEval::new(
            hotcoco_params,
            EvalMode::Coco,
            gt.coco().dataset.categories.clone(),
        )
        .map_err(|source| EvalError::Hotcoco {
            context: "starting the evaluation".into(),
            source,
        })?;
        let scope = params
            .image_ids
            .as_ref()
            .map(|ids| ids.iter().copied().collect());
        Ok(Self {
            gt,
            params,
            needs,
            stream,
            scope,
            seen: HashSet::new(),
            pending_images: Vec::new(),
            pending_gt: Vec::new(),
            pending_detections: Vec::new(),
            detections: 0,
        })
    }

    pub fn iou_type(&self) -> IouType {
        self.params.iou_type
    }

    pub fn ground_truth(&self) -> &Arc<GroundTruth> {
        &self.gt
    }

    /// Adds one image's detections (in any order of images; within an image, detections with
    /// equal scores rank in the order given, as in a results file).
    ///
    /// Segm evaluation takes the detections that have a mask, keypoint evaluation those that
    /// have keypoints. An image outside `params.image_ids` is skipped. Errors: an image not in
    /// the ground truth or added twice, and any detection that fails the checks of
    /// [`crate::validate`] (unknown category, NaN score, bad box, mask or keypoints); the
    /// message names the image and the detection's position in `detections`.
    pub fn add_image(&mut self, image_id: u64, detections: &[Detection]) -> Result<()> {
        let Some(image) = self.gt.image(image_id) else {
            return Err(EvalError::InvalidDetection(format!(
                "image {image_id} is not an image of {}",
                self.gt.path().display()
            )));
        };
        if self
            .scope
            .as_ref()
            .is_some_and(|scope| !scope.contains(&image_id))
        {
            return Ok(());
        }
        if !self.seen.insert(image_id) {
            return Err(added_twice(image_id));
        }
        let start = self.pending_detections.len();
        for (position, detection) in detections.iter().enumerate() {
            // On any error the image is taken back whole (its detections so far and its
            // "seen" mark), so that the evaluator is as before the call.
            let checked =
                self.to_annotation(image_id, detection, position)
                    .and_then(|ann| {
                        match ann {
                    Some(ann) => validate::check_result(&ann, &self.gt, &self.needs)
                        .map(|()| Some(ann))
                        .map_err(|why| {
                            EvalError::InvalidDetection(format!(
                                "image {image_id}, detection {position} (category_id {}): {why}",
                                detection.category_id
                            ))
                        }),
                    None => Ok(None),
                }
                    });
            match checked {
                Ok(Some(ann)) => self.pending_detections.push(ann),
                Ok(None) => {}
                Err(error) => {
                    self.pending_detections.truncate(start);
                    self.seen.remove(&image_id);
                    return Err(error);
                }
            }
        }
        self.detections += self.pending_detections.len() - start;
        self.pending_images.push(image.clone());
        self.pending_gt
            .extend(self.gt.annotations_of(image_id).cloned());
        if self.pending_images.len() >= IMAGES_PER_UPDATE {
            self.flush()?;
        }
        Ok(())
    }

    /// Adds many images at once, spread over rayon's threads: each thread adds a contiguous
    /// share of `images` to an evaluator of its own, and the shares are then merged in order
    /// (hotcoco's `StreamingEval::merge`, "as if its update() calls had been made here"), so the
    /// result is the one [`add_image`](Self::add_image) image by image gives, bit for bit (tested).
    /// For scoring a finished run, when nothing else needs the cores. The first failing image
    /// in `images` order gives the error, as with `add_image`; the images before it in other
    /// shares may then have been added.
    pub fn add_images_parallel(&mut self, images: &[(u64, &[Detection])]) -> Result<()> {
        // Enough images per share to amortise an evaluator's setup (one per share).
        const MIN_IMAGES_PER_SHARE: usize = 64;
        let shares = rayon::current_num_threads()
            .min(images.len() / MIN_IMAGES_PER_SHARE)
            .max(1);
        if shares == 1 {
            return images
                .iter()
                .try_for_each(|(image_id, detections)| self.add_image(*image_id, detections));
        }
        let per_share = images.len().div_ceil(shares);
        let parts: Vec<Result<Evaluator>> = images
            .par_chunks(per_share)
            .map(|share| {
                let mut part = self.empty_like()?;
                for (image_id, detections) in share {
                    part.add_image(*image_id, detections)?;
                }
                part.flush()?;
                Ok(part)
            })
            .collect();
        self.flush()?;
        for part in parts {
            self.merge(part?)?;
        }
        Ok(())
    }

    /// A new evaluator with this one's ground truth and parameters, and no images.
    fn empty_like(&self) -> Result<Evaluator> {
        Evaluator::new(Arc::clone(&self.gt), self.params.clone())
    }

    /// Takes over `other`'s matched images (both flushed; same ground truth and parameters).
    fn merge(&mut self, other: Evaluator) -> Result<()> {
        if let Some(&image_id) = other.seen.iter().find(|id| self.seen.contains(id)) {
            return Err(added_twice(image_id));
        }
        self.stream
            .merge(other.stream)
            .map_err(|source| EvalError::Hotcoco {
                context: "merging the evaluation of images scored in parallel".into(),
                source,
            })?;
        self.seen.extend(other.seen);
        self.detections += other.detections;
        Ok(())
    }

    /// Matches the images not added that have ground truth (all of the ground truth's images,
    /// or `params.image_ids`), as pycocotools does — an image the model never saw counts as
    /// all misses — then accumulates and summarises.
    pub fn finish(mut self) -> Result<EvalSummary> {
        self.flush()?;
        let missing: Vec<u64> = match &self.params.image_ids {
            Some(ids) => ids.clone(),
            None => self.gt.image_ids(),
        }
        .into_iter()
        .filter(|id| !self.seen.contains(id) && self.gt.has_annotations(*id))
        .collect();
        for chunk in missing.chunks(256) {
            for &image_id in chunk {
                if let Some(image) = self.gt.image(image_id) {
                    self.pending_images.push(image.clone());
                    self.pending_gt
                        .extend(self.gt.annotations_of(image_id).cloned());
                }
            }
            self.flush()?;
        }

        let mut warnings = Vec::new();
        if self.detections == 0 {
            warnings.push(format!(
                "no detections to evaluate for {}; every AP and AR is 0 where {} has objects",
                self.params.iou_type,
                self.gt.path().display()
            ));
        }
        warnings.extend(self.gt.evaluation_warnings(self.params.iou_type));
        let images = match &self.params.image_ids {
            Some(ids) => ids.iter().filter(|id| self.gt.contains_image(**id)).count(),
            None => self.gt.image_ids().len(),
        };
        let mut ev = self.stream.finalize();
        ev.accumulate();
        Ok(summary::from_accumulated(
            &mut ev,
            &self.gt,
            &self.params,
            images,
            self.detections,
            warnings,
        ))
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending_images.is_empty() {
            return Ok(());
        }
        let images = std::mem::take(&mut self.pending_images);
        let first = images.first().map(|image| image.id).unwrap_or_default();
        let count = images.len();
        self.stream
            .update(
                images,
                std::mem::take(&mut self.pending_gt),
                std::mem::take(&mut self.pending_detections),
            )
            .map_err(|source| EvalError::Hotcoco {
                context: format!(
                    "matching {count} image(s) from image {first} against {}",
                    self.gt.path().display()
                ),
                source,
            })
    }

    /// The hotcoco result record for `detection`, or `None` when this IoU type does not score
    /// it (no mask for segm, no keypoints for keypoints). Which geometry is kept follows
    /// `params.detection_area` (pycocotools' `loadRes` rule, see [`DetectionArea`]).
    fn to_annotation(
        &self,
        image_id: u64,
        detection: &Detection,
        position: usize,
    ) -> Result<Option<Annotation>> {
        let mut ann = Annotation {
            image_id,
            category_id: detection.category_id,
            bbox: Some(detection.bbox),
            score: Some(detection.score),
            ..Default::default()
        };
        if detection.image_id != image_id {
            return Err(EvalError::InvalidDetection(format!(
                "image {image_id}, detection {position}: its image_id is {}",
                detection.image_id
            )));
        }
        match self.params.iou_type {
            IouType::Bbox => {}
            IouType::Segm => {
                let Some(mask) = &detection.mask else {
                    return Ok(None);
                };
                ann.segmentation = Some(Segmentation::UncompressedRle {
                    size: [mask.height, mask.width],
                    counts: mask.counts.clone(),
                });
                if self.params.detection_area == DetectionArea::Mask {
                    // loadRes for results without `bbox`: area = maskUtils.area(segm). hotcoco
                    // derives it only for compressed RLE strings, so it is computed here.
                    validate::check_run_total(&mask.counts, mask.height, mask.width).map_err(
                        |why| {
                            EvalError::InvalidDetection(format!(
                                "image {image_id}, detection {position} (category_id {}): {why}",
                                detection.category_id
                            ))
                        },
                    )?;
                    let area = hotcoco::mask::area(&hotcoco::Rle {
                        h: mask.height,
                        w: mask.width,
                        counts: mask.counts.clone(),
                    });
                    ann.bbox = None;
                    ann.area = Some(area as f64);
                }
            }
            IouType::Keypoints => {
                let Some(keypoints) = &detection.keypoints else {
                    return Ok(None);
                };
                ann.keypoints = Some(keypoints.clone());
                if self.params.detection_area == DetectionArea::Keypoints {
                    // loadRes for keypoint-only results derives area and box from the
                    // keypoints' extent; hotcoco's load_res_anns does that when there is no box.
                    ann.bbox = None;
                }
            }
        }
        Ok(Some(ann))
    }
}
