//! D2Go (`d2go_fasterrcnn_fbnetv3a_int8`, int8 TorchScript, CPU, x86 quantized engine) through
//! the libtorch backend on the 206-image subset, against
//! `../shared/reference/d2go_fasterrcnn_fbnetv3a` (Python torch 2.15 + pycocotools 2.0.11):
//!
//! - the preprocessed input of the three parity images is the reference's tensor bit for bit;
//! - the detections agree with `detections_subset.json` (matched box for box, scores within
//!   1e-3; on CPUs without AVX512-VNNI, see below) and the box AP is the reference's 0.2126
//!   within the issue's ±0.3 points (seen on such a CPU: the same 3065 detections bit for bit
//!   and all 12 stats exactly equal; on an AVX-512 VNNI EPYC: AP 0.2141).
//!
//! Needs `scripts/setup.sh --torch` and `LD_LIBRARY_PATH=.deps/torch/torch/lib`; run with
//! `--release` (206 images of int8 Faster R-CNN).
#![cfg(feature = "torch")]

use std::sync::Arc;

use detbench_backends::{BackendConfig, EngineKind};
use detbench_bench::{ImageInput, StageClock};
use detbench_eval::{Detection, EvalParams, Evaluator, GroundTruth, IouType};
use detbench_models::families::torchvision::{ChannelOrder, image_tensor};
use detbench_models::reference_check::{MatchCriteria, compare_boxes};
use ndarray::ArrayD;
use ndarray_npy::NpzReader;

const MODEL: &str = "d2go_fasterrcnn_fbnetv3a_int8";
const REFERENCE: &str = "d2go_fasterrcnn_fbnetv3a";

fn reference_dir() -> std::path::PathBuf {
    detbench_assets::shared::reference()
        .unwrap()
        .join(REFERENCE)
}

fn config() -> BackendConfig {
    BackendConfig {
        engine: EngineKind::Torch,
        threads: Some(2),
        ..Default::default()
    }
}

#[test]
fn preprocessing_gives_the_reference_input_tensor() {
    let images = detbench_assets::shared::coco_images().unwrap();
    for stem in ["000000000139", "000000000802", "000000005001"] {
        let npz_path = reference_dir().join(format!("parity/{stem}_x86.npz"));
        let mut npz = NpzReader::new(std::fs::File::open(&npz_path).unwrap()).unwrap();
        let want: ArrayD<f32> = npz.by_name("input_chw_bgr_0_1.npy").unwrap();
        let image = detbench_imgproc::decode_file(images.join(format!("{stem}.jpg"))).unwrap();
        let got = image_tensor(&image, ChannelOrder::Bgr);
        assert_eq!(got.shape, want.shape(), "{stem}");
        assert!(
            got.as_f32().unwrap() == want.as_slice().unwrap(),
            "{stem}: input tensor differs from the reference's"
        );
    }
}

#[test]
fn subset_ap_matches_the_reference() {
    let gt_path = detbench_assets::shared::instances_subset().unwrap();
    let gt = Arc::new(GroundTruth::load(&gt_path).unwrap());
    let images = detbench_assets::shared::coco_images().unwrap();
    let mut detector = detbench_models::open_detector(MODEL, None, &config()).unwrap();
    // The run records the model's own precision (quantized int8), not the float one asked of
    // the engine.
    let backend = &detector.provenance()["backend"];
    assert_eq!(backend["precision"], "int8", "{backend}");
    assert_eq!(backend["engine"], "libtorch", "{backend}");
    let mut evaluator = Evaluator::new(gt.clone(), EvalParams::new(IouType::Bbox)).unwrap();
    let mut all: Vec<Detection> = Vec::new();
    let mut clock = StageClock::new();
    let coco: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gt_path).unwrap()).unwrap();
    for image in coco["images"].as_array().unwrap() {
        let image_id = image["id"].as_u64().unwrap();
        let file = image["file_name"].as_str().unwrap();
        let decoded = detbench_imgproc::decode_file(images.join(file)).unwrap();
        let input = ImageInput {
            image_id,
            image: &decoded,
        };
        let mut detections = detector.detect(&[input], &mut clock).unwrap();
        let detections = detections.pop().unwrap();
        evaluator.add_image(image_id, &detections).unwrap();
        all.extend(detections);
    }
    let summary = evaluator.finish().unwrap();

    let reference: Vec<Detection> = serde_json::from_str(
        &std::fs::read_to_string(reference_dir().join("detections_subset.json")).unwrap(),
    )
    .unwrap();
    let agreement = compare_boxes(&reference, &all, &MatchCriteria::default());
    eprintln!("{}", agreement.summary());
    // On CPUs with AVX512-VNNI, PyTorch's int8 x86/fbgemm kernels are not the ones the reference
    // ran on, and the detections differ (measured on an AVX-512 VNNI EPYC: 2.6% of them matched,
    // AP 0.2141 against 0.2126; the backend's torch_qnnpack test shows the pipeline itself is
    // exact there). The AP check below holds on both kinds of CPU.
    if !cpu_has_avx512_vnni() {
        assert!(
            agreement.matched_fraction() >= 0.99,
            "{}",
            agreement.summary()
        );
    }

    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference_dir().join("stats.json")).unwrap())
            .unwrap();
    let want: Vec<f64> = stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let largest_stat_difference = want
        .iter()
        .zip(&summary.stats)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("largest difference over the 12 COCO stats: {largest_stat_difference:e}");
    let want_ap = want[0];
    let got_ap = summary.stat("AP").unwrap();
    eprintln!(
        "D2Go subset: {} detections (reference {}), AP {got_ap:.6} (reference {want_ap:.6})",
        all.len(),
        reference.len()
    );
    assert!(
        (got_ap - want_ap).abs() <= 0.003,
        "AP {got_ap} is more than 0.3 points from the reference {want_ap}"
    );
}

fn cpu_has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
