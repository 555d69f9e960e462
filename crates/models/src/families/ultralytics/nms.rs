//! Candidate selection and NMS as `ultralytics` 8.4.x `ultralytics/utils/nms.py::
//! non_max_suppression` does it for one image, for the three output layouts:
//!
//! - channels first `[4 + nc + extra, N]` (YOLOv8/11/12, YOLOv5u): a column is a candidate when
//!   its best class score `amax > conf` (float32 compare: torch casts the Python threshold to the
//!   tensor's dtype); boxes `xywh2xyxy` (`xy -/+ wh / 2` in f32); one label per box
//!   (`multi_label=False`, as the predictor calls it): `cls.max(1)`, first maximum; or, with
//!   `multi_label=True` (the validator's setting), every `(box, class)` with `cls > conf`, in
//!   `torch.where` order (box-major);
//! - objectness rows `[N, 5 + nc + extra]` (YOLOv5/YOLOv7 exports), following
//!   ultralytics/yolov5 v7.0 `utils/general.py::non_max_suppression`: `obj > conf`, then
//!   `cls *= obj`, best class `> conf`;
//! - end to end `[K, 6 + extra]` (`nms=True`, YOLOv10, YOLO26): `score > conf`, the first
//!   `max_det` rows in order, no NMS.
//!
//! Then, for the first two: more than `max_nms` (30000) candidates keeps the best `max_nms`
//! (torch's `argsort(descending=True)`, here stable); class-aware NMS by the coordinate offset
//! `class * max_wh` (7680) added to the boxes in f32, which rounds the coordinates, so the IoU
//! is computed on the offset boxes exactly as `torchvision.ops.nms` sees them, by the one NMS of
//! [`crate::families::nms`] (its CPU kernel: stable descending sort, f32 areas and IoU,
//! `ovr > iou_threshold` compared in double); the
//! first `max_det` kept. The time limit (`2.0 + 0.05 * batch` seconds, after which later images
//! of a batch get no detections) depends on the machine's speed, so it is not reproduced: no image
//! loses its detections here.

use crate::families::nms::{argsort_descending, batched_nms, nms};

/// One candidate: box in input pixels (xyxy), score, class index, and the output row it came
/// from (where its extra values, mask coefficients or keypoints, are read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class: usize,
    pub row: usize,
}

/// The thresholds of `non_max_suppression`; defaults are the predictor's (`conf=0.25`,
/// `iou=0.7`, `max_det=300`, `agnostic_nms=False`) and the function's own (`max_nms=30000`,
/// `max_wh=7680`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NmsSettings {
    pub conf: f32,
    /// Python float: compared in double by torchvision.
    pub iou: f64,
    pub max_det: usize,
    pub agnostic: bool,
    pub max_nms: usize,
    pub max_wh: f32,
    /// One candidate per class over the threshold (`multi_label=True`, as `DetectionValidator`
    /// calls it for mAP) instead of the best class only (the predictor).
    pub multi_label: bool,
}

impl Default for NmsSettings {
    fn default() -> Self {
        NmsSettings {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            agnostic: false,
            max_nms: 30_000,
            max_wh: 7680.0,
            multi_label: false,
        }
    }
}

/// `xywh2xyxy` in f32: `wh / 2` first, then `xy - half`, `xy + half`.
#[inline]
fn xywh2xyxy(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    let (hw, hh) = (w / 2.0, h / 2.0);
    [cx - hw, cy - hh, cx + hw, cy + hh]
}

/// First maximum of `values` (torch `max(dim)` returns the first maximal index).
#[inline]
fn first_max(values: impl Iterator<Item = f32>) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

/// Candidates of a channels-first output `[channels, anchors]` (row-major) with `nc` classes.
pub fn candidates_channels_first(
    data: &[f32],
    channels: usize,
    anchors: usize,
    nc: usize,
    conf: f32,
) -> Vec<Candidate> {
    debug_assert_eq!(data.len(), channels * anchors);
    let at = |c: usize, n: usize| data[c * anchors + n];
    // Pass over the class planes once, keeping each anchor's running best (cache-friendly:
    // the planes are contiguous; scores and classes apart, so the loop vectorises).
    let mut best_score = vec![f32::NEG_INFINITY; anchors];
    let mut best_class = vec![0u32; anchors];
    for class in 0..nc {
        let plane = &data[(4 + class) * anchors..(5 + class) * anchors];
        for ((score, best), &v) in best_score.iter_mut().zip(&mut best_class).zip(plane) {
            if v > *score {
                *score = v;
                *best = class as u32;
            }
        }
    }
    best_class
        .iter()
        .zip(&best_score)
        .map(|(&class, &score)| (class as usize, score))
        .enumerate()
        .filter(|(_, (_, score))| *score > conf)
        .map(|(n, (class, score))| Candidate {
            bbox: xywh2xyxy(at(0, n), at(1, n), at(2, n), at(3, n)),
            score,
            class,
            row: n,
        })
        .collect()
}

/// Multi-label candidates of a channels-first output: every `(anchor, class)` with a score over
/// `conf`, anchor-major (`torch.where(cls > conf)` on `[N, nc]`). With one class this is the
/// single-label selection (`multi_label &= nc > 1`).
pub fn candidates_channels_first_multi(
    data: &[f32],
    channels: usize,
    anchors: usize,
    nc: usize,
    conf: f32,
) -> Vec<Candidate> {
    debug_assert_eq!(data.len(), channels * anchors);
    if nc <= 1 {
        return candidates_channels_first(data, channels, anchors, nc, conf);
    }
    let at = |c: usize, n: usize| data[c * anchors + n];
    let mut out = Vec::new();
    for n in 0..anchors {
        let mut bbox = None;
        for class in 0..nc {
            let score = at(4 + class, n);
            if score > conf {
                let b =
                    *bbox.get_or_insert_with(|| xywh2xyxy(at(0, n), at(1, n), at(2, n), at(3, n)));
                out.push(Candidate {
                    bbox: b,
                    score,
                    class,
                    row: n,
                });
            }
        }
    }
    out
}

/// Candidates of an objectness output `[anchors, row_len]` with `nc` classes (yolov5
/// `non_max_suppression`, single label).
pub fn candidates_objectness(data: &[f32], row_len: usize, nc: usize, conf: f32) -> Vec<Candidate> {
    data.chunks_exact(row_len)
        .enumerate()
        .filter(|(_, row)| row[4] > conf)
        .filter_map(|(n, row)| {
            let obj = row[4];
            let (class, score) = first_max(row[5..5 + nc].iter().map(|&c| c * obj));
            (score > conf).then(|| Candidate {
                bbox: xywh2xyxy(row[0], row[1], row[2], row[3]),
                score,
                class,
                row: n,
            })
        })
        .collect()
}

/// The end-to-end branch: rows `[x1, y1, x2, y2, score, class, extra...]` with `score > conf`,
/// the first `max_det` of them, in output order.
pub fn end_to_end(data: &[f32], row_len: usize, conf: f32, max_det: usize) -> Vec<Candidate> {
    data.chunks_exact(row_len)
        .enumerate()
        .filter(|(_, row)| row[4] > conf)
        .take(max_det)
        .map(|(n, row)| Candidate {
            bbox: [row[0], row[1], row[2], row[3]],
            score: row[4],
            class: row[5] as usize,
            row: n,
        })
        .collect()
}

/// The NMS part of `non_max_suppression` on one image's candidates: the `max_nms` cap, the
/// class offset, torchvision's greedy NMS ([`crate::families::nms`], the IoU compared in
/// double), the `max_det` cap. Kept candidates in descending score order (ties: earlier
/// candidate first).
pub fn non_max_suppression(mut candidates: Vec<Candidate>, s: &NmsSettings) -> Vec<Candidate> {
    if candidates.len() > s.max_nms {
        let scores: Vec<f32> = candidates.iter().map(|c| c.score).collect();
        let order = argsort_descending(&scores);
        candidates = order[..s.max_nms].iter().map(|&i| candidates[i]).collect();
    }
    let offset_boxes: Vec<[f32; 4]> = candidates
        .iter()
        .map(|c| {
            let offset = if s.agnostic {
                0.0
            } else {
                c.class as f32 * s.max_wh
            };
            c.bbox.map(|v| v + offset)
        })
        .collect();
    let scores: Vec<f32> = candidates.iter().map(|c| c.score).collect();
    let keep = if !s.agnostic && classes_cannot_overlap(&candidates, s.max_wh) {
        let classes: Vec<usize> = candidates.iter().map(|c| c.class).collect();
        batched_nms(&offset_boxes, &scores, &classes, s.iou)
    } else {
        nms(&offset_boxes, &scores, s.iou)
    };
    keep.into_iter()
        .take(s.max_det)
        .map(|i| candidates[i])
        .collect()
}

/// Whether boxes of different classes, once offset, can never intersect: then NMS per class
/// (`batched_nms`) gives exactly what one NMS over all offset boxes gives, much faster. True
/// when every box's x-extent fits in one `max_wh` band (rounding is monotone, so offset boxes
/// keep their order).
fn classes_cannot_overlap(candidates: &[Candidate], max_wh: f32) -> bool {
    let (lo, hi) = candidates
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.bbox[0]), hi.max(c.bbox[2]))
        });
    candidates.is_empty() || (hi - lo <= max_wh && lo.is_finite() && hi.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bbox: [f32; 4], score: f32, class: usize, row: usize) -> Candidate {
        Candidate {
            bbox,
            score,
            class,
            row,
        }
    }

    #[test]
    fn channels_first_takes_the_first_best_class_over_the_threshold() {
        // Two anchors, two classes: [cx, cy, w, h, c0, c1] planes.
        let data = [
            10.0, 50.0, 10.0, 50.0, 4.0, 6.0, 4.0, 6.0, 0.5, 0.1, 0.5, 0.2,
        ];
        let c = candidates_channels_first(&data, 6, 2, 2, 0.25);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].bbox, [8.0, 8.0, 12.0, 12.0]);
        assert_eq!((c[0].class, c[0].score, c[0].row), (0, 0.5, 0));
    }

    #[test]
    fn multi_label_keeps_every_class_over_the_threshold_box_major() {
        // Two anchors, two classes: anchor 0 has both classes over 0.25.
        let data = [
            10.0, 50.0, 10.0, 50.0, 4.0, 6.0, 4.0, 6.0, 0.5, 0.1, 0.3, 0.4,
        ];
        let c = candidates_channels_first_multi(&data, 6, 2, 2, 0.25);
        let got: Vec<(usize, usize)> = c.iter().map(|c| (c.row, c.class)).collect();
        assert_eq!(got, vec![(0, 0), (0, 1), (1, 1)]);
    }

    #[test]
    fn objectness_multiplies_class_scores() {
        let row = [10.0, 10.0, 4.0, 4.0, 0.5, 0.4, 0.8];
        let c = candidates_objectness(&row, 7, 2, 0.25);
        assert_eq!((c[0].class, c[0].score), (1, 0.4));
        assert!(candidates_objectness(&row, 7, 2, 0.45).is_empty());
    }

    #[test]
    fn iou_threshold_compares_in_double() {
        // IoU 30/100 is 0.3f32 = 0.30000001192..., which is > 0.3 in double (torchvision:
        // suppressed) but not > 0.3f32 (an f32 compare would keep it).
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [0.0, 0.0, 3.0, 10.0];
        let s = NmsSettings {
            iou: 0.3,
            ..Default::default()
        };
        let kept = non_max_suppression(vec![cand(a, 0.9, 0, 0), cand(b, 0.8, 0, 1)], &s);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn classes_do_not_suppress_each_other_and_max_det_caps() {
        let b = [0.0, 0.0, 10.0, 10.0];
        let s = NmsSettings::default();
        let kept = non_max_suppression(
            vec![cand(b, 0.5, 0, 0), cand(b, 0.9, 1, 1), cand(b, 0.8, 0, 2)],
            &s,
        );
        assert_eq!(
            kept.iter().map(|c| c.row).collect::<Vec<_>>(),
            vec![1, 2],
            "class 0's weaker duplicate goes"
        );
        let agnostic = NmsSettings {
            agnostic: true,
            max_det: 5,
            ..Default::default()
        };
        let kept = non_max_suppression(
            vec![cand(b, 0.5, 0, 0), cand(b, 0.9, 1, 1), cand(b, 0.8, 0, 2)],
            &agnostic,
        );
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn far_out_boxes_fall_back_to_one_nms_over_all_classes() {
        // A box wider than max_wh reaches into the next class's band, as in torch.
        let wide = [0.0, 0.0, 9000.0, 10.0];
        let next = [7680.0 - 7680.0, 0.0, 9000.0 - 7680.0, 10.0];
        let s = NmsSettings::default();
        assert!(!classes_cannot_overlap(
            &[cand(wide, 0.9, 0, 0), cand(next, 0.8, 1, 1)],
            s.max_wh
        ));
        let kept = non_max_suppression(vec![cand(wide, 0.9, 0, 0), cand(next, 0.8, 1, 1)], &s);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn end_to_end_keeps_rows_over_the_threshold_in_order() {
        let rows = [
            0.0, 0.0, 1.0, 1.0, 0.9, 3.0, 0.0, 0.0, 1.0, 1.0, 0.1, 2.0, 0.0, 0.0, 1.0, 1.0, 0.5,
            1.0,
        ];
        let kept = end_to_end(&rows, 6, 0.25, 300);
        assert_eq!(
            kept.iter().map(|c| (c.row, c.class)).collect::<Vec<_>>(),
            vec![(0, 3), (2, 1)]
        );
        assert_eq!(end_to_end(&rows, 6, 0.25, 1).len(), 1);
    }
}
