//! Tables rendered from the store: the comparison with ratios (golden Markdown), the results
//! table with a published row, and the CSV/JSON forms of the same cells.

mod common;

use common::{Synth, run};
use detbench_report::store::{Filter, Store};
use detbench_report::tables::{Dimension, Format, comparison_tables, render, results_table};
use detbench_report::{PublishedImport, PublishedRow};

fn store_with_two_precisions() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("r.db")).unwrap();
    let synth = |model, ap, ms, precision| {
        let mut s = Synth::new(model, ap, ms);
        s.precision = precision;
        s.samples = 110; // a multiple of 11: the mean is exactly `ms`, p99 is 1.2 * `ms`
        s
    };
    store
        .record_run(&run(&[
            synth("yolox_nano", 0.2581, 25.0, "fp32"),
            synth("nanodet_m_320", 0.2061, 8.0, "fp32"),
        ]))
        .unwrap();
    store
        .record_run(&run(&[
            synth("yolox_nano", 0.2555, 12.5, "fp16"),
            synth("nanodet_m_320", 0.2050, 4.0, "fp16"),
        ]))
        .unwrap();
    store
        .record_published(&PublishedImport {
            source: "YOLOX README".into(),
            file: "README.md".into(),
            file_sha256: "00".repeat(32),
            device_label: Some("V100".into()),
            command_line: vec![],
            rows: vec![PublishedRow {
                model: "yolox_nano".into(),
                box_ap: Some(25.8),
                latency_ms: None,
                extra: serde_json::json!({"Params": "0.91M"}),
                ..Default::default()
            }],
        })
        .unwrap();
    (dir, store)
}

fn everything() -> Filter {
    Filter {
        include_published: true,
        ..Filter::default()
    }
}

#[test]
fn precision_comparison_renders_with_ratios_and_a_published_column() {
    let (_dir, store) = store_with_two_precisions();
    let records = store.results(&everything()).unwrap();
    let tables = comparison_tables(&records, Dimension::Precision, None).unwrap();
    let markdown = render(&tables, Format::Markdown);
    let expected = "\
### Box AP (fp32 vs fp16)

| Model | fp32 | fp16 | fp16 / fp32 | published: YOLOX README (V100) |
|---|---:|---:|---:|---:|
| nanodet_m_320 | 20.6 | 20.5 | 0.99x | - |
| yolox_nano | 25.8 | 25.6 | 0.99x | 25.8 |

Ratios are column / fp32.

Published columns are the sources' own figures on their own hardware and dataset, not measured by detbench.

### Latency mean, ms per call (fp32 vs fp16)

| Model | fp32 | fp16 | fp16 / fp32 |
|---|---:|---:|---:|
| nanodet_m_320 | 8.00 | 4.00 | 0.50x |
| yolox_nano | 25.00 | 12.50 | 0.50x |

Ratios are column / fp32 (below 1: faster than the baseline).

### Latency p99, ms per call (fp32 vs fp16)

| Model | fp32 | fp16 | fp16 / fp32 |
|---|---:|---:|---:|
| nanodet_m_320 | 9.60 | 4.80 | 0.50x |
| yolox_nano | 30.00 | 15.00 | 0.50x |

Ratios are column / fp32 (below 1: faster than the baseline).
";
    assert_eq!(markdown, expected, "\n{markdown}");

    // Baseline chosen explicitly: the ratios invert.
    let tables = comparison_tables(&records, Dimension::Precision, Some("fp16")).unwrap();
    assert_eq!(tables[1].columns[1..4], ["fp16", "fp32", "fp32 / fp16"]);
    // CSV keeps full precision (the synthetic means carry float summation error).
    let csv = render(&tables[1..2], Format::Csv);
    assert_eq!(
        csv,
        "# Latency mean, ms per call (fp16 vs fp32)\n\
         Model,fp16,fp32,fp32 / fp16\n\
         nanodet_m_320,4.000000000000001,8.000000000000002,2\n\
         yolox_nano,12.5,25,2\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render(&tables[..1], Format::Json)).unwrap();
    assert_eq!(json[0]["title"], "Box AP (fp16 vs fp32)");
    let yolox = &json[0]["rows"][1];
    assert_eq!(yolox[0], "yolox_nano");
    assert!((yolox[1].as_f64().unwrap() - 25.55).abs() < 1e-9);
    assert!((yolox[3].as_f64().unwrap() - 0.2581 / 0.2555).abs() < 1e-12);
    assert_eq!(yolox[4], 25.8);

    // One device and no published records: nothing to compare, a clear error.
    let measured: Vec<_> = records
        .iter()
        .filter(|r| !r.is_published())
        .cloned()
        .collect();
    let err = comparison_tables(&measured, Dimension::Device, None).unwrap_err();
    assert!(err.to_string().contains("nothing to compare"), "{err}");
    let err = comparison_tables(&records, Dimension::Precision, Some("int8")).unwrap_err();
    assert!(err.to_string().contains("baseline `int8`"), "{err}");
}

#[test]
fn results_table_lists_measured_and_published_rows() {
    let (_dir, store) = store_with_two_precisions();
    let records = store.results(&everything()).unwrap();
    let table = results_table(&records);
    let markdown = render(std::slice::from_ref(&table), Format::Markdown);
    let lines: Vec<&str> = markdown.lines().collect();
    assert_eq!(
        lines[2],
        "| Model | Backend | Device | Precision | Batch | Threads | Box AP | AP50 | \
         Latency mean (ms) | Latency p99 (ms) | Throughput (img/s) | Images | Run |"
    );
    assert_eq!(
        lines[4],
        "| yolox_nano | onnxruntime 1.31.1 | cpu | fp32 | 1 | 2 | 25.8 | 38.7 | 25.00 | 30.00 | 40.0 | 206 | 1 |"
    );
    assert_eq!(
        lines[8],
        "| yolox_nano | published: YOLOX README (V100) | V100 | - | - | - | 25.8 | - | - | - | - | - | 3 |"
    );
}

/// The device comparison has one column per device (CPU first), like torchvision's latency
/// table, with a ratio column for each GPU; a published figure joins as its own column even
/// when only one device was measured.
#[test]
fn device_comparison_has_one_column_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("d.db")).unwrap();
    let on = |device, ms| {
        let mut s = Synth::new("yolox_nano", 0.2581, ms);
        s.device = device;
        s.samples = 110;
        s
    };
    store
        .record_run(&run(&[
            on("cuda:1", 2.0),
            on("cpu", 25.0),
            on("cuda:0", 2.5),
        ]))
        .unwrap();
    let records = store.results(&everything()).unwrap();
    let tables = comparison_tables(&records, Dimension::Device, None).unwrap();
    let latency = &tables[1];
    assert_eq!(
        latency.title,
        "Latency mean, ms per call (cpu vs cuda:0 vs cuda:1)"
    );
    assert_eq!(
        latency.columns,
        [
            "Model",
            "cpu",
            "cuda:0",
            "cuda:1",
            "cuda:0 / cpu",
            "cuda:1 / cpu"
        ]
    );
    let markdown = render(std::slice::from_ref(latency), Format::Markdown);
    assert!(
        markdown.contains("| yolox_nano | 25.00 | 2.50 | 2.00 | 0.10x | 0.08x |"),
        "{markdown}"
    );

    // One measured device plus a published figure for the same model.
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("e.db")).unwrap();
    store.record_run(&run(&[on("cpu", 25.0)])).unwrap();
    store
        .record_published(&PublishedImport {
            source: "Zoo".into(),
            file: "zoo.md".into(),
            file_sha256: "00".repeat(32),
            device_label: Some("V100".into()),
            command_line: vec![],
            rows: vec![PublishedRow {
                model: "yolox_nano".into(),
                box_ap: Some(25.8),
                latency_ms: Some(12.0),
                latency_column: "Speed (ms)".into(),
                extra: serde_json::json!({}),
                ..Default::default()
            }],
        })
        .unwrap();
    let records = store.results(&everything()).unwrap();
    let tables = comparison_tables(&records, Dimension::Device, None).unwrap();
    let markdown = render(&tables[1..2], Format::Markdown);
    assert!(
        markdown.contains("| Model | cpu | published: Zoo (V100) |\n|---|---:|---:|\n| yolox_nano | 25.00 | 12.00 |"),
        "{markdown}"
    );
}

/// Results measured on different image sets are not compared in one row: a 3-image smoke run
/// recorded after a full run must not replace it as "the latest".
#[test]
fn comparisons_keep_results_on_different_datasets_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("s.db")).unwrap();
    let synth = |ms, precision, images| {
        let mut s = Synth::new("yolox_nano", 0.2581, ms);
        s.precision = precision;
        s.samples = 110;
        s.images = images;
        s
    };
    store
        .record_run(&run(&[synth(25.0, "fp32", 206), synth(12.5, "fp16", 206)]))
        .unwrap();
    store.record_run(&run(&[synth(40.0, "fp16", 3)])).unwrap();
    let records = store.results(&everything()).unwrap();
    let tables = comparison_tables(&records, Dimension::Precision, None).unwrap();
    let latency = tables
        .iter()
        .find(|t| t.title.starts_with("Latency mean"))
        .unwrap();
    assert_eq!(latency.columns[..2], ["Model", "Dataset"]);
    let markdown = render(std::slice::from_ref(latency), Format::Markdown);
    assert!(
        markdown.contains("| yolox_nano | 206 images, ann cdcdcdcd | 25.00 | 12.50 | 0.50x |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| yolox_nano | 3 images, ann cdcdcdcd | - | 40.00 | - |"),
        "{markdown}"
    );
}

/// A speed-only run's table has no AP columns (they would all read n/a), and timings flagged
/// not valid get one note line per result.
#[test]
fn speed_only_tables_drop_ap_columns_and_flags_are_one_line_each() {
    let mut results = run(&[
        Synth::new("yolox_nano", 0.25, 20.0),
        Synth::new("fastestdet", 0.13, 4.0),
    ]);
    for m in &mut results.models {
        m.dataset.annotation_file = None;
        m.dataset.annotation_sha256 = None;
        m.bbox = None;
    }
    let table = detbench_report::run_files::main_table(&results);
    assert_eq!(
        table.columns,
        [
            "Model",
            "Input",
            "Backend/precision",
            "images/s",
            "p99 ms",
            "total s",
            "mean ms",
            "median ms",
            "min ms"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("r.db")).unwrap();
    let mut flagged = run(&[
        Synth::new("yolox_nano", 0.25, 20.0),
        Synth::new("fastestdet", 0.13, 4.0),
    ]);
    for m in &mut flagged.models {
        let latency = m.latency.as_mut().unwrap();
        latency.valid = false;
        latency.validity_notes = vec!["fewer than 100 timed calls (5)".into()];
    }
    store.record_run(&flagged).unwrap();
    let table = results_table(&store.results(&everything()).unwrap());
    let flags: Vec<&String> = table
        .notes
        .iter()
        .filter(|n| n.starts_with("Latency not valid"))
        .collect();
    assert_eq!(
        flags,
        [
            "Latency not valid for run 1 yolox_nano: fewer than 100 timed calls (5).",
            "Latency not valid for run 1 fastestdet: fewer than 100 timed calls (5)."
        ]
    );
}
