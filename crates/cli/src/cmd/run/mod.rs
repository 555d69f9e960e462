//! `detbench run`: benchmark zoo models (or a model file, or a card) on a COCO dataset (default: YOLOX-Nano on the shipped
//! val2017 subset, CPU) and print the results table; write results.md/.csv/.json, optionally the
//! detections, and record the run in the results store. With `--shard I/N` it runs one shard
//! of the images and writes shard.json for `detbench merge` ([`shard`]); with `--devices` it runs
//! one worker process per device and merges them ([`devices`]).
//!
//! The walk is straight: clap parses the options into their types ([`Options`]), [`plan`]
//! resolves them once into what the run needs, [`plan::RunPlan::run`] drives the harness, and
//! [`export`] writes the results out.

mod devices;
mod export;
mod outputs;
mod plan;
mod progress;
mod scenario;
mod scenario_settings;
mod shard;

use std::path::PathBuf;

use anyhow::bail;
use detbench_bench::interrupt;
use detbench_bench::prefetch::DecodeKind;
use detbench_bench::results::RunResults;
use detbench_bench::scenario::EvalTiming;

use detbench_report::store::StoreLocation;

use crate::cmd::ExitStatus;
use crate::cmd::engine::EngineArgs;
pub use devices::DeviceList;
pub(crate) use export::{detections_targets, write_results};
pub use shard::ShardArg;

/// The options, boxed: they are large, and clap's subcommand enum holds them by value.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: Box<Options>,
}

#[derive(clap::Args)]
pub struct Options {
    /// Zoo names (comma-separated or repeated), or `all` for every model of the zoo whose file
    /// is present. `detbench zoo` lists them [default: yolox_nano, unless --model-file or
    /// --card gives a model].
    #[arg(short, long, value_delimiter = ',')]
    model: Vec<String>,

    /// A model file to run. An Ultralytics ONNX export (its metadata) or a DETR-style ONNX
    /// export (its inputs and outputs) describes itself; any other needs --card.
    #[arg(long, value_name = "PATH")]
    model_file: Option<PathBuf>,

    /// A model card (TOML; docs/MODEL_CARDS.md) describing --model-file, or, alone, a model
    /// whose file the card names (beside the card, else in --model-dir). `detbench zoo --card
    /// NAME` prints one to start from.
    #[arg(long, value_name = "FILE")]
    card: Option<PathBuf>,

    /// Batch sizes to measure, e.g. `1,2,4,8` (models with a fixed batch skip the others).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    batch: Vec<usize>,

    /// Untimed warm-up calls before the timed pass.
    #[arg(long, default_value_t = 10)]
    warmup: usize,

    /// Only the first N images (by image id).
    #[arg(long)]
    limit: Option<usize>,

    /// COCO image folder [default: $DETBENCH_DATASET_DIR, else the shipped val2017 subset].
    #[arg(long, value_name = "DIR", conflicts_with = "images")]
    images_dir: Option<PathBuf>,

    /// COCO instance annotation file [default: $DETBENCH_ANNOTATIONS, else the shipped
    /// instances_val2017_subset.json].
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    annotations: Option<PathBuf>,

    /// COCO person-keypoint annotation file, for keypoint models [default:
    /// $DETBENCH_KEYPOINT_ANNOTATIONS, else the shipped person_keypoints_val2017_subset.json].
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    keypoint_annotations: Option<PathBuf>,

    /// A folder of images without annotations: speed only. Image ids are the numeric file-name
    /// stems (as in COCO); if any stem is not a number, images are numbered 1..N by file name.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,

    #[command(flatten)]
    engine: EngineArgs,

    /// Folder holding the model files, and model cards (`*.toml`) that join the zoo [default:
    /// the shared models folder].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// How images reach the model: `chunked` (decode a chunk of images with all cores while the
    /// model waits, then run the chunk: nothing competes with the model while it is timed),
    /// `preload` (one chunk of all images), `prefetch` (decode threads run ahead of the model on
    /// a bounded queue, competing with it for the CPU) or `inline` (decode on the timed thread;
    /// end to end then includes decode).
    #[arg(long, value_enum, default_value_t = DecodeKind::Chunked)]
    decode: DecodeKind,

    /// Images per chunk in chunked mode (about 0.9 MB of memory per COCO image).
    #[arg(long, default_value_t = 512)]
    decode_chunk: usize,

    /// Decode threads [default: all cores for chunked/preload; 1 for prefetch, so that decoding
    /// takes at most one core from the model].
    #[arg(long)]
    decode_threads: Option<usize>,

    /// When detections are scored: after the timed pass, on every core (no effect on timing),
    /// or on a background thread while the model runs.
    #[arg(long, value_enum, default_value_t = EvalTiming::AfterRun)]
    eval: EvalTiming,

    /// Output folder for results.md, results.csv and results.json [default:
    /// runs/<UTC timestamp>]. A folder that already holds results is refused unless
    /// --overwrite.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Replace the results files an --out folder already holds.
    #[arg(long)]
    overwrite: bool,

    /// Write the detections as a COCO results file (with several models or batch sizes, the
    /// model name and batch are added before the extension).
    #[arg(long, value_name = "FILE")]
    save_detections: Option<PathBuf>,

    /// Results store: an SQLite file, or a PostgreSQL database as a postgres:// URL [default:
    /// $DETBENCH_DB, else detbench.db in the platform data folder, e.g. ~/.local/share/detbench;
    /// `detbench env` says which].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<StoreLocation>,

    /// Do not record the run in the results store.
    #[arg(long)]
    no_store: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,

    #[command(flatten)]
    scenario: scenario::ScenarioArgs,

    /// Run one shard of the images: `I/N` (shard I of N, from 0), or `auto` from the
    /// scheduler (a Slurm job array's SLURM_ARRAY_TASK_*, a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX). Writes shard.json (detections, raw samples, settings) for
    /// `detbench merge`, which scores all shards at once; nothing is recorded in the store.
    #[arg(long, value_name = "I/N|auto", help_heading = CLUSTER)]
    shard: Option<ShardArg>,

    /// The number of shards for `--shard auto` in a Kubernetes Indexed Job (its
    /// spec.completions) [default: $DETBENCH_SHARD_COUNT].
    #[arg(long, value_name = "N", help_heading = CLUSTER)]
    shard_count: Option<usize>,

    /// Run on several devices at once: one worker process per device, each on its shard of the
    /// images, merged at the end into a row "N devices", beside a row of the first device
    /// alone with the scaling efficiency. `cuda:0,cuda:1`, `cuda:all`, or `cpu,cpu` (CPU
    /// workers).
    #[arg(long, value_name = "LIST", help_heading = CLUSTER, conflicts_with_all = ["shard", "device"])]
    devices: Option<DeviceList>,
}

/// The help heading of the options for clusters and several devices.
const CLUSTER: &str = "Sharding and several devices";

pub fn main(args: Args) -> anyhow::Result<()> {
    if let Some(devices) = args.options.devices.clone() {
        return devices::main(*args.options, devices);
    }
    let plan = plan::RunPlan::new(*args.options)?;
    // An SQLite store was opened by the plan's output checks already (a failure refuses the
    // run); a PostgreSQL server that cannot be reached now only warns.
    if let Some(store @ StoreLocation::Postgres(_)) = &plan.store {
        crate::cmd::store::check_reachable(store);
    }
    handle_ctrl_c();
    let run = plan.run()?;
    export::export(&plan, &run)?;
    let results = &run.results;
    if results.interrupted {
        return Err(ExitStatus {
            code: 130,
            message: format!(
                "interrupted (Ctrl-C): {} finished row(s) written and recorded; {} model and \
                 batch size(s) not measured (listed under `skipped`)",
                results.models.len(),
                results
                    .skipped
                    .iter()
                    .filter(|s| s.reason.starts_with(interrupt::NOT_MEASURED))
                    .count()
            ),
        }
        .into());
    }
    if results.models.is_empty() && !results.skipped.is_empty() {
        bail!(
            "nothing was measured: every batch size was skipped:\n  {}",
            results
                .skipped
                .iter()
                .map(|s| format!("{} batch {}: {}", s.name, s.batch_size, s.reason))
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    fail_on_failed_rows(results)
}

/// Exit status 1, listing them, when rows failed (their files are written already).
pub fn fail_on_failed_rows(results: &RunResults) -> anyhow::Result<()> {
    let failed: Vec<String> = results
        .models
        .iter()
        .filter(|m| !m.is_ok())
        .map(|m| format!("{}: {}", m.label(), m.status))
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} rows failed:\n  {}",
            failed.len(),
            results.models.len(),
            failed.join("\n  ")
        );
    }
    Ok(())
}

/// Ctrl-C stops the run at the next image; the rows already finished are written and recorded
/// (the run is marked interrupted). A second Ctrl-C exits at once.
fn handle_ctrl_c() {
    let installed = ctrlc::set_handler(|| {
        if interrupt::requested() {
            eprintln!("\nsecond Ctrl-C: exiting now; nothing more is written");
            std::process::exit(130);
        }
        interrupt::request();
        eprintln!(
            "\nCtrl-C: stopping at the next image; the finished rows will be written (Ctrl-C \
             again exits at once)"
        );
    });
    if let Err(e) = installed {
        eprintln!("warning: Ctrl-C will end the run without writing anything: {e}");
    }
}
