//! Data parallelism on the CPU through c10d's ProcessGroupGloo (the NCCL path differs only in the
//! group's backend): gradient averaging as DistributedDataParallel does it, and two trainer
//! processes that shard the data as DistributedSampler does and stay in step.

#![cfg(feature = "torch")]

mod common;

use std::process::Command;

use detbench_train::coco::TrainSet;
use detbench_train::sampler::{aspect_ratio_groups, epoch_batches};
use detbench_train::torch::dist::{ProcessGroup, Store};
use detbench_train::torch::step::average_gradients;
use detbench_train::{ModelKind, TrainResults};
use tch::Tensor;

/// Two ranks in one process (threads): rank r's gradients are r + 1 everywhere; after DDP's
/// averaging every rank holds 1.5, whatever the bucket size.
#[test]
fn gradients_are_averaged_over_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let init = format!("file://{}", dir.path().join("store").display());
    let ranks: Vec<_> = (0..2)
        .map(|rank| {
            let init = init.clone();
            std::thread::spawn(move || {
                let pg = ProcessGroup::gloo(Store::new(&init, rank, 2).unwrap(), rank, 2).unwrap();
                let grads = vec![
                    Tensor::full([5], (rank + 1) as f64, (tch::Kind::Float, tch::Device::Cpu)),
                    Tensor::full(
                        [2, 3],
                        (rank + 1) as f64,
                        (tch::Kind::Float, tch::Device::Cpu),
                    ),
                    Tensor::full(
                        [7],
                        10.0 * (rank + 1) as f64,
                        (tch::Kind::Float, tch::Device::Cpu),
                    ),
                ];
                // 40-byte buckets: three all-reduces
                average_gradients(&grads, &pg, 2, 40).unwrap();
                grads
                    .iter()
                    .map(|g| Vec::<f32>::try_from(g.reshape([-1])).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in ranks {
        let grads = handle.join().unwrap();
        assert!(
            grads[0].iter().chain(&grads[1]).all(|&v| v == 1.5),
            "{grads:?}"
        );
        assert!(grads[2].iter().all(|&v| v == 15.0), "{grads:?}");
    }
}

fn run_trainer(dir: &std::path::Path, name: &str, extra: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_detbench-train"));
    cmd.args([
        "--model",
        "maskrcnn_resnet50_fpn",
        "--batch",
        "1",
        "--warmup-steps",
        "0",
        "--steps",
        "2",
    ])
    .args([
        "--threads",
        "1",
        "--workers",
        "1",
        "--seed",
        "5",
        "--limit-images",
        "12",
        "--deterministic",
        "--quiet",
    ])
    .arg("--model-file")
    .arg(common::small_maskrcnn())
    .arg("--annotations")
    .arg(common::annotations())
    .arg("--images")
    .arg(common::images())
    .arg("--out")
    .arg(dir.join(format!("{name}.json")))
    .arg("--dump-first-batch")
    .arg(dir.join(format!("{name}.npz")))
    .args(extra);
    cmd
}

fn read(dir: &std::path::Path, name: &str) -> (TrainResults, i64) {
    let results: TrainResults =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let batch = Tensor::read_npz(dir.join(format!("{name}.npz"))).unwrap();
    let meta = &batch.iter().find(|(n, _)| n == "meta0").unwrap().1;
    (results, meta.int64_value(&[0]))
}

#[test]
fn two_gloo_processes_shard_the_data_and_end_with_the_same_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let init = format!("file://{}", dir.path().join("store").display());
    let children: Vec<_> = (0..2)
        .map(|rank| {
            let extra = [
                "--world-size".into(),
                "2".into(),
                "--rank".into(),
                rank.to_string(),
                "--dist-init".into(),
                init.clone(),
            ];
            run_trainer(dir.path(), &format!("rank{rank}"), &extra)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a rank failed");
    }
    let (r0, first0) = read(dir.path(), "rank0");
    let (r1, first1) = read(dir.path(), "rank1");
    // Identical parameters (sum and sum of squares, float64) and identical reduced losses.
    assert_eq!(r0.param_checksum, r1.param_checksum);
    for (a, b) in r0.steps.iter().zip(&r1.steps) {
        assert_eq!(a.losses, b.losses);
    }
    // DistributedSampler: rank r starts at position r of the epoch's order.
    let mut set = TrainSet::load(
        &common::annotations(),
        &common::images(),
        ModelKind::MaskrcnnResnet50Fpn,
    )
    .unwrap();
    set.truncate(12);
    let groups = aspect_ratio_groups(&set.aspect_ratios(), 3);
    for (rank, first) in [(0, first0), (1, first1)] {
        let batches = epoch_batches(12, 5, 0, 0.5, rank, 2, Some(&groups), 1);
        assert_eq!(
            set.images[batches[0][0].index].image_id as i64, first,
            "rank {rank}'s first image"
        );
    }
    assert_ne!(first0, first1);
    assert_eq!(r0.world_size, 2);
    assert_eq!(
        r0.throughput.as_ref().unwrap().global_images_per_s,
        2.0 * r0.throughput.as_ref().unwrap().images_per_s
    );
}
