//! The libtorch backend's optional call settings give the same D2Go outputs as the default:
//! `$DETBENCH_TORCH_GRAD_MODE=inference` (`torch.inference_mode()`) and
//! `$DETBENCH_TORCH_EXECUTOR=no-optimize` (the unoptimised graph), each held to the reference's
//! qnnpack parity tensors with the tolerances of `torch_qnnpack.rs` (qnnpack, because its kernels
//! do not depend on the CPU's vector extensions). Unknown values are refused with the variable's
//! name and the accepted values.
//!
//! Its own test binary: these are process-wide settings read from the environment.
#![cfg(feature = "torch")]

mod d2go;

use d2go::{D2GO, compare_with_reference, model, torch_cpu};
use detbench_backends::torch::{EXECUTOR_ENV, GRAD_MODE_ENV, QENGINE_ENV};

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

/// Sets `variable` to `value` and checks that opening the model fails with a message naming
/// both and listing `accepted` among the expected values.
fn assert_refused(path: &std::path::Path, variable: &str, value: &str, accepted: &str) {
    // SAFETY: this binary's only test, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(variable, value) };
    let error = match detbench_backends::open(path, &torch_cpu()) {
        Ok(_) => panic!("the backend opened with {variable}={value}"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&format!("{variable}={value}")) && error.contains(&format!("`{accepted}`")),
        "{error}"
    );
}

#[test]
fn optional_settings_keep_the_outputs_and_bad_values_are_refused() {
    let path = model(D2GO);
    // SAFETY (every set_var/remove_var below): this binary's only test, so no other thread reads
    // the environment meanwhile.
    unsafe { std::env::set_var(QENGINE_ENV, "qnnpack") };

    assert_refused(&path, GRAD_MODE_ENV, "bogus", "inference");

    unsafe { std::env::set_var(GRAD_MODE_ENV, "inference") };
    let mut backend = detbench_backends::open(&path, &torch_cpu()).unwrap();
    assert_eq!(
        option(backend.as_ref(), "grad_mode").as_deref(),
        Some("inference_mode")
    );
    assert_matches_qnnpack_reference(backend.as_mut(), "inference mode");
    drop(backend);

    unsafe { std::env::remove_var(GRAD_MODE_ENV) };
    assert_refused(&path, EXECUTOR_ENV, "bogus", "no-optimize");

    unsafe { std::env::set_var(EXECUTOR_ENV, "no-optimize") };
    let mut backend = detbench_backends::open(&path, &torch_cpu()).unwrap();
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
