//! The `detbench` command: parses the command line and hands each subcommand to its module
//! under `cmd/`.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "detbench",
    version,
    about = "COCO accuracy and latency of object-detection, segmentation and keypoint models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmark models: COCO accuracy and per-stage latency (default: YOLOX-Nano on the shipped
    /// val2017 subset, CPU).
    Run(cmd::run::Args),
    /// Evaluate a COCO results file against ground truth, printing pycocotools' summary.
    Eval(cmd::eval::Args),
    /// List the model zoo: every entry, whether its file is present and its sha256 matches.
    Zoo(cmd::zoo::Args),
    /// Render tables from the results store, optionally comparing settings side by side.
    Report(cmd::report::Args),
    /// Print the environment capture recorded with every run.
    Env(cmd::env::Args),
    /// Import a published Markdown results table into the store as "published" records.
    ImportMd(cmd::import_md::Args),
    /// Merge the shards of a run (`detbench run --shard I/N`, e.g. a Slurm job array) into its
    /// results files and the store, scoring all detections at once.
    Merge(cmd::merge::Args),
    /// Record results.json files in the store (runs whose store was unreachable, or copies
    /// into a team's PostgreSQL store).
    Import(cmd::import::Args),
    /// Draw a model's detections (boxes, labels, scores, masks, keypoints) on an image.
    Show(cmd::show::Args),
    /// Train torchvision detectors through libtorch and time them: images/s per model x batch x
    /// precision (fp32, tf32, amp, bf16), step-time percentiles, loss curves (feature `torch`).
    Train(cmd::train::Args),
}

/// Errors are expected input problems (a bad file, a missing model): the message and exit
/// status only, never a Rust backtrace, whatever `RUST_BACKTRACE` says (`anyhow`'s `Debug`
/// output, which `fn main() -> Result` prints, would add one).
fn main() -> ExitCode {
    // `Cli::parse` reads the arguments as `OsString`s (`args_os`), so a non-UTF-8 path is
    // passed on, not a panic.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = error
                .downcast_ref::<cmd::ExitStatus>()
                .map_or(1, |status| status.code);
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Eval(args) => cmd::eval::main(args),
        Command::Zoo(args) => cmd::zoo::main(args),
        Command::Report(args) => cmd::report::main(args),
        Command::Env(args) => cmd::env::main(args),
        Command::ImportMd(args) => cmd::import_md::main(args),
        Command::Merge(args) => cmd::merge::main(args),
        Command::Import(args) => cmd::import::main(args),
        Command::Show(args) => cmd::show::main(args),
        Command::Train(args) => cmd::train::main(args),
    }
}
