//! `detbench merge`: the shards of a run (`detbench run --shard I/N`, e.g. a Slurm job array)
//! back into the run: the same results files as `detbench run` and the run recorded in the
//! store. Detections are scored once over the union of the shards' images, so the stats equal
//! an unsharded run's bit for bit; latency samples are pooled, each shard's summary and
//! environment kept. The checks and the pooling are `detbench_bench::merge`; this module finds
//! the shard files, loads the ground truth, and writes the results.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use detbench_bench::dataset::{Dataset, GroundTruthKind};
use detbench_bench::merge::{MergeError, MergedRun, ShardInput, merge};
use detbench_bench::results::{ModelResult, RunResults};
use detbench_bench::shard::{SHARD_FILE, ShardResult};
use detbench_eval::{Detection, GroundTruth, IouType};
use detbench_report::store::StoreLocation;

#[derive(clap::Args)]
pub struct Args {
    /// Shard results: shard.json files, folders holding one, or a folder of shard folders
    /// (e.g. runs/slurm-<job id>).
    #[arg(required = true, value_name = "DIR|FILE")]
    inputs: Vec<PathBuf>,

    /// Output folder for results.md, results.csv and results.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Merge even when shards are missing; the result is marked partial and its accuracy
    /// covers only the images of the shards merged.
    #[arg(long)]
    allow_partial: bool,

    /// The instance annotation file to score with [default: the one the shards recorded; it
    /// must have the same sha256].
    #[arg(long, value_name = "FILE")]
    annotations: Option<PathBuf>,

    /// The person-keypoint annotation file for keypoint models [default: as recorded].
    #[arg(long, value_name = "FILE")]
    keypoint_annotations: Option<PathBuf>,

    /// Write the merged detections as a COCO results file (per row, as `detbench run` does).
    #[arg(long, value_name = "FILE")]
    save_detections: Option<PathBuf>,

    /// Results store: an SQLite file or a postgres:// URL [default: $DETBENCH_DB, else
    /// detbench.db in the platform data folder].
    #[arg(long, value_name = "PATH|URL")]
    db: Option<StoreLocation>,

    /// Do not record the merged run in the store.
    #[arg(long)]
    no_store: bool,
}

/// (model, batch size, detections) of a row, as `--save-detections` writes them.
pub type RowDetections = (String, usize, Vec<Detection>);

/// Ground-truth files given on the command line, by kind.
#[derive(Debug, Clone, Default)]
pub struct GroundTruthFiles {
    pub instances: Option<PathBuf>,
    pub keypoints: Option<PathBuf>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let store = match args.no_store {
        true => None,
        false => Some(super::store::resolve(args.db.as_ref())?),
    };
    let (files, empty) = shard_files(&args.inputs)?;
    let ground_truth = GroundTruthFiles {
        instances: args.annotations.clone(),
        keypoints: args.keypoint_annotations.clone(),
    };
    let (results, detections) = merge_files(&files, &empty, args.allow_partial, &ground_truth)?;
    let targets = super::run::detections_targets(args.save_detections.as_deref(), &detections);
    super::run::write_results(
        &args.out,
        &results,
        args.save_detections.is_some(),
        &targets,
        store.as_ref(),
    )?;
    super::run::fail_on_failed_rows(&results)
}

/// The shard files `inputs` name, and the folders that look like shard folders but hold none
/// (a shard killed mid-run, or still running).
pub fn shard_files(inputs: &[PathBuf]) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut empty = Vec::new();
    for input in inputs {
        if input.is_file() {
            files.push(input.clone());
        } else if input.join(SHARD_FILE).is_file() {
            files.push(input.join(SHARD_FILE));
        } else if input.is_dir() {
            let mut found = false;
            let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("listing {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            entries.sort();
            for dir in entries {
                if dir.join(SHARD_FILE).is_file() {
                    files.push(dir.join(SHARD_FILE));
                    found = true;
                } else if dir
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("shard-"))
                {
                    empty.push(dir);
                }
            }
            if !found {
                bail!(
                    "{}: no {SHARD_FILE} in it or in its folders (written by `detbench run \
                     --shard I/N`)",
                    input.display()
                );
            }
        } else {
            bail!("{}: no such file or folder", input.display());
        }
    }
    Ok((files, empty))
}

/// Loads, checks, merges and scores the shards; returns the merged results and, per successful
/// row, its detections (for `--save-detections`).
pub fn merge_files(
    files: &[PathBuf],
    empty_folders: &[PathBuf],
    allow_partial: bool,
    ground_truth: &GroundTruthFiles,
) -> anyhow::Result<(RunResults, Vec<RowDetections>)> {
    let shards = files
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let result: ShardResult = serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not a shard result (written by `detbench run --shard`)",
                    path.display()
                )
            })?;
            Ok(ShardInput {
                source: path.display().to_string(),
                result,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let merged = merge(shards, allow_partial, std::env::args().collect()).map_err(|e| {
        let hint = match (&e, empty_folders.is_empty()) {
            (MergeError::Missing { .. }, false) => format!(
                "\n  folders without {SHARD_FILE} (a shard killed mid-run, or still running): {}",
                empty_folders
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        };
        anyhow::anyhow!("{e}{hint}")
    })?;
    if let Some(sharding) = merged.results.sharding.as_ref().filter(|s| s.partial) {
        eprintln!(
            "warning: partial merge: shards {:?} of {} are missing; the accuracy covers only the \
             images of the shards merged",
            sharding.missing, sharding.count
        );
    }
    score(merged, ground_truth)
}

/// Scores each merged row over the union of its shards' images, and sets its agreement with
/// the model's reference detections.
fn score(
    merged: MergedRun,
    files: &GroundTruthFiles,
) -> anyhow::Result<(RunResults, Vec<RowDetections>)> {
    let MergedRun { mut results, rows } = merged;
    let mut loaded: HashMap<PathBuf, Arc<GroundTruth>> = HashMap::new();
    let mut detections = Vec::new();
    for (result, row) in results.models.iter_mut().zip(rows) {
        if !result.is_ok() {
            continue;
        }
        let kind = match row.iou_types.contains(&IouType::Keypoints) {
            true => GroundTruthKind::Keypoints,
            false => GroundTruthKind::Instances,
        };
        if let Some(path) = ground_truth_file(result, kind, files)? {
            let gt = match loaded.get(&path) {
                Some(gt) => gt.clone(),
                None => {
                    let gt = Arc::new(GroundTruth::load(&path)?);
                    loaded.insert(path.clone(), gt.clone());
                    gt
                }
            };
            row.score(result, gt)
                .with_context(|| format!("scoring {}", result.label()))?;
            reference_agreement(result, &path, &row.image_ids, &row.detections);
        }
        detections.push((result.name.clone(), result.batch_size, row.detections));
    }
    Ok((results, detections))
}

/// The annotation file a row is scored with: the one given for its kind, else the one the
/// shards recorded; its sha256 must be the recorded one. `None` for a speed-only run.
fn ground_truth_file(
    result: &ModelResult,
    kind: GroundTruthKind,
    files: &GroundTruthFiles,
) -> anyhow::Result<Option<PathBuf>> {
    let (Some(recorded), Some(expected)) = (
        result.dataset.annotation_file.as_ref(),
        result.dataset.annotation_sha256.as_ref(),
    ) else {
        return Ok(None);
    };
    let given = match kind {
        GroundTruthKind::Instances => files.instances.clone(),
        GroundTruthKind::Keypoints => files.keypoints.clone(),
    };
    let path = given.unwrap_or_else(|| PathBuf::from(recorded));
    let actual = detbench_assets::sha256_file(&path).with_context(|| {
        format!(
            "reading the ground truth {} of {} (give it with --annotations / \
             --keypoint-annotations if it is elsewhere here)",
            path.display(),
            result.label()
        )
    })?;
    if &actual != expected {
        bail!(
            "{}: sha256 {actual}, but the shards of {} were run on {recorded} with sha256 \
             {expected}",
            path.display(),
            result.label()
        );
    }
    Ok(Some(path))
}

/// The agreement with the model's reference detections, over the union of the shards' images,
/// as `detbench run` computes it (skipped with a note when the image folder is not here).
fn reference_agreement(
    result: &mut ModelResult,
    annotations: &Path,
    image_ids: &[u64],
    detections: &[Detection],
) {
    let Ok(entry) = detbench_models::entry(&result.name) else {
        return;
    };
    let dir = PathBuf::from(&result.dataset.image_dir);
    let mut dataset = match Dataset::coco(&dir, annotations, None) {
        Ok(dataset) => dataset,
        Err(e) => {
            eprintln!(
                "note: {}: no agreement with the reference: {e}",
                result.label()
            );
            return;
        }
    };
    let ids: std::collections::HashSet<u64> = image_ids.iter().copied().collect();
    dataset.images.retain(|image| ids.contains(&image.id));
    match detbench_models::reference_agreement::reference_agreement(
        entry, &dataset, result, detections,
    ) {
        Ok(agreement) => result.reference_agreement = agreement,
        Err(e) => eprintln!("warning: cannot compare with the reference: {e}"),
    }
}
