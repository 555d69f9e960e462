//! Single engine operations on host data (CPU), for the parity tests against torchvision
//! (crates/native/tests/ops_parity.rs, fixtures from tools/native/make_fixtures.py).

use crate::NativeError;
use crate::ffi::{self, ErrorBuffer};

/// Whose arithmetic [`batched_nms_as`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NmsArithmetic {
    /// torchvision on the CPU, fp32 (coordinate trick up to 4,000 box elements, IoU compared
    /// with the threshold in double).
    CpuFp32,
    /// torchvision on CUDA with fp16 boxes and scores (`model.half()`): coordinate trick up to
    /// 100,000 box elements, offsets and offset boxes rounded to fp16, IoU as `devIoU<Half>`.
    CudaFp16,
}

/// torchvision.ops.batched_nms on the CPU: kept indices in decreasing score order.
pub fn batched_nms(
    boxes: &[f32],
    scores: &[f32],
    idxs: &[i64],
    iou: f64,
) -> Result<Vec<i64>, NativeError> {
    batched_nms_as(boxes, scores, idxs, iou, NmsArithmetic::CpuFp32)
}

/// torchvision.ops.batched_nms with the engine's own code path for `arithmetic` (on the CPU).
pub fn batched_nms_as(
    boxes: &[f32],
    scores: &[f32],
    idxs: &[i64],
    iou: f64,
    arithmetic: NmsArithmetic,
) -> Result<Vec<i64>, NativeError> {
    let half = i32::from(arithmetic == NmsArithmetic::CudaFp16);
    let api = ffi::default_api()?;
    let n = scores.len();
    assert_eq!(boxes.len(), 4 * n);
    assert_eq!(idxs.len(), n);
    let mut keep = vec![0i64; n];
    let mut count = 0i64;
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_batched_nms)(
            boxes.as_ptr(),
            scores.as_ptr(),
            idxs.as_ptr(),
            n as i64,
            iou,
            half,
            half,
            keep.as_mut_ptr(),
            &mut count,
            b,
            l,
        )
    };
    error.check(code)?;
    keep.truncate(count as usize);
    Ok(keep)
}

/// torchvision.ops.roi_align on one [1, C, H, W] map: [R, C, p, p].
#[allow(clippy::too_many_arguments)]
pub fn roi_align(
    features: &[f32],
    shape: [usize; 3],
    rois: &[f32],
    scale: f64,
    pooled: usize,
    sampling_ratio: i64,
    aligned: bool,
) -> Result<Vec<f32>, NativeError> {
    let api = ffi::default_api()?;
    let [c, h, w] = shape;
    let r = rois.len() / 5;
    let mut out = vec![0f32; r * c * pooled * pooled];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_roi_align)(
            features.as_ptr(),
            c as i64,
            h as i64,
            w as i64,
            rois.as_ptr(),
            r as i64,
            scale,
            pooled as i64,
            sampling_ratio,
            i32::from(aligned),
            out.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(out)
}

/// torchvision.ops.MultiScaleRoIAlign (one image) over maps [1, C, H_l, W_l]: [K, C, p, p].
pub fn multiscale_roi_align(
    features: &[Vec<f32>],
    sizes: &[(usize, usize)],
    channels: usize,
    boxes: &[f32],
    image: (usize, usize),
    pooled: usize,
    sampling_ratio: i64,
) -> Result<Vec<f32>, NativeError> {
    let api = ffi::default_api()?;
    let k = boxes.len() / 4;
    let pointers: Vec<*const f32> = features.iter().map(|f| f.as_ptr()).collect();
    let heights: Vec<i64> = sizes.iter().map(|s| s.0 as i64).collect();
    let widths: Vec<i64> = sizes.iter().map(|s| s.1 as i64).collect();
    let mut out = vec![0f32; k * channels * pooled * pooled];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_multiscale_roi_align)(
            pointers.as_ptr(),
            heights.as_ptr(),
            widths.as_ptr(),
            features.len() as i64,
            channels as i64,
            boxes.as_ptr(),
            k as i64,
            image.0 as i64,
            image.1 as i64,
            pooled as i64,
            sampling_ratio,
            out.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(out)
}

/// BoxCoder(weights, clip).decode_single on [M, 4] codes and boxes.
pub fn decode_boxes(
    codes: &[f32],
    boxes: &[f32],
    weights: [f64; 4],
    clip: f64,
) -> Result<Vec<f32>, NativeError> {
    let api = ffi::default_api()?;
    let m = boxes.len() / 4;
    let mut out = vec![0f32; 4 * m];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_decode_boxes)(
            codes.as_ptr(),
            boxes.as_ptr(),
            m as i64,
            weights.as_ptr(),
            clip,
            out.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(out)
}

/// MultiScaleRoIAlign's LevelMapper(k_min, k_max) on [M, 4] boxes, given to the engine as fp16
/// when `half`: each box's level index from k_min.
pub fn map_levels(
    boxes: &[f32],
    half: bool,
    k_min: i64,
    k_max: i64,
) -> Result<Vec<i64>, NativeError> {
    let api = ffi::default_api()?;
    let m = boxes.len() / 4;
    let mut out = vec![0i64; m];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_map_levels)(
            boxes.as_ptr(),
            m as i64,
            i32::from(half),
            k_min,
            k_max,
            out.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(out)
}

/// paste_masks_in_image (padding 1) thresholded at 0.5: per mask, column-major bit words.
pub fn paste_masks(
    masks: &[f32],
    m: usize,
    boxes: &[f32],
    image: (usize, usize),
) -> Result<Vec<u32>, NativeError> {
    let api = ffi::default_api()?;
    let count = boxes.len() / 4;
    let words = image.0.div_ceil(32);
    let mut bits = vec![0u32; count * image.1 * words];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_paste_masks)(
            masks.as_ptr(),
            count as i64,
            m as i64,
            boxes.as_ptr(),
            image.0 as i64,
            image.1 as i64,
            bits.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(bits)
}

/// GeneralizedRCNNTransform on one BGR image (ImageNet mean/std): resized to `resized`, padded
/// to `padded`: [3, padded.0, padded.1] float32.
pub fn preprocess(
    bgr: &[u8],
    size: (usize, usize),
    resized: (usize, usize),
    padded: (usize, usize),
) -> Result<Vec<f32>, NativeError> {
    let api = ffi::default_api()?;
    assert_eq!(bgr.len(), size.0 * size.1 * 3);
    let mean = [0.485f64, 0.456, 0.406];
    let std = [0.229f64, 0.224, 0.225];
    let mut out = vec![0f32; 3 * padded.0 * padded.1];
    let mut error = ErrorBuffer::new();
    let (b, l) = error.args();
    // SAFETY: buffers sized as the C side expects.
    let code = unsafe {
        (api.op_preprocess)(
            bgr.as_ptr(),
            size.0 as i64,
            size.1 as i64,
            resized.0 as i64,
            resized.1 as i64,
            padded.0 as i64,
            padded.1 as i64,
            mean.as_ptr(),
            std.as_ptr(),
            out.as_mut_ptr(),
            b,
            l,
        )
    };
    error.check(code)?;
    Ok(out)
}
