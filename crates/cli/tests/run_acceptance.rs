//! The acceptance check: the README's run command (`detbench run`, no options) on all
//! 206 images of the shipped subset prints the YOLOX-Nano table with AP within ±0.3 points of
//! the reference (`../shared/reference/yolox_nano_416/stats.json`, pycocotools); the other
//! shipped detection models and the top-down keypoint pipeline are checked against their
//! references the same way.

use std::process::Command;

use serde_json::Value;

fn reference_stats(folder: &str) -> Vec<f64> {
    let path = detbench_assets::shared::reference()
        .unwrap()
        .join(folder)
        .join("stats.json");
    let stats: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn run(args: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_detbench"))
        .arg("run")
        .args(args)
        .args(["--quiet", "--no-store", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    serde_json::from_slice(&std::fs::read(tmp.path().join("results.json")).unwrap()).unwrap()
}

fn check(model: &Value, reference_folder: &str) {
    let reference = reference_stats(reference_folder);
    let stats: Vec<f64> = model["bbox"]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let name = model["name"].as_str().unwrap();
    assert_eq!(model["dataset"]["images"], 206, "{name}");
    assert_eq!(model["failed_images"], serde_json::json!([]), "{name}");
    let points = (stats[0] - reference[0]).abs() * 100.0;
    assert!(
        points <= 0.3,
        "{name}: AP {} vs reference {} ({points:.3} points)",
        stats[0],
        reference[0]
    );
    let agreement = &model["reference_agreement"];
    assert!(
        agreement["matched_fraction"].as_f64().unwrap() >= 0.99,
        "{name}: {agreement}"
    );
}

#[test]
fn default_run_scores_yolox_within_0_3_ap_of_the_reference() {
    let results = run(&[]);
    let yolox = &results["models"][0];
    assert_eq!(yolox["name"], "yolox_nano");
    check(yolox, "yolox_nano_416");
    assert_eq!(yolox["latency"]["timed_images"], 206);
}

#[test]
fn nanodet_and_fastestdet_score_within_0_3_ap_of_their_references() {
    let results = run(&[
        "--model",
        "nanodet_m_320,nanodet_m_416,fastestdet",
        "--warmup",
        "2",
    ]);
    let models = results["models"].as_array().unwrap();
    for (model, folder) in models
        .iter()
        .zip(["nanodet_m_320", "nanodet_m_416", "fastestdet_352"])
    {
        check(model, folder);
    }
}

#[test]
fn simplepose_with_yolox_boxes_scores_within_0_3_ap_of_the_reference() {
    let results = run(&["--model", "simplepose_yolox", "--warmup", "2"]);
    let model = &results["models"][0];
    assert_eq!(model["status"], "ok");
    // Keypoint models run on the images of the person-keypoint ground truth (128 in the subset).
    assert_eq!(model["dataset"]["images"], 128);
    let path = detbench_assets::shared::reference()
        .unwrap()
        .join("ultralight_simplepose/stats.json");
    let reference: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let expected = reference["stats_yolox_boxes"][0].as_f64().unwrap();
    let ap = model["keypoints"]["stats"][0].as_f64().unwrap();
    assert!(
        (ap - expected).abs() * 100.0 <= 0.3,
        "keypoint AP {ap} vs reference {expected}"
    );
    // Joints, not whole results: see crates/models/tests/subset_reference.rs
    // (`KeypointTarget::Joints`) for why the YOLOX-box cascade is compared joint by joint.
    let agreement = &model["reference_agreement"];
    assert!(
        agreement["joint_fraction"].as_f64().unwrap() >= 0.99,
        "{agreement}"
    );
}
