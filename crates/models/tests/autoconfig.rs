//! Configuration from the shipped files alone: the Ultralytics exports and the DEIMv2 files are
//! recognised (so `--model-file` needs no card for them); the others get an error that lists
//! their inputs and outputs and the card fields to fill.

use detbench_backends::BackendConfig;
use detbench_models::autoconfig::{AutoConfig, AutoConfigError, autoconfigure};
use detbench_models::families::detr::DetrOutputs;
use detbench_models::families::ultralytics::layout::{Layout, Task};

fn configure(file: &str) -> Result<AutoConfig, AutoConfigError> {
    let path = detbench_assets::shared::models().unwrap().join(file);
    let backend = detbench_backends::open(&path, &BackendConfig::default()).unwrap();
    autoconfigure(&path, backend.inputs(), backend.outputs())
}

#[test]
fn ultralytics_exports_are_configured_from_their_metadata() {
    for (file, task, size, rows) in [
        ("yolov8n_int8_640.onnx", Task::Detect, 640, 8400),
        ("yolo11n_int8_320.onnx", Task::Detect, 320, 2100),
        ("yolov8n-seg_int8_320.onnx", Task::Segment, 320, 2100),
    ] {
        let Ok(AutoConfig::Ultralytics {
            config,
            metadata,
            names,
        }) = configure(file)
        else {
            panic!("{file} is an Ultralytics export")
        };
        assert_eq!(
            (config.output.task, config.output.layout),
            (task, Layout::ChannelsFirst),
            "{file}"
        );
        assert_eq!(config.input_size, (size, size), "{file}");
        assert_eq!(config.output.shape(rows)[2], rows, "{file}");
        assert_eq!(names.unwrap()[0], "person");
        assert_eq!(
            config.class_map[79],
            Some(90),
            "{file}: COCO names map to COCO ids"
        );
        assert_eq!(metadata.unwrap().stride, Some(32));
        assert_eq!(
            config.nms.conf, 0.25,
            "{file}: the predictor's default threshold"
        );
    }
}

#[test]
fn deimv2_files_are_recognised_from_inputs_and_outputs() {
    for (file, size) in [
        ("deimv2_hgnetv2_atto_coco.onnx", 320),
        ("deimv2_hgnetv2_femto_coco.onnx", 416),
    ] {
        let Ok(AutoConfig::Detr(config)) = configure(file) else {
            panic!("{file} is DETR-style")
        };
        assert_eq!(config.input_size, (size, size));
        assert!(matches!(
            config.outputs,
            DetrOutputs::LabelsBoxesScores { .. }
        ));
        assert_eq!(config.class_map[0], Some(1));
    }
}

#[test]
fn other_files_get_an_error_listing_their_inputs_outputs_and_the_card_fields() {
    let err = configure("yolox_nano.onnx").unwrap_err().to_string();
    for part in [
        "images [1, 3, 416, 416] f32",
        "output [1, 3549, 85] f32",
        "[output] layout",
        "detbench zoo --card",
    ] {
        assert!(err.contains(part), "missing `{part}` in: {err}");
    }
    let err = configure("nanodet_m_320.onnx").unwrap_err().to_string();
    assert!(err.contains("dis_pred_stride_32 [1, 100, 32]"), "{err}");
}
