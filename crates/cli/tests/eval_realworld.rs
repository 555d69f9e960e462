//! `detbench eval` on files shaped like real exports (crates/eval/tests/fixtures/realworld,
//! made by tools/realworld_fixtures.py with pycocotools 2.0.11's goldens): the printed summary
//! is pycocotools' line for line, the options for part of the images and for `--max-dets`
//! without 100, and warnings that all come out as detbench's own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tests/fixtures/realworld")
}

fn eval(gt: &Path, dt: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
        .arg("eval")
        .arg("--gt")
        .arg(gt)
        .arg("--dt")
        .arg(dt)
        .args(extra)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn golden(pick: impl Fn(&Value) -> bool) -> Vec<String> {
    let text = std::fs::read_to_string(fixtures().join("goldens.json")).unwrap();
    let goldens: Value = serde_json::from_str(&text).unwrap();
    let golden = goldens["goldens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| pick(g))
        .unwrap()
        .clone();
    golden["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

fn lines(out: &Output) -> Vec<String> {
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn cvat_export_prints_pycocotools_summary() {
    let gt = fixtures().join("cvat_gt.json");
    let dt = fixtures().join("cvat_dt.json");
    let out = eval(&gt, &dt, &["--iou-type", "segm"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        lines(&out),
        golden(|g| g["name"] == "cvat" && g["iou_type"] == "segm")
    );
    assert!(
        stderr.contains("warning: ") && stderr.contains("metadata value(s)"),
        "{stderr}"
    );

    let out = eval(&gt, &dt, &["--iou-type", "bbox", "--max-dets", "1,10,1000"]);
    assert_eq!(
        lines(&out),
        golden(|g| g["max_dets"] == serde_json::json!([1, 10, 1000]))
    );
    let out = eval(
        &gt,
        &dt,
        &[
            "--iou-type",
            "bbox",
            "--max-dets",
            "1,10,1000",
            "--stats-at-largest-max-dets",
        ],
    );
    assert!(lines(&out)[0].contains("maxDets=1000"), "{:?}", lines(&out));
}

#[test]
fn part_of_the_images_by_list_file_or_detections() {
    let gt = fixtures().join("cvat_gt.json");
    let dt = fixtures().join("cvat_dt.json");
    let want = golden(|g| g["image_ids"].is_array());
    let out = eval(&gt, &dt, &["--iou-type", "bbox", "--image-ids", "3,2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(lines(&out), want);
    let tmp = tempfile::tempdir().unwrap();
    let ids = tmp.path().join("ids.txt");
    std::fs::write(&ids, "2\n3\n").unwrap();
    let out = eval(&gt, &dt, &["--iou-type", "bbox", "--image-ids"]);
    assert_eq!(out.status.code(), Some(2), "clap wants a value");
    let out = Command::new(env!("CARGO_BIN_EXE_detbench"))
        .args(["eval", "--iou-type", "bbox"])
        .arg("--gt")
        .arg(&gt)
        .arg("--dt")
        .arg(&dt)
        .arg("--image-ids")
        .arg(&ids)
        .output()
        .unwrap();
    assert_eq!(lines(&out), want);

    // Detections of images 2 and 3 only: a warning, and the flag that scores just those.
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&dt).unwrap()).unwrap();
    let part: Vec<&Value> = all
        .iter()
        .filter(|d| d["image_id"] == 2 || d["image_id"] == 3)
        .collect();
    let part_path = tmp.path().join("part.json");
    std::fs::write(&part_path, serde_json::to_vec(&part).unwrap()).unwrap();
    let out = eval(&gt, &part_path, &["--iou-type", "bbox"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("4 of the 6 evaluated images have no detection"),
        "{stderr}"
    );
    let out = eval(
        &gt,
        &part_path,
        &["--iou-type", "bbox", "--images-with-detections"],
    );
    assert_eq!(lines(&out), want);
    assert!(
        text(&out.stderr).contains("on 2 images"),
        "{}",
        text(&out.stderr)
    );
}

/// hotcoco prints its own `hotcoco: ...` lines while loading; they come out as detbench's
/// warnings instead.
#[test]
fn hotcocos_own_lines_come_out_as_detbench_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images": [{"id": 1, "height": 50, "width": 50}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [
              {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
              {"id": 7, "image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "area": 100}]}"#,
    )
    .unwrap();
    let dt = tmp.path().join("dt.json");
    std::fs::write(
        &dt,
        r#"[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9}]"#,
    )
    .unwrap();
    let out = eval(&gt, &dt, &["--iou-type", "bbox"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("hotcoco:")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning: ") && l.contains("duplicate annotation id")),
        "{stderr}"
    );
}
