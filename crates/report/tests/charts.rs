//! Charts from stored results: every chart is written as PNG and SVG, with the text a reader
//! needs (model names, units, legend). `DETBENCH_CHARTS_OUT=DIR` keeps the files for viewing.

mod common;

use common::{Synth, run};
use detbench_report::charts::write_charts;
use detbench_report::store::{Filter, Store};

#[test]
fn writes_latency_frontier_and_stage_charts() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("c.db")).unwrap();
    let mut fp16 = Synth::new("yolox_nano", 0.2551, 9.1);
    fp16.precision = "fp16";
    store
        .record_run(&run(&[
            Synth::new("yolox_nano", 0.2581, 18.4),
            fp16,
            Synth::new("nanodet_m_320", 0.2061, 7.9),
            Synth::new("nanodet_m_416", 0.2350, 12.6),
            Synth::new("fastestdet", 0.1300, 4.2),
        ]))
        .unwrap();
    store
        .record_published(&detbench_report::PublishedImport {
            source: "Upstream README".into(),
            file: "README.md".into(),
            file_sha256: "00".repeat(32),
            device_label: Some("example GPU".into()),
            command_line: vec![],
            rows: vec![detbench_report::PublishedRow {
                model: "yolox_nano".into(),
                box_ap: Some(25.8),
                latency_ms: Some(15.0),
                latency_column: "Speed (ms)".into(),
                extra: serde_json::json!({}),
                ..Default::default()
            }],
        })
        .unwrap();
    let records = store
        .results(&Filter {
            include_published: true,
            ..Filter::default()
        })
        .unwrap();
    let out = std::env::var_os("DETBENCH_CHARTS_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("charts"));
    let written = write_charts(&records, &out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "latency.png",
            "latency.svg",
            "stages.png",
            "stages.svg",
            "frontier.png",
            "frontier.svg"
        ]
    );
    let latency = image::open(out.join("latency.png")).unwrap().to_rgb8();
    assert_eq!(latency.width(), 1400);
    // 5 measured bars: 200 + 56 * 5 px.
    assert_eq!(latency.height(), 480);
    // The bars are drawn in the first palette colour (78, 121, 167) at 85% over white.
    let bar_pixels = latency
        .pixels()
        .filter(|p| p.0 == [105, 141, 180] || p.0 == [104, 141, 180] || p.0 == [105, 141, 181])
        .count();
    assert!(bar_pixels > 5_000, "{bar_pixels} bar pixels");
    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    for text in [
        "yolox_nano (fp32)",
        "yolox_nano (fp16)",
        "latency (ms per call; per image at batch 1)",
        "p99",
    ] {
        assert!(svg.contains(text), "latency.svg lacks `{text}`");
    }
    let svg = std::fs::read_to_string(out.join("frontier.svg")).unwrap();
    for text in [
        "box AP",
        "yolox_nano [Upstream README]",
        "published (source",
        "frontier",
    ] {
        assert!(svg.contains(text), "frontier.svg lacks `{text}`");
    }
    let svg = std::fs::read_to_string(out.join("stages.svg")).unwrap();
    for stage in ["decode", "preprocess", "inference", "postprocess"] {
        assert!(svg.contains(stage), "stages.svg lacks `{stage}`");
    }
}

/// APs on different image sets are labelled with their image count and joined by one frontier
/// each; points that span more than 20x in latency get a log axis.
#[test]
fn frontier_labels_image_sets_and_goes_logarithmic_for_wide_spans() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("c.db")).unwrap();
    let mut limited = Synth::new("nanodet_m_320", 0.31, 7.9);
    limited.images = 20;
    store
        .record_run(&run(&[
            Synth::new("yolox_nano", 0.2581, 18.4),
            Synth::new("fastestdet", 0.13, 4.2),
            limited,
        ]))
        .unwrap();
    store
        .record_published(&detbench_report::PublishedImport {
            source: "Slow README".into(),
            file: "README.md".into(),
            file_sha256: "11".repeat(32),
            device_label: None,
            command_line: vec![],
            rows: vec![detbench_report::PublishedRow {
                model: "big_model".into(),
                box_ap: Some(45.0),
                latency_ms: Some(300.0),
                latency_column: "Speed (ms)".into(),
                extra: serde_json::json!({}),
                ..Default::default()
            }],
        })
        .unwrap();
    let records = store
        .results(&Filter {
            include_published: true,
            ..Filter::default()
        })
        .unwrap();
    let out = dir.path().join("charts");
    write_charts(&records, &out).unwrap();
    let svg = std::fs::read_to_string(out.join("frontier.svg")).unwrap();
    for text in [
        "yolox_nano [206 images]",
        "nanodet_m_320 [20 images]",
        "log scale",
        "one per image set",
    ] {
        assert!(svg.contains(text), "frontier.svg lacks `{text}`");
    }
}
