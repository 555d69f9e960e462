//! `detbench zoo`: every catalogue entry is listed, shipped files are found with matching
//! sha256, and missing files come with instructions.

use std::process::Command;

fn zoo(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_detbench"))
        .arg("zoo")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn shipped_models_are_present_and_match_their_sha256() {
    let (ok, stdout) = zoo(&[]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains(
        "| yolox_nano | Yolox | 416x416 | ONNX | Apache-2.0 | box AP 25.8 | yolox_nano.onnx | yes | match |"
    ), "{stdout}");
    for entry in detbench_models::catalogue() {
        assert!(
            stdout.contains(&format!("| {} |", entry.name)),
            "{} missing",
            entry.name
        );
    }
}

#[test]
fn an_empty_model_folder_lists_how_to_get_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let (ok, stdout) = zoo(&["--model-dir", dir]);
    assert!(ok);
    let total = detbench_models::catalogue().len();
    assert!(
        stdout.contains(&format!("Missing files ({total} of {total})")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("- yolox_nano -> {dir}/yolox_nano.onnx")),
        "{stdout}"
    );
    assert!(stdout.contains(
        "expected sha256: 695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
    ));

    // A file with the right name but other bytes is flagged.
    std::fs::write(tmp.path().join("fastestdet.onnx"), b"not the model").unwrap();
    let (_, stdout) = zoo(&["--model-dir", dir]);
    assert!(
        stdout.contains("| fastestdet.onnx | yes | MISMATCH (expected 31cb14c0"),
        "{stdout}"
    );

    let (_, json) = zoo(&["--model-dir", dir, "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), total);
    assert_eq!(rows[0]["name"], "yolox_nano");
    assert_eq!(rows[0]["present"], false);
}
