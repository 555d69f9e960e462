//! Synthetic runs for the store and report tests. Latency samples are generated from a
//! deterministic formula (they test storage and rendering, not timing); summaries come from the
//! harness's own `timing::summarize`, as in a real run.

#![allow(dead_code)]

pub mod db;

use detbench_bench::results::RunResults;
use detbench_bench::timing::summarize;
use serde_json::json;

/// Settings of one synthetic model result.
#[derive(Clone)]
pub struct Synth {
    pub model: &'static str,
    pub engine: &'static str,
    pub device: &'static str,
    pub precision: &'static str,
    pub batch: usize,
    /// bbox AP (fraction).
    pub ap: f64,
    /// Mean end-to-end latency (ms); stages split it 10/20/60/10 (decode/pre/infer/post).
    pub latency_ms: f64,
    pub samples: usize,
    /// Images in the run's dataset.
    pub images: usize,
}

impl Synth {
    pub fn new(model: &'static str, ap: f64, latency_ms: f64) -> Synth {
        Synth {
            model,
            engine: "onnxruntime",
            device: "cpu",
            precision: "fp32",
            batch: 1,
            ap,
            latency_ms,
            samples: 120,
            images: 206,
        }
    }
}

/// Samples with mean exactly `mean`: mean * (1 + 0.2 * ((i % 11) - 5) / 5), i in 0..n with
/// n a multiple of 11 giving a symmetric spread.
pub fn samples(mean: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| mean * (1.0 + 0.2 * (((i % 11) as f64) - 5.0) / 5.0))
        .collect()
}

pub fn model_json(s: &Synth) -> serde_json::Value {
    let e2e = samples(s.latency_ms, s.samples);
    let stage = |name: &str, share: f64| {
        let v = samples(s.latency_ms * share, s.samples);
        json!({"stage": name, "summary": summarize(&v).unwrap(), "samples_ms": v})
    };
    let mut stats = vec![
        s.ap,
        s.ap * 1.5,
        s.ap * 1.1,
        s.ap * 0.3,
        s.ap * 1.1,
        s.ap * 1.4,
    ];
    stats.extend([
        s.ap * 0.9,
        s.ap * 1.3,
        s.ap * 1.35,
        s.ap * 0.5,
        s.ap * 1.4,
        s.ap * 1.6,
    ]);
    json!({
        "name": s.model,
        "status": "ok",
        "family": "yolox",
        "input": "416x416 letterbox",
        "model": {"file": format!("models/{}.onnx", s.model), "sha256": "ab".repeat(32)},
        "backend": {
            "engine": s.engine,
            "engine_version": if s.engine == "onnxruntime" { "1.31.1" } else { "2.11.0" },
            "device": s.device,
            "precision": s.precision,
            "threads": 2,
            "options": [["intra_op_threads", "2"], ["graph_optimization", "all"]]
        },
        "batch_size": s.batch,
        "dataset": {
            "image_dir": "coco/val2017",
            "annotation_file": "coco/annotations/instances_val2017_subset.json",
            "annotation_sha256": "cd".repeat(32),
            "images": s.images
        },
        "bbox": {
            "stats": stats,
            "per_class": [
                {"category_id": 1, "name": "person", "ap": s.ap * 1.2},
                {"category_id": 12, "name": "stop sign", "ap": null}
            ]
        },
        "latency": {
            "percentile_definition": "nearest-rank (MLPerf LoadGen)",
            "warmup_iterations": 10,
            "batch_size": s.batch,
            "timed_images": s.samples,
            "total_seconds": e2e.iter().sum::<f64>() / 1000.0,
            "images_per_second": 1000.0 / s.latency_ms,
            "end_to_end": summarize(&e2e).unwrap(),
            "includes_decode": true,
            "stages": [stage("decode", 0.1), stage("preprocess", 0.2), stage("inference", 0.6), stage("postprocess", 0.1)],
            "end_to_end_samples_ms": e2e,
            "valid": true,
            "validity_notes": []
        },
        "detections_per_image": summarize(&[3.0, 5.0, 7.0]).unwrap(),
        "failed_images": [{"file": "000000000139.jpg", "reason": "synthetic failure"}],
        "provenance": {"preprocess": "letterbox 416, pad 114", "score_threshold": 0.001}
    })
}

pub fn run(models: &[Synth]) -> RunResults {
    serde_json::from_value(json!({
        "schema_version": 1,
        "detbench_version": "test",
        "started_at": "2025-01-01T00:00:00Z",
        "command_line": ["detbench", "run", "--model", models.first().map_or("", |m| m.model)],
        "environment": detbench_env::capture().to_json(),
        "models": models.iter().map(model_json).collect::<Vec<_>>(),
        "skipped": [{"name": "fixed_batch_model", "batch_size": 8, "reason": "fixed batch 1"}]
    }))
    .expect("synthetic run matches the RunResults contract")
}
