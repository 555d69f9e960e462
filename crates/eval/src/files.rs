//! Evaluation of a COCO results file against ground truth — what `detbench eval` runs: hotcoco's
//! own fast reader and batch evaluator, with detbench's checks in between so that a broken file
//! gets an error naming the file, the result and the problem.

use std::path::Path;

use hotcoco::{COCO, COCOeval};
use rayon::prelude::*;

use crate::diagnose::{self, FileKind};
use crate::error::{EvalError, Result};
use crate::ground_truth::GroundTruth;
use crate::params::{EvalParams, to_hotcoco_iou_type};
use crate::summary::{self, EvalSummary};
use crate::validate::{self, Requirements};

/// Loads a COCO results file through hotcoco's `load_res` (pycocotools' `loadRes` rules: ids
/// assigned, area and geometry derived from the first result's kind) and checks every result
/// for what `iou_type` needs. Errors name the file and the result's position (`results[i]`).
pub fn load_results(gt: &GroundTruth, path: &Path, params: &EvalParams) -> Result<COCO> {
    let results = gt
        .coco()
        .load_res(path)
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

/// Evaluates a results file: [`load_results`], then hotcoco's `COCOeval` (evaluate, accumulate,
/// summarize) with `params`.
///
/// An empty results list is evaluated (every AP and AR is 0 where the ground truth has
/// objects) with a warning; pycocotools' `loadRes` fails on it with an IndexError.
pub fn evaluate_results_file(
    gt: &GroundTruth,
    results_path: &Path,
    params: &EvalParams,
) -> Result<EvalSummary> {
    let params = params.clone().validated()?;
    let results = load_results(gt, results_path, &params)?;
    let detections = results.dataset.annotations.len();
    let mut warnings = Vec::new();
    if detections == 0 {
        warnings.push(format!(
            "{}: no detections; every AP and AR is 0 where {} has objects",
            results_path.display(),
            gt.path().display()
        ));
    }
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
