//! The whole engine on the CPU against torchvision eager on the CPU: Faster R-CNN R50-FPN on the
//! first two shipped images, every one of eager's detections matched (same class, IoU >= 0.99,
//! |score difference| <= 1e-3). Needs the exported model (tools/gpu/export_torchvision.py) in
//! $DETBENCH_NATIVE_MODELS; the reference detections are fixtures/eager_cpu.json
//! (tools/native/make_fixtures.py --models-dir). Skipped, saying so, without the model.
#![cfg(feature = "cuda")]

use std::path::PathBuf;

mod common;

use common::config;
use detbench_backends::{Device, Precision};
use detbench_native::engine::NativeEngine;

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn faster_rcnn_on_the_cpu_matches_eager() {
    let Some(models) = std::env::var_os("DETBENCH_NATIVE_MODELS").map(PathBuf::from) else {
        eprintln!(
            "skipped: set DETBENCH_NATIVE_MODELS to the folder of fasterrcnn_resnet50_fpn.pt"
        );
        return;
    };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/eager_cpu.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let shared = detbench_assets::shared_dir().expect("../shared or $DETBENCH_SHARED");
    let settings = config(Device::Cpu, Precision::Fp32);
    let mut engine =
        NativeEngine::open(&models.join("fasterrcnn_resnet50_fpn.pt"), &settings).unwrap();
    let (mut total, mut matched) = (0, 0);
    for image in reference["images"].as_array().unwrap() {
        let path = shared
            .join("coco/val2017")
            .join(image["file_name"].as_str().unwrap());
        let bgr = detbench_imgproc::decode_file(&path).unwrap();
        let found = engine.detect(&[&bgr]).unwrap().remove(0);
        let mut used = vec![false; found.scores.len()];
        for (k, b) in image["boxes"].as_array().unwrap().iter().enumerate() {
            let b: Vec<f32> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let score = image["scores"][k].as_f64().unwrap() as f32;
            let label = image["labels"][k].as_i64().unwrap();
            total += 1;
            if let Some(j) = (0..found.scores.len()).find(|&j| {
                !used[j]
                    && found.labels[j] == label
                    && (found.scores[j] - score).abs() <= 1e-3
                    && iou(found.boxes[j], [b[0], b[1], b[2], b[3]]) >= 0.99
            }) {
                used[j] = true;
                matched += 1;
            }
        }
    }
    assert!(total >= 100, "{total} reference detections");
    assert!(
        matched as f64 >= 0.99 * total as f64,
        "{matched} of {total} matched"
    );
}
