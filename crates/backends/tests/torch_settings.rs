//! The libtorch backend's optional call settings give the same D2Go outputs as the default:
//! `GradMode::Inference` (`torch.inference_mode()`) and `TorchExecutor::NoOptimize` (the
//! unoptimised graph), each held to the reference's qnnpack parity tensors with the tolerances
//! of `torch_qnnpack.rs` (qnnpack, because its kernels do not depend on the CPU's vector
//! extensions), and each recorded in the backend's options. Their environment fallbacks
//! (`$DETBENCH_TORCH_GRAD_MODE`, `$DETBENCH_TORCH_EXECUTOR`) refuse unknown values with the
//! variable's name and the accepted values.
//!
//! Its own test binary: the quantized engine is a process-wide setting.
#![cfg(feature = "torch")]

mod d2go;

use d2go::{D2GO, compare_with_reference, model, torch_cpu_with};
use detbench_backends::config::{EXECUTOR_ENV, GRAD_MODE_ENV};
use detbench_backends::{GradMode, QuantizedEngine, TorchExecutor, TorchSettings};

fn option(backend: &dyn detbench_backends::Backend, key: &str) -> Option<String> {
    backend
        .describe()
        .options
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn assert_matches_qnnpack_reference(backend: &mut dyn detbench_backends::Backend, setting: &str) {
    for (image, box_diff, score_diff) in compare_with_reference(backend, "qnnpack") {
        assert!(
            box_diff <= 1e-4,
            "{setting}, {image}: boxes differ by {box_diff} px"
        );
        assert!(
            score_diff <= 1e-6,
            "{setting}, {image}: scores differ by {score_diff}"
        );
    }
}

/// `variable=value` is refused with a message naming both and listing `accepted`.
fn assert_refused(variable: &str, value: &str, accepted: &str) {
    let lookup = |name: &str| (name == variable).then(|| value.to_owned());
    let error = TorchSettings::from_variables(lookup)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("{variable}={value}")) && error.contains(&format!("`{accepted}`")),
        "{error}"
    );
}

#[test]
fn optional_settings_keep_the_outputs_and_bad_values_are_refused() {
    let path = model(D2GO);
    assert_refused(GRAD_MODE_ENV, "bogus", "inference");
    assert_refused(EXECUTOR_ENV, "bogus", "no-optimize");

    let mut config = torch_cpu_with(QuantizedEngine::Qnnpack);
    config.torch.grad_mode = GradMode::Inference;
    let mut backend = detbench_backends::open(&path, &config).unwrap();
    assert_eq!(
        option(backend.as_ref(), "grad_mode").as_deref(),
        Some("inference_mode")
    );
    assert_matches_qnnpack_reference(backend.as_mut(), "inference mode");
    drop(backend);

    let mut config = torch_cpu_with(QuantizedEngine::Qnnpack);
    config.torch.executor = TorchExecutor::NoOptimize;
    let mut backend = detbench_backends::open(&path, &config).unwrap();
    assert_eq!(
        option(backend.as_ref(), "graph_executor_optimize").as_deref(),
        Some("off")
    );
    assert_eq!(
        option(backend.as_ref(), "grad_mode").as_deref(),
        Some("no_grad")
    );
    assert_matches_qnnpack_reference(backend.as_mut(), "no-optimize executor");
}
