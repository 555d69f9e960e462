//! `detbench run` when things go wrong: a missing model file, an unknown model name, a corrupt
//! and a missing image. Failures become rows and listed images, never zeros, and the run goes on.

use std::process::Command;

use serde_json::Value;

fn detbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
}

#[test]
fn a_missing_model_file_is_a_failed_row_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let empty_models = tmp.path().join("models");
    std::fs::create_dir(&empty_models).unwrap();
    let out = tmp.path().join("out");
    let run = detbench()
        .args([
            "run",
            "--model",
            "yolox_nano,fastestdet",
            "--limit",
            "2",
            "--quiet",
            "--no-store",
        ])
        .arg("--model-dir")
        .arg(&empty_models)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    let expected = empty_models.join("yolox_nano.onnx").display().to_string();
    assert!(
        stderr.contains(&expected) && stderr.contains("detbench zoo"),
        "{stderr}"
    );
    assert!(stderr.contains("2 of 2 rows failed"), "{stderr}");
    assert!(
        stdout.contains("| yolox_nano | 416x416 |") && stdout.contains("failed: "),
        "{stdout}"
    );
    // The results files are written all the same, with failed rows and no numbers.
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    for m in results["models"].as_array().unwrap() {
        let status = m["status"].as_str().unwrap();
        assert!(status.starts_with("failed: model file "), "{status}");
        assert!(status.contains("detbench zoo"), "{status}");
        assert!(m.get("bbox").is_none());
        assert!(m["latency"].is_null());
    }
}

#[test]
fn an_unknown_model_lists_the_catalogue() {
    let run = detbench()
        .args(["run", "--model", "no_such_model", "--no-store"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("unknown model `no_such_model`") && stderr.contains("yolox_nano"),
        "{stderr}"
    );
}

#[test]
fn corrupt_and_missing_images_are_listed_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let shared = detbench_assets::shared::coco_images().unwrap();
    let gt: Value = serde_json::from_slice(
        &std::fs::read(detbench_assets::shared::instances_subset().unwrap()).unwrap(),
    )
    .unwrap();
    let mut listed: Vec<Value> = gt["images"].as_array().unwrap().clone();
    listed.sort_by_key(|i| i["id"].as_u64().unwrap());
    listed.truncate(4);
    // Image 1 intact, image 2 truncated to 300 bytes, image 3 intact, image 4 missing.
    for (k, image) in listed.iter().enumerate() {
        let name = image["file_name"].as_str().unwrap();
        let bytes = std::fs::read(shared.join(name)).unwrap();
        match k {
            1 => std::fs::write(images.join(name), &bytes[..300]).unwrap(),
            3 => {}
            _ => std::fs::write(images.join(name), &bytes).unwrap(),
        }
    }
    let mut small = gt.clone();
    small["images"] = Value::Array(listed.clone());
    let annotations = tmp.path().join("gt.json");
    std::fs::write(&annotations, serde_json::to_vec(&small).unwrap()).unwrap();
    let out = tmp.path().join("out");
    let run = detbench()
        .args(["run", "--warmup", "1", "--quiet", "--no-store"])
        .arg("--images-dir")
        .arg(&images)
        .arg("--annotations")
        .arg(&annotations)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("1 of 4 image files are missing"),
        "{stderr}"
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let m = &results["models"][0];
    assert_eq!(m["status"], "ok");
    let failed: Vec<&str> = m["failed_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    let name = |k: usize| listed[k]["file_name"].as_str().unwrap();
    assert_eq!(failed, [name(1), name(3)]);
    assert_eq!(m["latency"]["timed_images"], 2);
    // Both are listed on stdout with their reasons.
    assert!(
        stdout.contains("2 failed image(s)") && stdout.contains(name(1)),
        "{stdout}"
    );
}
