//! How closely a pipeline's detections agree with reference detections (the Python goldens in
//! `../shared/reference/<model>/`), image by image.
//!
//! Boxes: the matching of `../shared/tools/reference/compare_dets.py`: per (image, category),
//! reference detections in descending score order each take the unused candidate with the
//! highest IoU (first one on ties); a pair counts when IoU >= `min_iou`. On top of that script,
//! a match is *full* when the scores also agree within `score_tolerance`, which is the
//! acceptance criterion (>= 99% of reference boxes fully matched).
//!
//! Keypoints: per image, reference results in descending score order each take the unused
//! candidate with the smallest mean joint distance; a pair counts when every joint is within
//! `max_joint_distance` pixels and the scores agree within `score_tolerance`. Joints are also
//! counted one by one over those nearest pairs (matched or not): in a top-down pipeline fed by
//! a detector, a box that moves by a rounding error moves the crop, and one joint whose heatmap
//! has two near-equal peaks can jump to the other peak while the other 16 stay put.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use detbench_eval::Detection;
use serde::{Deserialize, Serialize};

/// Thresholds of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchCriteria {
    pub min_iou: f64,
    pub score_tolerance: f64,
    /// Unmatched detections at or above this score are counted apart (they matter for AP).
    pub high_score: f64,
    /// Keypoints only: largest joint distance (pixels) of a matched pair.
    pub max_joint_distance: f64,
}

impl Default for MatchCriteria {
    fn default() -> Self {
        MatchCriteria {
            min_iou: 0.95,
            score_tolerance: 1e-3,
            high_score: 0.3,
            max_joint_distance: 1.0,
        }
    }
}

/// Agreement on one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageAgreement {
    pub image_id: u64,
    pub reference: usize,
    pub candidate: usize,
    /// Reference detections matched (IoU, or joint distance for keypoints) with scores within
    /// tolerance.
    pub matched: usize,
    /// Mean IoU of the matched pairs (keypoints: mean joint distance in pixels); `None` when
    /// nothing matched.
    pub mean_match_quality: Option<f64>,
}

/// Agreement over a whole set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub criteria: MatchCriteria,
    pub reference_count: usize,
    pub candidate_count: usize,
    /// Reference detections with a geometric match (IoU >= min_iou, or all joints within
    /// max_joint_distance), whatever their scores (compare_dets.py's "matched").
    pub matched_geometry: usize,
    /// Of those, the ones whose scores agree within the tolerance.
    pub matched: usize,
    pub max_score_diff: f64,
    pub mean_score_diff: f64,
    /// Boxes: largest coordinate difference of a matched pair in pixels; keypoints: largest
    /// joint distance.
    pub max_coordinate_diff: f64,
    pub mean_coordinate_diff: f64,
    pub unmatched_reference_high_score: usize,
    pub unmatched_candidate_high_score: usize,
    /// Images where the reference and the candidate have different detection counts.
    pub images_with_count_difference: usize,
    /// Keypoints: joints of the reference results compared with their nearest candidate (0 for
    /// boxes), and how many of them lie within `max_joint_distance`.
    pub joints_compared: usize,
    pub joints_within_distance: usize,
    pub per_image: Vec<ImageAgreement>,
}

impl Agreement {
    /// Fraction of reference detections fully matched (0..=1; 1 for an empty reference).
    pub fn matched_fraction(&self) -> f64 {
        if self.reference_count == 0 {
            1.0
        } else {
            self.matched as f64 / self.reference_count as f64
        }
    }

    /// Keypoints: fraction of reference joints within `max_joint_distance` of the nearest
    /// candidate's; `None` for boxes.
    pub fn joint_fraction(&self) -> Option<f64> {
        (self.joints_compared > 0)
            .then(|| self.joints_within_distance as f64 / self.joints_compared as f64)
    }

    /// One line for logs and reports.
    pub fn summary(&self) -> String {
        let joints = self
            .joint_fraction()
            .map(|f| {
                format!(
                    ", joints within {} px {}/{} = {:.3}%",
                    self.criteria.max_joint_distance,
                    self.joints_within_distance,
                    self.joints_compared,
                    100.0 * f
                )
            })
            .unwrap_or_default();
        format!(
            "reference {} candidate {}: matched {} = {:.3}% (geometry only {:.3}%){joints}, |score diff| max {:.3e} mean {:.3e}, coordinate diff max {:.3e} mean {:.3e}, unmatched >= {}: reference {} candidate {}, images with count difference {}",
            self.reference_count,
            self.candidate_count,
            self.matched,
            100.0 * self.matched_fraction(),
            100.0 * self.matched_geometry as f64 / self.reference_count.max(1) as f64,
            self.max_score_diff,
            self.mean_score_diff,
            self.max_coordinate_diff,
            self.mean_coordinate_diff,
            self.criteria.high_score,
            self.unmatched_reference_high_score,
            self.unmatched_candidate_high_score,
            self.images_with_count_difference,
        )
    }
}

/// IoU of two COCO `[x, y, w, h]` boxes in f64 (compare_dets.py `iou`).
pub fn iou_xywh(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let iw = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let ih = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Accumulates matched pairs.
#[derive(Default)]
struct Tally {
    matched_geometry: usize,
    matched: usize,
    score_diffs: Vec<f64>,
    coordinate_diffs: Vec<f64>,
    unmatched_reference_high: usize,
    unmatched_candidate_high: usize,
    joints_compared: usize,
    joints_within_distance: usize,
    /// Per image: full matches and the sum of their match quality (IoU, or mean joint distance).
    quality: BTreeMap<u64, (usize, f64)>,
}

impl Tally {
    /// A reference result paired by geometry with a candidate: its differences are kept, and
    /// within the score tolerance it is a full match adding `quality` to its image's.
    fn paired(&mut self, image: u64, diffs: (f64, f64), quality: f64, criteria: &MatchCriteria) {
        let (score_diff, coordinate_diff) = diffs;
        self.matched_geometry += 1;
        self.score_diffs.push(score_diff);
        self.coordinate_diffs.push(coordinate_diff);
        if score_diff <= criteria.score_tolerance {
            self.matched += 1;
            let e = self.quality.entry(image).or_default();
            e.0 += 1;
            e.1 += quality;
        }
    }

    /// A reference result no candidate was paired with: counted when its score is high.
    fn unpaired_reference(&mut self, golden: &Detection, criteria: &MatchCriteria) {
        if golden.score >= criteria.high_score {
            self.unmatched_reference_high += 1;
        }
    }

    /// The candidates of one group left unpaired with a high score.
    fn unpaired_candidates(
        &mut self,
        candidate: &[Detection],
        cands: &[usize],
        used: &[bool],
        criteria: &MatchCriteria,
    ) {
        self.unmatched_candidate_high += cands
            .iter()
            .zip(used)
            .filter(|&(&c, &u)| !u && candidate[c].score >= criteria.high_score)
            .count();
    }
}

/// The indices of each side's results grouped by a key, and every key of either side in order.
struct Groups<K> {
    reference: BTreeMap<K, Vec<usize>>,
    candidate: BTreeMap<K, Vec<usize>>,
    keys: BTreeSet<K>,
}

impl<K: Ord + Copy> Groups<K> {
    fn new(
        reference: &[Detection],
        candidate: &[Detection],
        key: impl Fn(&Detection) -> K,
    ) -> Self {
        let group = |dets: &[Detection]| {
            let mut g: BTreeMap<K, Vec<usize>> = BTreeMap::new();
            for (i, d) in dets.iter().enumerate() {
                g.entry(key(d)).or_default().push(i);
            }
            g
        };
        let (reference, candidate) = (group(reference), group(candidate));
        let keys = reference.keys().chain(candidate.keys()).copied().collect();
        Groups {
            reference,
            candidate,
            keys,
        }
    }

    /// The reference results of `key` in descending score order, and the candidates of `key`.
    fn of(&self, key: &K, reference: &[Detection]) -> (Vec<usize>, &[usize]) {
        let refs = self.reference.get(key).map_or(&[][..], Vec::as_slice);
        let cands = self.candidate.get(key).map_or(&[][..], Vec::as_slice);
        (sorted_by_score(reference, refs), cands)
    }
}

/// Compares box detections (bbox results).
pub fn compare_boxes(
    reference: &[Detection],
    candidate: &[Detection],
    criteria: &MatchCriteria,
) -> Agreement {
    let groups = Groups::new(reference, candidate, |d| (d.image_id, d.category_id));
    let mut tally = Tally::default();
    for key in &groups.keys {
        let (refs, cands) = groups.of(key, reference);
        let mut used = vec![false; cands.len()];
        for &r in &refs {
            let golden = &reference[r];
            let mut best = -1.0;
            let mut best_j = None;
            for (j, &c) in cands.iter().enumerate() {
                if used[j] {
                    continue;
                }
                let v = iou_xywh(&golden.bbox, &candidate[c].bbox);
                if v > best {
                    best = v;
                    best_j = Some(j);
                }
            }
            match best_j {
                Some(j) if best >= criteria.min_iou => {
                    used[j] = true;
                    let other = &candidate[cands[j]];
                    let coordinate_diff = golden
                        .bbox
                        .iter()
                        .zip(&other.bbox)
                        .map(|(p, q)| (p - q).abs())
                        .fold(0.0, f64::max);
                    let score_diff = (golden.score - other.score).abs();
                    tally.paired(key.0, (score_diff, coordinate_diff), best, criteria);
                }
                _ => tally.unpaired_reference(golden, criteria),
            }
        }
        tally.unpaired_candidates(candidate, cands, &used, criteria);
    }
    finish(reference, candidate, criteria, tally)
}

/// Compares keypoint results (`keypoints` set on both sides; boxes are ignored).
pub fn compare_keypoints(
    reference: &[Detection],
    candidate: &[Detection],
    criteria: &MatchCriteria,
) -> Agreement {
    let groups = Groups::new(reference, candidate, |d| d.image_id);
    let mut tally = Tally::default();
    for &image in &groups.keys {
        let (refs, cands) = groups.of(&image, reference);
        let mut used = vec![false; cands.len()];
        for &r in &refs {
            let golden = &reference[r];
            // (j, mean joint distance, joint distances) of the nearest unused candidate.
            let mut best: Option<(usize, f64, Vec<f64>)> = None;
            for (j, &c) in cands.iter().enumerate() {
                if used[j] {
                    continue;
                }
                let Some(distances) = joint_distances(golden, &candidate[c]) else {
                    continue;
                };
                let mean_distance = mean(&distances);
                if best.as_ref().is_none_or(|(_, m, _)| mean_distance < *m) {
                    best = Some((j, mean_distance, distances));
                }
            }
            if let Some((_, _, distances)) = &best {
                tally.joints_compared += distances.len();
                tally.joints_within_distance += distances
                    .iter()
                    .filter(|&&d| d <= criteria.max_joint_distance)
                    .count();
            }
            let best = best.map(|(j, mean, d)| (j, mean, d.iter().copied().fold(0.0, f64::max)));
            match best {
                Some((j, mean, max)) if max <= criteria.max_joint_distance => {
                    used[j] = true;
                    let score_diff = (golden.score - candidate[cands[j]].score).abs();
                    tally.paired(image, (score_diff, max), mean, criteria);
                }
                _ => tally.unpaired_reference(golden, criteria),
            }
        }
        tally.unpaired_candidates(candidate, cands, &used, criteria);
    }
    finish(reference, candidate, criteria, tally)
}

/// The distances between corresponding joints of two keypoint results, or `None` when either
/// has no keypoints or they differ in length.
fn joint_distances(a: &Detection, b: &Detection) -> Option<Vec<f64>> {
    let (ka, kb) = (a.keypoints.as_ref()?, b.keypoints.as_ref()?);
    if ka.len() != kb.len() || ka.is_empty() || ka.len() % 3 != 0 {
        return None;
    }
    let distances: Vec<f64> = ka
        .chunks_exact(3)
        .zip(kb.chunks_exact(3))
        .map(|(p, q)| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
        .collect();
    Some(distances)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// `indices` in descending score order, ties in input order (Python's stable `sorted`).
fn sorted_by_score(dets: &[Detection], indices: &[usize]) -> Vec<usize> {
    let mut out = indices.to_vec();
    out.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    out
}

fn finish(
    reference: &[Detection],
    candidate: &[Detection],
    criteria: &MatchCriteria,
    tally: Tally,
) -> Agreement {
    let quality = &tally.quality;
    let mut counts: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for d in reference {
        counts.entry(d.image_id).or_default().0 += 1;
    }
    for d in candidate {
        counts.entry(d.image_id).or_default().1 += 1;
    }
    let per_image: Vec<ImageAgreement> = counts
        .iter()
        .map(|(&image_id, &(r, c))| {
            let (matched, sum) = quality.get(&image_id).copied().unwrap_or((0, 0.0));
            ImageAgreement {
                image_id,
                reference: r,
                candidate: c,
                matched,
                mean_match_quality: (matched > 0).then(|| sum / matched as f64),
            }
        })
        .collect();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    Agreement {
        criteria: *criteria,
        reference_count: reference.len(),
        candidate_count: candidate.len(),
        matched_geometry: tally.matched_geometry,
        matched: tally.matched,
        max_score_diff: max(&tally.score_diffs),
        mean_score_diff: mean(&tally.score_diffs),
        max_coordinate_diff: max(&tally.coordinate_diffs),
        mean_coordinate_diff: mean(&tally.coordinate_diffs),
        unmatched_reference_high_score: tally.unmatched_reference_high,
        unmatched_candidate_high_score: tally.unmatched_candidate_high,
        images_with_count_difference: per_image
            .iter()
            .filter(|i| i.reference != i.candidate)
            .count(),
        joints_compared: tally.joints_compared,
        joints_within_distance: tally.joints_within_distance,
        per_image,
    }
}

/// Errors of reading a reference results file.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference results {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a COCO results array: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One entry of a COCO results file; keypoint results have no `bbox`.
#[derive(Deserialize)]
struct ResultEntry {
    image_id: u64,
    category_id: u64,
    #[serde(default)]
    bbox: Option<[f64; 4]>,
    score: f64,
    #[serde(default)]
    keypoints: Option<Vec<f64>>,
}

/// Reads a COCO results file (a JSON array). Keypoint results without a `bbox` get an empty
/// box `[0, 0, 0, 0]` (the keypoint comparison ignores boxes).
pub fn load_results(path: &Path) -> Result<Vec<Detection>, ReferenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReferenceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let entries: Vec<ResultEntry> =
        serde_json::from_str(&text).map_err(|source| ReferenceError::Parse {
            path: path.display().to_string(),
            source,
        })?;
    Ok(entries
        .into_iter()
        .map(|e| Detection {
            image_id: e.image_id,
            category_id: e.category_id,
            bbox: e.bbox.unwrap_or([0.0; 4]),
            score: e.score,
            mask: None,
            keypoints: e.keypoints,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(image_id: u64, category_id: u64, bbox: [f64; 4], score: f64) -> Detection {
        Detection {
            image_id,
            category_id,
            bbox,
            score,
            mask: None,
            keypoints: None,
        }
    }

    #[test]
    fn identical_sets_match_fully() {
        let d = vec![
            det(1, 1, [0.0, 0.0, 10.0, 10.0], 0.9),
            det(1, 1, [0.0, 0.0, 10.0, 10.0], 0.8),
            det(2, 3, [5.0, 5.0, 10.0, 20.0], 0.5),
        ];
        let a = compare_boxes(&d, &d, &MatchCriteria::default());
        assert_eq!(a.matched, 3);
        assert_eq!(a.matched_fraction(), 1.0);
        assert_eq!(a.images_with_count_difference, 0);
        assert_eq!(a.per_image[0].mean_match_quality, Some(1.0));
    }

    #[test]
    fn category_iou_and_score_each_break_a_match() {
        let reference = vec![
            det(1, 1, [0.0, 0.0, 100.0, 100.0], 0.9),
            det(1, 2, [0.0, 0.0, 100.0, 100.0], 0.9),
            det(1, 3, [0.0, 0.0, 100.0, 100.0], 0.9),
        ];
        let candidate = vec![
            det(1, 1, [0.0, 0.0, 100.0, 100.0], 0.9005), // score within 1e-3
            det(1, 2, [0.0, 0.0, 100.0, 90.0], 0.9),     // IoU 0.9
            det(1, 4, [0.0, 0.0, 100.0, 100.0], 0.9),    // other category
        ];
        let a = compare_boxes(&reference, &candidate, &MatchCriteria::default());
        assert_eq!(a.matched_geometry, 1);
        assert_eq!(a.matched, 1);
        assert_eq!(a.unmatched_reference_high_score, 2);
        assert_eq!(a.unmatched_candidate_high_score, 2);
        let far = vec![det(1, 1, [0.0, 0.0, 100.0, 100.0], 0.8)];
        let a = compare_boxes(&reference[..1], &far, &MatchCriteria::default());
        assert_eq!((a.matched_geometry, a.matched), (1, 0));
        assert!((a.max_score_diff - 0.1).abs() < 1e-12);
    }

    #[test]
    fn keypoints_match_by_joint_distance() {
        let kp = |x: f64, score: f64| Detection {
            keypoints: Some(vec![x, 0.0, 1.0, x + 10.0, 5.0, 1.0]),
            ..det(1, 1, [0.0; 4], score)
        };
        let reference = vec![kp(0.0, 0.9), kp(100.0, 0.5)];
        let candidate = vec![kp(100.5, 0.5), kp(0.0, 0.9)];
        let a = compare_keypoints(&reference, &candidate, &MatchCriteria::default());
        assert_eq!(a.matched, 2);
        assert_eq!(a.max_coordinate_diff, 0.5);
        let a = compare_keypoints(&reference, &[kp(3.0, 0.9)], &MatchCriteria::default());
        assert_eq!(a.matched, 0);
    }

    #[test]
    fn one_jumped_joint_fails_the_detection_but_counts_alone() {
        let person = |joints: &[(f64, f64)]| Detection {
            keypoints: Some(joints.iter().flat_map(|&(x, y)| [x, y, 2.0]).collect()),
            ..det(1, 1, [0.0; 4], 0.9)
        };
        let reference = vec![person(&[
            (10.0, 10.0),
            (20.0, 20.0),
            (30.0, 30.0),
            (40.0, 40.0),
        ])];
        let jumped = vec![person(&[
            (10.0, 10.0),
            (20.0, 20.0),
            (30.0, 30.0),
            (40.0, 52.0),
        ])];
        let a = compare_keypoints(&reference, &jumped, &MatchCriteria::default());
        assert_eq!((a.matched_geometry, a.matched), (0, 0));
        assert_eq!((a.joints_within_distance, a.joints_compared), (3, 4));
        assert_eq!(a.joint_fraction(), Some(0.75));
        let boxes = compare_boxes(&reference, &reference, &MatchCriteria::default());
        assert_eq!(boxes.joint_fraction(), None);
    }
}
