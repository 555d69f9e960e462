//! Training runs in the store (schema version 5, `training_runs` / `training_steps`), on both
//! backends: a run's `TrainResults` come back bit for bit with their steps, the headline columns
//! hold what the results say, filters apply, and a version-4 store upgrades keeping its rows.

use std::path::PathBuf;

use crate::common::db::{TestDb, count};
use crate::common::{Synth, run};
use crate::store_suite::{TABLES, all};
use detbench_backends::EngineKind;
use detbench_report::schema::SCHEMA_VERSION;
use detbench_report::store::{Filter, OpenOptions, Store};
use detbench_train::results::throughput;
use detbench_train::{
    Device, ModelKind, PeakMemory, Precision, StepRecord, TrainConfig, TrainResults,
};

/// One process's results of an amp run with values that are not short in decimal (thirds,
/// tenths, denormal-adjacent), a skipped optimiser step and every optional part set.
fn amp_results(rank: usize, world_size: usize) -> TrainResults {
    let mut config = TrainConfig::new(
        ModelKind::MaskrcnnResnet50Fpn,
        "maskrcnn.pt".into(),
        "instances.json".into(),
        PathBuf::from("val2017"),
    );
    config.precision = Precision::Amp;
    config.batch = 4;
    config.device = Device::Cuda(rank);
    config.warmup_steps = 2;
    config.timed_steps = Some(5);
    let steps: Vec<StepRecord> = (0..7)
        .map(|i| {
            let x = i as f64;
            StepRecord {
                step: i,
                epoch: i / 3,
                lr: 0.02 * (x + 1.0) / 3.0,
                losses: vec![1.0 / (x + 3.0), 0.1 + 0.2 * x, 5e-324 * x, 2.0f64.sqrt()],
                total_loss: 1.0 / (x + 3.0) + 0.1 + 0.2 * x + 2.0f64.sqrt(),
                step_s: 0.1 + x / 7.0,
                data_wait_s: 1e-4 / (x + 1.0),
                loss_scale: Some(if i < 4 { 65536.0 } else { 32768.0 }),
                skipped: i == 3,
            }
        })
        .collect();
    TrainResults {
        throughput: throughput(&steps, 2, 4, world_size),
        config,
        dataset_images: 204,
        removed_images: 2,
        batches_per_epoch: 3,
        warmup_iters: 51,
        world_size,
        rank,
        loss_names: [
            "loss_classifier",
            "loss_box_reg",
            "loss_mask",
            "loss_objectness",
        ]
        .map(String::from)
        .to_vec(),
        steps,
        peak_memory: Some(PeakMemory {
            allocated_bytes: (37 << 30) + 12345,
            reserved_bytes: 40 << 30,
        }),
        options: vec![
            ("libtorch".into(), "2.11.0".into()),
            ("tf32".into(), "off".into()),
        ],
        param_checksum: [1234.5678901234567, 1.0 / 3.0],
        saved: Some(PathBuf::from("out/model.pt")),
        wall_s: 42.0 / 11.0,
        stopped: (rank == 1).then(|| "loss is NaN at step 7 (epoch 2); stopping training".into()),
    }
}

/// A `detbench train` run over two processes: two `TrainResults`, no inference results.
fn training_run() -> detbench_bench::results::RunResults {
    let mut results = run(&[]);
    results.command_line = ["detbench", "train", "--model", "maskrcnn_resnet50_fpn"]
        .map(String::from)
        .to_vec();
    results.skipped.clear();
    results.training = vec![amp_results(0, 2), amp_results(1, 2)];
    results
}

/// Every float of the steps, as bits: `assert_eq!` on f64 would let -0.0 == 0.0 through.
fn step_bits(r: &TrainResults) -> Vec<u64> {
    r.steps
        .iter()
        .flat_map(|s| {
            [s.lr, s.total_loss, s.step_s, s.data_wait_s]
                .into_iter()
                .chain(s.losses.iter().copied())
                .chain(s.loss_scale)
        })
        .map(f64::to_bits)
        .collect()
}

pub fn a_training_run_round_trips_exactly(db: &TestDb) {
    let mut store = Store::connect(&db.location).unwrap();
    let input = training_run();
    let run_id = store.record_run(&input).unwrap();

    let stored = store.training_runs(&Filter::default()).unwrap();
    assert_eq!(stored.len(), 2);
    for (record, expected) in stored.iter().zip(&input.training) {
        assert_eq!(record.run_id, run_id);
        assert_eq!(record.started_at, input.started_at);
        assert_eq!(&record.results, expected);
        assert_eq!(step_bits(&record.results), step_bits(expected));
    }
    assert!(
        store.results(&all()).unwrap().is_empty(),
        "no inference rows"
    );
    let runs = store.runs().unwrap();
    assert_eq!((runs[0].results, runs[0].training), (0, 2));

    // The headline columns hold what the results say.
    let t = input.training[0].throughput.as_ref().unwrap();
    let row = &store
        .query(
            "SELECT model, precision, batch_size, device, world_size, step_count, timed_steps,
                    global_images_per_s, step_p99_ms, peak_allocated_bytes, final_loss_scale,
                    skipped_optimizer_steps, stopped
             FROM training_runs WHERE process_rank = 0",
            &[],
        )
        .unwrap()[0];
    assert_eq!(row.text(0).unwrap(), "maskrcnn_resnet50_fpn");
    assert_eq!(row.text(1).unwrap(), "amp");
    assert_eq!(row.i64(2).unwrap(), 4);
    assert_eq!(row.text(3).unwrap(), "cuda:0");
    assert_eq!((row.i64(4).unwrap(), row.i64(5).unwrap()), (2, 7));
    assert_eq!(row.i64(6).unwrap(), 5);
    assert_eq!(row.f64(7).unwrap(), t.global_images_per_s);
    assert_eq!(row.f64(8).unwrap(), t.step.p99_ms);
    assert_eq!(row.i64(9).unwrap(), (37 << 30) + 12345);
    assert_eq!(row.f64(10).unwrap(), 32768.0);
    assert_eq!(row.i64(11).unwrap(), 1);
    assert_eq!(row.opt_text(12).unwrap(), None);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM training_steps WHERE skipped = 1"
        ),
        2
    );
    assert_filters(&store);
}

fn assert_filters(store: &Store) {
    let matching = |filter: Filter| store.training_runs(&filter).unwrap().len();
    let by_device = Filter {
        devices: vec!["cuda:1".parse().unwrap()],
        ..Filter::default()
    };
    assert_eq!(matching(by_device), 1);
    let by_model = Filter {
        models: vec!["fasterrcnn_resnet50_fpn".into()],
        ..Filter::default()
    };
    assert_eq!(matching(by_model), 0);
    let by_batch = Filter {
        batch_sizes: vec![4],
        ..Filter::default()
    };
    assert_eq!(matching(by_batch), 2);
    let onnx_only = Filter {
        engines: vec![EngineKind::Ort],
        ..Filter::default()
    };
    assert_eq!(matching(onnx_only), 0, "training runs are libtorch");
}

/// A version-4 store with an inference run upgrades to version 5 keeping the run, and then
/// takes a training run.
pub fn migrates_a_version_4_store_with_data(db: &TestDb) {
    let options = OpenOptions {
        migrate_to: Some(4),
        ..OpenOptions::default()
    };
    let mut old = Store::connect_with(&db.location, &options).unwrap();
    assert_eq!(old.schema_version().unwrap(), 4);
    let inference = run(&[Synth::new("yolox_nano", 0.2581, 25.0)]);
    old.record_run(&inference).unwrap();
    let before = old.results(&all()).unwrap();
    assert_eq!(before.len(), 1);
    drop(old);

    let mut store = Store::connect(&db.location).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(db.tables(), TABLES);
    assert_eq!(store.results(&all()).unwrap(), before);
    let samples = store
        .latency_samples(before[0].result_id, "end_to_end")
        .unwrap();
    assert_eq!(
        samples.len(),
        before[0].latency.as_ref().unwrap().end_to_end.count
    );
    assert!(store.training_runs(&Filter::default()).unwrap().is_empty());

    let input = training_run();
    let run_id = store.record_run(&input).unwrap();
    let stored = store.training_runs(&Filter::default()).unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|r| r.run_id == run_id));
    assert_eq!(stored[1].results, input.training[1]);
    let runs = store.runs().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.results, r.training))
            .collect::<Vec<_>>(),
        [(0, 2), (1, 0)],
        "newest first"
    );
}
