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

/// What is wrong with one result, in words (the caller adds which result and file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Invalid(pub String);

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        Invalid(message.to_owned())
    }
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Invalid(message)
    }
}

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
) -> Result<(), Invalid> {
    let gt_name = gt.path().display();
    let Some(image) = gt.image(ann.image_id) else {
        return Err(format!(
            "image_id {} is not an image of {gt_name} (pycocotools: \"Results do not correspond \
             to current coco set\")",
            ann.image_id
        )
        .into());
    };
    if !gt.contains_category(ann.category_id) {
        return Err(format!(
            "category_id {} is not a category of {gt_name}; results use COCO category ids (1-90 \
             for COCO), not contiguous class indices",
            ann.category_id
        )
        .into());
    }
    match ann.score {
        None => {
            return Err(
                "has no `score` (a finite number is needed; a score written as \
                        Infinity or NaN is read as null)"
                    .into(),
            );
        }
        Some(score) if !score.is_finite() => {
            return Err(format!("score is {score}; expected a finite number").into());
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

fn check_box(bbox: &[f64; 4]) -> Result<(), Invalid> {
    if bbox.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "bbox {bbox:?} has a value that is not a finite number; expected [x, y, width, height]"
        )
        .into());
    }
    if bbox[2] < 0.0 || bbox[3] < 0.0 {
        return Err(format!(
            "bbox {bbox:?} has a negative width or height; expected [x, y, width, height] (COCO \
             boxes are not [x1, y1, x2, y2])"
        )
        .into());
    }
    Ok(())
}

fn check_segmentation(segmentation: &Segmentation, height: u32, width: u32) -> Result<(), Invalid> {
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
                    )
                    .into());
                }
                if polygon.iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "segmentation polygon {i} has a value that is not a finite number"
                    )
                    .into());
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
                    Err(e) => {
                        Err(format!("segmentation RLE `counts` string does not decode: {e}").into())
                    }
                    // A string outside the encoder's alphabet or whose last run never ends
                    // (e.g. "P"): hotcoco reads it leniently, as pycocotools does, and it is
                    // accepted when that reading fills the mask; when not, say why.
                    Ok(rle) => check_run_total(&rle.counts, size[0], size[1]).map_err(|why| {
                        Invalid(format!(
                            "{why} (the `counts` string is malformed: its last run does not end, \
                             or a character is outside '0'..'o'; it was read leniently, as \
                             pycocotools reads it)"
                        ))
                    }),
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

fn check_rle_size(size: [u32; 2], height: u32, width: u32) -> Result<(), Invalid> {
    if size != [height, width] {
        return Err(format!(
            "segmentation RLE size {size:?} is not the image's [height, width] [{height}, {width}]"
        )
        .into());
    }
    Ok(())
}

/// pycocotools' RLE: runs of 0s and 1s in column-major order covering all `h * w` pixels.
pub(crate) fn check_run_total(counts: &[u32], height: u32, width: u32) -> Result<(), Invalid> {
    check_total(counts.iter().map(|&c| u64::from(c)).sum(), height, width)
}

fn check_total(total: u64, height: u32, width: u32) -> Result<(), Invalid> {
    let pixels = u64::from(height) * u64::from(width);
    if total != pixels {
        return Err(format!(
            "segmentation RLE counts add up to {total}, but a {height}x{width} mask has {pixels} \
             pixels"
        )
        .into());
    }
    Ok(())
}

fn check_keypoints(keypoints: &[f64], expected: usize) -> Result<(), Invalid> {
    if keypoints.len() != expected {
        return Err(format!(
            "has {} keypoint values; expected {expected} ({} keypoints as x, y, visibility)",
            keypoints.len(),
            expected / 3
        )
        .into());
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
/// needed here. Written by hand for that reason, with a fast path: about 90% of the runs of
/// real masks fit one character, so eight characters that are eight one-character runs are
/// checked as one 64-bit word (23% less time than run by run on the synthetic val2017-scale
/// masks; the tests compare both paths with hotcoco's decoder).
fn compressed_run_total(counts: &str) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let bytes = counts.as_bytes();
    let (mut i, mut index, mut total) = (0usize, 0usize, 0u64);
    let (mut previous, mut before) = (0i64, 0i64); // runs m-1 and m-2
    while i < bytes.len() {
        if index > 2
            && let Some(word) = bytes.get(i..i + 8)
        {
            let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            // Per byte, with no borrow between bytes: the high bit stays set iff byte >= '0'.
            let c = (w | (0x80 * ONES)) - 0x30 * ONES;
            let one_char_runs = w & (0x80 * ONES) == 0 // ASCII
                && c & (0x80 * ONES) == 0x80 * ONES // every byte >= '0'
                && c & (0x40 * ONES) == 0 // every byte - '0' <= 63
                && c & (0x20 * ONES) == 0; // no continuation bit
            if one_char_runs {
                // Runs m, m+2, m+4, m+6 add to run m-2; m+1, m+3, ... to run m-1.
                let (mut even, mut odd) = (before, previous);
                let mut out_of_range = false;
                let mut sum = 0i64;
                let groups = c.to_le_bytes();
                for pair in groups.chunks_exact(2) {
                    even += i64::from((pair[0] & 0x1f) ^ 0x10) - 16;
                    odd += i64::from((pair[1] & 0x1f) ^ 0x10) - 16;
                    // A negative run becomes a huge u64: one comparison covers both ends.
                    out_of_range |=
                        (even as u64 > u64::from(u32::MAX)) | (odd as u64 > u64::from(u32::MAX));
                    sum += even + odd;
                }
                if out_of_range {
                    return None;
                }
                total += sum as u64;
                (previous, before) = (odd, even);
                index += 8;
                i += 8;
                continue;
            }
        }
        let mut run = next_compressed_run(bytes, &mut i)?;
        if index > 2 {
            run += before;
        }
        if !(0..=i64::from(u32::MAX)).contains(&run) {
            return None;
        }
        total += run as u64;
        (previous, before) = (run, previous);
        index += 1;
    }
    Some(total)
}

/// The value of the run starting at `bytes[*i]` (before the difference to run m-2 is undone),
/// advancing `*i` past it; `None` when it is not valid.
fn next_compressed_run(bytes: &[u8], i: &mut usize) -> Option<i64> {
    let mut c = bytes[*i].wrapping_sub(48);
    *i += 1;
    if c > 63 {
        return None;
    }
    let mut x = i64::from(c & 0x1f);
    let mut k = 1u32;
    while c & 0x20 != 0 {
        c = bytes.get(*i)?.wrapping_sub(48);
        *i += 1;
        if c > 63 || k > 11 {
            return None;
        }
        x |= i64::from(c & 0x1f) << (5 * k);
        k += 1;
    }
    if c & 0x10 != 0 {
        x |= -1i64 << (5 * k);
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::{compressed_run_total, next_compressed_run};

    /// The same total, run by run (no eight-character fast path).
    fn run_by_run_total(counts: &str) -> Option<u64> {
        let bytes = counts.as_bytes();
        let (mut i, mut total) = (0usize, 0u64);
        let mut runs: Vec<i64> = Vec::new();
        while i < bytes.len() {
            let mut run = next_compressed_run(bytes, &mut i)?;
            if runs.len() > 2 {
                run += runs[runs.len() - 2];
            }
            if !(0..=i64::from(u32::MAX)).contains(&run) {
                return None;
            }
            total += run as u64;
            runs.push(run);
        }
        Some(total)
    }

    /// A small deterministic generator (64-bit LCG, high bits).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % below
        }
    }

    #[test]
    fn fast_path_agrees_with_hotcocos_decoder_on_random_masks() {
        let mut rng = Lcg(7);
        let mut fast_path_strings = 0;
        for _ in 0..20_000 {
            // Mostly short runs whose neighbours differ little (one-character differences),
            // now and then a long one, as in real masks.
            let n = 1 + rng.next(60) as usize;
            let mut counts: Vec<u32> = Vec::with_capacity(n);
            for m in 0..n {
                let run = match rng.next(10) {
                    0 => rng.next(100_000) as u32,
                    _ if m >= 2 => {
                        (i64::from(counts[m - 2]) + rng.next(31) as i64 - 15).max(0) as u32
                    }
                    _ => rng.next(40) as u32,
                };
                counts.push(run);
            }
            let pixels: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            let (h, w) = (1, pixels.max(1) as u32);
            let text = hotcoco::mask::rle_to_string(&hotcoco::Rle {
                h,
                w,
                counts: counts.clone(),
            });
            let decoded = hotcoco::mask::rle_from_string(&text, h, w).unwrap();
            let want: u64 = decoded.counts.iter().map(|&c| u64::from(c)).sum();
            assert_eq!(
                compressed_run_total(&text),
                Some(want),
                "{counts:?} -> {text}"
            );
            fast_path_strings += usize::from(text.len() >= 11);
        }
        assert!(
            fast_path_strings > 10_000,
            "{fast_path_strings} strings long enough"
        );
    }

    #[test]
    fn fast_path_agrees_with_run_by_run_on_random_strings() {
        // Characters around and inside the alphabet '0'..='o', including '/' and 'p'..; runs
        // that go negative and strings that end inside a run.
        let mut rng = Lcg(11);
        let mut valid = 0;
        for _ in 0..200_000 {
            let len = rng.next(40) as usize;
            let text: String = (0..len)
                .map(|_| match rng.next(50) {
                    0 => '/',
                    1 => 'p',
                    2 => '~',
                    3..=8 => char::from(b'P' + rng.next(32) as u8), // continuation characters
                    _ => char::from(b'0' + rng.next(32) as u8),     // one-character runs
                })
                .collect();
            let want = run_by_run_total(&text);
            assert_eq!(compressed_run_total(&text), want, "{text:?}");
            valid += usize::from(want.is_some());
        }
        assert!(valid > 1_000, "only {valid} valid strings drawn");
    }

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
