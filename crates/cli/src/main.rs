//! The `detbench` command: parses the command line and hands each subcommand to its module.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "detbench", version, about = "COCO accuracy and latency of detection models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
