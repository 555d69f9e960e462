//! Affine transforms of the top-down keypoint pipelines: `cv2.getAffineTransform` (bit-exact
//! float64) and GluonCV's SimplePose box -> crop transform (`gluoncv/data/transforms/pose.py`:
//! `get_affine_transform` with rotation 0 and shift 0, `simple_pose.py::_box_to_center_scale`),
//! with the float32/float64 mix the Python reference (`../shared/tools/reference/run_pose.py`)
//! uses, so that the crop matrix is the same double-precision matrix.
//!
//! Verified during development against opencv-python-headless 5.0.0: `cv2.getAffineTransform`
//! bitwise on 3,000 random point triples, and, through `run_pose.py`'s own functions, centre,
//! scale, matrix (bitwise) and crop pixels (0 mismatches) for 512 person boxes (the 112 GT boxes of
//! the keypoint subset and 400 YOLOX person detections). The tests check the crops against the
//! parity tensors.

use crate::error::ImageError;
use crate::image::BgrImage;
use crate::warp::{Affine2x3, warp_affine_linear_constant0};

/// Network input size of Ultralight-Nano-SimplePose (width, height).
pub const SIMPLE_POSE_INPUT: (usize, usize) = (192, 256);
/// GluonCV's `scale_mult` for the validation transform.
pub const SIMPLE_POSE_SCALE_MULT: f32 = 1.25;

/// `cv2.getAffineTransform(src, dst)`: the 2x3 float64 matrix mapping the three `src` points onto
/// the three `dst` points, solved as OpenCV does (`modules/imgproc/src/imgwarp.cpp`: a 6x6 system
/// solved by `cv::solve` with DECOMP_LU, i.e. `hal::LU64f`, Gaussian elimination with partial
/// pivoting in `modules/core/src/hal_internal`/`matrix_decomp.cpp`). `None` if the points are
/// collinear (OpenCV would return an undefined matrix).
pub fn get_affine_transform_cv(src: &[[f32; 2]; 3], dst: &[[f32; 2]; 3]) -> Option<Affine2x3<f64>> {
    let mut a = [[0f64; 6]; 6];
    let mut b = [0f64; 6];
    for i in 0..3 {
        let (x, y) = (src[i][0] as f64, src[i][1] as f64);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0];
        b[2 * i] = dst[i][0] as f64;
        b[2 * i + 1] = dst[i][1] as f64;
    }
    let x = lu_solve_like_opencv(a, b)?;
    Some([[x[0], x[1], x[2]], [x[3], x[4], x[5]]])
}

/// `LUImpl<double>` of OpenCV's `modules/core/src/matrix_decomp.cpp` (`hal::LU64f`, tolerance
/// `DBL_EPSILON * 100`) with one right-hand side: partial pivoting on the first largest |value|,
/// elimination with `alpha = a[j][i] * (-1 / a[i][i])`, no fused multiply-adds, and back
/// substitution dividing by the pivot. (Some OpenCV versions store the pivot's reciprocal and
/// multiply; opencv-python 5.0.0's results are matched bit for bit by dividing, on 3,000 random
/// point triples, while multiplying differs in the last bit of most of them.)
fn lu_solve_like_opencv<const N: usize>(mut a: [[f64; N]; N], mut b: [f64; N]) -> Option<[f64; N]> {
    let eps = f64::EPSILON * 100.0;
    for i in 0..N {
        let mut k = i;
        for j in i + 1..N {
            if a[j][i].abs() > a[k][i].abs() {
                k = j;
            }
        }
        if a[k][i].abs() < eps {
            return None;
        }
        if k != i {
            a.swap(i, k);
            b.swap(i, k);
        }
        let d = -1.0 / a[i][i];
        let pivot_row = a[i];
        for j in i + 1..N {
            let alpha = a[j][i] * d;
            for (value, &pivot_value) in a[j][i + 1..].iter_mut().zip(&pivot_row[i + 1..]) {
                *value += alpha * pivot_value;
            }
            b[j] += alpha * b[i];
        }
    }
    for i in (0..N).rev() {
        let mut s = b[i];
        for k in i + 1..N {
            s -= a[i][k] * b[k];
        }
        b[i] = s / a[i][i];
    }
    Some(b)
}

/// Centre and scale of a person box, GluonCV `_box_to_center_scale` with pixel_std 1:
/// the box is widened or heightened to `aspect_ratio` (= out_w / out_h) and multiplied by
/// `scale_mult`. Box corners are float64 (`xmin, ymin, xmax, ymax`); the centre is stored in
/// float32, the expanded size in float64 then cast to float32 and multiplied in float32, as the
/// numpy reference does.
pub fn box_to_center_scale(
    box_xyxy: [f64; 4],
    aspect_ratio: f64,
    scale_mult: f32,
) -> ([f32; 2], [f32; 2]) {
    let [xmin, ymin, xmax, ymax] = box_xyxy;
    let (x, y) = (xmin, ymin);
    let (mut w, mut h) = (xmax - xmin, ymax - ymin);
    let center = [(x + w * 0.5) as f32, (y + h * 0.5) as f32];
    if w > aspect_ratio * h {
        h = w / aspect_ratio;
    } else if w < aspect_ratio * h {
        w = h * aspect_ratio;
    }
    let mut scale = [w as f32, h as f32];
    if center[0] != -1.0 {
        scale = [scale[0] * scale_mult, scale[1] * scale_mult];
    }
    (center, scale)
}

/// GluonCV `get_affine_transform(center, scale, rot=0, output_size, shift=0, inv)`: the matrix
/// mapping the scaled box onto an `out_w` x `out_h` image (or back, with `inverse`), built from
/// three float32 point pairs and `cv2.getAffineTransform`.
pub fn get_affine_transform(
    center: [f32; 2],
    scale: [f32; 2],
    out_w: usize,
    out_h: usize,
    inverse: bool,
) -> Option<Affine2x3<f64>> {
    let src_w = scale[0];
    let (dst_w, dst_h) = (out_w as f64, out_h as f64);
    let src_dir = [0.0f32, src_w * -0.5];
    let dst_dir = [0.0f32, (dst_w * -0.5) as f32];
    let src0 = center;
    let src1 = [center[0] + src_dir[0], center[1] + src_dir[1]];
    let dst0 = [(dst_w * 0.5) as f32, (dst_h * 0.5) as f32];
    let dst1 = [
        (dst_w * 0.5 + dst_dir[0] as f64) as f32,
        (dst_h * 0.5 + dst_dir[1] as f64) as f32,
    ];
    let src = [src0, src1, third_point(src0, src1)];
    let dst = [dst0, dst1, third_point(dst0, dst1)];
    if inverse {
        get_affine_transform_cv(&dst, &src)
    } else {
        get_affine_transform_cv(&src, &dst)
    }
}

/// GluonCV `get_3rd_point`: `b + rot90(a - b)` in float32.
fn third_point(a: [f32; 2], b: [f32; 2]) -> [f32; 2] {
    let d = [a[0] - b[0], a[1] - b[1]];
    [b[0] - d[1], b[1] + d[0]]
}

/// One SimplePose person crop: where it came from and the matrix that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoseCrop {
    /// Box centre in original-image pixels (float32, as the reference keeps it).
    pub center: [f32; 2],
    /// Expanded box size times `scale_mult` (float32).
    pub scale: [f32; 2],
    /// Forward matrix original image -> crop (float64, `cv2.getAffineTransform`).
    pub transform: Affine2x3<f64>,
    /// The crop, `out_w` x `out_h`, in the channel order of the input image.
    pub image: BgrImage,
}

/// The Ultralight-SimplePose / GluonCV validation crop of one person box:
/// `cv2.warpAffine(img, get_affine_transform(center, scale, (out_w, out_h)), (out_w, out_h),
/// flags=INTER_LINEAR)` with black borders. The warp treats channels independently, so warping
/// the BGR image gives the channel-reversed version of the reference's RGB crop; callers that
/// need RGB read the channels backwards when building the tensor.
pub fn simple_pose_crop(
    image: &BgrImage,
    box_xyxy: [f64; 4],
    out_w: usize,
    out_h: usize,
    scale_mult: f32,
) -> Result<PoseCrop, ImageError> {
    let (center, scale) = box_to_center_scale(box_xyxy, out_w as f64 / out_h as f64, scale_mult);
    let transform = get_affine_transform(center, scale, out_w, out_h, false).ok_or_else(|| {
        ImageError::InvalidArgument {
            what: "person box",
            message: format!("box {box_xyxy:?} gives a degenerate crop (scale {scale:?})"),
        }
    })?;
    let crop = warp_affine_linear_constant0(image, &transform, out_w, out_h)?;
    Ok(PoseCrop {
        center,
        scale,
        transform,
        image: crop,
    })
}
