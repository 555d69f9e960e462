//! Evaluation of a COCO results file against ground truth — what `detbench eval` runs: hotcoco's
//! own fast reader and batch evaluator, with detbench's checks in between so that a broken file
//! gets an error naming the file, the result and the problem.

use std::path::Path;

use std::collections::HashSet;

use hotcoco::types::Segmentation;
use hotcoco::{COCO, COCOeval};
use rayon::prelude::*;

use crate::capture::without_hotcoco_stderr;
use crate::diagnose::{self, FileKind};
use crate::error::{EvalError, Result};
use crate::ground_truth::GroundTruth;
use crate::params::{EvalParams, to_hotcoco_iou_type};
use crate::summary::{self, EvalSummary};
use crate::types::IouType;
use crate::validate::{self, Requirements};

/// Loads a COCO results file through hotcoco's `load_res` (pycocotools' `loadRes` rules: ids
/// assigned, area and geometry derived from the first result's kind) and checks every result
/// for what `iou_type` needs. Errors name the file and the result's position (`results[i]`).
pub fn load_results(gt: &GroundTruth, path: &Path, params: &EvalParams) -> Result<COCO> {
    let results = without_hotcoco_stderr(|| gt.coco().load_res(path))
        .map_err(|e| diagnose::load_error(path, FileKind::Results, e))?;
    if results.dataset.annotations.is_empty() {
        reject_object_without_annotations(path)?;
    }
    check_results(gt, &results, path, params)?;
    Ok(results)
}

/// Checks every result of a loaded results set for what `params.iou_type` needs (ids known to
/// `gt`, a finite score, a sane box, masks and keypoints of the right shape; see
/// [`crate::validate`]). `path` names the file in the error, with the result's position.
pub fn check_results(
    gt: &GroundTruth,
    results: &COCO,
    path: &Path,
    params: &EvalParams,
) -> Result<()> {
    let annotations = &results.dataset.annotations;
    let needs = Requirements {
        iou_type: params.iou_type,
        keypoint_values: 3 * params.to_hotcoco().kpt_oks_sigmas.len(),
    };
    // In parallel: reading every compressed mask's runs is the one costly check.
    let first_bad = annotations
        .par_iter()
        .enumerate()
        .find_map_first(|(i, ann)| {
            validate::check_result(ann, gt, &needs)
                .err()
                .map(|why| (i, why))
        });
    match first_bad {
        None => Ok(()),
        Some((i, why)) => {
            let ann = &annotations[i];
            Err(EvalError::InvalidFile {
                path: path.to_path_buf(),
                message: format!(
                    "results[{i}] (image_id {}, category_id {}): {why}",
                    ann.image_id, ann.category_id
                ),
            })
        }
    }
}

/// hotcoco reads a JSON object as a dataset whose `annotations` are the results, and one
/// without `annotations` as no results at all; that is almost always the wrong file.
fn reject_object_without_annotations(path: &Path) -> Result<()> {
    let text = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(&text) else {
        return Ok(());
    };
    if object.contains_key("annotations") {
        return Ok(());
    }
    let keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
    Err(EvalError::InvalidFile {
        path: path.to_path_buf(),
        message: format!(
            "is a JSON object with keys {keys:?} and no `annotations`; expected a COCO results \
             list: [{{\"image_id\": ..., \"category_id\": ..., \"bbox\": [x, y, w, h], \"score\": \
             ...}}, ...]"
        ),
    })
}

/// Which images a results file is scored on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageScope {
    /// `params.image_ids` when given, else every image of the ground truth (pycocotools'
    /// default `params.imgIds = sorted(cocoGt.getImgIds())`).
    #[default]
    Params,
    /// Of those, only the images that have at least one detection: for results of a run on
    /// part of the images (`detbench run --limit`).
    WithDetections,
}

/// Evaluates a results file: [`load_results`], then hotcoco's `COCOeval` (evaluate, accumulate,
/// summarize) with `params`, on every image of the ground truth or `params.image_ids`.
///
/// An empty results list is evaluated (every AP and AR is 0 where the ground truth has
/// objects) with a warning; pycocotools' `loadRes` fails on it with an IndexError.
pub fn evaluate_results_file(
    gt: &GroundTruth,
    results_path: &Path,
    params: &EvalParams,
) -> Result<EvalSummary> {
    evaluate_results_file_in(gt, results_path, params, ImageScope::Params)
}

/// [`evaluate_results_file`] on the images `scope` picks. Warns when most of the evaluated
/// images have no detection (results of a run on part of the images score low otherwise).
pub fn evaluate_results_file_in(
    gt: &GroundTruth,
    results_path: &Path,
    params: &EvalParams,
    scope: ImageScope,
) -> Result<EvalSummary> {
    let mut params = params.clone().validated()?;
    let results = load_results(gt, results_path, &params)?;
    let detections = results.dataset.annotations.len();
    let with_detections: HashSet<u64> = results
        .dataset
        .annotations
        .iter()
        .map(|a| a.image_id)
        .collect();
    let mut image_ids = match params.image_ids.take() {
        Some(ids) => check_image_ids(gt, ids)?,
        None => gt.image_ids(),
    };
    if scope == ImageScope::WithDetections {
        image_ids.retain(|id| with_detections.contains(id));
    }
    // Left after `load_results`' checks: hotcoco's note on NaN/Infinity read as null.
    let mut warnings: Vec<String> = results
        .load_warnings()
        .iter()
        .map(|w| format!("{}: {w}", results_path.display()))
        .collect();
    if detections == 0 {
        warnings.push(format!(
            "{}: no detections; every AP and AR is 0 where {} has objects",
            results_path.display(),
            gt.path().display()
        ));
    } else if let Some(warning) = mostly_empty(&image_ids, &with_detections, results_path) {
        warnings.push(warning);
    }
    if params.iou_type == IouType::Segm {
        check_image_sizes(gt, &image_ids)?;
    }
    params.image_ids = Some(image_ids);
    warnings.extend(gt.evaluation_warnings(params.iou_type));
    let mut ev = COCOeval::new(
        gt.coco().clone(),
        results,
        to_hotcoco_iou_type(params.iou_type),
    );
    ev.params = params.to_hotcoco();
    ev.evaluate().map_err(|source| EvalError::Hotcoco {
        context: format!(
            "evaluating {} against {}",
            results_path.display(),
            gt.path().display()
        ),
        source,
    })?;
    ev.accumulate();
    let images = ev.params.img_ids.len();
    Ok(summary::from_accumulated(
        &mut ev, gt, &params, images, detections, warnings,
    ))
}

/// `ids` sorted and without repeats, each an image of `gt`.
fn check_image_ids(gt: &GroundTruth, mut ids: Vec<u64>) -> Result<Vec<u64>> {
    ids.sort_unstable();
    ids.dedup();
    if let Some(unknown) = ids.iter().find(|&&id| !gt.contains_image(id)) {
        return Err(EvalError::InvalidParams(format!(
            "image id {unknown} is not an image of {}",
            gt.path().display()
        )));
    }
    if ids.is_empty() {
        return Err(EvalError::InvalidParams("no image ids to evaluate".into()));
    }
    Ok(ids)
}

/// The warning for results that cover only a few of the evaluated images.
fn mostly_empty(image_ids: &[u64], with: &HashSet<u64>, results_path: &Path) -> Option<String> {
    let empty = image_ids.iter().filter(|id| !with.contains(id)).count();
    (empty * 2 > image_ids.len()).then(|| {
        format!(
            "{empty} of the {} evaluated images have no detection in {}; their objects count as \
             missed. If the detections come from a run on part of the images (e.g. `detbench run \
             --limit`), score only those: --images-with-detections, or --image-ids",
            image_ids.len(),
            results_path.display()
        )
    })
}

/// Segm evaluation draws ground-truth polygons at the image's size (hotcoco's
/// `check_mask_dims` says such images "lack" `height`/`width`, also when they are 0).
fn check_image_sizes(gt: &GroundTruth, image_ids: &[u64]) -> Result<()> {
    let no_size: Vec<(u64, u32, u32)> = image_ids
        .iter()
        .filter_map(|&id| {
            let (height, width) = gt.image_size(id)?;
            let polygons = gt.annotations_of(id).any(|a| {
                !matches!(
                    a.segmentation,
                    Some(Segmentation::CompressedRle { .. } | Segmentation::UncompressedRle { .. })
                )
            });
            ((height == 0 || width == 0) && polygons).then_some((id, height, width))
        })
        .collect();
    let Some(&(id, height, width)) = no_size.first() else {
        return Ok(());
    };
    Err(EvalError::InvalidFile {
        path: gt.path().to_path_buf(),
        message: format!(
            "segm evaluation draws polygons at the image's size, but {} image(s) have `height` or \
             `width` missing or 0 (first: image id {id}, height {height}, width {width}); give \
             them their real size, or use RLE masks, which carry their own",
            no_size.len()
        ),
    })
}
