//! A run's agreement with a model's reference detections (`../shared/reference/<model>/`): the
//! matching of [`crate::reference_check`] restricted to the images the model processed, turned
//! into the `ReferenceAgreement` a result row records.
//!
//! It applies only where the reference was made: on the ground truth the run used (the shipped
//! subset, possibly `--limit`ed; compared by sha256), so a run on another dataset gets none.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use detbench_bench::dataset::{Dataset, GroundTruthKind};
use detbench_bench::results::{AgreementKind, ModelResult, ReferenceAgreement};
use detbench_bench::timing::summarize;
use detbench_eval::Detection;

use crate::ZooEntry;
use crate::reference_check::{self, Agreement, MatchCriteria, ReferenceError};

/// The agreement of `detections` (a row of `entry` on `dataset`, the cached dataset the row was
/// measured on) with the model's reference detections, or `None` when the model has no
/// reference or the run used another ground truth. An unreadable reference file is an error.
pub fn reference_agreement(
    entry: &ZooEntry,
    dataset: &Dataset,
    result: &ModelResult,
    detections: &[Detection],
) -> Result<Option<ReferenceAgreement>, ReferenceError> {
    let kind = entry.ground_truth();
    let Some((reference_path, reference_gt)) = reference_files(entry, kind) else {
        return Ok(None);
    };
    let Ok(reference_sha) = detbench_assets::sha256_file(&reference_gt) else {
        return Ok(None);
    };
    if dataset.annotation_file.is_none()
        || dataset.annotation_sha256.as_deref() != Some(reference_sha.as_str())
    {
        return Ok(None);
    }
    let reference = reference_check::load_results(&reference_path)?;
    // The images the model processed: the run's dataset less its failed images.
    let failed: HashSet<&str> = result
        .failed_images
        .iter()
        .map(|f| f.file.as_str())
        .collect();
    let processed: Vec<u64> = dataset
        .images
        .iter()
        .filter(|image| !failed.contains(image.file_name.as_str()))
        .map(|image| image.id)
        .collect();
    let processed_set: HashSet<u64> = processed.iter().copied().collect();
    let reference: Vec<Detection> = reference
        .into_iter()
        .filter(|d| processed_set.contains(&d.image_id))
        .collect();
    let criteria = MatchCriteria::default();
    let (agreement_kind, agreement) = match kind {
        GroundTruthKind::Instances => (
            AgreementKind::Boxes,
            reference_check::compare_boxes(&reference, detections, &criteria),
        ),
        GroundTruthKind::Keypoints => (
            AgreementKind::Keypoints,
            reference_check::compare_keypoints(&reference, detections, &criteria),
        ),
    };
    let differences = count_differences(&processed, detections, &reference);
    Ok(Some(record(
        &reference_path,
        agreement_kind,
        &criteria,
        &agreement,
        &differences,
    )))
}

/// The reference results of a catalogued model: the folder of `../shared/reference` whose
/// stats.json names the model's file, and in it the detections (or, for keypoint models, the
/// keypoints obtained with YOLOX boxes), with the ground truth they were made on.
fn reference_files(entry: &ZooEntry, kind: GroundTruthKind) -> Option<(PathBuf, PathBuf)> {
    let root = detbench_assets::shared::reference().ok()?;
    for dir in std::fs::read_dir(&root).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(dir.path().join("stats.json")) else {
            continue;
        };
        let Ok(stats) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let names_file = ["onnx_file", "model_file"].iter().any(|key| {
            stats[key]
                .as_str()
                .and_then(|f| Path::new(f).file_name())
                .is_some_and(|f| Some(f) == Path::new(&entry.file_name).file_name())
        });
        if !names_file {
            continue;
        }
        let (results, gt) = match kind {
            GroundTruthKind::Instances => (
                dir.path().join("detections_subset.json"),
                detbench_assets::shared::instances_subset().ok()?,
            ),
            GroundTruthKind::Keypoints => (
                dir.path().join("keypoints_yoloxboxes_subset.json"),
                detbench_assets::shared::keypoints_subset().ok()?,
            ),
        };
        return results.is_file().then_some((results, gt));
    }
    None
}

/// Per processed image: this run's detection count minus the reference's.
fn count_differences(processed: &[u64], ours: &[Detection], theirs: &[Detection]) -> Vec<f64> {
    let count = |dets: &[Detection]| {
        let mut counts: BTreeMap<u64, i64> = BTreeMap::new();
        for d in dets {
            *counts.entry(d.image_id).or_default() += 1;
        }
        counts
    };
    let (ours, theirs) = (count(ours), count(theirs));
    processed
        .iter()
        .map(|id| {
            (ours.get(id).copied().unwrap_or(0) - theirs.get(id).copied().unwrap_or(0)) as f64
        })
        .collect()
}

/// The row's record of an agreement.
fn record(
    reference_path: &Path,
    kind: AgreementKind,
    criteria: &MatchCriteria,
    agreement: &Agreement,
    differences: &[f64],
) -> ReferenceAgreement {
    let (quality_sum, matched) = agreement
        .per_image
        .iter()
        .filter_map(|i| {
            i.mean_match_quality
                .map(|q| (q * i.matched as f64, i.matched))
        })
        .fold((0.0, 0), |(s, n), (q, m)| (s + q, n + m));
    let mean_quality = (matched > 0).then(|| quality_sum / matched as f64);
    ReferenceAgreement {
        reference_file: reference_path.display().to_string(),
        kind,
        iou_threshold: criteria.min_iou,
        max_joint_distance: criteria.max_joint_distance,
        score_tolerance: criteria.score_tolerance,
        reference_detections: agreement.reference_count,
        detections: agreement.candidate_count,
        matched_geometry: agreement.matched_geometry,
        matched: agreement.matched,
        matched_fraction: agreement.matched_fraction(),
        mean_iou_matched: (kind == AgreementKind::Boxes)
            .then_some(mean_quality)
            .flatten(),
        mean_joint_distance_matched: (kind == AgreementKind::Keypoints)
            .then_some(mean_quality)
            .flatten(),
        joint_fraction: agreement.joint_fraction(),
        max_score_difference: agreement.max_score_diff,
        max_coordinate_difference: agreement.max_coordinate_diff,
        count_difference_per_image: summarize(differences),
        images_with_equal_count: differences.iter().filter(|d| **d == 0.0).count(),
        images: differences.len(),
    }
}
