//! `cv2.warpPerspective` / `cv2.warpAffine` with `INTER_LINEAR` and `BORDER_CONSTANT` (value 0) on
//! 8-bit BGR images, reproduced bit for bit as OpenCV 5.0.0 computes them.
//!
//! OpenCV 5.x no longer uses the 1/32-pixel fixed-point remap tables (`INTER_BITS`,
//! `AB_BITS`, `INTER_REMAP_COEF_BITS`) for these calls: `warpAffine` and `warpPerspective`
//! with linear interpolation go through the float32 kernels of
//! `modules/imgproc/src/warp_kernels.simd.hpp` (`warpAffineLinearInvoker_8UC3`,
//! `warpPerspectiveLinearInvoker_8UC3`). Per output pixel (u, v), with the inverse map m as
//! float32 (the double-precision inverse cast to float):
//!
//! - `X = fma(m00, u, m01*v + m02)`, `Y = fma(m10, u, m11*v + m12)`; for perspective also
//!   `W = m20*u + m21*v + m22` and `X /= W`, `Y /= W` (W is exactly 1 for affine matrices);
//! - `x0 = floor(X)`, `fx = X - x0` (float32), likewise y;
//! - the four neighbours as float32, 0 where outside the image;
//! - `top = fma(fx, p01 - p00, p00)`, `bottom = fma(fx, p11 - p10, p10)`,
//!   `out = saturate_u8(round_half_even(fma(fy, bottom - top, top)))`.
//!
//! This is `../shared/tools/reference/exact_preproc.py::cv2_warp_letterbox_u8` (prose in
//! `reference/nanodet_m_320/SPEC.md`). Hand-written because no Rust crate reproduces OpenCV's
//! float32/FMA rounding.
//!
//! Verified: identical to the uint8 network inputs recorded in the NanoDet 320/416 parity tensors
//! (warpPerspective letterbox) and the Ultralight-SimplePose parity tensors (warpAffine person
//! crops) in tests/resample.rs. During development it was also compared with
//! opencv-python-headless 5.0.0 on this x86-64 (AVX2) machine, 0 mismatching values in all of:
//! `cv2.warpPerspective` with the NanoDet 320 and 416 letterbox matrices of all 206 subset images
//! plus one random affine or projective matrix and random output size per image (3 seeds, 1,854
//! warps), 40 strongly projective warps (W crossing 0), and `cv2.warpAffine` with random
//! rotation/scale/shift matrices and random output sizes (3 seeds, 1,236 warps).

use crate::error::ImageError;
use crate::image::BgrImage;

/// A 2x3 affine map, row-major: `[[m00, m01, m02], [m10, m11, m12]]`.
pub type Affine2x3<T> = [[T; 3]; 2];
/// A 3x3 homography, row-major.
pub type Matrix3x3<T> = [[T; 3]; 3];

/// `cv2.warpPerspective(src, forward, (dst_w, dst_h))` (defaults: INTER_LINEAR, BORDER_CONSTANT,
/// border value 0). `forward` maps source pixels to destination pixels, in float64 as the Python
/// pipelines build it; it is inverted in float64 as OpenCV does (`cv::invert` with DECOMP_LU,
/// which for 3x3 uses the cofactor formula, `modules/core/src/lapack.cpp`) and cast to float32.
pub fn warp_perspective_linear_constant0(
    src: &BgrImage,
    forward: &Matrix3x3<f64>,
    dst_w: usize,
    dst_h: usize,
) -> Result<BgrImage, ImageError> {
    let inverse = invert_3x3_like_opencv(forward).ok_or_else(|| ImageError::InvalidArgument {
        what: "warpPerspective matrix",
        message: format!("{forward:?} is singular"),
    })?;
    let inverse_f32 = inverse.map(|row| row.map(|v| v as f32));
    let mut dst = BgrImage::filled(dst_w, dst_h, 0);
    warp_into(src, &InverseMap::Perspective(inverse_f32), &mut dst);
    Ok(dst)
}

/// `cv2.warpAffine(src, forward, (dst_w, dst_h), flags=INTER_LINEAR)` with BORDER_CONSTANT 0.
/// `forward` (float64, as `cv2.getAffineTransform` returns it) is inverted in float64 with
/// OpenCV's own formula (`cv::warpAffine` in `modules/imgproc/src/imgwarp.cpp`) and cast to
/// float32.
pub fn warp_affine_linear_constant0(
    src: &BgrImage,
    forward: &Affine2x3<f64>,
    dst_w: usize,
    dst_h: usize,
) -> Result<BgrImage, ImageError> {
    let [[a, b, _], [c, d, _]] = *forward;
    let inverse = invert_affine_like_opencv(forward);
    // OpenCV maps every pixel to the source origin when the matrix is singular (D = 0); here
    // that is an error.
    if a * d - b * c == 0.0 || inverse.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ImageError::InvalidArgument {
            what: "warpAffine matrix",
            message: format!("{forward:?} is singular or not finite"),
        });
    }
    Ok(warp_affine_inverse_linear_constant0(
        src,
        &inverse.map(|row| row.map(|v| v as f32)),
        dst_w,
        dst_h,
    ))
}

/// The same warp given the float32 inverse map directly (destination -> source), i.e.
/// `cv2.warpAffine(src, inverse, dsize, flags=INTER_LINEAR | WARP_INVERSE_MAP)`.
pub fn warp_affine_inverse_linear_constant0(
    src: &BgrImage,
    inverse: &Affine2x3<f32>,
    dst_w: usize,
    dst_h: usize,
) -> BgrImage {
    let mut dst = BgrImage::filled(dst_w, dst_h, 0);
    warp_into(src, &InverseMap::Affine(*inverse), &mut dst);
    dst
}

/// The inverse `cv::warpAffine` computes when WARP_INVERSE_MAP is not set
/// (`modules/imgproc/src/imgwarp.cpp`): `D = 1/(m00*m11 - m01*m10)` (0 if singular), then the
/// adjugate and `b = -A^-1 t`, all in float64 in this order.
pub fn invert_affine_like_opencv(m: &Affine2x3<f64>) -> Affine2x3<f64> {
    let [[m0, m1, m2], [m3, m4, m5]] = *m;
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let a11 = m4 * d;
    let a22 = m0 * d;
    let a12 = m1 * -d;
    let a21 = m3 * -d;
    let b1 = -a11 * m2 - a12 * m5;
    let b2 = -a21 * m2 - a22 * m5;
    [[a11, a12, b1], [a21, a22, b2]]
}

/// `cv::invert(m, DECOMP_LU)` for a 3x3 float64 matrix: the cofactor formula with
/// `det3` (`modules/core/src/lapack.cpp`). `None` when the determinant is 0.
pub fn invert_3x3_like_opencv(m: &Matrix3x3<f64>) -> Option<Matrix3x3<f64>> {
    let s = |r: usize, c: usize| m[r][c];
    let det = s(0, 0) * (s(1, 1) * s(2, 2) - s(1, 2) * s(2, 1))
        - s(0, 1) * (s(1, 0) * s(2, 2) - s(1, 2) * s(2, 0))
        + s(0, 2) * (s(1, 0) * s(2, 1) - s(1, 1) * s(2, 0));
    if det == 0.0 {
        return None;
    }
    let d = 1.0 / det;
    Some([
        [
            (s(1, 1) * s(2, 2) - s(1, 2) * s(2, 1)) * d,
            (s(0, 2) * s(2, 1) - s(0, 1) * s(2, 2)) * d,
            (s(0, 1) * s(1, 2) - s(0, 2) * s(1, 1)) * d,
        ],
        [
            (s(1, 2) * s(2, 0) - s(1, 0) * s(2, 2)) * d,
            (s(0, 0) * s(2, 2) - s(0, 2) * s(2, 0)) * d,
            (s(0, 2) * s(1, 0) - s(0, 0) * s(1, 2)) * d,
        ],
        [
            (s(1, 0) * s(2, 1) - s(1, 1) * s(2, 0)) * d,
            (s(0, 1) * s(2, 0) - s(0, 0) * s(2, 1)) * d,
            (s(0, 0) * s(1, 1) - s(0, 1) * s(1, 0)) * d,
        ],
    ])
}

/// The destination -> source map in float32.
enum InverseMap {
    Affine(Affine2x3<f32>),
    Perspective(Matrix3x3<f32>),
}

fn warp_into(src: &BgrImage, map: &InverseMap, dst: &mut BgrImage) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports the features the function is compiled for.
        unsafe { warp_rows_fma(src, map, dst) };
        return;
    }
    warp_rows(src, map, dst);
}

/// [`warp_rows`] compiled with hardware FMA (`f32::mul_add` becomes one instruction instead of
/// a libm call). Both compute the same correctly rounded fused multiply-add.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
unsafe fn warp_rows_fma(src: &BgrImage, map: &InverseMap, dst: &mut BgrImage) {
    warp_rows(src, map, dst)
}

/// Columns OpenCV's x86-64 AVX2 kernel handles per vector iteration (2 x 8 float lanes,
/// `uf = vlanes_32 * 2` in `warp_kernels.simd.hpp`); the last `dst_w % 16` columns of each row go
/// through its scalar loop, whose coordinate arithmetic rounds differently (see [`warp_rows`]).
/// The reference data was made on that path; on CPUs where OpenCV picks SSE4.1/NEON (8 columns)
/// or another width only those last columns can differ, and only in rare values. The pipelines'
/// widths (192, 320, 416) are multiples of 32, where every path agrees.
const OPENCV_SIMD_COLUMNS: usize = 16;

/// The per-pixel loop of `warpAffineLinearInvoker_8UC3` / `warpPerspectiveLinearInvoker_8UC3`
/// (OpenCV 5.0 `modules/imgproc/src/warp_kernels.simd.hpp`), with the float32 matrix m:
///
/// - vector columns: `X = fma(m00, u, m01*v + m02)` (the row term is a plain float multiply and
///   add, computed once per row), perspective `W = fma(m20, u, m21*v + m22)`, `X /= W`;
/// - scalar tail columns: `X = fma(u, m00, v*m01) + m02` (what GCC makes of
///   `x*M[0] + y*M[1] + M[2]` with FMA enabled), likewise W, then `X /= W`.
///
/// Confirmed against opencv-python-headless 5.0.0 on random matrices and widths: this split
/// gives 0 mismatching values; the vector formula everywhere leaves a few in the tail.
#[inline(always)]
fn warp_rows(src: &BgrImage, map: &InverseMap, dst: &mut BgrImage) {
    let width = dst.width;
    if width == 0 {
        return;
    }
    // One destination row at a time: source coordinates, then their integer and fractional
    // parts, in simple loops the compiler vectorises; then the per-pixel gather and blend.
    let mut xs = vec![0f32; width];
    let mut ys = vec![0f32; width];
    let mut x0s = vec![0i32; width];
    let mut y0s = vec![0i32; width];
    for (v, out_row) in dst.data.chunks_exact_mut(width * 3).enumerate() {
        map_row(map, v as f32, &mut xs, &mut ys);
        split_floor(&mut xs, &mut x0s);
        split_floor(&mut ys, &mut y0s);
        let pixels = out_row
            .chunks_exact_mut(3)
            .zip(xs.iter().zip(&ys))
            .zip(x0s.iter().zip(&y0s));
        for ((out, (&fx, &fy)), (&x0, &y0)) in pixels {
            sample_bilinear_constant0(src, x0, y0, fx, fy, out);
        }
    }
}

/// `ix = floor(v)` and `v -= ix` in float32, as OpenCV's `v_floor` + `v_sub(src, v_cvt_f32(ix))`.
/// Coordinates beyond +-1e9 (and NaN, which becomes -1e9) only ever select the border value, as
/// OpenCV's overflowing conversion does, so they are clamped first.
#[inline(always)]
fn split_floor(values: &mut [f32], integers: &mut [i32]) {
    for (value, integer) in values.iter_mut().zip(integers.iter_mut()) {
        let floor = value.floor();
        let clamped = if floor.is_nan() {
            -1e9
        } else {
            floor.clamp(-1e9, 1e9)
        };
        // SAFETY: `clamped` is finite and within i32's range.
        *integer = unsafe { clamped.to_int_unchecked::<i32>() };
        *value -= floor;
    }
}

/// Source coordinates (X, Y) of destination row `v` (see [`warp_rows`] for the arithmetic).
#[inline(always)]
fn map_row(map: &InverseMap, vf: f32, xs: &mut [f32], ys: &mut [f32]) {
    let width = xs.len();
    let vector_end = width - width % OPENCV_SIMD_COLUMNS;
    match map {
        InverseMap::Affine(m) => {
            let row_x = m[0][1] * vf + m[0][2];
            let row_y = m[1][1] * vf + m[1][2];
            for (u, (x, y)) in xs[..vector_end]
                .iter_mut()
                .zip(&mut ys[..vector_end])
                .enumerate()
            {
                let uf = u as f32;
                *x = m[0][0].mul_add(uf, row_x);
                *y = m[1][0].mul_add(uf, row_y);
            }
            for u in vector_end..width {
                let uf = u as f32;
                xs[u] = uf.mul_add(m[0][0], vf * m[0][1]) + m[0][2];
                ys[u] = uf.mul_add(m[1][0], vf * m[1][1]) + m[1][2];
            }
        }
        InverseMap::Perspective(m) => {
            let row_x = m[0][1] * vf + m[0][2];
            let row_y = m[1][1] * vf + m[1][2];
            let row_w = m[2][1] * vf + m[2][2];
            for (u, (x, y)) in xs[..vector_end]
                .iter_mut()
                .zip(&mut ys[..vector_end])
                .enumerate()
            {
                let uf = u as f32;
                let w = m[2][0].mul_add(uf, row_w);
                *x = m[0][0].mul_add(uf, row_x) / w;
                *y = m[1][0].mul_add(uf, row_y) / w;
            }
            for u in vector_end..width {
                let uf = u as f32;
                let w = uf.mul_add(m[2][0], vf * m[2][1]) + m[2][2];
                xs[u] = (uf.mul_add(m[0][0], vf * m[0][1]) + m[0][2]) / w;
                ys[u] = (uf.mul_add(m[1][0], vf * m[1][1]) + m[1][2]) / w;
            }
        }
    }
}

/// Bilinear sample at integer corner (x0, y0) with fractions (fx, fy); neighbours outside the
/// image count as 0.
#[inline(always)]
fn sample_bilinear_constant0(src: &BgrImage, x0: i32, y0: i32, fx: f32, fy: f32, out: &mut [u8]) {
    let stride = src.width * 3;
    // Fast path: all four neighbours inside. (A NaN coordinate has x0 = 0 and may land here;
    // its NaN fraction then makes every channel 0, as OpenCV's saturating pack does.)
    if (x0 as u32) < (src.width as u32).wrapping_sub(1)
        && (y0 as u32) < (src.height as u32).wrapping_sub(1)
        && src.width >= 2
        && src.height >= 2
    {
        let at = y0 as usize * stride + x0 as usize * 3;
        let top_row = &src.data[at..at + 6];
        let bottom_row = &src.data[at + stride..at + stride + 6];
        for c in 0..3 {
            let p00 = top_row[c] as f32;
            let p01 = top_row[c + 3] as f32;
            let p10 = bottom_row[c] as f32;
            let p11 = bottom_row[c + 3] as f32;
            out[c] = interpolate(fx, fy, p00, p01, p10, p11);
        }
        return;
    }
    let (x0, y0) = (x0 as i64, y0 as i64);
    let (w, h) = (src.width as i64, src.height as i64);
    if x0 < -1 || y0 < -1 || x0 >= w || y0 >= h {
        out.fill(0);
        return;
    }
    let pixel = |xx: i64, yy: i64| -> [f32; 3] {
        if xx >= 0 && xx < w && yy >= 0 && yy < h {
            let at = yy as usize * stride + xx as usize * 3;
            let p = &src.data[at..at + 3];
            [p[0] as f32, p[1] as f32, p[2] as f32]
        } else {
            [0.0; 3]
        }
    };
    let p00 = pixel(x0, y0);
    let p01 = pixel(x0 + 1, y0);
    let p10 = pixel(x0, y0 + 1);
    let p11 = pixel(x0 + 1, y0 + 1);
    for c in 0..3 {
        out[c] = interpolate(fx, fy, p00[c], p01[c], p10[c], p11[c]);
    }
}

/// OpenCV's float32 bilinear blend with fused multiply-adds, rounded half to even and
/// saturated to u8 (`v_round` + `v_pack_u`, or `saturate_cast<uchar>` in the scalar loop).
#[inline(always)]
fn interpolate(fx: f32, fy: f32, p00: f32, p01: f32, p10: f32, p11: f32) -> u8 {
    let top = fx.mul_add(p01 - p00, p00);
    let bottom = fx.mul_add(p11 - p10, p10);
    let value = fy.mul_add(bottom - top, top);
    value.round_ties_even().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> BgrImage {
        let mut image = BgrImage::filled(width, height, 0);
        for (i, value) in image.data.iter_mut().enumerate() {
            *value = (i * 7 % 251) as u8;
        }
        image
    }

    #[test]
    fn identity_warps_copy_the_image() {
        let src = gradient(37, 23);
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        assert_eq!(
            warp_affine_linear_constant0(&src, &identity, 37, 23).unwrap(),
            src
        );
        let identity3 = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert_eq!(
            warp_perspective_linear_constant0(&src, &identity3, 37, 23).unwrap(),
            src
        );
    }

    #[test]
    fn shift_by_whole_pixels_pads_with_black() {
        let src = gradient(20, 10);
        // dst(x, y) = src(x - 3, y - 2): 3 black columns on the left, 2 black rows on top.
        let shift = [[1.0, 0.0, 3.0], [0.0, 1.0, 2.0]];
        let out = warp_affine_linear_constant0(&src, &shift, 20, 10).unwrap();
        assert_eq!(out.pixel(2, 5), [0, 0, 0]);
        assert_eq!(out.pixel(5, 1), [0, 0, 0]);
        assert_eq!(out.pixel(3, 2), src.pixel(0, 0));
        assert_eq!(out.pixel(19, 9), src.pixel(16, 7));
    }

    #[test]
    fn singular_matrices_are_errors() {
        let src = gradient(4, 4);
        let flat = [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0]];
        assert!(warp_affine_linear_constant0(&src, &flat, 4, 4).is_err());
        let flat3 = [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]];
        assert!(warp_perspective_linear_constant0(&src, &flat3, 4, 4).is_err());
    }
}
