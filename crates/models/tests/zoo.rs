//! The catalogue and model-file handling the harness relies on: shipped entries point at the
//! files in the shared models folder with their MANIFEST.md checksums, a missing file is named
//! with a pointer to `detbench zoo`, and every shipped model opens as a Detector.

use std::path::Path;

use detbench_backends::BackendConfig;
use detbench_bench::BatchSupport;
use detbench_eval::IouType;
use detbench_models::{
    ModelError, Sha256, ShaCheck, catalogue, entry, model_dir, open_detector, verify_sha256,
};

const SHIPPED_ONNX: [&str; 10] = [
    "yolox_nano",
    "nanodet_m_320",
    "nanodet_m_416",
    "fastestdet",
    "simplepose_yolox",
    "yolov8n_int8_640",
    "yolo11n_int8_320",
    "yolov8n-seg_int8_320",
    "deimv2_hgnetv2_atto_coco",
    "deimv2_hgnetv2_femto_coco",
];

#[test]
fn names_are_unique() {
    let mut names: Vec<&str> = catalogue().iter().map(|e| e.name.as_str()).collect();
    let total = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), total);
}

/// The sha256 of each shipped file equals the one MANIFEST.md lists (and the catalogue's).
#[test]
fn shipped_files_match_their_manifest_checksums() {
    let dir = model_dir(None).unwrap();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    for name in SHIPPED_ONNX {
        let e = entry(name).unwrap();
        assert!(e.shipped);
        let Sha256::Full(sha) = &e.sha256 else {
            panic!("{name}: no full sha256")
        };
        assert!(
            manifest.contains(&format!("{sha}  {}", e.file_name)),
            "{name}: not in MANIFEST.md"
        );
        assert_eq!(
            verify_sha256(e, &dir.join(&e.file_name)).unwrap(),
            ShaCheck::Match,
            "{name}"
        );
    }
}

#[test]
fn a_wrong_file_is_a_checksum_mismatch() {
    let e = entry("yolox_nano").unwrap();
    let other = model_dir(None).unwrap().join("fastestdet.onnx");
    match verify_sha256(e, &other).unwrap() {
        ShaCheck::Mismatch { expected, actual } => {
            assert_eq!(
                expected,
                "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
            );
            assert_eq!(
                actual,
                "31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_model_file_is_named_and_points_to_detbench_zoo() {
    let err = open_detector(
        "yolox_nano",
        Some(Path::new("/nonexistent/models")),
        &BackendConfig::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ModelError::FileMissing { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("/nonexistent/models/yolox_nano.onnx"),
        "{text}"
    );
    assert!(text.contains("detbench zoo"), "{text}");
}

#[test]
fn a_tf2_model_without_its_converted_file_says_how_to_get_it() {
    let err = open_detector(
        "ssd_mobilenet_v2_320x320_coco17_tpu-8",
        None,
        &BackendConfig::default(),
    )
    .err()
    .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("ssd_mobilenet_v2_320x320_coco17_tpu-8.onnx"),
        "{text}"
    );
    assert!(text.contains("tf2onnx.convert"), "{text}");
}

#[test]
fn an_unknown_name_lists_the_catalogue() {
    let err = open_detector("yolo_v99", None, &BackendConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::UnknownModel { .. }));
    assert!(err.to_string().contains("yolox_nano"), "{err}");
}

/// Every shipped ONNX model opens from its card; the files fix the batch at 1 but DEIMv2's
/// (dynamic); the evaluations follow the task; provenance records the thresholds and the engine.
#[test]
fn shipped_models_open_with_their_batch_and_evaluations() {
    let config = BackendConfig {
        threads: Some(1),
        ..Default::default()
    };
    for name in SHIPPED_ONNX {
        let d = open_detector(name, None, &config).unwrap();
        assert_eq!(d.name(), name);
        let batch = if name.starts_with("deimv2") {
            BatchSupport::Dynamic { max: None }
        } else {
            BatchSupport::Fixed(1)
        };
        assert_eq!(d.batch_support(), batch, "{name}");
        let expected = match name {
            "simplepose_yolox" => vec![IouType::Keypoints],
            "yolov8n-seg_int8_320" => vec![IouType::Bbox, IouType::Segm],
            _ => vec![IouType::Bbox],
        };
        assert_eq!(d.iou_types(), expected, "{name}");
        let provenance = d.provenance().to_string();
        assert!(provenance.contains("onnxruntime"), "{name}: {provenance}");
    }
    let yolox = open_detector("yolox_nano", None, &config)
        .unwrap()
        .provenance();
    assert_eq!(
        yolox["pipeline"]["config"]["score_threshold"],
        serde_json::json!(0.01f32 as f64)
    );
    assert_eq!(
        yolox["pipeline"]["config"]["nms_iou"],
        serde_json::json!(0.65)
    );
    assert_eq!(
        yolox["pipeline"]["config"]["max_detections"],
        serde_json::json!(100)
    );
}

/// The TF2 entries carry the official download URL and the zoo table's COCO mAP.
#[test]
fn tf2_entries_have_official_urls_and_claims() {
    let e = entry("efficientdet_d0_coco17_tpu-32").unwrap();
    assert_eq!(
        e.url.as_deref(),
        Some(
            "http://download.tensorflow.org/models/object_detection/tf2/20200711/efficientdet_d0_coco17_tpu-32.tar.gz"
        )
    );
    assert_eq!(e.upstream_accuracy, vec![("box AP".to_owned(), 33.6)]);
    assert!(!e.shipped);
}

/// A file that is not an ONNX model fails to open with an error naming it, never a panic.
#[test]
fn a_corrupt_model_file_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fastestdet.onnx"), b"not a model").unwrap();
    let err = open_detector("fastestdet", Some(dir.path()), &BackendConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::Backend(_)), "{err}");
    assert!(err.to_string().contains("fastestdet.onnx"), "{err}");
}

/// The keypoint pipeline needs its person detector beside it.
#[test]
fn simplepose_without_its_person_detector_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = model_dir(None).unwrap().join("ultralight_simplepose.onnx");
    std::fs::copy(shipped, dir.path().join("ultralight_simplepose.onnx")).unwrap();
    let err = open_detector(
        "simplepose_yolox",
        Some(dir.path()),
        &BackendConfig::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, ModelError::FileMissing { .. }), "{err}");
    assert!(err.to_string().contains("yolox_nano.onnx"), "{err}");
}
