//! Training outputs from typed training results (no libtorch needed): the runs table, the
//! NVIDIA-style speed-up table (TF32 and AMP over FP32, medians of repeated runs, stopped runs
//! left out), the run's files (results.md's training section, training.csv, training_steps.csv,
//! no inference results.csv) and the loss-curve chart.

use std::path::PathBuf;

use detbench_bench::results::RunResults;
use detbench_report::run_files::{console_summary, markdown_report, write_run_files};
use detbench_report::tables::training::{training_runs_table, training_speedup_table};
use detbench_report::tables::{Cell, TrainingEntry};
use detbench_train::results::throughput;
use detbench_train::{Device, ModelKind, Precision, StepRecord, TrainConfig, TrainResults};

/// A run whose timed steps each take `step_s` at `batch` (so images/s is `batch / step_s`).
fn run(model: ModelKind, precision: Precision, batch: usize, step_s: f64) -> TrainResults {
    let mut config = TrainConfig::new(
        model,
        "m.pt".into(),
        "ann.json".into(),
        PathBuf::from("images"),
    );
    config.precision = precision;
    config.batch = batch;
    config.device = Device::Cuda(0);
    config.warmup_steps = 1;
    config.timed_steps = Some(3);
    let loss_names: Vec<String> = match model {
        ModelKind::RetinanetResnet50Fpn => vec!["classification".into(), "bbox_regression".into()],
        _ => vec!["loss_classifier".into(), "loss_box_reg".into()],
    };
    let steps: Vec<StepRecord> = (0..4)
        .map(|i| StepRecord {
            step: i,
            epoch: 0,
            lr: 0.001 * i as f64,
            losses: vec![2.0 - 0.25 * i as f64, 0.5],
            total_loss: 2.5 - 0.25 * i as f64,
            // The warm-up step is slow; timed steps take `step_s`.
            step_s: if i == 0 { 10.0 } else { step_s },
            data_wait_s: 0.001,
            loss_scale: (precision == Precision::Amp).then_some(65536.0),
            skipped: false,
        })
        .collect();
    TrainResults {
        throughput: throughput(&steps, 1, batch, 1),
        config,
        dataset_images: 204,
        removed_images: 2,
        batches_per_epoch: 102 / batch,
        warmup_iters: 101,
        world_size: 1,
        rank: 0,
        loss_names,
        steps,
        peak_memory: Some(detbench_train::PeakMemory {
            allocated_bytes: 3 << 30,
            reserved_bytes: 4 << 30,
        }),
        options: vec![],
        param_checksum: [0.0, 0.0],
        saved: None,
        wall_s: 12.0,
        stopped: None,
    }
}

fn grid() -> Vec<TrainResults> {
    let m = ModelKind::MaskrcnnResnet50Fpn;
    let mut stopped = run(m, Precision::Amp, 2, 0.015625);
    stopped.steps.truncate(2);
    stopped.stopped = Some("loss is NaN at step 2 (epoch 0); stopping training".into());
    vec![
        // Step times exact in binary, so images/s are exact: 8, 16 and 12.8 img/s at fp32
        // (median 12.8), 16 at tf32, 32 at amp.
        run(m, Precision::Fp32, 2, 0.25),
        run(m, Precision::Fp32, 2, 0.125),
        run(m, Precision::Fp32, 2, 0.15625),
        run(m, Precision::Tf32, 2, 0.125),
        run(m, Precision::Amp, 2, 0.0625),
        // Stopped: not in the speed-ups.
        stopped,
        run(ModelKind::RetinanetResnet50Fpn, Precision::Amp, 8, 0.4), // alone: no ratio
    ]
}

fn number(cell: &Cell) -> f64 {
    match cell {
        Cell::Number { value, .. } | Cell::Ratio(value) => *value,
        other => panic!("not a number: {other:?}"),
    }
}

#[test]
fn the_speedup_table_compares_precisions_of_one_setting_by_their_medians() {
    let runs = grid();
    let entries = TrainingEntry::of_run(&runs);
    let table = training_speedup_table(&entries).expect("two precisions of one setting");
    assert_eq!(
        table.columns,
        [
            "Model",
            "Device",
            "GPUs",
            "Batch/GPU",
            "fp32 (img/s)",
            "tf32 (img/s)",
            "amp (img/s)",
            "TF32 speed-up",
            "AMP speed-up"
        ]
    );
    let mask = &table.rows[0];
    assert_eq!(mask[0], Cell::text("maskrcnn_resnet50_fpn"));
    assert_eq!(mask[1], Cell::text("cuda:0"));
    assert!((number(&mask[4]) - 12.8).abs() < 1e-9, "{mask:?}");
    assert!((number(&mask[5]) - 16.0).abs() < 1e-9);
    assert!(
        (number(&mask[6]) - 32.0).abs() < 1e-9,
        "the stopped amp run is left out"
    );
    assert!((number(&mask[7]) - 1.25).abs() < 1e-9);
    assert!((number(&mask[8]) - 2.5).abs() < 1e-9);
    let retina = &table.rows[1];
    assert_eq!(retina[0], Cell::text("retinanet_resnet50_fpn"));
    assert_eq!(retina[4], Cell::Empty);
    assert_eq!(retina[8], Cell::Empty, "no fp32 run: no speed-up");
    // One precision per setting: nothing to compare.
    let single = TrainingEntry::of_run(&runs[..1]);
    assert!(training_speedup_table(&single).is_none());
}

#[test]
fn the_runs_table_has_a_row_per_run_and_says_which_stopped() {
    let runs = grid();
    let table = training_runs_table(&TrainingEntry::of_run(&runs));
    assert_eq!(table.rows.len(), runs.len());
    let first = &table.rows[0];
    assert_eq!(number(&first[5]), 8.0, "images/s");
    assert_eq!(number(&first[6]), 250.0, "step mean ms");
    assert_eq!(number(&first[9]), 250.0, "step p99 ms");
    assert!((number(&first[12]) - 3.0).abs() < 1e-9, "peak GiB");
    assert_eq!(number(&first[13]), 3.0, "timed steps");
    assert_eq!(
        table.rows[5][0],
        Cell::text("maskrcnn_resnet50_fpn (stopped)")
    );
    assert!(
        table
            .notes
            .iter()
            .any(|n| n.contains("stopped after 2 step(s): loss is NaN")),
        "{:?}",
        table.notes
    );
}

/// The results of a `detbench train` run of [`grid`].
fn training_run() -> RunResults {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "detbench_version": "test",
        "started_at": "2026-12-03T00:00:00Z",
        "command_line": ["detbench", "train"],
        "environment": detbench_env::capture().to_json(),
        "models": [],
        "training": grid(),
    }))
    .expect("a training run matches the RunResults contract")
}

#[test]
fn a_training_run_reports_its_tables() {
    let results = training_run();
    let md = markdown_report(&results);
    assert!(md.starts_with("# detbench train"), "{md}");
    assert!(
        !md.contains("| Model | Input |"),
        "no inference table: {md}"
    );
    let training = md
        .split("\n## Training\n")
        .nth(1)
        .expect("a Training section");
    assert!(
        training.contains("### Training throughput by precision"),
        "{md}"
    );
    assert!(
        training.contains(
            "| maskrcnn_resnet50_fpn | cuda:0 | 1 | 2 | 12.80 | 16.00 | 32.00 | 1.25x | 2.50x |"
        ),
        "{md}"
    );
    assert!(training.contains("- data: 204 training images"), "{md}");
    assert!(console_summary(&results).contains("Training runs:"));
}

#[test]
fn a_training_run_writes_its_csvs_and_json() {
    let results = training_run();
    let dir = tempfile::tempdir().unwrap();
    let written = write_run_files(dir.path(), &results).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "results.md",
            "training.csv",
            "training_steps.csv",
            "results.json"
        ]
    );
    let csv = std::fs::read_to_string(dir.path().join("training.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 7);
    assert!(
        lines[1].starts_with("maskrcnn_resnet50_fpn,cuda:0,fp32,2,1,ok,8,8,"),
        "{}",
        lines[1]
    );
    assert!(
        lines[6].contains(",stopped: loss is NaN at step 2"),
        "{}",
        lines[6]
    );
    let steps = std::fs::read_to_string(dir.path().join("training_steps.csv")).unwrap();
    let header = steps.lines().next().unwrap();
    assert_eq!(
        header,
        "training_index,model,precision,batch_per_gpu,step,epoch,lr,total_loss,loss_classifier,\
         loss_box_reg,classification,bbox_regression,step_ms,data_wait_ms,loss_scale,skipped"
    );
    // 6 runs of 4 steps and the stopped one's 2; RetinaNet's row has no loss_classifier.
    assert_eq!(steps.lines().count(), 1 + 6 * 4 + 2);
    let last = steps.lines().last().unwrap();
    assert!(
        last.starts_with("6,retinanet_resnet50_fpn,amp,8,3,0,"),
        "{last}"
    );
    assert!(last.contains(",,,1.25,0.5,400,1,65536,false"), "{last}");
    // results.json reads back to the same training runs.
    let back: RunResults =
        serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(back.training, results.training);
}

#[test]
fn a_training_run_draws_its_loss_curves() {
    let results = training_run();
    let dir = tempfile::tempdir().unwrap();
    let out = std::env::var_os("DETBENCH_CHARTS_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("charts"));
    let charts =
        detbench_report::charts::write_loss_curves(&TrainingEntry::of_run(&results.training), &out)
            .unwrap();
    assert_eq!(charts.len(), 2);
    let png = image::open(&charts[0]).unwrap();
    // Title and 7 legend lines above 3 rows of 2 panels (total + 4 loss names).
    assert_eq!(
        (png.width(), png.height()),
        (1400, 60 + 7 * 30 + 10 + 3 * 360)
    );
    let svg = std::fs::read_to_string(&charts[1]).unwrap();
    for text in [
        "Training loss per step",
        "total loss",
        "bbox_regression",
        "step",
    ] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }
    assert!(
        svg.contains("maskrcnn_resnet50_fpn fp32 batch 2 (1)"),
        "duplicate labels told apart"
    );
}
