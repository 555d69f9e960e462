//! The engine's operations on the CPU against torchvision 0.26 on the CPU (fixtures made by
//! tools/native/make_fixtures.py): batched NMS (both of torchvision's paths, and the coordinate
//! trick with fp16 offsets as CUDA runs a `model.half()` box head), RoIAlign,
//! MultiScaleRoIAlign with its level mapping, box decoding, mask pasting and the preprocessing.
//! The CPU loops run the same per-element functions NVRTC compiles for the GPU
//! (cpp/kernels/kernels.cuh), so these pin the GPU kernels' arithmetic too.
#![cfg(feature = "cuda")]

use std::fs::File;

use detbench_native::engine::ops;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;

fn fixtures() -> NpzReader<File> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ops.npz");
    NpzReader::new(File::open(path).expect("fixtures/ops.npz")).expect("npz")
}

fn f32s(npz: &mut NpzReader<File>, name: &str) -> ArrayD<f32> {
    npz.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn i64s(npz: &mut NpzReader<File>, name: &str) -> ArrayD<i64> {
    npz.by_name(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn flat<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    a.iter().cloned().collect()
}

#[test]
fn batched_nms_keeps_what_torchvision_keeps() {
    let mut npz = fixtures();
    for case in ["nms_trick", "nms_vanilla"] {
        let boxes = flat(&f32s(&mut npz, &format!("{case}_boxes")));
        let scores = flat(&f32s(&mut npz, &format!("{case}_scores")));
        let idxs = flat(&i64s(&mut npz, &format!("{case}_idxs")));
        let expected = flat(&i64s(&mut npz, &format!("{case}_keep")));
        let keep = ops::batched_nms(&boxes, &scores, &idxs, 0.5).unwrap();
        assert!(
            expected.len() > 20,
            "{case}: a fixture that suppresses little proves little"
        );
        assert_eq!(keep, expected, "{case}");
    }
}

/// fp16 offsets of the coordinate trick can round the boxes of neighbouring classes into each
/// other; torchvision's `nms` then suppresses across the classes, and so must the engine (a
/// class-wise test in the trick's path keeps one box too many here).
#[test]
fn batched_nms_with_fp16_offsets_suppresses_across_classes_as_torchvision() {
    let mut npz = fixtures();
    let boxes = flat(&f32s(&mut npz, "nms_half_boxes"));
    let scores = flat(&f32s(&mut npz, "nms_half_scores"));
    let idxs = flat(&i64s(&mut npz, "nms_half_idxs"));
    let expected = flat(&i64s(&mut npz, "nms_half_keep"));
    let keep =
        ops::batched_nms_as(&boxes, &scores, &idxs, 0.5, ops::NmsArithmetic::CudaFp16).unwrap();
    assert!(expected.len() > 100, "{} kept", expected.len());
    assert_eq!(keep, expected);
}

#[test]
fn roi_align_equals_torchvision() {
    let mut npz = fixtures();
    let features = f32s(&mut npz, "roi_features");
    let rois = flat(&f32s(&mut npz, "roi_rois"));
    let shape = [
        features.shape()[1],
        features.shape()[2],
        features.shape()[3],
    ];
    let features = flat(&features);
    let ours = ops::roi_align(&features, shape, &rois, 0.5, 7, 2, false).unwrap();
    let diff = max_abs_diff(&ours, &flat(&f32s(&mut npz, "roi_out_s2")));
    assert!(diff < 1e-5, "sampling 2: {diff}");
    let ours = ops::roi_align(&features, shape, &rois, 0.5, 5, -1, true).unwrap();
    let diff = max_abs_diff(&ours, &flat(&f32s(&mut npz, "roi_out_adaptive_aligned")));
    assert!(diff < 1e-5, "adaptive, aligned: {diff}");
}

#[test]
fn multiscale_roi_align_maps_levels_as_torchvision() {
    let mut npz = fixtures();
    let mut levels = Vec::new();
    let mut sizes = Vec::new();
    for l in 0..4 {
        let a = f32s(&mut npz, &format!("ms_level{l}"));
        sizes.push((a.shape()[2], a.shape()[3]));
        levels.push(flat(&a));
    }
    let boxes = flat(&f32s(&mut npz, "ms_boxes"));
    let ours = ops::multiscale_roi_align(&levels, &sizes, 4, &boxes, (128, 128), 7, 2).unwrap();
    let diff = max_abs_diff(&ours, &flat(&f32s(&mut npz, "ms_out")));
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn box_decoding_equals_torchvision() {
    let mut npz = fixtures();
    let codes = flat(&f32s(&mut npz, "decode_codes"));
    let boxes = flat(&f32s(&mut npz, "decode_boxes"));
    let ours = ops::decode_boxes(
        &codes,
        &boxes,
        [10.0, 10.0, 5.0, 5.0],
        (1000.0f64 / 16.0).ln(),
    )
    .unwrap();
    let expected = flat(&f32s(&mut npz, "decode_out"));
    // The same ATen operations in the same order: equal to the last bit on the same CPU.
    assert_eq!(ours, expected);
}

#[test]
fn fp16_boxes_take_their_pyramid_level_from_a_float32_area() {
    // torchvision's box_area upcasts fp16 boxes: a box over 65,504 px^2 keeps its level, where an
    // area computed in fp16 would be inf and send it to the coarsest one (as the engine did
    // before 2026-12-04: docs/BENCHMARKS.md, "GPU, 2026-12-04").
    let mut npz = fixtures();
    let boxes = flat(&f32s(&mut npz, "levels_boxes"));
    let expected = flat(&i64s(&mut npz, "levels_half"));
    assert_eq!(ops::map_levels(&boxes, true, 2, 5).unwrap(), expected);
    assert_eq!(ops::map_levels(&boxes, false, 2, 5).unwrap(), expected);
}

#[test]
fn pasted_masks_equal_torchvision_thresholded() {
    let mut npz = fixtures();
    let masks = flat(&f32s(&mut npz, "paste_masks"));
    let boxes = flat(&f32s(&mut npz, "paste_boxes"));
    let expected: ArrayD<u8> = npz.by_name("paste_out").unwrap();
    let (count, h, w) = (
        expected.shape()[0],
        expected.shape()[1],
        expected.shape()[2],
    );
    let bits = ops::paste_masks(&masks, 28, &boxes, (h, w)).unwrap();
    let words = h.div_ceil(32);
    let mut differ = 0;
    let mut set = 0;
    for m in 0..count {
        for y in 0..h {
            for x in 0..w {
                let ours = (bits[(m * w + x) * words + y / 32] >> (y % 32)) & 1;
                let theirs = expected[IxDyn(&[m, y, x])] as u32;
                differ += usize::from(ours != theirs);
                set += theirs as usize;
            }
        }
    }
    assert!(set > 200, "the fixture pastes too little ({set} pixels)");
    // The engine follows PyTorch's CUDA interpolation; torchvision here ran the CPU one, whose
    // weights can differ in the last bit: a pixel exactly at the threshold may flip.
    assert!(differ <= 2, "{differ} pixels differ of {set} set");
}

#[test]
fn preprocessing_equals_generalized_rcnn_transform() {
    let mut npz = fixtures();
    let bgr: ArrayD<u8> = npz.by_name("pre_bgr").unwrap();
    let expected = f32s(&mut npz, "pre_out");
    let size = flat(&i64s(&mut npz, "pre_size"));
    let (h, w) = (bgr.shape()[0], bgr.shape()[1]);
    let (ph, pw) = (expected.shape()[1], expected.shape()[2]);
    let ours = ops::preprocess(
        &flat(&bgr),
        (h, w),
        (size[0] as usize, size[1] as usize),
        (ph, pw),
    )
    .unwrap();
    let diff = max_abs_diff(&ours, &flat(&expected));
    // CUDA's interpolation arithmetic against the CPU kernel torchvision ran here.
    assert!(diff < 2e-5, "{diff}");
}
