//! `detbench run --shard I/N`: what a shard leaves for `detbench merge`. The shard runs the
//! normal harness on its images (`detbench_bench::shard` says which and why), scores nothing,
//! and writes `shard.json` into its output folder: the run (settings, environment, latency
//! with every raw sample) and per row its image ids and detections.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use detbench_bench::dataset::Dataset;
use detbench_bench::results::ModelResult;
use detbench_bench::shard::{
    PARTITION, SHARD_FILE, SHARD_FORMAT_VERSION, Shard, ShardError, ShardResult, ShardRow,
};
use detbench_eval::{CocoResult, Detection, IouType};

use super::plan::{Run, RunPlan};

/// `--shard`: a given shard, or `auto` (from the scheduler's variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardArg {
    Given(Shard),
    Auto,
}

impl FromStr for ShardArg {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(ShardArg::Auto),
            other => other.parse().map(ShardArg::Given),
        }
    }
}

/// A row's part of the shard file: the shard's images (`dataset`), its failed images' ids,
/// the IoU types its detections are scored with, and the detections.
pub fn shard_row(
    dataset: Option<&Dataset>,
    result: &ModelResult,
    detections: &[Detection],
    iou_types: Vec<IouType>,
) -> ShardRow {
    let image_ids: Vec<u64> = dataset.map_or_else(Vec::new, |d| {
        d.images.iter().map(|image| image.id).collect()
    });
    let failed_image_ids = result
        .failed_images
        .iter()
        .filter_map(|failed| {
            dataset?
                .images
                .iter()
                .find(|image| image.file_name == failed.file)
                .map(|image| image.id)
        })
        .collect();
    ShardRow {
        run_images: dataset.map_or(0, |d| d.run_images),
        image_ids,
        failed_image_ids,
        iou_types,
        detections: detections.iter().map(CocoResult::from).collect(),
    }
}

/// Writes `shard.json` (atomically: a shard folder either has a complete one or none) and
/// prints the latency table.
pub fn write(plan: &RunPlan, run: &Run, shard: Shard) -> anyhow::Result<PathBuf> {
    println!(
        "{}",
        detbench_report::run_files::console_summary(&run.results)
    );
    let result = ShardResult {
        shard_format_version: SHARD_FORMAT_VERSION,
        shard,
        partition: PARTITION.to_owned(),
        run: run.results.clone(),
        rows: run.shard_rows.clone(),
    };
    let path = plan.out_dir.join(SHARD_FILE);
    let json = serde_json::to_vec(&result).context("serialising the shard")?;
    detbench_report::write_atomic(&path, &json)
        .with_context(|| format!("writing the shard to {}", path.display()))?;
    let images: usize = run.shard_rows.first().map_or(0, |r| r.image_ids.len());
    eprintln!(
        "wrote shard {shard} ({images} images, accuracy not scored: `detbench merge` scores all \
         shards at once) to {}",
        path.display()
    );
    Ok(path)
}
