//! What an evaluation produces, in detbench's own types: pycocotools' `stats`, per-class AP and
//! the precision/recall curves, plus pycocotools' printed summary lines, character for
//! character.

use serde::{Deserialize, Serialize};

use crate::ground_truth::GroundTruth;
use crate::params::{AreaRange, EvalParams, SummaryMaxDets};
use crate::types::IouType;

/// AP of one category: AP@[.50:.95], area `all`, at the largest max-detections value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    pub category_id: u64,
    pub name: String,
    /// `None` where pycocotools has -1: the category has no ground truth.
    pub ap: Option<f64>,
}

/// Interpolated precision of one category at the recall thresholds (101 by default), for one
/// IoU threshold and area range, at the largest max-detections value: pycocotools'
/// `eval['precision'][t, :, k, a, -1]`. -1 where nothing was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    pub iou_threshold: f64,
    pub category_id: u64,
    pub area: String,
    pub max_dets: usize,
    pub precision: Vec<f64>,
}

/// One line of pycocotools' `summarize()`: which slice of the accumulated arrays a stat reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    /// Short name (`AP`, `AP50`, `ARs`, ...).
    pub name: String,
    /// Average precision (`true`) or average recall.
    pub precision: bool,
    /// A single IoU threshold, or `None` for the mean over all of them.
    pub iou_threshold: Option<f64>,
    pub area: String,
    pub max_dets: usize,
}

/// The result of evaluating one IoU type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSummary {
    pub iou_type: IouType,
    /// pycocotools' `COCOeval.stats`: 12 values for bbox/segm, 10 for keypoints.
    pub stats: Vec<f64>,
    /// What each stat is, in `stats` order.
    pub rows: Vec<SummaryRow>,
    /// Every category of the ground truth, by ascending id.
    pub per_class: Vec<ClassAp>,
    /// One curve per IoU threshold × category × area range.
    pub pr_curves: Vec<PrCurve>,
    pub iou_thresholds: Vec<f64>,
    pub recall_thresholds: Vec<f64>,
    pub area_ranges: Vec<AreaRange>,
    pub max_dets: Vec<usize>,
    /// Images evaluated.
    pub images: usize,
    /// Detections evaluated.
    pub detections: usize,
    /// Things the user should know (annotation id 0 in the ground truth, no detections, ...).
    pub warnings: Vec<String>,
}

impl EvalSummary {
    /// pycocotools' `COCOeval.summarize()` output, one string per line, e.g.
    /// ` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.283`.
    pub fn summary_lines(&self) -> Vec<String> {
        // pycocotools/cocoeval.py, COCOeval.summarize._summarize:
        //   iStr = ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
        //   iouStr = '{:0.2f}:{:0.2f}'.format(p.iouThrs[0], p.iouThrs[-1]) if iouThr is None
        //            else '{:0.2f}'.format(iouThr)
        // Rust's `{:.3}` rounds the exact binary value half-to-even, as Python's format does.
        let all_thresholds = match (self.iou_thresholds.first(), self.iou_thresholds.last()) {
            (Some(first), Some(last)) => format!("{first:.2}:{last:.2}"),
            _ => String::new(),
        };
        self.rows
            .iter()
            .zip(&self.stats)
            .map(|(row, value)| {
                let (title, kind) = if row.precision {
                    ("Average Precision", "(AP)")
                } else {
                    ("Average Recall", "(AR)")
                };
                let iou = match row.iou_threshold {
                    Some(threshold) => format!("{threshold:.2}"),
                    None => all_thresholds.clone(),
                };
                format!(
                    " {title:<18} {kind} @[ IoU={iou:<9} | area={:>6} | maxDets={:>3} ] = {value:.3}",
                    row.area, row.max_dets
                )
            })
            .collect()
    }

    /// The per-class AP table: one line per category, `-` where it has no ground truth.
    pub fn per_class_lines(&self) -> Vec<String> {
        let width = self
            .per_class
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0)
            .max("category".len());
        let mut lines = vec![format!("{:>4}  {:<width$}  {:>6}", "id", "category", "AP")];
        for class in &self.per_class {
            let ap = match class.ap {
                Some(ap) => format!("{:.3}", ap),
                None => "-".to_owned(),
            };
            lines.push(format!(
                "{:>4}  {:<width$}  {:>6}",
                class.category_id, class.name, ap
            ));
        }
        lines
    }

    /// The stat named `name` (`AP`, `AP50`, ..., as in [`SummaryRow::name`]).
    pub fn stat(&self, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .position(|row| row.name == name)
            .map(|i| self.stats[i])
    }
}

/// Builds the summary from an evaluator that has run `accumulate()`.
pub(crate) fn from_accumulated(
    ev: &mut hotcoco::COCOeval,
    gt: &GroundTruth,
    params: &EvalParams,
    images: usize,
    detections: usize,
    warnings: Vec<String>,
) -> EvalSummary {
    // `summarize_lines` computes the stats (hotcoco's summarize without printing); its own
    // lines differ from pycocotools' in spacing, so ours are made by `summary_lines`.
    let _ = ev.summarize_lines();
    let mut stats = ev.stats().map(<[f64]>::to_vec).unwrap_or_default();
    let mut rows: Vec<SummaryRow> = ev
        .metric_defs()
        .into_iter()
        .map(|def| SummaryRow {
            name: def.name.to_owned(),
            precision: def.ap,
            iou_threshold: def.iou_thr,
            area: def.area_lbl.to_owned(),
            max_dets: def.max_det,
        })
        .collect();
    if params.summary_max_dets == SummaryMaxDets::Pycocotools {
        read_as_pycocotools(ev, params.iou_type, &mut rows, &mut stats);
    }
    let hotcoco_params = &ev.params;
    let iou_thresholds = hotcoco_params.iou_thrs.clone();
    let recall_thresholds = hotcoco_params.rec_thrs.clone();
    let max_det = hotcoco_params.max_det();
    let max_det_index = hotcoco_params.max_det_idx();
    // The range labelled `all`, looked up by label as pycocotools' summarize does; hotcoco's
    // `all_area_idx` would fall back to the first range when none is labelled `all`. Without
    // one, per-class AP is not defined (as the summary's AP is -1 then).
    let all_area_index = hotcoco_params
        .area_ranges
        .iter()
        .position(|range| range.label == "all");

    let names: std::collections::HashMap<u64, String> = gt.categories().into_iter().collect();
    let mut per_class = Vec::new();
    let mut pr_curves = Vec::new();
    if let Some(acc) = ev.accumulated() {
        let shape = acc.shape;
        for (k, &category_id) in acc.cat_ids.iter().enumerate() {
            let name = names.get(&category_id).cloned().unwrap_or_default();
            // detectron2's COCOEvaluator._derive_coco_results: precision[:, :, k, area all,
            // maxDets -1], keep > -1, np.mean. hotcoco's `per_class` report computes the same.
            let valid: Vec<f64> = all_area_index
                .into_iter()
                .flat_map(|a| {
                    (0..shape.t).flat_map(move |t| {
                        (0..shape.r).map(move |r| {
                            acc.precision[acc.precision_idx(t, r, k, a, max_det_index)]
                        })
                    })
                })
                .filter(|&p| p > -1.0)
                .collect();
            let ap = (!valid.is_empty()).then(|| numpy_pairwise_sum(&valid) / valid.len() as f64);
            per_class.push(ClassAp {
                category_id,
                name,
                ap,
            });
            for (t, &iou_threshold) in iou_thresholds.iter().enumerate().take(shape.t) {
                for (a, range) in hotcoco_params.area_ranges.iter().enumerate().take(shape.a) {
                    let precision = (0..shape.r)
                        .map(|r| acc.precision[acc.precision_idx(t, r, k, a, max_det_index)])
                        .collect();
                    pr_curves.push(PrCurve {
                        iou_threshold,
                        category_id,
                        area: range.label.clone(),
                        max_dets: max_det,
                        precision,
                    });
                }
            }
        }
    }
    EvalSummary {
        iou_type: params.iou_type,
        stats,
        rows,
        per_class,
        pr_curves,
        iou_thresholds,
        recall_thresholds,
        area_ranges: params.area_ranges.clone(),
        max_dets: params.max_dets.clone(),
        images,
        detections,
        warnings,
    }
}

/// The detection cap pycocotools' `summarize()` reads stat `position` at
/// (`pycocotools/cocoeval.py`, `COCOeval.summarize`): in `_summarizeDets`, `stats[0] =
/// _summarize(1)` takes `_summarize`'s default `maxDets=100` whatever `params.maxDets` is,
/// AR1/AR10 take `maxDets[0]`/`maxDets[1]` and the rest `maxDets[2]`; `_summarizeKps` reads
/// every stat at `maxDets=20`. hotcoco reads the first AP (and every keypoint stat) at the
/// largest value instead, which is the same for the default settings.
fn pycocotools_max_dets(iou_type: IouType, max_dets: &[usize], position: usize) -> usize {
    match (iou_type, position) {
        (IouType::Keypoints, _) => 20,
        (_, 0) => 100,
        (_, 6) => max_dets[0],
        (_, 7) => max_dets[1],
        _ => max_dets[2],
    }
}

/// Re-reads the stats whose cap differs from pycocotools' (see [`pycocotools_max_dets`]): -1
/// when that cap is not among the evaluated ones (`mind` is empty in `_summarize`), else the
/// mean of the valid entries of the accumulated precision (AP) or recall (AR) at it.
fn read_as_pycocotools(
    ev: &hotcoco::COCOeval,
    iou_type: IouType,
    rows: &mut [SummaryRow],
    stats: &mut [f64],
) {
    let p = &ev.params;
    let Some(acc) = ev.accumulated() else {
        return;
    };
    for (position, (row, stat)) in rows.iter_mut().zip(stats.iter_mut()).enumerate() {
        let wanted = pycocotools_max_dets(iou_type, &p.max_dets, position);
        if wanted == row.max_dets {
            continue;
        }
        row.max_dets = wanted;
        let (Some(m), Some(a)) = (
            p.max_dets.iter().position(|&d| d == wanted),
            p.area_range_idx(&row.area),
        ) else {
            *stat = -1.0;
            continue;
        };
        let thresholds = match row.iou_threshold {
            Some(threshold) => p.iou_thr_idx(threshold).map_or(0..0, |t| t..t + 1),
            None => 0..acc.shape.t,
        };
        // `s[s > -1]` of the [T, R, K] precision or [T, K] recall slice, in C order.
        let mut valid = Vec::new();
        for t in thresholds {
            if row.precision {
                for r in 0..acc.shape.r {
                    valid.extend(
                        (0..acc.shape.k).map(|k| acc.precision[acc.precision_idx(t, r, k, a, m)]),
                    );
                }
            } else {
                valid
                    .extend((0..acc.shape.k).map(|k| acc.recall[acc.shape.recall_idx(t, k, a, m)]));
            }
        }
        valid.retain(|&v| v > -1.0);
        *stat = if valid.is_empty() {
            -1.0
        } else {
            numpy_pairwise_sum(&valid) / valid.len() as f64
        };
    }
}

/// numpy's `pairwise_sum` (numpy/_core/src/umath/loops_utils.h.src), the order `np.mean` adds
/// a contiguous float64 array in, so that per-class AP equals detectron2's `np.mean` to the
/// last bit. hotcoco has the same port but keeps it crate-private; the conformance tests check
/// this one against hotcoco's per-class report.
fn numpy_pairwise_sum(values: &[f64]) -> f64 {
    const UNROLL: usize = 8;
    const BLOCK: usize = 128;
    let n = values.len();
    if n < UNROLL {
        values.iter().fold(0.0, |sum, &v| sum + v)
    } else if n <= BLOCK {
        let mut r = [0.0f64; UNROLL];
        r.copy_from_slice(&values[..UNROLL]);
        let blocks_end = n - n % UNROLL;
        for block in values[UNROLL..blocks_end].chunks_exact(UNROLL) {
            for (acc, &v) in r.iter_mut().zip(block) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        values[blocks_end..].iter().fold(head, |sum, &v| sum + v)
    } else {
        let half = n / 2;
        let split = half - half % UNROLL;
        numpy_pairwise_sum(&values[..split]) + numpy_pairwise_sum(&values[split..])
    }
}
