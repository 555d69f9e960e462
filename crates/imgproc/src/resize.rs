//! `cv2.resize(img, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` on 8-bit BGR images,
//! reproduced bit for bit (OpenCV `modules/imgproc/src/resize.cpp`: `cv::hal::resize`,
//! `HResizeLinear`, `VResizeLinear` with `VResizeLinearVec_32s8u`, 11-bit fixed-point weights
//! `INTER_RESIZE_COEF_BITS`). The recipe is `../shared/tools/reference/exact_preproc.py::
//! cv2_resize_linear_u8` (prose in `reference/yolox_nano_416/SPEC.md`).
//!
//! Hand-written because no Rust crate reproduces OpenCV's fixed-point rounding (an exact-float or
//! antialiased bilinear changes detections measurably, see the SPEC's sensitivity notes).
//!
//! Verified: identical to the uint8 network inputs recorded in the YOLOX (letterbox resize) and
//! FastestDet (stretch resize) parity tensors (tests/resample.rs). During development it was also
//! compared with opencv-python-headless 5.0.0 `cv2.resize` on all 206 subset images, each resized
//! four ways (YOLOX letterbox size, 352x352, a random size up to 2x up, a random size down to
//! 1x1), three random seeds: 2,472 resizes, 0 mismatching values.

use crate::image::BgrImage;

/// Fixed-point scale of the interpolation weights (OpenCV `INTER_RESIZE_COEF_BITS` = 11).
const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// One destination coordinate's two source taps and their fixed-point weights.
#[derive(Debug, Clone, Copy)]
struct Taps {
    first: usize,
    second: usize,
    weight_first: i32,
    weight_second: i32,
}

/// `cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` for uint8 BGR.
///
/// Half-pixel centres, no antialiasing, edge pixels replicated. A zero destination size gives an
/// empty image; an empty source with a non-empty destination panics (OpenCV asserts there too),
/// so callers check decode results first.
pub fn resize_linear(src: &BgrImage, dst_w: usize, dst_h: usize) -> BgrImage {
    let mut dst = BgrImage::filled(dst_w, dst_h, 0);
    resize_linear_into(src, &mut dst);
    dst
}

/// Like [`resize_linear`] but writes into `dst` (its width and height give the destination
/// size), so a caller can reuse the buffer across images.
pub fn resize_linear_into(src: &BgrImage, dst: &mut BgrImage) {
    let (dst_w, dst_h) = (dst.width, dst.height);
    resize(src, dst_w, dst_h, &mut ImageSink(dst));
}

/// Like [`resize_linear`] but hands each destination row (`dst_w` BGR pixels) to `row` with its
/// index, top to bottom, instead of building the image: a pipeline that converts the resized
/// image (to float planes, say) does it row by row while the row is in cache.
pub fn resize_linear_rows(
    src: &BgrImage,
    dst_w: usize,
    dst_h: usize,
    row: impl FnMut(usize, &[u8]),
) {
    let mut sink = RowCallback {
        buffer: vec![0u8; dst_w * 3],
        row,
    };
    resize(src, dst_w, dst_h, &mut sink);
}

/// Where the vertical pass writes each destination row.
trait RowSink {
    /// The buffer of destination row `dy` (`dst_w * 3` bytes).
    fn row(&mut self, dy: usize) -> &mut [u8];
    /// Row `dy` is written.
    fn done(&mut self, dy: usize);
}

/// Rows straight into an image.
struct ImageSink<'a>(&'a mut BgrImage);

impl RowSink for ImageSink<'_> {
    #[inline(always)]
    fn row(&mut self, dy: usize) -> &mut [u8] {
        let len = self.0.width * 3;
        &mut self.0.data[dy * len..(dy + 1) * len]
    }
    #[inline(always)]
    fn done(&mut self, _dy: usize) {}
}

/// Rows into one buffer, handed to a callback.
struct RowCallback<F> {
    buffer: Vec<u8>,
    row: F,
}

impl<F: FnMut(usize, &[u8])> RowSink for RowCallback<F> {
    #[inline(always)]
    fn row(&mut self, _dy: usize) -> &mut [u8] {
        &mut self.buffer
    }
    #[inline(always)]
    fn done(&mut self, dy: usize) {
        (self.row)(dy, &self.buffer);
    }
}

fn resize(src: &BgrImage, dst_w: usize, dst_h: usize, sink: &mut impl RowSink) {
    if dst_w == 0 || dst_h == 0 {
        return;
    }
    assert!(
        src.width > 0 && src.height > 0,
        "resize_linear: empty source image"
    );
    let x_taps = axis_taps(src.width, dst_w, true);
    let y_taps = axis_taps(src.height, dst_h, false);
    let mut pass = Passes {
        src,
        x_taps: &x_taps,
        y_taps: &y_taps,
        row_len: dst_w * 3,
        sink,
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports the feature the function is compiled for.
        unsafe { pass.run_avx2() };
        return;
    }
    pass.run();
}

/// The two passes over one image; `run_avx2` is the same code compiled for AVX2 (integer
/// arithmetic, so the results are identical), which lets the compiler vectorise the vertical
/// pass with 32-bit multiplies, with the SSSE3 horizontal pass.
struct Passes<'a, S> {
    src: &'a BgrImage,
    x_taps: &'a [Taps],
    y_taps: &'a [Taps],
    row_len: usize,
    sink: &'a mut S,
}

impl<S: RowSink> Passes<'_, S> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(&mut self) {
        let weights = pair_weights(self.x_taps);
        self.run_with(|src_row, x_taps, out| {
            // SAFETY: AVX2 implies SSSE3, which this function is compiled for.
            unsafe { horizontal_pass_ssse3(src_row, x_taps, &weights, out) }
        })
    }

    #[inline(always)]
    fn run(&mut self) {
        self.run_with(horizontal_pass)
    }

    #[inline(always)]
    fn run_with(&mut self, horizontal_pass: impl Fn(&[u8], &[Taps], &mut [i32])) {
        let (src, x_taps, row_len) = (self.src, self.x_taps, self.row_len);
        let src_stride = src.width * 3;
        // Horizontally filtered source rows (x2048, per channel), two slots reused as the
        // vertical window slides down: each needed source row is filtered once (OpenCV's ring
        // buffer).
        let mut rows = [vec![0i32; row_len], vec![0i32; row_len]];
        let mut held: [Option<usize>; 2] = [None, None];
        for (dy, taps) in self.y_taps.iter().enumerate() {
            // Moving down one source row: last iteration's second row becomes this one's first.
            if held[0] != Some(taps.first) && held[1] == Some(taps.first) {
                rows.swap(0, 1);
                held.swap(0, 1);
            }
            for (slot, row) in [taps.first, taps.second].into_iter().enumerate() {
                if held[slot] != Some(row) {
                    let src_row = &src.data[row * src_stride..(row + 1) * src_stride];
                    horizontal_pass(src_row, x_taps, &mut rows[slot]);
                    held[slot] = Some(row);
                }
            }
            vertical_pass(
                &rows[0],
                &rows[1],
                taps.weight_first,
                taps.weight_second,
                self.sink.row(dy),
            );
            self.sink.done(dy);
        }
    }
}

/// Per-destination-coordinate taps, as `cv::resize` computes them for INTER_LINEAR:
/// `f = (float)((d + 0.5) * scale - 0.5)` with `scale = 1 / (dst / src)` in double,
/// `s = floor(f)`, `f -= s` (float32). Horizontally (`clamp_fraction`), taps that leave the image
/// collapse onto the edge pixel with weight 0; vertically the fraction is kept and only the row
/// indices are clamped. Weights are `saturate_cast<short>(w * 2048)` (round half to even).
fn axis_taps(src_len: usize, dst_len: usize, clamp_fraction: bool) -> Vec<Taps> {
    let inv_scale = dst_len as f64 / src_len as f64;
    let scale = 1.0 / inv_scale;
    let last = src_len as i64 - 1;
    (0..dst_len)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if clamp_fraction {
                if s < 0 {
                    s = 0;
                    frac = 0.0;
                }
                if s >= last {
                    s = last;
                    frac = 0.0;
                }
            }
            Taps {
                first: s.clamp(0, last) as usize,
                second: (s + 1).clamp(0, last) as usize,
                weight_first: ((1.0 - frac) * COEF_SCALE).round_ties_even() as i32,
                weight_second: (frac * COEF_SCALE).round_ties_even() as i32,
            }
        })
        .collect()
}

/// `HResizeLinear<uchar, int, short, INTER_RESIZE_COEF_SCALE, HResizeLinearVec_8u32s>`:
/// `out = a0 * P[sx] + a1 * P[sx + 1]` per channel.
#[inline(always)]
fn horizontal_pass(src_row: &[u8], x_taps: &[Taps], out: &mut [i32]) {
    for (px, taps) in out.chunks_exact_mut(3).zip(x_taps) {
        let a = &src_row[taps.first * 3..taps.first * 3 + 3];
        let b = &src_row[taps.second * 3..taps.second * 3 + 3];
        for c in 0..3 {
            px[c] = taps.weight_first * a[c] as i32 + taps.weight_second * b[c] as i32;
        }
    }
}

/// Each destination pixel's two weights as the `pmaddwd` operand of
/// [`horizontal_pass_ssse3`]: `(w0, w1)` for each of the three channels, then zeros.
#[cfg(target_arch = "x86_64")]
fn pair_weights(x_taps: &[Taps]) -> Vec<[i16; 8]> {
    x_taps
        .iter()
        .map(|t| {
            // The weights are at most 2048 (`COEF_SCALE`): they fit in 16 bits.
            let (w0, w1) = (t.weight_first as i16, t.weight_second as i16);
            [w0, w1, w0, w1, w0, w1, 0, 0]
        })
        .collect()
}

/// [`horizontal_pass`] with one SSSE3 `pmaddwd` per destination pixel, the arithmetic of
/// OpenCV's SIMD `HResizeLinearVec_8u32s` (`v_dotprod` of the two taps' values, widened to 16
/// bits, with the two weights): the 6 bytes of the two source pixels are loaded at once, arranged
/// as (a_c, b_c) pairs by `pshufb`, and `a_c * w0 + b_c * w1` comes out in 32 bits, exactly the
/// scalar sum. Pixels whose second tap is not the next pixel (clamped edges) or whose 16-byte
/// load would pass the end of the row go through the scalar code. `weights` are
/// [`pair_weights`] of `x_taps`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn horizontal_pass_ssse3(
    src_row: &[u8],
    x_taps: &[Taps],
    weights: &[[i16; 8]],
    out: &mut [i32],
) {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_madd_epi16, _mm_set_epi8, _mm_shuffle_epi8, _mm_storeu_si128,
    };
    assert_eq!(weights.len(), x_taps.len(), "one weight pair per pixel");
    assert!(out.len() >= 3 * x_taps.len(), "three values per pixel");
    // Bytes a0 b0 a1 b1 a2 b2 (a at 0..3, b at 3..6), each zero-extended to 16 bits.
    let pairs = _mm_set_epi8(-1, -1, -1, -1, -1, 5, -1, 2, -1, 4, -1, 1, -1, 3, -1, 0);
    let width = x_taps.len();
    for (px, (t, w)) in x_taps.iter().zip(weights).enumerate() {
        let start = t.first * 3;
        // The 4-lane store writes one value past this pixel: the next pixel's slot, or, for the
        // last pixel, past the row; that pixel goes through the scalar code.
        if t.second == t.first + 1 && start + 16 <= src_row.len() && px + 1 < width {
            // SAFETY: `start + 16 <= src_row.len()` bounds the load; the store covers
            // `out[3 px .. 3 px + 4]`, inside `out` (at least 3 * width values) as
            // `px + 1 < width`; `w` is 16 bytes.
            unsafe {
                let bytes = _mm_loadu_si128(src_row.as_ptr().add(start) as *const __m128i);
                let values = _mm_shuffle_epi8(bytes, pairs);
                let weights = _mm_loadu_si128(w.as_ptr() as *const __m128i);
                let sums = _mm_madd_epi16(values, weights);
                _mm_storeu_si128(out.as_mut_ptr().add(3 * px) as *mut __m128i, sums);
            }
        } else {
            horizontal_pass(src_row, &x_taps[px..px + 1], &mut out[3 * px..3 * px + 3]);
        }
    }
}

/// `VResizeLinearVec_32s8u` (the SIMD vertical pass OpenCV runs for uint8):
/// `v = ((h0 >> 4) * b0 >> 16) + ((h1 >> 4) * b1 >> 16)`, `out = sat_u8((v + 2) >> 2)`.
#[inline(always)]
fn vertical_pass(row0: &[i32], row1: &[i32], b0: i32, b1: i32, out: &mut [u8]) {
    for ((o, &h0), &h1) in out.iter_mut().zip(row0).zip(row1) {
        let v = (((h0 >> 4) * b0) >> 16) + (((h1 >> 4) * b1) >> 16);
        *o = ((v + 2) >> 2).clamp(0, 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy_and_constant_images_stay_constant() {
        let mut src = BgrImage::filled(13, 7, 0);
        for (i, value) in src.data.iter_mut().enumerate() {
            *value = (i * 31 % 256) as u8;
        }
        assert_eq!(resize_linear(&src, 13, 7), src);
        let flat = BgrImage::filled(13, 7, 200);
        for (w, h) in [(1, 1), (5, 3), (40, 29)] {
            assert!(resize_linear(&flat, w, h).data.iter().all(|&v| v == 200));
        }
    }

    /// The SSSE3 horizontal pass equals the scalar one (which is OpenCV's, see the module
    /// documentation) on random images, for shrinking, enlarging and odd sizes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_horizontal_pass_equals_the_scalar_one() {
        if !std::arch::is_x86_feature_detected!("ssse3") {
            return;
        }
        let mut seed = 12345u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..200 {
            let (src_w, dst_w) = (1 + next() % 700, 1 + next() % 700);
            let row: Vec<u8> = (0..src_w * 3).map(|_| next() as u8).collect();
            let taps = axis_taps(src_w, dst_w, true);
            let mut scalar = vec![0i32; dst_w * 3];
            let mut simd = vec![0i32; dst_w * 3];
            horizontal_pass(&row, &taps, &mut scalar);
            // SAFETY: SSSE3 is present (checked above).
            unsafe { horizontal_pass_ssse3(&row, &taps, &pair_weights(&taps), &mut simd) };
            assert_eq!(simd, scalar, "{src_w} -> {dst_w}");
        }
    }

    #[test]
    fn exact_halving_averages_two_by_two_blocks() {
        // 2x downscale: weights 1024/1024 on both axes, i.e. (a + b + c + d + 2) >> 2.
        let mut src = BgrImage::filled(4, 2, 0);
        src.data[..6].copy_from_slice(&[10, 20, 30, 11, 21, 31]);
        src.data[12..18].copy_from_slice(&[13, 23, 33, 17, 27, 37]);
        let out = resize_linear(&src, 2, 1);
        assert_eq!(out.pixel(0, 0), [13, 23, 33]); // (10+11+13+17+2)>>2 = 13
    }
}
