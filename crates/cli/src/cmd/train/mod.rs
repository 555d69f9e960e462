//! `detbench train`: training throughput of torchvision detectors through libtorch (cargo
//! feature `torch`), as NVIDIA's Mask R-CNN tables report it: one run per model x batch x
//! precision, each timed after its warm-up, printed as the training tables and written as
//! results.md/.json, training.csv, training_steps.csv and the loss-curve chart; recorded in the
//! results store.
//!
//! The walk: clap parses the options into their types ([`Options`]), [`plan`] turns them into
//! one checked `TrainConfig` per run (data read and checked before any libtorch work), the
//! trainer runs them one after another with the progress display, and the results are written
//! out as `detbench run`'s are. Without the `torch` feature the command says how to build it.

#[cfg(feature = "torch")]
mod plan;
#[cfg(feature = "torch")]
mod progress;

use std::path::PathBuf;

use detbench_backends::Device;
use detbench_train::{ModelKind, Precision, Rendezvous};

use crate::cmd::engine::TorchLibraryArgs;

/// The options, boxed: they are large, and clap's subcommand enum holds them by value.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: Box<Options>,
}

/// The help heading of the recipe's options.
const RECIPE: &str = "Recipe (torchvision references/detection)";
/// The help heading of the data-parallel options.
const PARALLEL: &str = "Data parallelism (one process per device)";

// Without libtorch the options are parsed (so that `--help` works) but not used.
#[derive(clap::Args)]
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
pub struct Options {
    /// torchvision detectors to train (comma-separated or repeated).
    #[arg(
        short,
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "maskrcnn_resnet50_fpn"
    )]
    model: Vec<ModelKind>,

    /// The TorchScript file of the (single) model, made by tools/train/export_train_models.py.
    #[arg(long, value_name = "FILE", conflicts_with = "model_dir")]
    model_file: Option<PathBuf>,

    /// Folder of `<model>.pt` files made by tools/train/export_train_models.py.
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// COCO annotation file [default: the shipped instances_val2017_subset.json; the person
    /// keypoints subset for keypointrcnn_resnet50_fpn].
    #[arg(long, value_name = "FILE")]
    annotations: Option<PathBuf>,

    /// Image folder [default: the shipped val2017 subset].
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,

    /// Keep only the first N training images (by image id).
    #[arg(long, value_name = "N")]
    limit_images: Option<usize>,

    /// Images per step on each process (per GPU); several give one run each.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    batch: Vec<usize>,

    /// fp32 (TF32 off), tf32, amp (fp16 autocast + loss scaling) or bf16; several give one run
    /// each.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    precision: Vec<Precision>,

    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,

    /// Steps run before timing starts.
    #[arg(long, default_value_t = 20)]
    warmup_steps: usize,

    /// Steps timed after the warm-up; 0 runs --epochs whole epochs instead.
    #[arg(long, default_value_t = 100)]
    steps: usize,

    /// Epochs to run when --steps is 0.
    #[arg(long, default_value_t = 1)]
    epochs: usize,

    /// Seed of the data order, the flips and libtorch's generators.
    #[arg(long, default_value_t = 0)]
    seed: u64,

    /// Data-loading worker threads.
    #[arg(long, default_value_t = 4)]
    workers: usize,

    /// Batches prepared ahead per worker.
    #[arg(long, default_value_t = 2)]
    prefetch: usize,

    /// libtorch intra-op threads (CPU) [default: libtorch's choice].
    #[arg(long)]
    threads: Option<usize>,

    /// Deterministic algorithms (`torch.use_deterministic_algorithms(True)`), cuDNN benchmark off.
    #[arg(long)]
    deterministic: bool,

    /// cuDNN benchmark mode (torchvision's train.py leaves it off).
    #[arg(long)]
    cudnn_benchmark: bool,

    #[command(flatten)]
    recipe: RecipeArgs,

    #[command(flatten)]
    parallel: ParallelArgs,

    #[command(flatten)]
    libraries: TorchLibraryArgs,

    /// Write the trained module (TorchScript, eval mode) here, for `detbench run --backend
    /// torch` (one run only).
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,

    /// Write the first batch as the model sees it (.npz), for the parity check (one run only).
    #[arg(long, value_name = "FILE")]
    dump_first_batch: Option<PathBuf>,

    /// Output folder for results.md, results.json, training.csv, training_steps.csv and
    /// loss_curves.png/.svg [default: runs/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Results store: an SQLite file or a postgres:// URL [default: $DETBENCH_DB, else
    /// detbench.db in the platform data folder].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<detbench_report::store::StoreLocation>,

    /// Do not record the runs in the results store.
    #[arg(long)]
    no_store: bool,

    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

/// The optimiser and schedule (torchvision's train.py defaults).
#[derive(clap::Args)]
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
struct RecipeArgs {
    /// Learning rate for 16 images (scaled per image: lr x global batch / 16).
    #[arg(long, default_value_t = 0.02, help_heading = RECIPE)]
    lr: f64,

    /// Epochs at which the lr drops by --lr-gamma.
    #[arg(long, value_delimiter = ',', default_value = "16,22", help_heading = RECIPE)]
    lr_steps: Vec<usize>,

    #[arg(long, default_value_t = 0.1, help_heading = RECIPE)]
    lr_gamma: f64,

    /// RandomHorizontalFlip probability.
    #[arg(long, default_value_t = 0.5, help_heading = RECIPE)]
    hflip_prob: f64,

    /// Aspect-ratio grouping of batches; negative: plain batches.
    #[arg(
        long,
        default_value_t = 3,
        allow_negative_numbers = true,
        help_heading = RECIPE
    )]
    aspect_ratio_group_factor: i32,
}

/// One process of a data-parallel run: Gloo on the CPU, NCCL on CUDA.
#[derive(clap::Args)]
#[cfg_attr(not(feature = "torch"), allow(dead_code))]
struct ParallelArgs {
    /// Processes in the run (one per device).
    #[arg(long, default_value_t = 1, help_heading = PARALLEL)]
    world_size: usize,

    /// This process's rank, 0 to world size - 1.
    #[arg(long, default_value_t = 0, help_heading = PARALLEL)]
    rank: usize,

    /// Where the processes meet: file:///path or tcp://host:port (rank 0 serves).
    #[arg(long, value_name = "URL", help_heading = PARALLEL)]
    dist_init: Option<Rendezvous>,
}

#[cfg(feature = "torch")]
pub fn main(args: Args) -> anyhow::Result<()> {
    let plan = plan::TrainPlan::new(*args.options)?;
    plan.run_and_export()
}

#[cfg(not(feature = "torch"))]
pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!(
        "this detbench was built without libtorch, which `detbench train` needs. Build it with \
         the `torch` feature: `scripts/setup.sh --torch`, then \
         `LIBTORCH=$PWD/.deps/torch/torch cargo build --release --features torch`, and run it \
         with LD_LIBRARY_PATH=$PWD/.deps/torch/torch/lib (README: libtorch / CUDA)"
    )
}
