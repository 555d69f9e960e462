//! One training sample, built as torchvision's reference builds it: `ConvertCocoPolysToMask`
//! (coco_utils.py), then `DetectionPresetTrain(data_augmentation="hflip")` (presets.py:
//! `RandomHorizontalFlip`, `PILToTensor`, `ToDtype(torch.float, scale=True)`).
//!
//! * Pixels: decoded with libjpeg-turbo as OpenCV and PIL decode (detbench-imgproc; identical to
//!   `Image.open(..).convert("RGB")`, ../shared/notes/jpeg-decode.md), stored as uint8 RGB in
//!   CHW order. The float conversion (`image.to(float) / 255`, `F.convert_image_dtype`) happens
//!   on the device, where it gives the same values.
//! * Boxes: `torch.as_tensor(bbox, float32)`, `boxes[:, 2:] += boxes[:, :2]`, clamped to the
//!   image, in float32 as torch computes them; degenerate boxes (`x2 <= x1` or `y2 <= y1`) are
//!   dropped with their label, mask and keypoints.
//! * Masks: `coco_mask.frPyObjects(segmentation, h, w)` then `decode` and `any` over the
//!   polygons of an object, through hotcoco's codecs (pycocotools' algorithms). A list whose
//!   first polygon has 4 values is read as boxes, as frPyObjects reads it. Uncompressed RLE is
//!   decoded at its own size (as `frUncompressedRLE`); compressed RLE, which `frPyObjects`
//!   refuses, is decoded as well.
//! * Keypoints: float32 `(N, K, 3)`.
//! * Flip (`RandomHorizontalFlip`, transforms.py): image columns reversed, `x1' = w - x2`,
//!   `x2' = w - x1`, masks reversed, keypoints through `_flip_coco_person_keypoints` (left/right
//!   joints swapped, `x' = w - x`, invisible ones zeroed).

use std::path::Path;

use hotcoco::{Annotation, Rle, Segmentation};

use crate::coco::TrainImage;
use crate::error::{Result, TrainError};

/// transforms.py `_flip_coco_person_keypoints`: `flip_inds`.
pub const COCO_PERSON_FLIP: [usize; 17] =
    [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15];

/// What the targets carry besides boxes and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetKinds {
    pub masks: bool,
    pub keypoints: bool,
}

/// One image and its target, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub image_id: u64,
    pub height: usize,
    pub width: usize,
    /// uint8 RGB, CHW (3 x height x width).
    pub pixels: Vec<u8>,
    /// xyxy, float32, one per object.
    pub boxes: Vec<[f32; 4]>,
    /// COCO category ids (`labels`, int64).
    pub labels: Vec<i64>,
    /// N x height x width, 0/1, row-major; `None` when the model takes no masks.
    pub masks: Option<Vec<u8>>,
    /// N x K x 3 (x, y, visibility); `None` when the model takes no keypoints.
    pub keypoints: Option<Vec<f32>>,
    /// K, the keypoints per object.
    pub keypoints_per_object: usize,
    pub flipped: bool,
}

impl Sample {
    pub fn num_objects(&self) -> usize {
        self.boxes.len()
    }
}

/// Decodes the image and builds its target (then flips both when `flip`).
pub fn build_sample(
    image: &TrainImage,
    kinds: TargetKinds,
    flip: bool,
    annotations: &Path,
) -> Result<Sample> {
    let bgr = detbench_imgproc::decode_file(&image.file).map_err(|e| TrainError::Image {
        path: image.file.clone(),
        reason: e.to_string(),
    })?;
    let (w, h) = (bgr.width, bgr.height);
    let mut sample = Sample {
        image_id: image.image_id,
        height: h,
        width: w,
        pixels: bgr_to_rgb_chw(&bgr.data, w, h),
        boxes: Vec::new(),
        labels: Vec::new(),
        masks: kinds.masks.then(Vec::new),
        keypoints: None,
        keypoints_per_object: 0,
        flipped: false,
    };
    let objects = &image.objects;
    let fail = |ann: &Annotation, reason: String| TrainError::Annotation {
        path: annotations.to_path_buf(),
        ann_id: ann.id,
        image_id: image.image_id,
        reason,
    };
    // `if anno and "keypoints" in anno[0]`: keypoints come with the first annotation.
    let with_keypoints = kinds.keypoints && objects.first().is_some_and(|a| a.keypoints.is_some());
    let k = if with_keypoints {
        objects[0].keypoints.as_ref().map_or(0, |v| v.len() / 3)
    } else {
        0
    };
    let mut keypoints = Vec::new();
    for ann in objects {
        let b = ann.bbox.ok_or_else(|| fail(ann, "no `bbox`".into()))?;
        let (x, y) = (b[0] as f32, b[1] as f32);
        let (x2, y2) = (x + b[2] as f32, y + b[3] as f32);
        let clamp = |v: f32, max: usize| v.max(0.0).min(max as f32);
        let bx = [clamp(x, w), clamp(y, h), clamp(x2, w), clamp(y2, h)];
        // keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        if !(bx[3] > bx[1] && bx[2] > bx[0]) {
            continue;
        }
        if let Some(masks) = sample.masks.as_mut() {
            let segmentation = ann
                .segmentation
                .as_ref()
                .ok_or_else(|| fail(ann, "no `segmentation`".into()))?;
            rasterise_into(segmentation, h, w, masks).map_err(|reason| fail(ann, reason))?;
        }
        if with_keypoints {
            let kp = ann
                .keypoints
                .as_ref()
                .ok_or_else(|| fail(ann, "no `keypoints`".into()))?;
            if kp.len() != 3 * k {
                return Err(fail(
                    ann,
                    format!(
                        "{} keypoint values, the image's first annotation has {}",
                        kp.len(),
                        3 * k
                    ),
                ));
            }
            keypoints.extend(kp.iter().map(|&v| v as f32));
        }
        sample.boxes.push(bx);
        sample.labels.push(ann.category_id as i64);
    }
    if with_keypoints {
        sample.keypoints = Some(keypoints);
        sample.keypoints_per_object = k;
    } else if kinds.keypoints {
        sample.keypoints = Some(Vec::new());
        sample.keypoints_per_object = COCO_PERSON_FLIP.len();
    }
    if flip {
        flip_sample(&mut sample);
    }
    Ok(sample)
}

/// OpenCV's HWC BGR to CHW RGB.
fn bgr_to_rgb_chw(bgr: &[u8], w: usize, h: usize) -> Vec<u8> {
    let plane = w * h;
    let mut out = vec![0u8; 3 * plane];
    for (i, px) in bgr.chunks_exact(3).enumerate() {
        out[i] = px[2];
        out[plane + i] = px[1];
        out[2 * plane + i] = px[0];
    }
    out
}

/// Appends the object's h x w mask (row-major) to `masks`: the union of its parts.
fn rasterise_into(
    segmentation: &Segmentation,
    h: usize,
    w: usize,
    masks: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let (hh, ww) = (h as u32, w as u32);
    let rles: Vec<Rle> = match segmentation {
        Segmentation::Polygon(polys) => {
            if polys.first().is_some_and(|p| p.len() == 4) {
                // frPyObjects: `len(pyobj[0]) == 4` -> frBbox for every entry.
                polys
                    .iter()
                    .map(|p| {
                        let b: [f64; 4] = p
                            .as_slice()
                            .try_into()
                            .map_err(|_| "a box needs 4 values".to_string())?;
                        hotcoco::mask::fr_bbox(&b, hh, ww).map_err(|e| e.to_string())
                    })
                    .collect::<std::result::Result<_, _>>()?
            } else {
                polys
                    .iter()
                    .map(|p| hotcoco::mask::fr_poly(p, hh, ww).map_err(|e| e.to_string()))
                    .collect::<std::result::Result<_, _>>()?
            }
        }
        Segmentation::Rect(b) => {
            vec![hotcoco::mask::fr_bbox(b, hh, ww).map_err(|e| e.to_string())?]
        }
        other => {
            let rle = other
                .rle_ref()
                .ok_or_else(|| "unsupported `segmentation`".to_string())?
                .to_rle()
                .map_err(|e| format!("`segmentation` RLE: {e}"))?;
            if (rle.h, rle.w) != (hh, ww) {
                return Err(format!(
                    "`segmentation` RLE has size [{}, {}], the image is [{h}, {w}]",
                    rle.h, rle.w
                ));
            }
            vec![rle]
        }
    };
    let start = masks.len();
    masks.resize(start + h * w, 0);
    let out = &mut masks[start..];
    for rle in &rles {
        // Column-major runs (pycocotools' order), written into a row-major mask.
        let mut at = 0usize;
        for (i, &count) in rle.counts.iter().enumerate() {
            let count = count as usize;
            if i % 2 == 1 {
                for p in at..(at + count).min(h * w) {
                    out[(p % h) * w + p / h] = 1;
                }
            }
            at += count;
        }
    }
    Ok(())
}

/// `RandomHorizontalFlip` of transforms.py on the image and its target.
pub fn flip_sample(s: &mut Sample) {
    let (w, h) = (s.width, s.height);
    for row in s.pixels.chunks_exact_mut(w) {
        row.reverse();
    }
    let wf = w as f32;
    for b in &mut s.boxes {
        // target["boxes"][:, [0, 2]] = width - target["boxes"][:, [2, 0]]
        *b = [wf - b[2], b[1], wf - b[0], b[3]];
    }
    if let Some(masks) = s.masks.as_mut() {
        for row in masks.chunks_exact_mut(w) {
            row.reverse();
        }
    }
    let k = s.keypoints_per_object;
    if let Some(kps) = s.keypoints.as_mut() {
        for object in kps.chunks_exact_mut(3 * k) {
            let original = object.to_vec();
            for j in 0..k {
                // flipped_data = kps[:, flip_inds] (COCO person order when K = 17)
                let from = if k == COCO_PERSON_FLIP.len() {
                    COCO_PERSON_FLIP[j]
                } else {
                    j
                };
                let mut t = [
                    original[3 * from],
                    original[3 * from + 1],
                    original[3 * from + 2],
                ];
                t[0] = wf - t[0];
                if t[2] == 0.0 {
                    t = [0.0; 3];
                }
                object[3 * j..3 * j + 3].copy_from_slice(&t);
            }
        }
    }
    let _ = h;
    s.flipped = !s.flipped;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(w: usize, h: usize) -> Sample {
        Sample {
            image_id: 1,
            height: h,
            width: w,
            pixels: (0..3 * w * h).map(|i| i as u8).collect(),
            boxes: vec![[1.0, 2.0, 3.5, 4.0]],
            labels: vec![5],
            masks: Some({
                let mut m = vec![0u8; w * h];
                m[0] = 1;
                m
            }),
            keypoints: None,
            keypoints_per_object: 0,
            flipped: false,
        }
    }

    #[test]
    fn flip_mirrors_pixels_boxes_and_masks_and_twice_is_identity() {
        let original = blank(4, 3);
        let mut s = original.clone();
        flip_sample(&mut s);
        assert_eq!(s.boxes[0], [0.5, 2.0, 3.0, 4.0]);
        assert_eq!(&s.pixels[0..4], &[3, 2, 1, 0]);
        assert_eq!(s.masks.as_ref().unwrap()[3], 1);
        flip_sample(&mut s);
        assert_eq!(s.pixels, original.pixels);
        assert_eq!(s.masks, original.masks);
    }

    #[test]
    fn keypoint_flip_swaps_sides_and_zeroes_invisible_ones() {
        let mut s = blank(10, 2);
        let mut kp = vec![0f32; 51];
        kp[3] = 2.0; // left eye (index 1): x = 2, v = 2
        kp[5] = 2.0;
        kp[6] = 7.0; // right eye (index 2): x = 7, y = 1, v = 0 -> zeroed after the flip
        kp[7] = 1.0;
        s.keypoints = Some(kp);
        s.keypoints_per_object = 17;
        flip_sample(&mut s);
        let k = s.keypoints.unwrap();
        // joint 1 takes the old joint 2 (invisible): zeroed
        assert_eq!(&k[3..6], &[0.0, 0.0, 0.0]);
        // joint 2 takes the old joint 1: x = 10 - 2
        assert_eq!(&k[6..9], &[8.0, 0.0, 2.0]);
    }

    #[test]
    fn a_polygon_mask_is_written_row_major() {
        // A 3x2 rectangle at x in [1, 4), y in [0, 2) on a 5 x 3 canvas.
        let seg = Segmentation::Polygon(vec![vec![1.0, 0.0, 4.0, 0.0, 4.0, 2.0, 1.0, 2.0]]);
        let mut masks = Vec::new();
        rasterise_into(&seg, 3, 5, &mut masks).unwrap();
        let rle = hotcoco::mask::fr_poly(&[1.0, 0.0, 4.0, 0.0, 4.0, 2.0, 1.0, 2.0], 3, 5).unwrap();
        let column_major = hotcoco::mask::decode(&rle);
        for y in 0..3 {
            for x in 0..5 {
                assert_eq!(masks[y * 5 + x], column_major[x * 3 + y], "({x}, {y})");
            }
        }
        assert!(masks.contains(&1));
    }
}
