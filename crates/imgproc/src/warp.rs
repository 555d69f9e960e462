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
//! crops) in tests/resample.rs; and, during development, against opencv-python-headless 5.0.0
//! (`cv2.warpAffine`/`cv2.warpPerspective`) on every subset image with NanoDet letterbox
//! matrices, SimplePose crops of every keypoint-subset person, and random affine matrices:
//! 0 mismatching values (numbers in the crate's commit history / helper report).

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
    let inverse = invert_affine_like_opencv(forward);
    if inverse.iter().flatten().any(|v| !v.is_finite()) {
        return Err(ImageError::InvalidArgument {
            what: "warpAffine matrix",
            message: format!("{forward:?} has no finite inverse"),
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
    let vector_end = width - width % OPENCV_SIMD_COLUMNS;
    for (v, out_row) in dst.data.chunks_exact_mut(width * 3).enumerate() {
        let vf = v as f32;
        match map {
            InverseMap::Affine(m) => {
                let row_x = m[0][1] * vf + m[0][2];
                let row_y = m[1][1] * vf + m[1][2];
                for (u, out) in out_row.chunks_exact_mut(3).enumerate() {
                    let uf = u as f32;
                    let (x, y) = if u < vector_end {
                        (m[0][0].mul_add(uf, row_x), m[1][0].mul_add(uf, row_y))
                    } else {
                        (
                            uf.mul_add(m[0][0], vf * m[0][1]) + m[0][2],
                            uf.mul_add(m[1][0], vf * m[1][1]) + m[1][2],
                        )
                    };
                    sample_bilinear_constant0(src, x, y, out);
                }
            }
            InverseMap::Perspective(m) => {
                let row_x = m[0][1] * vf + m[0][2];
                let row_y = m[1][1] * vf + m[1][2];
                let row_w = m[2][1] * vf + m[2][2];
                for (u, out) in out_row.chunks_exact_mut(3).enumerate() {
                    let uf = u as f32;
                    let (x, y) = if u < vector_end {
                        let w = m[2][0].mul_add(uf, row_w);
                        (
                            m[0][0].mul_add(uf, row_x) / w,
                            m[1][0].mul_add(uf, row_y) / w,
                        )
                    } else {
                        let w = uf.mul_add(m[2][0], vf * m[2][1]) + m[2][2];
                        (
                            (uf.mul_add(m[0][0], vf * m[0][1]) + m[0][2]) / w,
                            (uf.mul_add(m[1][0], vf * m[1][1]) + m[1][2]) / w,
                        )
                    };
                    sample_bilinear_constant0(src, x, y, out);
                }
            }
        }
    }
}

/// Bilinear sample at (x, y) with neighbours outside the image counted as 0.
#[inline(always)]
fn sample_bilinear_constant0(src: &BgrImage, x: f32, y: f32, out: &mut [u8]) {
    let xf = x.floor();
    let yf = y.floor();
    let fx = x - xf;
    let fy = y - yf;
    // Saturating casts; NaN becomes 0 but then fx is NaN and the result below is 0 as well
    // (OpenCV's saturating pack also turns NaN into 0).
    let x0 = xf as i64;
    let y0 = yf as i64;
    let (w, h) = (src.width as i64, src.height as i64);
    if x0 < -1 || y0 < -1 || x0 >= w || y0 >= h {
        out.fill(0);
        return;
    }
    let pixel = |xx: i64, yy: i64| -> [f32; 3] {
        if xx >= 0 && xx < w && yy >= 0 && yy < h {
            let at = (yy as usize * src.width + xx as usize) * 3;
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
        let top = fx.mul_add(p01[c] - p00[c], p00[c]);
        let bottom = fx.mul_add(p11[c] - p10[c], p10[c]);
        let value = fy.mul_add(bottom - top, top);
        out[c] = value.round_ties_even().clamp(0.0, 255.0) as u8;
    }
}
