//! Every detector the trainer knows trains through the same path: two steps of Faster R-CNN,
//! RetinaNet and Keypoint R-CNN on the CPU at a small size (min_size 320), each returning
//! torchvision's loss components for that model, in its order, finite and positive. (Mask R-CNN
//! is checked step for step against PyTorch in `parity.rs`.)

#![cfg(feature = "torch")]

mod common;

use detbench_train::{ModelKind, TrainConfig};

/// libtorch's generator, thread count and deterministic switch are process-wide: one run at a
/// time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Two steps at batch 1, and the loss names torchvision's `forward` returns in training mode
/// (GeneralizedRCNN: the RoI heads' losses, then the RPN's; RetinaNet: `compute_loss`).
fn two_steps(model: ModelKind, annotations: std::path::PathBuf, expected: &[&str]) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = TrainConfig::new(
        model,
        common::small_model(model.as_str()),
        annotations,
        common::images(),
    );
    config.batch = 1;
    config.warmup_steps = 0;
    config.timed_steps = Some(2);
    config.threads = Some(2);
    config.workers = 1;
    config.limit_images = Some(8);
    let results = detbench_train::torch::train(&config).unwrap();
    assert_eq!(results.loss_names, expected, "{model}");
    assert_eq!(results.steps.len(), 2);
    for step in &results.steps {
        assert_eq!(step.losses.len(), expected.len());
        assert!(
            step.losses.iter().all(|l| l.is_finite() && *l > 0.0),
            "{model}: step {} losses {:?}",
            step.step,
            step.losses
        );
        let sum: f64 = step.losses.iter().sum();
        assert!((sum - step.total_loss).abs() <= 1e-4 * sum.abs(), "{model}");
    }
    assert!(results.throughput.unwrap().images_per_s > 0.0);
}

#[test]
fn faster_rcnn_trains() {
    two_steps(
        ModelKind::FasterrcnnResnet50Fpn,
        common::annotations(),
        &[
            "loss_classifier",
            "loss_box_reg",
            "loss_objectness",
            "loss_rpn_box_reg",
        ],
    );
}

#[test]
fn retinanet_trains() {
    two_steps(
        ModelKind::RetinanetResnet50Fpn,
        common::annotations(),
        &["classification", "bbox_regression"],
    );
}

#[test]
fn keypoint_rcnn_trains() {
    two_steps(
        ModelKind::KeypointrcnnResnet50Fpn,
        common::keypoint_annotations(),
        &[
            "loss_classifier",
            "loss_box_reg",
            "loss_keypoint",
            "loss_objectness",
            "loss_rpn_box_reg",
        ],
    );
}
