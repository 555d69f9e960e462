//! Greedy non-maximum suppression with torchvision semantics: the one NMS of every family.
//!
//! Semantics (torchvision `csrc/ops/cpu/nms_kernel.cpp` behind `ops/boxes.py::nms` /
//! `batched_nms`; the reference pipelines' `tools/reference/common.py::nms` / `batched_nms` were
//! checked against torchvision 0.29 on 2,790 kept YOLOX boxes):
//! - boxes are `[x1, y1, x2, y2]`; area is `(x2 - x1) * (y2 - y1)` with no `+1`;
//! - intersection width and height are clamped at 0; IoU is
//!   `inter / (area_i + area_j - inter)`, everything in `f32` in that order of operations;
//! - a box is suppressed when its IoU with a kept box is strictly greater than the threshold,
//!   compared in **double** as torchvision's kernel does (`ovr > iou_threshold` with a `float`
//!   IoU and a `double` threshold: the Python float the caller gave). The reference pipelines
//!   compare in f32 (`np.float32(iou_thr)`); the two differ only for an IoU exactly equal to the
//!   f32 rounding of a threshold that rounds up (0.6, not 0.45, 0.65 or 0.7), and every
//!   family's reference test passes bit for bit with the double compare;
//! - candidates are visited in descending score order; equal scores keep their input order
//!   (a stable sort, so ties go to the lower index);
//! - `batched_nms` runs the same greedy NMS independently per label (torchvision does it with
//!   a per-label coordinate offset, which is the same up to float rounding of the offset; a
//!   caller that must reproduce that rounding, as Ultralytics' `non_max_suppression` does, offsets
//!   its boxes itself), then returns the kept indices sorted by descending score, ties to the
//!   lower index.
//!
//! Hand-written because no maintained Rust crate offers torchvision's exact tie-breaking and
//! float32 IoU arithmetic, both of which decide which boxes survive at the threshold.

/// Box in corner form: `[x1, y1, x2, y2]`.
pub type BoxXyxy = [f32; 4];

/// IoU of two boxes in `f32`, in torchvision's order of operations.
#[inline]
pub fn iou(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    iou_with_areas(a, area_a, b, area_b)
}

#[inline]
fn iou_with_areas(a: &BoxXyxy, area_a: f32, b: &BoxXyxy, area_b: f32) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (area_a + area_b - inter)
}

/// Indices of `scores` in descending score order; equal scores keep input order (stable), NaN
/// scores go last, as `np.argsort(-scores, kind="stable")` orders them.
pub fn argsort_descending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| {
        let s = scores[i];
        if s.is_nan() { f32::NEG_INFINITY } else { s }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    order
}

/// Greedy NMS over all boxes (class-agnostic). Returns kept indices in descending score order.
pub fn nms(boxes: &[BoxXyxy], scores: &[f32], iou_threshold: f64) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "one score per box");
    let order = argsort_descending(scores);
    greedy(boxes, &order, iou_threshold)
}

/// Greedy NMS over `order` (already sorted by descending score): the kept indices, in order.
fn greedy(boxes: &[BoxXyxy], order: &[usize], iou_threshold: f64) -> Vec<usize> {
    let areas: Vec<f32> = order
        .iter()
        .map(|&i| {
            let b = &boxes[i];
            (b[2] - b[0]) * (b[3] - b[1])
        })
        .collect();
    let mut suppressed = vec![false; order.len()];
    let mut keep = Vec::new();
    for pos in 0..order.len() {
        if suppressed[pos] {
            continue;
        }
        let i = order[pos];
        keep.push(i);
        for later in pos + 1..order.len() {
            if !suppressed[later]
                && f64::from(iou_with_areas(
                    &boxes[i],
                    areas[pos],
                    &boxes[order[later]],
                    areas[later],
                )) > iou_threshold
            {
                suppressed[later] = true;
            }
        }
    }
    keep
}

/// Class-aware NMS (`torchvision.ops.batched_nms`): greedy NMS per label, then all kept indices
/// sorted by descending score, ties to the lower index.
pub fn batched_nms(
    boxes: &[BoxXyxy],
    scores: &[f32],
    labels: &[usize],
    iou_threshold: f64,
) -> Vec<usize> {
    assert_eq!(boxes.len(), scores.len(), "one score per box");
    assert_eq!(boxes.len(), labels.len(), "one label per box");
    let order = argsort_descending(scores);
    let n_labels = labels.iter().max().map_or(0, |&m| m + 1);
    let mut per_label: Vec<Vec<usize>> = vec![Vec::new(); n_labels];
    for &i in &order {
        per_label[labels[i]].push(i);
    }
    let mut keep: Vec<usize> = per_label
        .iter()
        .flat_map(|label_order| greedy(boxes, label_order, iou_threshold))
        .collect();
    // `order` is a stable descending sort, so sorting by position in it gives descending score
    // with ties to the lower index.
    let mut rank = vec![0usize; boxes.len()];
    for (position, &i) in order.iter().enumerate() {
        rank[i] = position;
    }
    keep.sort_unstable_by_key(|&i| rank[i]);
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_is_strictly_greater_than_the_threshold() {
        // IoU of these two boxes is exactly 0.5 in f32: inter 50, union 100.
        let boxes = [[0.0, 0.0, 10.0, 7.5], [0.0, 2.5, 10.0, 10.0]];
        assert_eq!(iou(&boxes[0], &boxes[1]), 0.5);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.5), vec![0, 1]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.49), vec![0]);
    }

    #[test]
    fn equal_scores_keep_the_lower_index() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [20.0, 20.0, 30.0, 30.0],
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.5, 0.7], 0.5), vec![2, 0]);
    }

    #[test]
    fn batched_nms_suppresses_only_within_a_label_and_merges_by_score() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
            [50.0, 50.0, 60.0, 60.0],
        ];
        let scores = [0.9, 0.8, 0.85, 0.8];
        let labels = [0, 0, 1, 0];
        // Box 1 overlaps box 0 (same label) and goes; box 2 has another label and stays.
        // Boxes 1 and 3 tie at 0.8; 3 is the only one left of the two.
        assert_eq!(batched_nms(&boxes, &scores, &labels, 0.5), vec![0, 2, 3]);
    }

    #[test]
    fn the_threshold_is_compared_in_double() {
        // IoU 30/100 is 0.3f32 = 0.30000001192..., which is > 0.3 in double (torchvision:
        // suppressed) but not > 0.3f32 (an f32 compare would keep it).
        let boxes = [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 3.0, 10.0]];
        assert_eq!(iou(&boxes[0], &boxes[1]), 0.3f32);
        assert_eq!(nms(&boxes, &[0.9, 0.8], 0.3), vec![0]);
        assert_eq!(nms(&boxes, &[0.9, 0.8], f64::from(0.3f32)), vec![0, 1]);
    }

    #[test]
    fn empty_input_keeps_nothing() {
        assert!(batched_nms(&[], &[], &[], 0.5).is_empty());
    }

    #[test]
    fn nan_scores_sort_last() {
        assert_eq!(
            argsort_descending(&[f32::NAN, 0.1, 0.3, 0.1]),
            vec![2, 1, 3, 0]
        );
    }
}
