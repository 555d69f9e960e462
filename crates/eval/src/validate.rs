//! Checks on one detection before it reaches hotcoco, shared by the results-file path and the
//! in-memory path: ids that exist in the ground truth, a finite score, a box with finite
//! coordinates and no negative size, masks whose runs cover exactly the image, polygons of at
//! least 3 points, keypoints of the right length.
//!
//! hotcoco accepts several of these silently (a missing score, an RLE whose runs stop short,
//! a two-point polygon) or only warns (unknown image and category ids); pycocotools crashes on
//! some and silently mis-scores others. detbench refuses them with a message saying what is
//! wrong, so that a broken export cannot turn into a plausible-looking AP.

use hotcoco::types::{Annotation, Segmentation};

use crate::ground_truth::GroundTruth;
use crate::types::IouType;

/// What an evaluation of one IoU type needs every detection to carry.
pub(crate) struct Requirements {
    pub iou_type: IouType,
    /// Values per keypoint result: 3 per OKS sigma (17 COCO keypoints: 51).
    pub keypoint_values: usize,
}

/// `Ok` when `ann` (a result, after hotcoco's `load_res` or our in-memory conversion) can be
/// evaluated; otherwise what is wrong with it, in words.
pub(crate) fn check_result(
    ann: &Annotation,
    gt: &GroundTruth,
    needs: &Requirements,
) -> Result<(), String> {
    let gt_name = gt.path().display();
    let Some(image) = gt.image(ann.image_id) else {
        return Err(format!(
            "image_id {} is not an image of {gt_name} (pycocotools: \"Results do not correspond \
             to current coco set\")",
            ann.image_id
        ));
    };
    if !gt.contains_category(ann.category_id) {
        return Err(format!(
            "category_id {} is not a category of {gt_name}; results use COCO category ids (1-90 \
             for COCO), not contiguous class indices",
            ann.category_id
        ));
    }
    match ann.score {
        None => return Err("has no `score`".into()),
        Some(score) if !score.is_finite() => {
            return Err(format!("score is {score}; expected a finite number"));
        }
        Some(_) => {}
    }
    if let Some(bbox) = ann.bbox {
        check_box(&bbox)?;
    } else if needs.iou_type == IouType::Bbox {
        return Err("has no `bbox`, which bbox evaluation needs".into());
    }
    match needs.iou_type {
        IouType::Bbox => Ok(()),
        IouType::Segm => match &ann.segmentation {
            None => Err("has no `segmentation`, which segm evaluation needs".into()),
            Some(segmentation) => check_segmentation(segmentation, image.height, image.width),
        },
        IouType::Keypoints => match &ann.keypoints {
            None => Err("has no `keypoints`, which keypoint evaluation needs".into()),
            Some(keypoints) => check_keypoints(keypoints, needs.keypoint_values),
        },
    }
}

fn check_box(bbox: &[f64; 4]) -> Result<(), String> {
    if bbox.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "bbox {bbox:?} has a value that is not a finite number; expected [x, y, width, height]"
        ));
    }
    if bbox[2] < 0.0 || bbox[3] < 0.0 {
        return Err(format!(
            "bbox {bbox:?} has a negative width or height; expected [x, y, width, height] (COCO \
             boxes are not [x1, y1, x2, y2])"
        ));
    }
    Ok(())
}

fn check_segmentation(segmentation: &Segmentation, height: u32, width: u32) -> Result<(), String> {
    match segmentation {
        Segmentation::Polygon(polygons) => {
            if polygons.is_empty() {
                return Err("segmentation is an empty polygon list".into());
            }
            for (i, polygon) in polygons.iter().enumerate() {
                if polygon.len() < 6 || polygon.len() % 2 != 0 {
                    return Err(format!(
                        "segmentation polygon {i} has {} coordinate(s); a polygon is [x1, y1, x2, \
                         y2, x3, y3, ...] with at least 3 points",
                        polygon.len()
                    ));
                }
                if polygon.iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "segmentation polygon {i} has a value that is not a finite number"
                    ));
                }
            }
            Ok(())
        }
        // A box result without a mask: pycocotools' loadRes gives it the box's polygon.
        Segmentation::Rect(bbox) => check_box(bbox),
        Segmentation::CompressedRle { size, counts } => {
            check_rle_size(*size, height, width)?;
            match compressed_run_total(counts) {
                Some(total) => check_total(total, size[0], size[1]),
                // Not a valid counts string: hotcoco's decoder says why.
                None => match hotcoco::mask::rle_from_string(counts, size[0], size[1]) {
                    Err(e) => Err(format!(
                        "segmentation RLE `counts` string does not decode: {e}"
                    )),
                    Ok(rle) => check_run_total(&rle.counts, size[0], size[1]),
                },
            }
        }
        Segmentation::UncompressedRle { size, counts } => {
            check_rle_size(*size, height, width)?;
            check_run_total(counts, size[0], size[1])
        }
        _ => Err("segmentation has a form COCO results do not use".into()),
    }
}

fn check_rle_size(size: [u32; 2], height: u32, width: u32) -> Result<(), String> {
    if size != [height, width] {
        return Err(format!(
            "segmentation RLE size {size:?} is not the image's [height, width] [{height}, {width}]"
        ));
    }
    Ok(())
}

/// pycocotools' RLE: runs of 0s and 1s in column-major order covering all `h * w` pixels.
pub(crate) fn check_run_total(counts: &[u32], height: u32, width: u32) -> Result<(), String> {
    check_total(counts.iter().map(|&c| u64::from(c)).sum(), height, width)
}

fn check_total(total: u64, height: u32, width: u32) -> Result<(), String> {
    let pixels = u64::from(height) * u64::from(width);
    if total != pixels {
        return Err(format!(
            "segmentation RLE counts add up to {total}, but a {height}x{width} mask has {pixels} \
             pixels"
        ));
    }
    Ok(())
}

fn check_keypoints(keypoints: &[f64], expected: usize) -> Result<(), String> {
    if keypoints.len() != expected {
        return Err(format!(
            "has {} keypoint values; expected {expected} ({} keypoints as x, y, visibility)",
            keypoints.len(),
            expected / 3
        ));
    }
    if keypoints.iter().any(|v| !v.is_finite()) {
        return Err("keypoints have a value that is not a finite number".into());
    }
    Ok(())
}

/// The sum of the runs of a compressed RLE `counts` string, or `None` when the string is not
/// valid (a run that does not end, a negative run, an out-of-range character).
///
/// The decoding is pycocotools' `rleFrString` (common/maskApi.c): 5-bit groups, least
/// significant first, `0x20` = more groups follow, `0x10` in the last group = negative; from
/// the third run on, each value is a difference to the run two places back. hotcoco's
/// `rle_from_string` does the same but allocates the whole run list, and checking every mask
/// of a large results file that way cost about 4% of a segm evaluation; only the total is
/// needed here.
fn compressed_run_total(counts: &str) -> Option<u64> {
    let mut bytes = counts.bytes();
    let (mut total, mut index) = (0u64, 0usize);
    let mut previous = [0i64; 2]; // runs m-1 and m-2
    while let Some(first) = bytes.next() {
        let mut c = first.wrapping_sub(48);
        if c > 63 {
            return None;
        }
        let mut x = i64::from(c & 0x1f);
        let mut k = 1u32;
        while c & 0x20 != 0 {
            c = bytes.next()?.wrapping_sub(48);
            if c > 63 || k > 11 {
                return None;
            }
            x |= i64::from(c & 0x1f) << (5 * k);
            k += 1;
        }
        if c & 0x10 != 0 {
            x |= -1i64 << (5 * k);
        }
        if index > 2 {
            x += previous[1];
        }
        if !(0..=i64::from(u32::MAX)).contains(&x) {
            return None;
        }
        total += x as u64;
        previous = [x, previous[0]];
        index += 1;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::compressed_run_total;

    #[test]
    fn run_total_of_compressed_strings_matches_hotcocos_decoder() {
        let masks: [(u32, u32, Vec<u32>); 5] = [
            (10, 10, vec![5, 3, 92]),
            (10, 10, vec![0, 100]),
            (7, 13, vec![3, 40, 2, 1, 1, 30, 14]),
            (480, 640, vec![1000, 5000, 20000, 7, 100, 281093]),
            (4, 4, vec![16]),
        ];
        for (h, w, counts) in masks {
            let rle = hotcoco::Rle { h, w, counts };
            let text = hotcoco::mask::rle_to_string(&rle);
            let decoded = hotcoco::mask::rle_from_string(&text, h, w).unwrap();
            let want: u64 = decoded.counts.iter().map(|&c| u64::from(c)).sum();
            assert_eq!(compressed_run_total(&text), Some(want), "{text}");
        }
        assert_eq!(compressed_run_total(""), Some(0));
        // A run whose continuation bit is set on the last character never ends.
        assert_eq!(compressed_run_total("0P"), None);
        // Characters below '0' are not part of the alphabet.
        assert_eq!(compressed_run_total("0 1"), None);
    }
}
