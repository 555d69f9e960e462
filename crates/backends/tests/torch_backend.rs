//! The libtorch backend against the shipped D2Go model (int8 TorchScript calling torchvision's
//! nms and roi_align) and its reference parity tensors: with the `x86` quantized engine, as the
//! reference, the raw outputs for the reference input tensors are bit-identical to the
//! reference's (torch 2.15 there, 2.11 here) on CPUs without AVX512-VNNI, and the engine settings
//! are recorded. On every x86 CPU, torch_qnnpack.rs checks the same with the portable qnnpack
//! engine. Also: the clear errors for what this machine cannot do (CUDA without a GPU, fp16 on
//! the CPU).
//!
//! Needs `scripts/setup.sh --torch` (libtorch, its CUDA runtime libraries and torchvision's ops
//! under .deps/) and `LD_LIBRARY_PATH=.deps/torch/torch/lib` (scripts/test.sh sets it).
#![cfg(feature = "torch")]

mod d2go;

use d2go::{D2GO, compare_with_reference, cpu_has_avx512_vnni, model, torch_cpu};
use detbench_backends::{
    BackendConfig, BackendError, Device, EngineKind, Precision, Tensor, Value,
};

#[test]
fn d2go_matches_the_x86_reference_outputs() {
    let mut backend = detbench_backends::open(&model(D2GO), &torch_cpu()).unwrap();
    let described = backend.describe();
    assert_eq!(described.engine, EngineKind::Torch);
    assert!(
        described.engine_version.starts_with("2.11.0"),
        "{described:?}"
    );
    assert_eq!(described.device, Device::Cpu);
    assert_eq!(described.threads, Some(2));
    let option = |key: &str| {
        described
            .options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(option("quantized_engine"), "x86");
    assert_eq!(option("intra_op_threads"), "2");
    assert!(
        option("torchvision_ops").ends_with("_C.so"),
        "{described:?}"
    );

    if cpu_has_avx512_vnni() {
        // See d2go::cpu_has_avx512_vnni: this CPU's int8 kernels are not the reference's, so
        // its outputs are not compared here; torch_qnnpack.rs and the D2Go AP test cover it.
        eprintln!("AVX512-VNNI CPU: x86-engine outputs are not compared bit for bit");
        return;
    }
    for (image, box_diff, score_diff) in compare_with_reference(backend.as_mut(), "x86") {
        // Same kernels, same engine, same input: bit-identical (seen: 0 on all three images).
        assert_eq!(box_diff, 0.0, "{image}: boxes differ by {box_diff} px");
        assert_eq!(score_diff, 0.0, "{image}: scores differ by {score_diff}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut backend = detbench_backends::open(&model(D2GO), &torch_cpu()).unwrap();
    let wrong = Tensor::f32(vec![3, 4, 4], vec![0.0; 5]);
    let err = backend
        .run(vec![(
            "inputs".into(),
            Value::List(vec![Value::Tensor(wrong)]),
        )])
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::BadInput { name, reason } if name == "inputs[0]" && reason.contains("48 elements")),
        "{err}"
    );
    // A tensor where the model wants a list: TorchScript's own argument check.
    let err = backend
        .run(vec![(
            "inputs".into(),
            Value::Tensor(Tensor::f32(vec![3, 8, 8], vec![0.5; 192])),
        )])
        .unwrap_err();
    assert!(matches!(err, BackendError::Run(_)), "{err}");
}

#[test]
fn fp16_on_the_cpu_is_refused() {
    let config = BackendConfig {
        precision: Precision::Fp16,
        ..torch_cpu()
    };
    let err = detbench_backends::open(&model(D2GO), &config)
        .err()
        .unwrap();
    assert!(
        matches!(&err, BackendError::Unsupported(m) if m.contains("CUDA only")),
        "{err}"
    );
}

#[test]
fn cuda_without_a_gpu_says_why() {
    if std::env::var_os("DETBENCH_EXPECT_CUDA").is_some() {
        return; // on a GPU machine this configuration is expected to work
    }
    let config = BackendConfig {
        device: Device::Cuda(0),
        ..torch_cpu()
    };
    let err = detbench_backends::open(&model(D2GO), &config)
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        matches!(err, BackendError::EngineUnavailable { .. }),
        "{message}"
    );
    assert!(
        message.contains("libtorch_cuda.so") || message.contains("no CUDA device"),
        "{message}"
    );
}

#[test]
fn a_missing_model_file_is_named() {
    let err = detbench_backends::open(&model("no_such_model.pt"), &torch_cpu())
        .err()
        .unwrap();
    assert!(
        matches!(&err, BackendError::ModelNotFound { path } if path.ends_with("no_such_model.pt")),
        "{err}"
    );
}

/// `run_selected` returns only the outputs asked for (D2Go's wrapper also returns its input
/// images, which stay unconverted), and what it returns equals `run`'s.
#[test]
fn run_selected_keeps_only_the_outputs_asked_for() {
    let mut backend = detbench_backends::open(&model(D2GO), &torch_cpu()).unwrap();
    let mut npz = d2go::parity("000000000139", "x86");
    let input = d2go::array_f32(&mut npz, "input_chw_bgr_0_1");
    let image = || {
        vec![(
            "inputs".to_owned(),
            Value::List(vec![Value::Tensor(Tensor::f32(
                input.shape().to_vec(),
                input.iter().copied().collect(),
            ))]),
        )]
    };
    let all = backend.run(image()).unwrap();
    let selected = backend.run_selected(image(), &["1"]).unwrap();
    let names: Vec<&str> = selected.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["1"]);
    assert_eq!(selected.get("1").unwrap(), all.get("1").unwrap());
    assert!(matches!(
        selected.get("0"),
        Err(BackendError::MissingOutput { .. })
    ));
}
