//! Data parallelism on the CPU through c10d's ProcessGroupGloo (the NCCL path differs only in the
//! group's backend): gradient averaging as DistributedDataParallel does it, and two trainer
//! processes that shard the data as DistributedSampler does and stay in step.

#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use detbench_train::coco::TrainSet;
use detbench_train::sampler::{aspect_ratio_groups, epoch_batches};
use detbench_train::torch::dist::{ProcessGroup, Store};
use detbench_train::torch::step::average_gradients;
use detbench_train::{GroupBackend, ModelKind, Parallel, Rendezvous, TrainConfig, TrainResults};
use tch::Tensor;

/// Two ranks in one process (threads): rank r's gradients are r + 1 everywhere; after DDP's
/// averaging every rank holds 1.5, whatever the bucket size.
#[test]
fn gradients_are_averaged_over_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let init: Rendezvous = format!("file://{}", dir.path().join("store").display())
        .parse()
        .unwrap();
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

/// Through this variable the test hands a rank process its configuration and where to write its
/// results (a JSON file holding both).
const RANK_ENV: &str = "DETBENCH_TRAIN_TEST_RANK";

/// The rank processes of the test below: the test binary runs itself with only this test selected
/// and [`RANK_ENV`] set, so that each rank is a process of its own (libtorch's settings are
/// process-wide) without a separate trainer binary. In a normal test run it does nothing.
#[test]
fn rank_process() {
    let Some(spec) = std::env::var_os(RANK_ENV) else {
        return;
    };
    let (config, out): (TrainConfig, PathBuf) =
        serde_json::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let results = detbench_train::torch::train(&config).unwrap();
    std::fs::write(out, serde_json::to_string(&results).unwrap()).unwrap();
}

fn spawn_rank(dir: &Path, rank: usize, init: &Rendezvous) -> std::process::Child {
    let name = format!("rank{rank}");
    let mut config = TrainConfig::new(
        ModelKind::MaskrcnnResnet50Fpn,
        common::small_maskrcnn(),
        common::annotations(),
        common::images(),
    );
    config.batch = 1;
    config.warmup_steps = 0;
    config.timed_steps = Some(2);
    config.threads = Some(1);
    config.workers = 1;
    config.seed = 5;
    config.limit_images = Some(12);
    config.deterministic = true;
    config.dump_first_batch = Some(dir.join(format!("{name}.npz")));
    config.parallel = Some(Parallel {
        rank,
        world_size: 2,
        init: init.clone(),
        backend: GroupBackend::Gloo,
    });
    let spec = dir.join(format!("{name}.spec.json"));
    let out = dir.join(format!("{name}.json"));
    std::fs::write(&spec, serde_json::to_string(&(config, out)).unwrap()).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "rank_process",
            "--exact",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env(RANK_ENV, &spec)
        .spawn()
        .unwrap()
}

fn read(dir: &Path, name: &str) -> (TrainResults, i64) {
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
    let init = Rendezvous::File(dir.path().join("store"));
    let children: Vec<_> = (0..2)
        .map(|rank| spawn_rank(dir.path(), rank, &init))
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
