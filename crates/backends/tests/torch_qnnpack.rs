//! The libtorch backend on D2Go with the qnnpack quantized engine, against the reference's
//! qnnpack parity tensors. Unlike the x86 engine's kernels (see d2go::cpu_has_avx512_vnni),
//! qnnpack's do not change with the CPU's vector extensions, so this check holds on every x86-64
//! CPU: same box count and labels, boxes within 1e-4 px and scores within 1e-6 (seen on an
//! AVX-512 VNNI EPYC: boxes identical, scores at most 2.4e-7 apart).
//!
//! Its own test binary: the quantized engine is a process-wide libtorch setting.
#![cfg(feature = "torch")]

mod d2go;

use d2go::{D2GO, compare_with_reference, model, torch_cpu_with};
use detbench_backends::QuantizedEngine;

#[test]
fn d2go_matches_the_qnnpack_reference_outputs() {
    let config = torch_cpu_with(QuantizedEngine::Qnnpack);
    let mut backend = detbench_backends::open(&model(D2GO), &config).unwrap();
    let engine = backend
        .describe()
        .options
        .iter()
        .find(|(k, _)| k == "quantized_engine")
        .map(|(_, v)| v.clone());
    assert_eq!(engine.as_deref(), Some("qnnpack"));
    for (image, box_diff, score_diff) in compare_with_reference(backend.as_mut(), "qnnpack") {
        assert!(box_diff <= 1e-4, "{image}: boxes differ by {box_diff} px");
        assert!(score_diff <= 1e-6, "{image}: scores differ by {score_diff}");
    }
}
