//! The reporting commands end to end, through the `detbench` binary: a real `detbench run`
//! recorded and shown by `detbench report`; comparisons with ratios and published columns from
//! `detbench import-md`; charts; `detbench env`; `detbench show` against the reference
//! detections; and the errors for a missing or corrupt store.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn detbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
        .args(args)
        .env_remove("DETBENCH_DB")
        .output()
        .expect("the detbench binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let output = detbench(args);
    assert!(
        output.status.success(),
        "detbench {} failed:\n{}\n{}",
        args.join(" "),
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn report_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../report/tests/data")
        .join(name)
}

/// A real run (FastestDet, 8 images, at two thread counts) recorded in a fresh store shows up
/// in `detbench report`, and `--compare threads` renders with ratios.
#[test]
fn runs_recorded_by_detbench_run_appear_in_report_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store/detbench.db");
    let db_arg = db.to_str().unwrap();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("run{threads}"));
        ok(&[
            "run",
            "--model",
            "fastestdet",
            "--limit",
            "8",
            "--warmup",
            "2",
            "--threads",
            threads,
            "--db",
            db_arg,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
    }
    let runs = ok(&["report", "--db", db_arg, "--list-runs"]);
    assert!(runs.contains("| 2 |") && runs.contains("| 1 |"), "{runs}");

    // The AP in the report is the one the run wrote to its own results.json.
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run1/results.json")).unwrap(),
    )
    .unwrap();
    let ap = results["models"][0]["bbox"]["stats"][0].as_f64().unwrap();
    let table = ok(&["report", "--db", db_arg, "--run", "1"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("| fastestdet |"))
        .unwrap_or_else(|| panic!("no fastestdet row in\n{table}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[6], "1", "threads column of {row}");
    assert_eq!(cells[7], format!("{:.1}", ap * 100.0), "{row}");
    assert_eq!(cells[12], "8", "images column of {row}");

    let compare = ok(&["report", "--db", db_arg, "--compare", "threads"]);
    assert!(
        compare.contains("### Latency mean, ms per call (1 thread vs 2 threads)"),
        "{compare}"
    );
    assert!(
        compare.contains("| Model | 1 thread | 2 threads | 2 threads / 1 thread |"),
        "{compare}"
    );
    // Same model, same images: the same AP at both thread counts, ratio 1.00x.
    let ap_row = compare
        .lines()
        .find(|l| l.starts_with("| fastestdet |"))
        .unwrap();
    assert!(ap_row.ends_with("| 1.00x |"), "{ap_row}");

    // CSV to a file, and charts.
    let csv = dir.path().join("out/table.csv");
    let charts = dir.path().join("charts");
    let output = detbench(&[
        "report",
        "--db",
        db_arg,
        "--format",
        "csv",
        "--out",
        csv.to_str().unwrap(),
        "--charts",
        charts.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("# Results\nModel,Backend,Device,"),
        "{text}"
    );
    for chart in ["latency", "frontier", "stages"] {
        for ext in ["png", "svg"] {
            let path = charts.join(format!("{chart}.{ext}"));
            assert!(
                std::fs::metadata(&path).unwrap().len() > 1000,
                "{}",
                path.display()
            );
        }
    }
}

/// Published tables imported with `import-md` appear beside measured rows, labelled.
#[test]
fn imported_published_rows_are_labelled_in_reports() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let db_arg = db.to_str().unwrap();
    let tf2 = report_data("tf2_zoo_excerpt.md");
    let said = ok(&[
        "import-md",
        tf2.to_str().unwrap(),
        "--source",
        "TF2 Detection Model Zoo",
        "--device",
        "Nvidia V100",
        "--db",
        db_arg,
    ]);
    assert!(said.contains("imported 8 published rows"), "{said}");
    let table = ok(&[
        "report",
        "--db",
        db_arg,
        "--model",
        "SSD MobileNet v2 320x320",
    ]);
    assert!(
        table.contains(
            "| SSD MobileNet v2 320x320 | published: TF2 Detection Model Zoo (Nvidia V100) | \
             Nvidia V100 | - | - | - | 20.2 | - | 19.00 |"
        ),
        "{table}"
    );
    let json = ok(&["report", "--db", db_arg, "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["rows"].as_array().unwrap().len(), 8);

    // A rename that matches no row is an error naming it.
    let output = detbench(&[
        "import-md",
        tf2.to_str().unwrap(),
        "--rename",
        "No Such Model=x",
        "--db",
        db_arg,
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("No Such Model"),
        "{}",
        stderr(&output)
    );
    // A file without a results table says what it expected.
    let notes = dir.path().join("notes.md");
    std::fs::write(&notes, "# Notes\n\nNo table here.\n").unwrap();
    let output = detbench(&["import-md", notes.to_str().unwrap(), "--db", db_arg]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("notes.md: no results table found"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn report_errors_name_the_store_and_leave_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let output = detbench(&["report", "--db", missing.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no results store at"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists(), "report must not create a store");

    let corrupt = dir.path().join("corrupt.db");
    let junk = b"this is not an SQLite database, just text that must stay as it is\n".repeat(100);
    std::fs::write(&corrupt, &junk).unwrap();
    let output = detbench(&["report", "--db", corrupt.to_str().unwrap()]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("corrupt.db") && message.contains("not a SQLite database"),
        "{message}"
    );
    assert_eq!(std::fs::read(&corrupt).unwrap(), junk);
}

#[test]
fn env_prints_a_table_and_json() {
    let table = ok(&["env"]);
    for label in [
        "detbench",
        "built with",
        "OS",
        "kernel",
        "CPU",
        "memory",
        "GPU",
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(label)),
            "no `{label}` line in\n{table}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&["env", "--json"])).unwrap();
    assert!(json["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
    assert!(
        json["build"]["rustc"]
            .as_str()
            .unwrap()
            .starts_with("rustc ")
    );
    assert!(
        json.get("gpu").is_some(),
        "gpu must be present (null without a GPU)"
    );
}

/// `detbench show` runs YOLOX-Nano on a shipped image: the detections it lists above the
/// threshold are the reference pipeline's, and the PNG has the image's size with the boxes
/// drawn in.
#[test]
fn show_draws_the_reference_detections_of_yolox_nano() {
    let dir = tempfile::tempdir().unwrap();
    let image = detbench_assets::shared::coco_images()
        .unwrap()
        .join("000000252219.jpg");
    let out = dir.path().join("annotated.png");
    let printed = ok(&[
        "show",
        "--model",
        "yolox_nano",
        "--image",
        image.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--score-threshold",
        "0.3",
    ]);
    let reference: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(
            detbench_assets::shared::reference()
                .unwrap()
                .join("yolox_nano_416/detections_subset.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut expected: Vec<&serde_json::Value> = reference
        .iter()
        .filter(|d| d["image_id"] == 252219 && d["score"].as_f64().unwrap() >= 0.3)
        .collect();
    expected.sort_by(|a, b| {
        b["score"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["score"].as_f64().unwrap())
    });
    assert_eq!(expected.len(), 3);
    assert!(
        printed.contains(&format!("{} at score >= 0.3", expected.len())),
        "{printed}"
    );
    let listed: Vec<&str> = printed.lines().skip(1).collect();
    assert_eq!(listed.len(), expected.len(), "{printed}");
    for (line, want) in listed.iter().zip(&expected) {
        let bbox: Vec<f64> = want["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let formatted = format!(
            "person           {:.3}  box [{:.1}, {:.1}, {:.1}, {:.1}]",
            want["score"].as_f64().unwrap(),
            bbox[0],
            bbox[1],
            bbox[2],
            bbox[3]
        );
        assert_eq!(line.trim(), formatted, "{printed}");
    }
    let png = detbench_imgproc::decode_file(&out).unwrap();
    assert_eq!((png.width, png.height), (640, 428));
    // The left edge of the best box, halfway down, is in the person colour.
    let bbox: Vec<f64> = expected[0]["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let c = detbench_report::annotate::category_color(1);
    let [b, g, r] = png.pixel(
        bbox[0].round() as usize,
        (bbox[1] + bbox[3] / 2.0).round() as usize,
    );
    assert_eq!([r, g, b], [c.0, c.1, c.2]);
}

/// The results.json of a `detbench train` run (no libtorch needed): Mask R-CNN at amp, batch 2,
/// four steps whose three timed ones take 0.0625 s, so 32 images/s exactly.
fn training_results_json() -> serde_json::Value {
    use detbench_train::{Device, ModelKind, Precision, StepRecord, TrainConfig, TrainResults};
    let mut config = TrainConfig::new(
        ModelKind::MaskrcnnResnet50Fpn,
        "m.pt".into(),
        "ann.json".into(),
        PathBuf::from("images"),
    );
    config.precision = Precision::Amp;
    config.batch = 2;
    config.device = Device::Cuda(0);
    config.warmup_steps = 1;
    config.timed_steps = Some(3);
    let steps: Vec<StepRecord> = (0..4)
        .map(|i| StepRecord {
            step: i,
            epoch: 0,
            lr: 0.001,
            losses: vec![1.0, 0.25 * i as f64],
            total_loss: 1.0 + 0.25 * i as f64,
            step_s: if i == 0 { 10.0 } else { 0.0625 },
            data_wait_s: 0.001,
            loss_scale: Some(65536.0),
            skipped: false,
        })
        .collect();
    let results = TrainResults {
        throughput: detbench_train::results::throughput(&steps, 1, 2, 1),
        config,
        dataset_images: 204,
        removed_images: 2,
        batches_per_epoch: 102,
        warmup_iters: 101,
        world_size: 1,
        rank: 0,
        loss_names: vec!["loss_classifier".into(), "loss_box_reg".into()],
        steps,
        peak_memory: Some(detbench_train::PeakMemory {
            allocated_bytes: 3 << 30,
            reserved_bytes: 4 << 30,
        }),
        options: vec![],
        param_checksum: [0.0, 0.0],
        saved: None,
        wall_s: 12.0,
        stopped: None,
    };
    serde_json::json!({
        "schema_version": 1,
        "detbench_version": "test",
        "started_at": "2026-12-03T00:00:00Z",
        "command_line": ["detbench", "train", "--model", "maskrcnn_resnet50_fpn"],
        "environment": detbench_env::capture().to_json(),
        "models": [],
        "training": [results],
    })
}

/// A stored training run (`detbench train`'s results.json, imported) shows in `detbench report`
/// as `detbench train`'s runs table, after the inference rows, with its run id; filters apply
/// to it, and `--list-runs` counts it.
#[test]
fn stored_training_runs_show_beside_inference_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let db_arg = db.to_str().unwrap();
    let tf2 = report_data("tf2_zoo_excerpt.md");
    ok(&[
        "import-md",
        tf2.to_str().unwrap(),
        "--source",
        "TF2",
        "--db",
        db_arg,
    ]);
    let results = dir.path().join("results.json");
    std::fs::write(&results, training_results_json().to_string()).unwrap();
    let output = detbench(&["import", results.to_str().unwrap(), "--db", db_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("(0 rows, 1 training results) as run 2"),
        "{}",
        stderr(&output)
    );

    let report = ok(&["report", "--db", db_arg]);
    let (inference, training) = report
        .split_once("Training runs")
        .unwrap_or_else(|| panic!("no training table: {report}"));
    assert!(inference.contains("published: TF2"), "{report}");
    let row = training
        .lines()
        .find(|l| l.starts_with("| maskrcnn_resnet50_fpn |"))
        .unwrap_or_else(|| panic!("no training row: {report}"));
    // Model, device, precision, batch, GPUs, images/s, step mean/p50/p90/p99 (ms), data wait
    // (ms, %), peak GiB, timed steps, last loss, run.
    assert_eq!(
        row,
        "| maskrcnn_resnet50_fpn | cuda:0 | amp | 2 | 1 | 32.00 | 62.5 | 62.5 | 62.5 | 62.5 | \
         1.00 | 1.6 | 3.00 | 3 | 1.7500 | 2 |",
        "{report}"
    );

    // Only the training run: no inference table, and an ONNX Runtime filter leaves it out.
    let only = ok(&["report", "--db", db_arg, "--run", "2"]);
    assert!(
        only.contains("Training runs") && !only.contains("published"),
        "{only}"
    );
    let output = detbench(&["report", "--db", db_arg, "--run", "2", "--backend", "ort"]);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("no results in"),
        "{}",
        stderr(&output)
    );

    let runs = ok(&["report", "--db", db_arg, "--list-runs"]);
    assert!(runs.contains("| Results | Training |"), "{runs}");
    let train_line = runs.lines().find(|l| l.starts_with("| 2 |")).unwrap();
    assert!(train_line.contains("| 0 | 1 | detbench train"), "{runs}");
}
