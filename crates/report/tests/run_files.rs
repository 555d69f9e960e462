//! A run's files from its results: the mask and keypoint tables in `results.md` and
//! `results.csv`, Markdown tables that survive pipes and line breaks in cells, one dataset line
//! per annotation file, and COCO results files with compressed masks and keypoints.

use detbench_bench::results::{
    Accuracy, DatasetIdentity, ModelFile, ModelResult, RunResults, Status,
};
use detbench_eval::Detection;
use detbench_report::run_files::{coco_results_json, csv_report, markdown_report, mask_table};
use detbench_report::tables::Cell;

/// A run of a box-and-mask model (failed with a multi-line engine error on its second setting)
/// and a keypoint model read from another annotation file.
fn mixed_run() -> RunResults {
    let model = |name: &str, status: Status, annotations: &str, images: usize| ModelResult {
        name: name.into(),
        status,
        family: "test".into(),
        input: "any".into(),
        model: ModelFile {
            file: format!("{name}.pt"),
            sha256: None,
        },
        backend: None,
        batch_size: 1,
        dataset: DatasetIdentity {
            image_dir: "coco/val2017".into(),
            annotation_file: Some(annotations.into()),
            annotation_sha256: Some(format!("{images:064}")),
            images,
        },
        bbox: None,
        segm: None,
        keypoints: None,
        latency: None,
        detections_per_image: None,
        failed_images: vec![],
        reference_agreement: None,
        provenance: serde_json::Value::Null,
        scenario: None,
        sharding: None,
    };
    let stats = |base: f64, n: usize| Accuracy {
        stats: (0..n).map(|k| base + k as f64 / 1000.0).collect(),
        per_class: vec![],
    };
    let mut masks = model("maskrcnn", Status::Ok, "instances.json", 206);
    masks.bbox = Some(stats(0.5, 12));
    masks.segm = Some(stats(0.25, 12));
    let mut failed = model(
        "maskrcnn",
        Status::Failed("Got invalid dimensions\n index: 2 | Got: 640".into()),
        "instances.json",
        206,
    );
    failed.batch_size = 2;
    let mut pose = model("keypointrcnn", Status::Ok, "person_keypoints.json", 128);
    pose.bbox = Some(stats(0.4, 12));
    pose.keypoints = Some(stats(0.6, 10));
    RunResults {
        schema_version: 1,
        detbench_version: "test".into(),
        started_at: "2026-11-28T00:00:00Z".into(),
        command_line: vec!["detbench".into(), "run".into()],
        environment: detbench_env::capture(),
        models: vec![masks, failed, pose],
        skipped: vec![],
        interrupted: false,
        training: vec![],
        sharding: None,
    }
}

#[test]
fn mask_stats_reach_markdown_and_csv() {
    let run = mixed_run();
    let md = markdown_report(&run);
    let masks = md.split("## Masks").nth(1).expect("a Masks section");
    assert!(
        masks.contains("| maskrcnn | 25.0 | 25.1 | 25.2 |"),
        "{masks}"
    );
    let table = mask_table(&run).unwrap();
    assert!(
        table
            .rows
            .iter()
            .all(|row| row[0] != Cell::text("keypointrcnn"))
    );
    let csv = csv_report(&run);
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| head.iter().position(|h| *h == name).unwrap();
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(first[column("segm_AP")], "0.25");
    assert_eq!(first[column("segm_ARl")], "0.261");
    assert_eq!(first[column("bbox_AP")], "0.5");
    assert_eq!(first[column("keypoints_AP")], "");
    assert_eq!(first[column("inference_mean_ms")], "");
    assert_eq!(head.len(), first.len());
    assert!(csv.ends_with('\n') && !csv.ends_with("\n\n"));
}

#[test]
fn markdown_tables_survive_pipes_and_line_breaks_and_name_every_dataset() {
    let md = markdown_report(&mixed_run());
    // Every table row has as many cells as its header: no `|` or line break splits one.
    for table in md.split("\n\n").filter(|t| t.starts_with('|')) {
        let cells = |line: &str| line.replace("\\|", "").matches('|').count();
        let mut lines = table.lines();
        let header = cells(lines.next().unwrap());
        for line in lines {
            assert_eq!(cells(line), header, "{table}");
        }
    }
    assert!(
        md.contains("failed: Got invalid dimensions index: 2 \\| Got: 640"),
        "{md}"
    );
    assert!(md.contains("206 images from coco/val2017, ground truth instances.json"));
    assert!(md.contains("128 images from coco/val2017, ground truth person_keypoints.json"));
    // The failed row's cells after its status are dashes, to the last column.
    let failed = md
        .lines()
        .find(|l| l.starts_with("| maskrcnn (batch 2) |"))
        .unwrap();
    assert!(failed.ends_with("| - | - |"), "{failed}");
}

#[test]
fn coco_results_have_compressed_masks_and_keypoints() {
    let d = Detection {
        image_id: 7,
        category_id: 1,
        bbox: [1.0, 2.0, 3.0, 4.0],
        score: 0.5,
        mask: Some(detbench_eval::Rle {
            height: 2,
            width: 2,
            counts: vec![1, 2, 1],
        }),
        keypoints: Some(vec![1.0, 2.0, 2.0]),
    };
    let json = coco_results_json(&[d]);
    assert_eq!(json[0]["image_id"], 7);
    assert_eq!(json[0]["bbox"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
    assert_eq!(json[0]["segmentation"]["size"], serde_json::json!([2, 2]));
    assert!(json[0]["segmentation"]["counts"].is_string());
    assert_eq!(json[0]["keypoints"], serde_json::json!([1.0, 2.0, 2.0]));
}
