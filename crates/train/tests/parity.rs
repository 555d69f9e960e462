//! One training step of detbench-train against the same step in PyTorch (CPU, live peer).
//!
//! Both sides load the same TorchScript file (small Mask R-CNN: min_size 320, batch 2), run with
//! deterministic algorithms and 2 intra-op threads, and seed the generator just before the step.
//! Python rebuilds Rust's first batch from the COCO files the reference's way (pycocotools,
//! ConvertCocoPolysToMask, RandomHorizontalFlip) and must find it identical; on that batch its
//! loss components must equal Rust's within 1e-4 relative, and after one SGD step its parameters
//! and BatchNorm buffers must equal the module Rust saved within 1e-5. A negative control checks
//! that the step moved the parameters by more than that tolerance, so a Rust side that skipped
//! or garbled the update could not pass.

#![cfg(feature = "torch")]

mod common;

use std::path::Path;

use detbench_train::{Device, ModelKind, Precision, TrainConfig};
use serde_json::Value;

#[test]
fn one_step_matches_pytorch() {
    check_one_step(Precision::Fp32, 2);
}

/// bf16 autocast (the CPU's autocast dtype) around the scripted forward pass: the shim's
/// autocast state reaches the TorchScript interpreter as Python's `torch.autocast` does.
#[test]
fn one_bf16_autocast_step_matches_pytorch() {
    check_one_step(Precision::Bf16, 1);
}

/// libtorch's generator, thread count and deterministic switch are process-wide: the two steps
/// must not run at the same time (the test harness runs tests on parallel threads).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_one_step(precision: Precision, batch: usize) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let model = common::small_maskrcnn();
    let dir = tempfile::tempdir().unwrap();
    let config = one_step_config(&model, dir.path(), precision, batch);
    let results = detbench_train::torch::train(&config).unwrap();
    assert_eq!(
        results.loss_names,
        [
            "loss_classifier",
            "loss_box_reg",
            "loss_mask",
            "loss_objectness",
            "loss_rpn_box_reg"
        ]
    );
    let results_file = dir.path().join("results.json");
    std::fs::write(&results_file, serde_json::to_string(&results).unwrap()).unwrap();
    let report = python_step_report(&model, dir.path(), &results_file);
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_same_step(&report, precision);
}

/// One deterministic step on the CPU, saving the module after it and the batch it used.
fn one_step_config(model: &Path, dir: &Path, precision: Precision, batch: usize) -> TrainConfig {
    let mut config = TrainConfig::new(
        ModelKind::MaskrcnnResnet50Fpn,
        model.to_path_buf(),
        common::annotations(),
        common::images(),
    );
    config.batch = batch;
    config.precision = precision;
    config.device = Device::Cpu;
    config.warmup_steps = 0;
    config.timed_steps = Some(1);
    config.threads = Some(2);
    config.workers = 1;
    config.deterministic = true;
    config.seed = 3;
    // No warm-up factor: the step's lr (0.0025) moves the parameters far beyond the 1e-5
    // tolerance (the warm-up's first lr, 2.5e-6, would not).
    config.recipe.warmup_factor = 1.0;
    config.save = Some(dir.join("after.pt"));
    config.dump_first_batch = Some(dir.join("batch.npz"));
    config
}

/// tools/train/parity_step.py's report: the same step in PyTorch on the dumped batch, compared
/// with the Rust step's results and saved module.
fn python_step_report(model: &Path, dir: &Path, results_file: &Path) -> Value {
    let out = common::python()
        .arg(common::repo_root().join("tools/train/parity_step.py"))
        .arg("--model-file")
        .arg(model)
        .arg("--batch")
        .arg(dir.join("batch.npz"))
        .arg("--results")
        .arg(results_file)
        .arg("--rust-module")
        .arg(dir.join("after.pt"))
        .arg("--annotations")
        .arg(common::annotations())
        .arg("--images")
        .arg(common::images())
        .args(["--threads", "2"])
        .output()
        .expect("run parity_step.py");
    assert!(
        out.status.success(),
        "parity_step.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The batch, lr, losses and the module after the step agree with PyTorch's; autocast (bf16)
/// took effect; the step moved the parameters (negative control).
fn assert_same_step(report: &Value, precision: Precision) {
    // The batch: pixels, boxes, labels and masks identical to the reference's pipeline.
    for (image, diffs) in report["data"].as_object().unwrap() {
        for (key, diff) in diffs.as_object().unwrap() {
            if let Some(d) = diff
                .as_f64()
                .filter(|_| !matches!(key.as_str(), "image_id" | "flipped"))
            {
                assert_eq!(
                    d, 0.0,
                    "{image} {key} differs from the reference pipeline by {d}"
                );
            }
        }
    }
    assert_eq!(
        report["lr"]["python"].as_f64(),
        report["lr"]["rust"].as_f64(),
        "the step's lr"
    );
    for (name, l) in report["losses"].as_object().unwrap() {
        let rel = l["rel"].as_f64().unwrap();
        assert!(
            rel <= 1e-4,
            "{name}: rust {} python {} (relative {rel})",
            l["rust"],
            l["python"]
        );
    }
    for kind in ["parameters", "buffers"] {
        let m = &report["modules"][kind];
        let diff = m["max_abs_diff"].as_f64().unwrap_or(f64::INFINITY);
        assert!(
            diff <= 1e-5,
            "{kind} after one step differ by {diff} ({})",
            m["worst"]
        );
    }
    if precision == Precision::Bf16 {
        // Autocast took effect: without it the same step gives another loss.
        let with = report["total"]["rust"].as_f64().unwrap();
        let without = report["total"]["python_without_autocast"].as_f64().unwrap();
        assert!(
            (with - without).abs() > 1e-4 * without.abs(),
            "bf16 {with} vs fp32 {without}"
        );
    }
    // Negative control: the step moved the parameters well beyond the tolerance.
    let moved = report["modules"]["parameters"]["max_abs_change_from_initial"]
        .as_f64()
        .unwrap();
    assert!(
        moved > 1e-4,
        "the step changed no parameter by more than {moved}"
    );
}
