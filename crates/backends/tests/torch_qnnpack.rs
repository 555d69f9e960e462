//! The libtorch backend on D2Go with the qnnpack quantized engine, against the reference's
//! qnnpack parity tensors. Unlike the x86 engine's kernels (see d2go::cpu_has_avx512_vnni),
//! qnnpack's do not change with the CPU's vector extensions, so this check holds on every x86-64
//! CPU: same box count and labels, boxes within 1e-4 px and scores within 1e-6 (seen on an
//! AVX-512 VNNI EPYC: boxes identical, scores at most 2.4e-7 apart).
//!
//! Its own test binary: the quantized engine is a process-wide libtorch setting.
#![cfg(feature = "torch")]

mod d2go;

use d2go::{D2GO, array_f32, max_abs_diff, model, parity, run_d2go, torch_cpu};
use ndarray::ArrayD;

#[test]
fn d2go_matches_the_qnnpack_reference_outputs() {
    // SAFETY: the only test of this binary sets it before any other thread reads the variable.
    unsafe { std::env::set_var(detbench_backends::torch::QENGINE_ENV, "qnnpack") };
    let mut backend = detbench_backends::open(&model(D2GO), &torch_cpu()).unwrap();
    let engine = backend
        .describe()
        .options
        .iter()
        .find(|(k, _)| k == "quantized_engine")
        .map(|(_, v)| v.clone());
    assert_eq!(engine.as_deref(), Some("qnnpack"));
    for image in ["000000000139", "000000000802", "000000005001"] {
        let mut npz = parity(image, "qnnpack");
        let input = array_f32(&mut npz, "input_chw_bgr_0_1");
        let want_boxes = array_f32(&mut npz, "boxes");
        let want_scores = array_f32(&mut npz, "scores");
        let want_labels: ArrayD<i64> = npz.by_name("labels.npy").unwrap();

        let (boxes, scores, labels) = run_d2go(backend.as_mut(), &input);
        assert_eq!(boxes.shape, want_boxes.shape(), "{image}: box count");
        assert_eq!(
            labels.as_i64().unwrap(),
            want_labels.as_slice().unwrap(),
            "{image}: labels"
        );
        let box_diff = max_abs_diff(boxes.as_f32().unwrap(), want_boxes.as_slice().unwrap());
        let score_diff = max_abs_diff(scores.as_f32().unwrap(), want_scores.as_slice().unwrap());
        eprintln!("{image}: max |box diff| {box_diff:e} px, max |score diff| {score_diff:e}");
        assert!(box_diff <= 1e-4, "{image}: boxes differ by {box_diff} px");
        assert!(score_diff <= 1e-6, "{image}: scores differ by {score_diff}");
    }
}
