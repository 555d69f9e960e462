//! Preprocessing of each family on the decoded parity images gives exactly the reference's
//! input tensors (`parity/*.npz` key `input`), bit for bit; and the SimplePose decode of the
//! reference heatmaps gives the reference keypoint results.

mod common;

use common::{PARITY_IMAGES, parity};
use detbench_backends::Tensor;
use detbench_imgproc::{BgrImage, decode_file};
use detbench_models::families::common::Pipeline;
use detbench_models::families::fastestdet::{FastestDet, FastestDetConfig};
use detbench_models::families::nanodet::{NanoDet, NanoDetConfig};
use detbench_models::families::simplepose::{PersonBox, SimplePose, SimplePoseConfig};
use detbench_models::families::yolox::{Yolox, YoloxConfig};

fn image(file: &str) -> BgrImage {
    decode_file(detbench_assets::shared::coco_images().unwrap().join(file)).unwrap()
}

/// Asserts `got` equals the parity `input` tensor bit for bit.
fn assert_bitwise(got: &Tensor, want: &ndarray::ArrayD<f32>, what: &str) {
    assert_eq!(got.shape, want.shape(), "{what}: shape");
    let got = got.as_f32().unwrap();
    let want = want.as_slice().unwrap();
    let mismatches = got
        .iter()
        .zip(want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        mismatches,
        0,
        "{what}: {mismatches} of {} values differ",
        want.len()
    );
}

fn check_detector_inputs(model: &str, pipeline: &impl Pipeline) {
    for stem in PARITY_IMAGES {
        let mut p = parity(model, stem);
        let img = image(p.json["file"].as_str().unwrap());
        let (tensor, _) = pipeline.preprocess(&img).unwrap();
        assert_bitwise(&tensor, &p.array("input"), &format!("{model} {stem}"));
    }
}

#[test]
fn yolox_inputs_are_the_reference_tensors() {
    check_detector_inputs("yolox_nano_416", &Yolox::new(YoloxConfig::default()));
}

#[test]
fn nanodet_inputs_are_the_reference_tensors() {
    for size in [320, 416] {
        let pipeline = NanoDet::new(NanoDetConfig {
            input_size: size,
            ..Default::default()
        });
        check_detector_inputs(&format!("nanodet_m_{size}"), &pipeline);
    }
}

#[test]
fn fastestdet_inputs_are_the_reference_tensors() {
    check_detector_inputs(
        "fastestdet_352",
        &FastestDet::new(FastestDetConfig::default()),
    );
}

const POSE_PARITY: [&str; 3] = [
    "000000000139_ann230831",
    "000000025560_ann186081",
    "000000034417_ann483991",
];

fn pose_case(stem: &str) -> (common::Parity, BgrImage, PersonBox) {
    let p = parity("ultralight_simplepose", stem);
    let image_id = p.json["image_id"].as_u64().unwrap();
    let img = image(&format!("{image_id:012}.jpg"));
    let b: Vec<f64> = serde_json::from_value(p.json["box_xyxy"].clone()).unwrap();
    let person = PersonBox {
        image_id,
        xyxy: [b[0], b[1], b[2], b[3]],
        score: 1.0,
    };
    (p, img, person)
}

#[test]
fn simplepose_crops_are_the_reference_tensors() {
    let pose = SimplePose::new(SimplePoseConfig::default());
    for stem in POSE_PARITY {
        let (mut p, img, person) = pose_case(stem);
        let (tensor, crop) = pose.crop(&img, &person).unwrap();
        let center: Vec<f32> = serde_json::from_value(p.json["center"].clone()).unwrap();
        let scale: Vec<f32> = serde_json::from_value(p.json["scale"].clone()).unwrap();
        assert_eq!(crop.center.to_vec(), center, "{stem}: centre");
        assert_eq!(crop.scale.to_vec(), scale, "{stem}: scale");
        assert_bitwise(&tensor, &p.array("input"), &format!("simplepose {stem}"));
    }
}

/// Decoding the reference heatmaps gives the reference result: the same score and peak values
/// bit for bit, and joint positions within 1e-9 px (the reference maps them back with a BLAS
/// `dgemv`, whose summation order and FMA use are not specified; we use plain f64 arithmetic).
#[test]
fn simplepose_decode_reproduces_the_reference_results() {
    let pose = SimplePose::new(SimplePoseConfig::default());
    for stem in POSE_PARITY {
        let (mut p, img, person) = pose_case(stem);
        let (_, crop) = pose.crop(&img, &person).unwrap();
        let heatmaps = p.array("heatmaps");
        let joints = pose.decode(heatmaps.as_slice().unwrap(), &crop).unwrap();
        let got = pose.result(&person, &joints);
        let want = &p.json["result"];
        assert_eq!(got.score, want["score"].as_f64().unwrap(), "{stem}: score");
        let want_kp: Vec<f64> = serde_json::from_value(want["keypoints"].clone()).unwrap();
        let got_kp = got.keypoints.unwrap();
        assert_eq!(got_kp.len(), 51);
        for (k, (g, w)) in got_kp.iter().zip(&want_kp).enumerate() {
            if k % 3 == 2 {
                assert_eq!(g, w, "{stem}: maxval of joint {}", k / 3);
            } else {
                assert!((g - w).abs() <= 1e-9, "{stem}: coordinate {k}: {g} vs {w}");
            }
        }
    }
}
