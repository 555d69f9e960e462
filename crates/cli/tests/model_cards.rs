//! Bring your own model, from the command line (issue 12): `detbench run --model-file` with and
//! without a card, user cards joining `detbench zoo`, `detbench zoo --card`, a custom dataset
//! through the class map, and the bad inputs: a card with a missing field or a wrong type (field
//! and line), a class map that does not fit the dataset (the first unmatched class), an output
//! shape that contradicts the card (both shapes), a file no layout fits (its inputs and outputs
//! and the card fields to fill), and the int8 "detects nothing" warning.
//!
//! Every command gets its own `XDG_CONFIG_HOME`, so the user's own cards never join.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn models() -> PathBuf {
    detbench_assets::shared::models().unwrap()
}

/// `detbench ARGS` with a private config folder.
fn detbench(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
        .env("XDG_CONFIG_HOME", config)
        .args(args)
        .output()
        .unwrap()
}

/// `detbench run ARGS --quiet --no-store --out OUT`: (success, stderr, results.json if written).
fn run(tmp: &Path, out: &str, args: &[&str]) -> (bool, String, Option<Value>) {
    let out_dir = tmp.join(out);
    let mut all: Vec<&str> = vec!["run"];
    all.extend_from_slice(args);
    let out_arg = out_dir.display().to_string();
    all.extend_from_slice(&["--quiet", "--no-store", "--warmup", "1", "--out", &out_arg]);
    let output = detbench(tmp, &all);
    let results = std::fs::read(out_dir.join("results.json"))
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).unwrap());
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        results,
    )
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

/// The built-in card of `name` with `edit` applied (line replacements).
fn card_text(name: &str, edits: &[(&str, &str)]) -> String {
    let mut card = detbench_models::zoo::builtin_card_text(name)
        .unwrap()
        .to_owned();
    for (from, to) in edits {
        assert!(card.contains(from), "{name}: no `{from}`");
        card = card.replace(from, to);
    }
    card
}

fn bbox_stats(row: &Value) -> Vec<f64> {
    row["bbox"]["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// `--model-file` without a card: an Ultralytics export configures itself from its metadata and
/// is scored as the validator scores it, exactly as its shipped card does.
#[test]
fn a_model_file_runs_without_a_card_as_its_shipped_card_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine.onnx");
    std::fs::copy(models().join("yolo11n_int8_320.onnx"), &mine).unwrap();
    let (ok, stderr, results) = run(
        tmp.path(),
        "out",
        &[
            "--model-file",
            &text(&mine),
            "--model",
            "yolo11n_int8_320",
            "--limit",
            "6",
        ],
    );
    assert!(ok, "{stderr}");
    let rows = results.unwrap()["models"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 2);
    let (file, card) = (&rows[0], &rows[1]);
    assert_eq!(file["name"], "mine");
    assert_eq!(file["family"], "Ultralytics");
    assert_eq!(file["input"], "320x320");
    let config = &file["provenance"]["pipeline"]["pipeline"]["config"];
    assert_eq!(config["nms"]["conf"], json!(0.001f32 as f64), "{config}");
    assert_eq!(config["geometry"], "validator", "{config}");
    assert!(bbox_stats(file)[0] > 0.1, "{file}");
    assert_eq!(
        bbox_stats(file),
        bbox_stats(card),
        "same model, same settings"
    );
}

/// A file no layout fits: the error lists its inputs and outputs and the card fields to fill.
#[test]
fn an_unknown_layout_lists_the_inputs_outputs_and_card_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let yolox = text(&models().join("yolox_nano.onnx"));
    let (ok, stderr, _) = run(tmp.path(), "out", &["--model-file", &yolox]);
    assert!(!ok);
    assert!(
        stderr.contains("images [1, 3, 416, 416]") && stderr.contains("output [1, 3549, 85]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`family`") && stderr.contains("[output] layout/task/classes"),
        "{stderr}"
    );
    // With its card it runs.
    let card = tmp.path().join("yolox.toml");
    std::fs::write(&card, card_text("yolox_nano", &[])).unwrap();
    let (ok, stderr, results) = run(
        tmp.path(),
        "carded",
        &[
            "--model-file",
            &yolox,
            "--card",
            &text(&card),
            "--limit",
            "2",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(results.unwrap()["models"][0]["family"], "Yolox");
}

/// A card with a missing field or a wrong type is refused before anything runs, naming the
/// card, the field and the line.
#[test]
fn a_bad_card_names_the_field_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    std::fs::write(
        &missing,
        card_text(
            "yolo11n_int8_320",
            &[("file = \"yolo11n_int8_320.onnx\"\n", "")],
        ),
    )
    .unwrap();
    let (ok, stderr, results) = run(tmp.path(), "out", &["--card", &text(&missing)]);
    assert!(!ok && results.is_none());
    assert!(
        stderr.contains("missing.toml") && stderr.contains("missing field `file`"),
        "{stderr}"
    );
    assert!(stderr.contains("line "), "{stderr}");

    let wrong = tmp.path().join("wrong.toml");
    let card = card_text(
        "yolo11n_int8_320",
        &[("size = [320, 320]", "size = \"320x320\"")],
    );
    let line = card.lines().position(|l| l.starts_with("size =")).unwrap() + 1;
    std::fs::write(&wrong, card).unwrap();
    let (ok, stderr, _) = run(tmp.path(), "out", &["--card", &text(&wrong)]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("wrong.toml, line {line}: field `input.size`")),
        "{stderr}"
    );
}

/// The card says `[1, 84, 8400]` (640 input); the file gives `[1, 84, 2100]`.
#[test]
fn an_output_shape_that_contradicts_the_card_names_both_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let card = tmp.path().join("v8.toml");
    std::fs::write(&card, card_text("yolov8n_int8_640", &[])).unwrap();
    let file = text(&models().join("yolo11n_int8_320.onnx"));
    let (ok, stderr, results) = run(
        tmp.path(),
        "out",
        &[
            "--model-file",
            &file,
            "--card",
            &text(&card),
            "--limit",
            "2",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("[1, 84, 2100]") && stderr.contains("[1, 84, 8400]"),
        "{stderr}"
    );
    let status = results.unwrap()["models"][0]["status"].clone();
    assert!(
        status.as_str().unwrap().contains("[1, 84, 8400]"),
        "{status}"
    );
}

/// An int8 model with nothing over its threshold on the first images: a warning, on stderr
/// and in the row, and the run goes on.
#[test]
fn an_int8_model_with_nothing_over_the_threshold_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let card = tmp.path().join("strict.toml");
    std::fs::write(
        &card,
        card_text(
            "yolo11n_int8_320",
            &[("score_threshold = 0.001", "score_threshold = 0.999")],
        ),
    )
    .unwrap();
    let file = text(&models().join("yolo11n_int8_320.onnx"));
    let (ok, stderr, results) = run(
        tmp.path(),
        "out",
        &[
            "--model-file",
            &file,
            "--card",
            &text(&card),
            "--limit",
            "9",
        ],
    );
    assert!(ok, "{stderr}");
    let expected = "quantized (int8) model gave no result over the score threshold 0.999";
    assert!(stderr.contains(expected), "{stderr}");
    let row = &results.unwrap()["models"][0];
    assert!(
        row["provenance"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains(expected),
        "{row}"
    );
}

/// The shipped subset with three categories kept and renumbered (person 1 -> 1, car 3 -> 2,
/// dog 18 -> 3).
fn renumbered_dataset(dir: &Path) -> PathBuf {
    const KEPT: [(u64, u64, &str); 3] = [(1, 1, "person"), (3, 2, "car"), (18, 3, "dog")];
    let subset = detbench_assets::shared::instances_subset().unwrap();
    let mut doc: Value = serde_json::from_slice(&std::fs::read(subset).unwrap()).unwrap();
    let annotations: Vec<Value> = doc["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let old = a["category_id"].as_u64().unwrap();
            let (_, new, _) = KEPT.iter().find(|(o, _, _)| *o == old)?;
            let mut a = a.clone();
            a["category_id"] = json!(new);
            Some(a)
        })
        .collect();
    doc["annotations"] = json!(annotations);
    doc["categories"] = json!(
        KEPT.iter()
            .map(|(_, id, name)| json!({"id": id, "name": name, "supercategory": "x"}))
            .collect::<Vec<_>>()
    );
    let path = dir.join("custom.json");
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

fn class_ap(row: &Value, id: u64) -> Value {
    row["bbox"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category_id"] == id)
        .unwrap()["ap"]
        .clone()
}

/// A custom dataset: the model's COCO class names matched to the dataset's categories by name.
/// Strict by default (the first class the dataset lacks is named); with `unmatched = "drop"`
/// each kept category scores exactly its AP on the full subset (with no per-image cap shared
/// between categories). A COCO id map on the renumbered
/// dataset is refused: id 2 is `car` there, not `bicycle`.
#[test]
fn a_custom_dataset_feeds_the_class_map() {
    let tmp = tempfile::tempdir().unwrap();
    let custom = text(&renumbered_dataset(tmp.path()));
    let file = text(&models().join("yolo11n_int8_320.onnx"));
    let limit = ["--limit", "40"];
    let on = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "--model-file",
            file.as_str(),
            "--annotations",
            custom.as_str(),
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&limit);
        run(tmp.path(), out, &args)
    };
    let (ok, stderr, _) = on("strict", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("class 1 (`bicycle`) has no category of that name"),
        "{stderr}"
    );
    assert!(stderr.contains("1 `person`, 2 `car`, 3 `dog`"), "{stderr}");

    let coco_ids = tmp.path().join("coco_ids.toml");
    std::fs::write(&coco_ids, card_text("yolo11n_int8_320", &[])).unwrap();
    let (ok, stderr, _) = on("ids", &["--card", &text(&coco_ids)]);
    assert!(!ok);
    assert!(
        stderr.contains("class 1 (`bicycle`) maps to category 2, which the dataset calls `car`"),
        "{stderr}"
    );

    // Without the cap of 300 results per image (which other classes' results would share), COCO
    // evaluation scores each category on its own: the same AP on both datasets, to the bit.
    let uncapped = ("max_detections = 300", "max_detections = 30000");
    let dropping = tmp.path().join("drop.toml");
    let by_name = (
        "map = \"coco80\"",
        "map = \"by-name\"\nunmatched = \"drop\"",
    );
    std::fs::write(
        &dropping,
        card_text("yolo11n_int8_320", &[by_name, uncapped]),
    )
    .unwrap();
    let (ok, stderr, results) = on("drop", &["--card", &text(&dropping)]);
    assert!(ok, "{stderr}");
    let custom_row = results.unwrap()["models"][0].clone();
    let full = tmp.path().join("full.toml");
    std::fs::write(&full, card_text("yolo11n_int8_320", &[uncapped])).unwrap();
    let (ok, stderr, results) = run(
        tmp.path(),
        "full",
        &[
            "--model-file",
            &file,
            "--card",
            &text(&full),
            "--limit",
            "40",
        ],
    );
    assert!(ok, "{stderr}");
    let full_row = results.unwrap()["models"][0].clone();
    for (coco_id, new_id) in [(1, 1), (3, 2), (18, 3)] {
        let (got, want) = (class_ap(&custom_row, new_id), class_ap(&full_row, coco_id));
        assert!(want.as_f64().unwrap() > 0.0, "{coco_id}: {want}");
        assert_eq!(got, want, "category {coco_id} -> {new_id}");
    }
}

/// Cards in the `--model-dir` folder join `detbench zoo` and run by name; `zoo --card` prints a
/// built-in card and a model file's own, both of which parse.
#[test]
fn user_cards_join_the_zoo_and_zoo_prints_cards() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        models().join("yolox_nano.onnx"),
        dir.join("yolox_nano.onnx"),
    )
    .unwrap();
    std::fs::write(
        dir.join("my_yolox.toml"),
        card_text(
            "yolox_nano",
            &[
                ("name = \"yolox_nano\"", "name = \"my_yolox\""),
                ("score_threshold = 0.01", "score_threshold = 0.3"),
            ],
        ),
    )
    .unwrap();
    let dir_arg = text(&dir);
    let listed = detbench(tmp.path(), &["zoo", "--model-dir", &dir_arg]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{stdout}");
    assert!(
        stdout.contains("| my_yolox | Yolox | 416x416 | ONNX |")
            && stdout.contains("| yes | match |"),
        "{stdout}"
    );
    assert!(stdout.contains("my_yolox <- "), "{stdout}");
    let (ok, stderr, results) = run(
        tmp.path(),
        "out",
        &[
            "--model",
            "my_yolox",
            "--model-dir",
            &dir_arg,
            "--limit",
            "2",
        ],
    );
    assert!(ok, "{stderr}");
    let row = &results.unwrap()["models"][0];
    let threshold = &row["provenance"]["pipeline"]["pipeline"]["config"]["score_threshold"];
    assert_eq!(threshold, &json!(0.3f32 as f64), "{row}");

    let printed = detbench(tmp.path(), &["zoo", "--card", "deimv2_hgnetv2_atto_coco"]);
    let card = String::from_utf8_lossy(&printed.stdout);
    assert_eq!(
        card,
        detbench_models::zoo::builtin_card_text("deimv2_hgnetv2_atto_coco").unwrap()
    );
    let file = text(&models().join("yolov8n-seg_int8_320.onnx"));
    let printed = detbench(tmp.path(), &["zoo", "--card", &file]);
    let card = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.status.success(), "{card}");
    let parsed = detbench_models::card::parse(&card, "printed").unwrap();
    assert_eq!(parsed.family, detbench_models::Family::Ultralytics);
    assert_eq!(parsed.output.classes, Some(80));
}
