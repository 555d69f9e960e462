//! Bad input stops with a clear error, before any step where it can: an annotation file without
//! masks for Mask R-CNN, a batch larger than the data set, and losses that become NaN (the run
//! stops at that step and names every loss component, as torchvision's engine.py does, and keeps
//! the steps done).

#![cfg(feature = "torch")]

mod common;

use detbench_train::{ModelKind, TrainConfig, TrainError};

fn config() -> TrainConfig {
    let mut c = TrainConfig::new(
        ModelKind::MaskrcnnResnet50Fpn,
        common::small_maskrcnn(),
        common::annotations(),
        common::images(),
    );
    c.threads = Some(2);
    c.workers = 1;
    c.warmup_steps = 0;
    c
}

#[test]
fn annotations_without_masks_are_refused_for_mask_rcnn() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boxes_only.json");
    std::fs::write(
        &file,
        r#"{"images":[{"id":139,"file_name":"000000000139.jpg","width":640,"height":426}],
            "annotations":[{"id":5,"image_id":139,"category_id":1,"bbox":[10,10,50,50],"iscrowd":0}],
            "categories":[{"id":1,"name":"person"}]}"#,
    )
    .unwrap();
    let mut c = config();
    c.annotations = file.clone();
    let e = detbench_train::torch::train(&c).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            TrainError::Annotation {
                ann_id: 5,
                image_id: 139,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("boxes_only.json") && text.contains("segmentation"),
        "{text}"
    );
}

#[test]
fn a_batch_larger_than_the_data_set_is_refused() {
    let mut c = config();
    c.limit_images = Some(3);
    c.batch = 4;
    let text = detbench_train::torch::train(&c).unwrap_err().to_string();
    assert!(
        text.contains("batch 4 is larger than the data set") && text.contains("at most 3"),
        "{text}"
    );
}

#[test]
fn nan_losses_stop_the_run_with_the_step_and_the_losses() {
    let mut c = config();
    c.batch = 1;
    c.timed_steps = Some(6);
    c.recipe.lr_per_16 = 1e9;
    c.recipe.aspect_ratio_group_factor = -1;
    let (error, partial) = match detbench_train::torch::train(&c).unwrap_err() {
        TrainError::Stopped { error, partial } => (error, partial),
        other => panic!("expected a run stopped after some steps, got {other}"),
    };
    match *error {
        TrainError::NonFiniteLoss {
            step,
            total,
            ref components,
            ..
        } => {
            assert!((1..6).contains(&step), "step {step}");
            assert!(!total.is_finite());
            assert!(
                components.contains("loss_classifier=") && components.contains("loss_mask="),
                "{components}"
            );
            // The steps before it are kept, with why the run stopped.
            assert_eq!(partial.steps.len(), step);
            assert!(partial.steps.iter().all(|s| s.total_loss.is_finite()));
            let stopped = partial.stopped.as_deref().unwrap();
            assert!(stopped.contains(&format!("at step {step}")), "{stopped}");
            assert!(partial.saved.is_none());
        }
        ref other => panic!("expected a non-finite loss, got {other}"),
    }
}
