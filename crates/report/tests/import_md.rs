//! Published tables read into the store: the TF2 Detection Model Zoo layout and torchvision's
//! weights-table layout (real published values, see the data files' headers), and detbench's
//! own results table read back.

use detbench_eval::IouType;
use detbench_report::PublishedImport;
use detbench_report::published::parse_published_markdown;
use detbench_report::store::{Filter, Store};
use detbench_report::tables::{Format, render, results_table};

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn reads_the_tf2_model_zoo_table() {
    let rows = parse_published_markdown(&data("tf2_zoo_excerpt.md"), "tf2_zoo_excerpt.md").unwrap();
    assert_eq!(rows.len(), 8);
    let by_name = |name: &str| rows.iter().find(|r| r.model == name).unwrap();
    let ssd = by_name("SSD MobileNet v2 320x320");
    assert_eq!((ssd.box_ap, ssd.latency_ms), (Some(20.2), Some(19.0)));
    assert_eq!(ssd.latency_column, "Speed (ms)");
    assert_eq!(
        ssd.link.as_deref(),
        Some(
            "http://download.tensorflow.org/models/object_detection/tf2/20200711/ssd_mobilenet_v2_320x320_coco17_tpu-8.tar.gz"
        )
    );
    assert_eq!(ssd.extra, serde_json::json!({"Outputs": "Boxes"}));
    let kp = by_name("CenterNet HourGlass104 Keypoints 512x512");
    assert_eq!(
        (kp.box_ap, kp.keypoint_ap, kp.mask_ap),
        (Some(40.0), Some(61.4), None)
    );
    let mask = by_name("Mask R-CNN Inception ResNet V2 1024x1024");
    assert_eq!(
        (mask.box_ap, mask.mask_ap, mask.latency_ms),
        (Some(39.0), Some(34.6), Some(301.0))
    );
    let extreme = by_name("ExtremeNet");
    assert_eq!((extreme.box_ap, extreme.latency_ms), (None, None));
}

#[test]
fn reads_the_torchvision_weights_table() {
    let rows = parse_published_markdown(&data("torchvision_weights_excerpt.md"), "tv.md").unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].model, "FasterRCNN_ResNet50_FPN_Weights.COCO_V1");
    assert_eq!((rows[0].box_ap, rows[0].mask_ap), (Some(37.0), None));
    assert_eq!((rows[2].box_ap, rows[2].mask_ap), (Some(47.4), Some(41.8)));
    assert_eq!(rows[3].latency_ms, None);
    assert_eq!(
        rows[3].extra,
        serde_json::json!({"Params": "3.4M", "GFLOPS": "0.58"})
    );
}

#[test]
fn imports_into_the_store_labelled_published_and_reads_detbench_tables_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("i.db")).unwrap();
    let text = data("tf2_zoo_excerpt.md");
    let rows = parse_published_markdown(&text, "tf2_zoo_excerpt.md").unwrap();
    store
        .record_published(&PublishedImport {
            source: "TF2 Detection Model Zoo".into(),
            file: "tf2_zoo_excerpt.md".into(),
            file_sha256: "00".repeat(32),
            device_label: Some("Nvidia V100".into()),
            command_line: vec!["detbench".into(), "import-md".into()],
            rows,
        })
        .unwrap();
    let records = store
        .results(&Filter {
            include_published: true,
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(records.len(), 8);
    let mask = records
        .iter()
        .find(|r| r.model.starts_with("Mask R-CNN"))
        .unwrap();
    assert!((mask.stat(IouType::Segm, "AP").unwrap() - 0.346).abs() < 1e-12);
    assert_eq!(mask.latency_mean_ms(), Some(301.0));
    assert_eq!(
        mask.published_label().as_deref(),
        Some("published: TF2 Detection Model Zoo (Nvidia V100)")
    );
    // Published rows are left out unless asked for.
    assert!(store.results(&Filter::default()).unwrap().is_empty());

    // detbench's own Markdown results table parses back to the same AP and latency.
    let markdown = render(&[results_table(&records)], Format::Markdown);
    let again = parse_published_markdown(&markdown, "own.md").unwrap();
    assert_eq!(again.len(), 8);
    let mask_again = again
        .iter()
        .find(|r| r.model.starts_with("Mask R-CNN"))
        .unwrap();
    assert_eq!(
        (
            mask_again.box_ap,
            mask_again.mask_ap,
            mask_again.keypoint_ap,
            mask_again.latency_ms
        ),
        (Some(39.0), Some(34.6), None, Some(301.0))
    );
    assert_eq!(mask_again.latency_column, "Latency mean (ms)");
}

/// A `results.md` written by `detbench run` (main table, `## Masks`, `## Keypoints`, a failed
/// row with an escaped `|`) imports with each AP in its own column, `mean ms` as the latency,
/// and no row for the failed model.
#[test]
fn a_runs_own_results_md_imports_by_section() {
    let markdown = "\
# detbench run

| Model | Input | Backend/precision | AP | AP50 | AP75 | APs | APm | APl | AR1 | AR10 | AR100 | ARs | ARm | ARl | images/s | p99 ms | total s | mean ms | median ms | min ms |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| maskrcnn | any | libtorch 2.11.0 cuda:0 fp16 | 37.9 | 59.2 | 41.0 | 21.0 | 41.0 | 49.0 | 31.0 | 49.0 | 51.0 | 32.0 | 55.0 | 66.0 | 20.1 | 60.00 | 3.10 | 49.27 | 48.00 | 45.00 |
| broken | any | onnxruntime 1.31.1 cpu fp32 | failed: Got invalid dimensions index: 2 \\| Got: 640 | - | - | - | - | - | - | - | - | - | - | - | - | - | - | - | - | - |
| simplepose_yolox | 192x256 | onnxruntime 1.31.1 cpu fp32 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 30.0 | 40.00 | 6.00 | 33.30 | 33.00 | 31.00 |
| maskrcnn (batch 4) | any | libtorch 2.11.0 cuda:0 fp16 | 37.8 | 59.2 | 41.0 | 21.0 | 41.0 | 49.0 | 31.0 | 49.0 | 51.0 | 32.0 | 55.0 | 66.0 | 26.7 | 160.00 | 9.00 | 150.00 | 148.00 | 140.00 |

## Masks

| Model | AP | AP50 | AP75 | APs | APm | APl | AR1 | AR10 | AR100 | ARs | ARm | ARl |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
| maskrcnn | 34.6 | 56.0 | 36.0 | 15.0 | 37.0 | 50.0 | 29.0 | 45.0 | 47.0 | 27.0 | 51.0 | 63.0 |

## Keypoints

| Model | AP | AP50 | AP75 | APm | APl | AR | AR50 | AR75 | ARm | ARl |
|---|---|---|---|---|---|---|---|---|---|---|
| simplepose_yolox | 49.0 | 77.0 | 52.0 | 44.0 | 58.0 | 53.0 | 79.0 | 56.0 | 47.0 | 62.0 |
";
    let rows = parse_published_markdown(markdown, "results.md").unwrap();
    /// (model, box AP, mask AP, keypoint AP, latency).
    type Row<'a> = (&'a str, Option<f64>, Option<f64>, Option<f64>, Option<f64>);
    let got: Vec<Row> = rows
        .iter()
        .map(|r| {
            (
                r.model.as_str(),
                r.box_ap,
                r.mask_ap,
                r.keypoint_ap,
                r.latency_ms,
            )
        })
        .collect();
    // One record per model: the Masks and Keypoints rows join the main table's rows. The batch-4
    // row's per-call time is no per-image latency and stays in `extra`.
    assert_eq!(
        got,
        [
            ("maskrcnn", Some(37.9), Some(34.6), None, Some(49.27)),
            ("simplepose_yolox", None, None, Some(49.0), Some(33.3)),
            ("maskrcnn (batch 4)", Some(37.8), None, None, None),
        ]
    );
    assert_eq!(rows[2].extra["mean ms"], "150.00");
}
