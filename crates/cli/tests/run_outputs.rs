//! `detbench run` on the first 5 images of the shipped subset with the real YOLOX-Nano: the
//! results files, their fields, the detections file and the results store.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn detbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
}

fn sha256(path: &Path) -> String {
    detbench_assets::sha256_file(path).unwrap()
}

#[test]
fn five_images_write_every_documented_field() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let dets = tmp.path().join("dets.json");
    let db = tmp.path().join("store.db");
    let run = detbench()
        .args([
            "run",
            "--model",
            "yolox_nano",
            "--limit",
            "5",
            "--warmup",
            "2",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--save-detections")
        .arg(&dets)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    // The published table's header and a yolox row.
    assert!(stdout.contains(
        "| Model | Input | Backend/precision | AP | AP50 | AP75 | APs | APm | APl | AR1 | AR10 | \
         AR100 | ARs | ARm | ARl | images/s | p99 ms | total s | mean ms | median ms | min ms |"
    ));
    assert!(
        stdout.contains("| yolox_nano | 416x416 | onnxruntime 1.31.1 cpu fp32 |"),
        "{stdout}"
    );

    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["schema_version"], 1);
    assert!(results["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(results["command_line"].as_array().unwrap().len() > 3);
    assert!(results["environment"]["cpu"].is_object());
    assert_eq!(results["skipped"], serde_json::json!([]));
    let m = &results["models"][0];
    assert_model_row(m);
    assert_latency(&m["latency"]);
    assert_detections_file(&dets, m);
    assert_md_and_csv_hold_the_row(&out);

    // The run is in the store.
    let store = detbench_report::Store::open(&db).unwrap();
    assert_eq!(store.runs().unwrap().len(), 1);
}

/// The model's row in results.json: identity, model file, engine, dataset, accuracy, detection
/// counts, reference agreement and provenance.
fn assert_model_row(m: &Value) {
    assert_eq!(m["name"], "yolox_nano");
    assert_eq!(m["status"], "ok");
    assert_eq!(m["family"], "Yolox");
    assert_eq!(m["input"], "416x416");
    assert_eq!(m["batch_size"], 1);
    assert_eq!(
        m["model"]["sha256"],
        "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    );
    assert_eq!(m["backend"]["engine"], "onnxruntime");
    let gt = detbench_assets::shared::instances_subset().unwrap();
    assert_eq!(m["dataset"]["images"], 5);
    assert_eq!(m["dataset"]["annotation_sha256"], sha256(&gt).as_str());
    let stats = m["bbox"]["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 12);
    assert!(stats[0].as_f64().unwrap() > 0.0);
    assert_eq!(m["bbox"]["per_class"].as_array().unwrap().len(), 80);
    assert!(m["detections_per_image"]["mean"].as_f64().unwrap() > 0.0);
    assert_eq!(m["failed_images"], serde_json::json!([]));
    // Reference agreement on these 5 images: the target is >= 99% fully matched.
    let agreement = &m["reference_agreement"];
    assert_eq!(agreement["kind"], "boxes");
    assert_eq!(agreement["images"], 5);
    assert!(
        agreement["matched_fraction"].as_f64().unwrap() >= 0.99,
        "{agreement}"
    );
    assert!(m["provenance"]["pipeline"].is_object());
    assert_eq!(m["provenance"]["harness"]["warmup_iterations"], 2);
}

/// Latency: 4 stages with 5 raw samples each, LoadGen percentiles, flagged (5 < 100 calls).
fn assert_latency(latency: &Value) {
    assert!(
        latency["percentile_definition"]
            .as_str()
            .unwrap()
            .contains("LoadGen")
    );
    assert_eq!(latency["warmup_iterations"], 2);
    assert_eq!(latency["timed_images"], 5);
    assert_eq!(
        latency["end_to_end_samples_ms"].as_array().unwrap().len(),
        5
    );
    assert_eq!(latency["includes_decode"], false);
    let stages: Vec<&str> = latency["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["decode", "preprocess", "inference", "postprocess"]);
    for s in latency["stages"].as_array().unwrap() {
        assert_eq!(s["samples_ms"].as_array().unwrap().len(), 5);
        for key in [
            "count", "mean", "median", "min", "max", "std", "p90", "p95", "p99",
        ] {
            assert!(s["summary"][key].is_number(), "{key}");
        }
    }
    assert_eq!(latency["valid"], false);
    assert!(
        latency["validity_notes"][0]
            .as_str()
            .unwrap()
            .contains("only 5 timed calls")
    );
}

/// The detections file is a COCO results file holding as many detections as the run made.
fn assert_detections_file(dets: &Path, m: &Value) {
    let saved: Value = serde_json::from_slice(&std::fs::read(dets).unwrap()).unwrap();
    let saved = saved.as_array().unwrap();
    let per_image_mean = m["detections_per_image"]["mean"].as_f64().unwrap();
    assert_eq!(saved.len() as f64, (per_image_mean * 5.0).round());
    for key in ["image_id", "category_id", "bbox", "score"] {
        assert!(!saved[0][key].is_null(), "{key}");
    }
}

/// results.md and results.csv hold the same row.
fn assert_md_and_csv_hold_the_row(out: &Path) {
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| yolox_nano | 416x416 |"));
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("model,batch_size,status,"));
    assert!(lines[1].starts_with("yolox_nano,1,ok,416x416,onnxruntime,"));
}

#[test]
fn batch_sizes_a_fixed_batch_model_cannot_take_are_skipped_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let run = detbench()
        .args([
            "run",
            "--model",
            "yolox_nano",
            "--limit",
            "3",
            "--warmup",
            "1",
            "--batch",
            "1,2",
        ])
        .args(["--quiet", "--no-store", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    let results: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("results.json")).unwrap()).unwrap();
    let sizes: Vec<u64> = results["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["batch_size"].as_u64().unwrap())
        .collect();
    let skipped = results["skipped"].as_array().unwrap();
    // A model with a dynamic batch runs both sizes; one with a fixed batch of 1 skips 2 and
    // says so.
    if skipped.is_empty() {
        assert_eq!(sizes, [1, 2]);
    } else {
        assert_eq!(sizes, [1]);
        assert_eq!(
            skipped[0]["reason"],
            "model's batch is fixed at 1; skipping batch 2"
        );
        assert!(
            stderr.contains("model's batch is fixed at 1; skipping batch 2"),
            "{stderr}"
        );
    }
}
