//! `detbench merge`: the shards of a run (`detbench run --shard I/N`) put back together as the
//! run they split, row by row.
//!
//! - **Detections** of all shards are put in image order (each image's own in the order its
//!   model returned them) and scored once, over the union of the shards' images, exactly as an
//!   unsharded run scores them after its timed pass ([`MergedRow::score`]): the stats equal the
//!   unsharded run's bit for bit.
//! - **Latency:** samples are pooled ([`latency`]); each shard's own summary is kept.
//! - **Refusals** ([`check`]): shards of different runs, a shard twice, overlapping shards,
//!   shards that are not the partition, and missing shards unless partial merges are allowed.

mod check;
mod latency;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use detbench_eval::{Detection, EvalError, GroundTruth, IouType};

use crate::batch_run::{evaluators, score_after_run, set_accuracy};
use crate::results::{DatasetIdentity, FailedImage, ModelResult, RunResults, Status};
use crate::shard::{PARTITION, RunSharding, Shard, ShardOrigin, ShardResult, ShardRow};
use crate::timing::summarize;

/// `provenance.harness.evaluation` of a merged row.
pub const MERGED_SCORING: &str = "after the merge, once over the union of the shards' detections";

/// A shard and where it was read from (named in errors).
#[derive(Debug, Clone)]
pub struct ShardInput {
    pub source: String,
    pub result: ShardResult,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no shards to merge")]
    NoShards,
    #[error(
        "{source_file}: shard file version {found}, this build reads version {supported}; merge \
         with the detbench that ran the shards"
    )]
    FormatVersion {
        source_file: String,
        found: u32,
        supported: u32,
    },
    #[error("shard {shard} is given twice: {a} and {b}")]
    Duplicate { shard: Shard, a: String, b: String },
    #[error(
        "{} of {count} shards missing: {}; merged: {}. Rerun {} (a shard killed mid-run leaves \
         no shard.json), or merge what there is with --allow-partial",
        missing.len(),
        missing.iter().map(|i| format!("shard {i}/{count}")).collect::<Vec<_>>().join(", "),
        present.iter().map(|(i, s)| format!("{i} ({s})")).collect::<Vec<_>>().join(", "),
        missing.iter().map(|i| format!("--shard {i}/{count}")).collect::<Vec<_>>().join(", ")
    )]
    Missing {
        missing: Vec<usize>,
        count: usize,
        present: Vec<(usize, String)>,
    },
    #[error("the shards are not of one run: {what} differs: {} in {}, {} in {}", a.1, a.0, b.1, b.0)]
    Different {
        what: String,
        a: (String, String),
        b: (String, String),
    },
    #[error(
        "shards overlap: image {image_id} ({row}) is in shard {} ({}) and in shard {} ({})",
        a.0, a.1, b.0, b.1
    )]
    Overlap {
        image_id: u64,
        row: String,
        a: (Shard, String),
        b: (Shard, String),
    },
    #[error(
        "shard {shard} ({source_file}) does not hold its part of the run ({row}): {images} images; \
         the shards together hold {union} of the run's {run_images} (run with a different \
         --limit or image list?)"
    )]
    NotThePartition {
        shard: Shard,
        source_file: String,
        row: String,
        images: usize,
        union: usize,
        run_images: usize,
    },
    #[error("{source_file}: {reason}")]
    BadDetections { source_file: String, reason: String },
}

/// A merged run: the results as a run writes them (accuracy still to score), and per row what
/// scoring needs.
#[derive(Debug)]
pub struct MergedRun {
    pub results: RunResults,
    pub rows: Vec<MergedRow>,
}

/// One merged row's scoring inputs.
#[derive(Debug)]
pub struct MergedRow {
    /// The union of the shards' images, ascending.
    pub image_ids: Vec<u64>,
    /// All detections, in image order.
    pub detections: Vec<Detection>,
    pub iou_types: Vec<IouType>,
}

impl MergedRow {
    /// Scores the detections over the union of the shards' images, as a run scores its own
    /// after the timed pass, and sets the row's accuracy.
    pub fn score(&self, result: &mut ModelResult, gt: Arc<GroundTruth>) -> Result<(), EvalError> {
        let evaluators = evaluators(&gt, &self.iou_types, &self.image_ids)?;
        let summaries = score_after_run(evaluators, &self.detections)?;
        set_accuracy(result, &summaries);
        Ok(())
    }
}

/// Merges the shards of one run. `command_line` is the merge's own. Shards may come in any
/// order; with `allow_partial`, missing shards are listed and the run is marked partial.
pub fn merge(
    mut shards: Vec<ShardInput>,
    allow_partial: bool,
    command_line: Vec<String>,
) -> Result<MergedRun, MergeError> {
    let missing = check::check(&shards, allow_partial)?;
    shards.sort_by_key(|s| s.result.shard.index);
    let first = &shards[0].result;
    let mut results = RunResults {
        schema_version: first.run.schema_version,
        detbench_version: first.run.detbench_version.clone(),
        started_at: shards
            .iter()
            .map(|s| s.result.run.started_at.clone())
            .min()
            .unwrap_or_default(),
        command_line,
        environment: first.run.environment.clone(),
        models: Vec::new(),
        skipped: first.run.skipped.clone(),
        interrupted: shards.iter().any(|s| s.result.run.interrupted),
        training: Vec::new(),
        sharding: Some(RunSharding {
            partition: PARTITION.to_owned(),
            count: first.shard.count,
            present: shards.iter().map(|s| s.result.shard.index).collect(),
            partial: !missing.is_empty(),
            missing,
            shards: shards.iter().map(origin).collect(),
        }),
    };
    let mut rows = Vec::new();
    for index in 0..first.rows.len() {
        let (model, row) = merge_row(&shards, index)?;
        results.models.push(model);
        rows.push(row);
    }
    Ok(MergedRun { results, rows })
}

fn origin(input: &ShardInput) -> ShardOrigin {
    let r = &input.result;
    ShardOrigin {
        shard: r.shard.index,
        started_at: r.run.started_at.clone(),
        command_line: r.run.command_line.clone(),
        environment: r.run.environment.clone(),
        images: r.rows.first().map_or(0, |row| row.image_ids.len()),
    }
}

/// Row `index` of every shard, merged (shards sorted by index).
fn merge_row(shards: &[ShardInput], index: usize) -> Result<(ModelResult, MergedRow), MergeError> {
    let parts: Vec<(&ShardInput, &ModelResult, &ShardRow)> = shards
        .iter()
        .map(|s| (s, &s.result.run.models[index], &s.result.rows[index]))
        // A shard with no images (more shards than images) adds nothing.
        .filter(|(_, _, row)| !row.image_ids.is_empty())
        .collect();
    let template = &shards[0].result.run.models[index];
    let mut merged = template.clone();
    merged.failed_images.clear();
    merged.detections_per_image = None;
    merged.latency = None;
    merged.sharding = None;
    merged.reference_agreement = None;
    merged.dataset = DatasetIdentity {
        images: parts.iter().map(|(_, _, row)| row.image_ids.len()).sum(),
        ..template.dataset.clone()
    };
    if let Some(harness) = merged.provenance.get_mut("harness") {
        harness["evaluation"] = MERGED_SCORING.into();
        for per_shard in [
            "decode_wait_seconds",
            "other_processes_cpu_share",
            "warmup_failures",
            "evaluation_seconds_after_pass",
            "timed_pass_started_unix_s",
            "timed_pass_ended_unix_s",
        ] {
            if let Some(map) = harness.as_object_mut() {
                map.remove(per_shard);
            }
        }
    }
    let failures: Vec<String> = parts
        .iter()
        .filter_map(|(s, m, _)| {
            m.status
                .failure()
                .map(|reason| format!("shard {}: {reason}", s.result.shard))
        })
        .collect();
    let mut image_ids: Vec<u64> = parts
        .iter()
        .flat_map(|(_, _, row)| row.image_ids.iter().copied())
        .collect();
    image_ids.sort_unstable();
    let iou_types = parts
        .first()
        .map(|(_, _, row)| row.iou_types.clone())
        .unwrap_or_default();
    if !failures.is_empty() || parts.is_empty() {
        merged.status = Status::Failed(if failures.is_empty() {
            "no shard has images".to_owned()
        } else {
            failures.join("; ")
        });
        let row = MergedRow {
            image_ids,
            detections: Vec::new(),
            iou_types,
        };
        return Ok((merged, row));
    }
    let detections = detections_in_image_order(&parts)?;
    merged.failed_images = failed_in_image_order(&parts);
    merged.detections_per_image = detections_per_image(&image_ids, &parts, &detections);
    let refs: Vec<latency::ShardRowRef<'_>> = parts
        .iter()
        .filter_map(|(s, m, row)| {
            Some(latency::ShardRowRef {
                result: &s.result,
                model: m,
                latency: m.latency.as_ref()?,
                images: row.image_ids.len(),
            })
        })
        .collect();
    if !refs.is_empty() {
        let (report, sharding) = latency::pool(&refs);
        merged.latency = Some(report);
        merged.sharding = Some(sharding);
    }
    let row = MergedRow {
        image_ids,
        detections,
        iou_types,
    };
    Ok((merged, row))
}

/// Every shard's detections, images ascending, each image's in its model's order: the order
/// an unsharded run hands them to the evaluators.
fn detections_in_image_order(
    parts: &[(&ShardInput, &ModelResult, &ShardRow)],
) -> Result<Vec<Detection>, MergeError> {
    let mut all: Vec<Detection> = Vec::new();
    for (input, _, row) in parts {
        for result in &row.detections {
            all.push(
                Detection::try_from(result).map_err(|e| MergeError::BadDetections {
                    source_file: input.source.clone(),
                    reason: e.to_string(),
                })?,
            );
        }
    }
    // Stable: within an image, the model's order stays.
    all.sort_by_key(|d| d.image_id);
    Ok(all)
}

fn failed_in_image_order(parts: &[(&ShardInput, &ModelResult, &ShardRow)]) -> Vec<FailedImage> {
    let mut failed: Vec<(u64, FailedImage)> = parts
        .iter()
        .flat_map(|(_, m, row)| {
            row.failed_image_ids
                .iter()
                .copied()
                .zip(m.failed_images.iter().cloned())
        })
        .collect();
    failed.sort_by_key(|(id, _)| *id);
    failed.into_iter().map(|(_, f)| f).collect()
}

/// Detections per processed image (the union less failed images), as a run counts them.
fn detections_per_image(
    image_ids: &[u64],
    parts: &[(&ShardInput, &ModelResult, &ShardRow)],
    detections: &[Detection],
) -> Option<crate::results::Summary> {
    let failed: HashSet<u64> = parts
        .iter()
        .flat_map(|(_, _, row)| row.failed_image_ids.iter().copied())
        .collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for d in detections {
        *counts.entry(d.image_id).or_default() += 1;
    }
    let per_image: Vec<f64> = image_ids
        .iter()
        .filter(|id| !failed.contains(id))
        .map(|id| counts.get(id).copied().unwrap_or(0) as f64)
        .collect();
    summarize(&per_image)
}
