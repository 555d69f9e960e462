//! Instance masks of YOLO segmentation models at the original image size, as `ultralytics`
//! 8.4.x `ultralytics/utils/ops.py::process_mask_native` makes them (the predictor's
//! `retina_masks=True` path and the validator's `save_json` path):
//!
//! 1. logits: `coefficients @ prototypes.view(c, -1)` (`[N, 32] x [32, mh*mw]`, f32);
//! 2. `f = 4 // gcd(4, pad | pad // 2)` with `pad` the input letterbox padding in prototype
//!    pixels times 4: the smallest upsampling (1, 2 or 4) that crops the padding on whole
//!    pixels; `F.interpolate(scale_factor=f, mode="bilinear")` when `f > 1`;
//! 3. `scale_masks`: crop the padding (`top = round(pad_h - 0.1)`, ...), `F.interpolate` to the
//!    image size (bilinear, `align_corners=False`);
//! 4. `> 0`, then `crop_mask`: keep columns `x1 <= c < x2` and rows `y1 <= r < y2` of the box in
//!    image pixels.
//!
//! The bilinear sampling is torch's CPU kernel (`aten/src/ATen/native/UpSample.h::
//! area_pixel_compute_source_index`, `compute_source_index_and_lambda`; `cpu/UpSampleKernel.cpp`
//! `Interpolate`): source index `scale * (i + 0.5) - 0.5` in f32 clamped at 0, weights `1 - l, l`,
//! value `(v00*w0 + v01*w1)*h0 + (v10*w0 + v11*w1)*h1`. Only the pixels inside the box are
//! computed (the others are cropped away whatever their value).

use detbench_eval::Rle;

use super::letterbox::py_round;

/// Mask prototypes of one image: `[channels, height, width]`, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Prototypes<'a> {
    pub data: &'a [f32],
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// One axis of a torch bilinear resize: per output index, the two source indices and weights.
#[derive(Debug, Clone)]
struct AxisTaps {
    index0: Vec<usize>,
    index1: Vec<usize>,
    lambda0: Vec<f32>,
    lambda1: Vec<f32>,
}

impl AxisTaps {
    /// `compute_indices_weights_linear` for `input` -> `output` samples with `scale` (torch:
    /// `1 / scale_factor` when one is given, else `input / output` in f32).
    fn new(input: usize, output: usize, scale: f32) -> Self {
        let mut taps = AxisTaps {
            index0: Vec::with_capacity(output),
            index1: Vec::with_capacity(output),
            lambda0: Vec::with_capacity(output),
            lambda1: Vec::with_capacity(output),
        };
        for i in 0..output {
            let (i0, i1, l1) = if input == output {
                (i, i, 0.0)
            } else {
                let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
                let i0 = (real.floor() as usize).min(input - 1);
                let l1 = (real - i0 as f32).clamp(0.0, 1.0);
                (i0, i0 + usize::from(i0 < input - 1), l1)
            };
            taps.index0.push(i0);
            taps.index1.push(i1);
            taps.lambda1.push(l1);
            taps.lambda0.push(1.0 - l1);
        }
        taps
    }
}

/// torch's bilinear value at output `(y, x)` of `src` (`src_w` wide).
#[inline]
fn sample(src: &[f32], src_w: usize, rows: &AxisTaps, cols: &AxisTaps, y: usize, x: usize) -> f32 {
    let (r0, r1) = (rows.index0[y] * src_w, rows.index1[y] * src_w);
    let (c0, c1) = (cols.index0[x], cols.index1[x]);
    let (w0, w1) = (cols.lambda0[x], cols.lambda1[x]);
    let mut top = src[r0 + c0] * w0;
    top += src[r0 + c1] * w1;
    let mut bottom = src[r1 + c0] * w0;
    bottom += src[r1 + c1] * w1;
    let mut out = top * rows.lambda0[y];
    out += bottom * rows.lambda1[y];
    out
}

/// [`sample`] of a 0/1 mask (the uint8 mask that `scale_masks` turns into float first).
#[inline]
fn sample_binary(
    src: &[u8],
    src_w: usize,
    rows: &AxisTaps,
    cols: &AxisTaps,
    y: usize,
    x: usize,
) -> f32 {
    let v = |i: usize| f32::from(src[i]);
    let (r0, r1) = (rows.index0[y] * src_w, rows.index1[y] * src_w);
    let (c0, c1) = (cols.index0[x], cols.index1[x]);
    let (w0, w1) = (cols.lambda0[x], cols.lambda1[x]);
    let mut top = v(r0 + c0) * w0;
    top += v(r0 + c1) * w1;
    let mut bottom = v(r1 + c0) * w0;
    bottom += v(r1 + c1) * w1;
    let mut out = top * rows.lambda0[y];
    out += bottom * rows.lambda1[y];
    out
}

/// The per-image part of `process_mask_native`: the upsampling factor and both resizes.
#[derive(Debug, Clone)]
pub struct MaskGeometry {
    proto_w: usize,
    proto_h: usize,
    /// `f`, and the taps of the `f`x upsampling (none when `f == 1`).
    factor: usize,
    up_rows: Option<AxisTaps>,
    up_cols: AxisTaps,
    /// Crop of the padding at `f` x prototype resolution: top-left corner.
    crop_top: usize,
    crop_left: usize,
    /// Taps of the resize from the crop to the image.
    rows: AxisTaps,
    cols: AxisTaps,
    pub image_w: usize,
    pub image_h: usize,
}

impl MaskGeometry {
    /// The geometry for prototypes of `proto_w` x `proto_h` and an `image_w` x `image_h` image.
    pub fn new(proto_w: usize, proto_h: usize, image_w: usize, image_h: usize) -> Self {
        let (mh, mw, h, w) = (
            proto_h as f64,
            proto_w as f64,
            image_h as f64,
            image_w as f64,
        );
        let gain = (4.0 * mh / h).min(4.0 * mw / w);
        let pad = (4 * proto_h as i64 - py_round(h * gain).max(1))
            | (4 * proto_w as i64 - py_round(w * gain).max(1));
        let factor = 4 / gcd(4, pad | (pad.div_euclid(2)));
        let (fh, fw) = (proto_h * factor as usize, proto_w * factor as usize);
        let (up_rows, up_cols) = if factor > 1 {
            let scale = (1.0 / factor as f64) as f32;
            (
                Some(AxisTaps::new(proto_h, fh, scale)),
                AxisTaps::new(proto_w, fw, scale),
            )
        } else {
            (None, AxisTaps::new(proto_w, fw, 1.0))
        };
        // scale_masks(masks, (h, w)) with ratio_pad=None, padding=True.
        let gain = (fh as f64 / h).min(fw as f64 / w);
        let content_h = py_round(h * gain).max(1);
        let content_w = py_round(w * gain).max(1);
        let pad_h = (fh as f64 - content_h as f64) / 2.0;
        let pad_w = (fw as f64 - content_w as f64) / 2.0;
        let crop_top = py_round(pad_h - 0.1).max(0) as usize;
        let crop_left = py_round(pad_w - 0.1).max(0) as usize;
        let crop_h = (content_h as usize).min(fh - crop_top);
        let crop_w = (content_w as usize).min(fw - crop_left);
        let rows = AxisTaps::new(crop_h, image_h, crop_h as f32 / image_h as f32);
        let cols = AxisTaps::new(crop_w, image_w, crop_w as f32 / image_w as f32);
        MaskGeometry {
            proto_w,
            proto_h,
            factor: factor as usize,
            up_rows,
            up_cols,
            crop_top,
            crop_left,
            rows,
            cols,
            image_w,
            image_h,
        }
    }

    /// The upsampling factor `f`.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// The binary mask (row-major, 0/1) of one detection with mask `coefficients` and box
    /// `bbox` (xyxy, image pixels, already clipped), or `None` when no pixel is set (the
    /// predictor drops such detections: `keep = masks.amax((-2, -1)) > 0`).
    pub fn mask(
        &self,
        protos: &Prototypes<'_>,
        coefficients: &[f32],
        bbox: [f32; 4],
    ) -> Option<BinaryMask> {
        let logits = prototype_logits(protos, coefficients);
        let upsampled = match &self.up_rows {
            Some(up_rows) => {
                let (fh, fw) = (self.proto_h * self.factor, self.proto_w * self.factor);
                let mut up = vec![0.0f32; fh * fw];
                for y in 0..fh {
                    for x in 0..fw {
                        up[y * fw + x] =
                            sample(&logits, self.proto_w, up_rows, &self.up_cols, y, x);
                    }
                }
                up
            }
            None => logits,
        };
        let src_w = self.proto_w * self.factor;
        let cropped = &upsampled[self.crop_top * src_w + self.crop_left..];
        let (xs, ys) = (
            inside(bbox[0], bbox[2], self.image_w),
            inside(bbox[1], bbox[3], self.image_h),
        );
        let mut mask = vec![0u8; self.image_w * self.image_h];
        let mut any = false;
        for y in ys.clone() {
            for x in xs.clone() {
                if sample(cropped, src_w, &self.rows, &self.cols, y, x) > 0.0 {
                    mask[y * self.image_w + x] = 1;
                    any = true;
                }
            }
        }
        any.then_some(BinaryMask {
            data: mask,
            width: self.image_w,
            height: self.image_h,
            cols: xs,
            rows: ys,
        })
    }
}

/// The validator's mask (`SegmentationValidator` with `save_json`): `process_mask_native` at
/// the network input with the box in input pixels (`input` is the geometry for the input size),
/// then `scale_masks(mask, image, ratio_pad)`: the content rows `top = round(pad_h - 0.1)` to
/// `top + max(round(h0 * gain_h), 1)` (likewise columns), bilinear to the image size, and
/// `.byte()`, which truncates: only pixels whose interpolated value is exactly 1.0 stay set.
/// Empty masks are kept (the validator does not drop them).
///
/// Only the pixels within a margin of `image_box` (the box in image pixels) are sampled: every
/// other pixel interpolates input pixels outside the cropped box, which are 0.
pub fn validator_mask(
    protos: &Prototypes<'_>,
    coefficients: &[f32],
    input_box: [f32; 4],
    image_box: [f32; 4],
    input: &MaskGeometry,
    ratio_pad: RatioPad,
) -> BinaryMask {
    let (w1, h1) = (input.image_w, input.image_h);
    let empty = |w: usize, h: usize| BinaryMask {
        data: vec![0; w * h],
        width: w,
        height: h,
        cols: 0..0,
        rows: 0..0,
    };
    let Some(at_input) = input.mask(protos, coefficients, input_box) else {
        return empty(ratio_pad.image_w, ratio_pad.image_h);
    };
    let at_input = at_input.data;
    let (w0, h0) = (ratio_pad.image_w, ratio_pad.image_h);
    let top = py_round(ratio_pad.pad_h - 0.1).max(0) as usize;
    let left = py_round(ratio_pad.pad_w - 0.1).max(0) as usize;
    let bottom = (top + py_round(h0 as f64 * ratio_pad.gain_h).max(1) as usize).min(h1);
    let right = (left + py_round(w0 as f64 * ratio_pad.gain_w).max(1) as usize).min(w1);
    let (crop_h, crop_w) = (bottom - top, right - left);
    let rows = AxisTaps::new(crop_h, h0, crop_h as f32 / h0 as f32);
    let cols = AxisTaps::new(crop_w, w0, crop_w as f32 / w0 as f32);
    let cropped = &at_input[top * w1 + left..];
    let mut mask = vec![0u8; w0 * h0];
    let margin = 2.0 + 2.0 / ratio_pad.gain_w.min(ratio_pad.gain_h) as f32;
    let span = |lo: f32, hi: f32, size: usize| {
        let first = (lo - margin).floor().max(0.0) as usize;
        let end = ((hi + margin).ceil().max(0.0) as usize).min(size);
        first.min(end)..end
    };
    let (ys, xs) = (
        span(image_box[1], image_box[3], h0),
        span(image_box[0], image_box[2], w0),
    );
    for y in ys.clone() {
        for x in xs.clone() {
            // `.byte()` of a value in [0, 1]: 1 only for exactly 1.0.
            mask[y * w0 + x] = u8::from(sample_binary(cropped, w1, &rows, &cols, y, x) >= 1.0);
        }
    }
    BinaryMask {
        data: mask,
        width: w0,
        height: h0,
        cols: xs,
        rows: ys,
    }
}

/// `ratio_pad` of a letterboxed image: `((gain_h, gain_w), (pad_w, pad_h))` and the image size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioPad {
    pub gain_h: f64,
    pub gain_w: f64,
    pub pad_w: f64,
    pub pad_h: f64,
    pub image_w: usize,
    pub image_h: usize,
}

/// `masks_in @ protos.view(c, -1)` for one detection, summing over the channels in order.
fn prototype_logits(protos: &Prototypes<'_>, coefficients: &[f32]) -> Vec<f32> {
    let plane = protos.height * protos.width;
    let mut logits = vec![0.0f32; plane];
    for (k, &coefficient) in coefficients.iter().enumerate().take(protos.channels) {
        let proto = &protos.data[k * plane..(k + 1) * plane];
        for (l, &p) in logits.iter_mut().zip(proto) {
            *l += coefficient * p;
        }
    }
    logits
}

/// The pixel indices `i` of `0..size` with `lo <= i < hi` (`crop_mask` compares the float
/// index with the box edge).
fn inside(lo: f32, hi: f32, size: usize) -> std::ops::Range<usize> {
    let first = (0..size).find(|&i| i as f32 >= lo).unwrap_or(size);
    let end = (first..size).find(|&i| (i as f32) >= hi).unwrap_or(size);
    first..end.max(first)
}

fn gcd(a: i64, b: i64) -> i64 {
    let (mut a, mut b) = (a.abs(), b.abs());
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A row-major 0/1 mask at image size, zero outside columns `cols` and rows `rows`.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryMask {
    pub data: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub cols: std::ops::Range<usize>,
    pub rows: std::ops::Range<usize>,
}

impl BinaryMask {
    /// Whether any pixel is set.
    pub fn any(&self) -> bool {
        self.rows
            .clone()
            .any(|y| self.data[y * self.width..][self.cols.clone()].contains(&1))
    }

    /// COCO RLE (column-major runs of 0s and 1s, starting with 0s: pycocotools `rleEncode`),
    /// scanning only the region that can be set; equal to hotcoco's `mask::encode` of the
    /// whole mask (tested).
    pub fn to_rle(&self) -> Rle {
        let mut runs = Runs::default();
        for x in 0..self.width {
            if !self.cols.contains(&x) {
                runs.push(0, self.height as u32);
                continue;
            }
            runs.push(0, self.rows.start as u32);
            for y in self.rows.clone() {
                runs.push(self.data[y * self.width + x], 1);
            }
            runs.push(0, (self.height - self.rows.end) as u32);
        }
        Rle {
            height: self.height as u32,
            width: self.width as u32,
            counts: runs.finish(),
        }
    }
}

/// Alternating run lengths, starting with a run of 0s.
#[derive(Default)]
struct Runs {
    counts: Vec<u32>,
    value: u8,
    run: u32,
}

impl Runs {
    fn push(&mut self, value: u8, n: u32) {
        if n == 0 {
            return;
        }
        if value != self.value {
            self.counts.push(self.run);
            self.value = value;
            self.run = 0;
        }
        self.run += n;
    }

    fn finish(mut self) -> Vec<u32> {
        self.counts.push(self.run);
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsampling_factor_crops_the_padding_on_whole_pixels() {
        // 80x80 prototypes (320 input). 640x426: content 320x213, pad 107 (odd): f = 4.
        assert_eq!(MaskGeometry::new(80, 80, 640, 426).factor(), 4);
        // 640x480: content 320x240, pad 80 (80 | 40 = 120, gcd 4): f = 1.
        assert_eq!(MaskGeometry::new(80, 80, 640, 480).factor(), 1);
        // 500x333: content 320x213 (213.12): pad 107: f = 4; 640x512 -> 256, pad 64: f = 1.
        assert_eq!(MaskGeometry::new(80, 80, 640, 512).factor(), 1);
        // A square image has no padding: f = 1.
        assert_eq!(MaskGeometry::new(80, 80, 500, 500).factor(), 1);
    }

    #[test]
    fn axis_taps_follow_torch_half_pixel_sampling() {
        // 2 -> 4 (scale 0.5): sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (index 1, whose
        // second tap is itself: the weight stays 0.25 on the same pixel).
        let taps = AxisTaps::new(2, 4, 0.5);
        assert_eq!(taps.index0, vec![0, 0, 0, 1]);
        assert_eq!(taps.index1, vec![1, 1, 1, 1]);
        assert_eq!(taps.lambda1, vec![0.0, 0.25, 0.75, 0.25]);
    }

    #[test]
    fn masks_are_cropped_to_the_box_and_empty_masks_are_none() {
        let data = vec![1.0f32; 4 * 4];
        let protos = Prototypes {
            data: &data,
            channels: 1,
            height: 4,
            width: 4,
        };
        let geometry = MaskGeometry::new(4, 4, 16, 16);
        let mask = geometry
            .mask(&protos, &[1.0], [2.0, 3.0, 5.5, 4.0])
            .unwrap();
        let set: Vec<(usize, usize)> = (0..16 * 16)
            .filter(|&i| mask.data[i] == 1)
            .map(|i| (i % 16, i / 16))
            .collect();
        assert_eq!(set, vec![(2, 3), (3, 3), (4, 3), (5, 3)]);
        assert!(
            geometry
                .mask(&protos, &[-1.0], [2.0, 3.0, 5.5, 4.0])
                .is_none()
        );
    }

    #[test]
    fn region_rle_equals_hotcoco_encode_of_the_whole_mask() {
        // Pseudo-random masks set inside a region, including the first and last pixels.
        let (w, h) = (13usize, 7usize);
        let mut state = 12345u32;
        for case in 0..50 {
            let (c0, c1, r0, r1) = (case % 4, w - case % 3, case % 2, h - case % 5);
            let mut data = vec![0u8; w * h];
            for y in r0..r1 {
                for x in c0..c1 {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    data[y * w + x] = u8::from((state >> 16).is_multiple_of(3) || case == 0);
                }
            }
            let mask = BinaryMask {
                data: data.clone(),
                width: w,
                height: h,
                cols: c0..c1,
                rows: r0..r1,
            };
            let mut column_major = vec![0u8; w * h];
            for y in 0..h {
                for x in 0..w {
                    column_major[x * h + y] = data[y * w + x];
                }
            }
            let want = hotcoco::mask::encode(&column_major, h as u32, w as u32).unwrap();
            assert_eq!(mask.to_rle().counts, want.counts, "case {case}");
        }
        let empty = BinaryMask {
            data: vec![0; 6],
            width: 3,
            height: 2,
            cols: 0..0,
            rows: 0..0,
        };
        assert_eq!(empty.to_rle().counts, vec![6]);
        assert!(!empty.any());
    }
}
