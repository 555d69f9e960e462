//! The options of a run, resolved once (ripgrep's low-level to high-level arguments): the
//! dataset source after its defaults, the catalogue entries, the engine settings, the scenario,
//! and where the results go. [`RunPlan::run`] then drives the harness model by model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use detbench_bench::dataset::{DatasetOptions, DatasetSource, GroundTruthKind};
use detbench_bench::prefetch::{DecodeFn, DecodeMode, image_decoder};
use detbench_bench::results::{RESULTS_SCHEMA_VERSION, RunResults};
use detbench_bench::scenario::{DatasetCache, ModelOutcome, Observer, ScenarioOptions, run_model};
use detbench_bench::shard::{Shard, ShardRow};
use detbench_eval::Detection;
use detbench_models::{ShaCheck, ZooEntry};
use detbench_report::store::StoreLocation;

use super::progress::Progress;
use super::{Options, ShardArg};
use crate::cmd::engine::EngineChoice;

/// Everything a run needs, typed and with its defaults applied.
pub struct RunPlan {
    pub started_at: String,
    pub command_line: Vec<String>,
    source: DatasetSource,
    model_dir: PathBuf,
    entries: Vec<&'static ZooEntry>,
    engine: EngineChoice,
    scenario: ScenarioOptions,
    pub out_dir: PathBuf,
    pub save_detections: Option<PathBuf>,
    /// The results store, unless `--no-store` (or a shard: the merge records the run).
    pub store: Option<StoreLocation>,
    /// This process's shard of the run (`--shard`).
    pub shard: Option<Shard>,
    quiet: bool,
}

/// What a run produced.
pub struct Run {
    pub results: RunResults,
    /// (model, batch size, detections) of each successful row, when `--save-detections` asks.
    pub detections: Vec<(String, usize, Vec<Detection>)>,
    /// A shard's part of each row (images, detections) for `detbench merge`, in row order.
    pub shard_rows: Vec<ShardRow>,
}

impl RunPlan {
    pub fn new(args: Options) -> anyhow::Result<RunPlan> {
        let started_at = detbench_env::now_rfc3339();
        let shard = match args.shard {
            None => None,
            Some(ShardArg::Given(shard)) => Some(shard),
            Some(ShardArg::Auto) => {
                let (shard, source) = detbench_bench::shard::from_scheduler(
                    |name| std::env::var(name).ok(),
                    args.shard_count,
                )?;
                eprintln!("--shard auto: shard {shard} (from {source})");
                Some(shard)
            }
        };
        if shard.is_some() && args.save_detections.is_some() {
            bail!(
                "--save-detections with --shard: a shard's detections are in its shard.json; \
                 `detbench merge --save-detections FILE` writes the whole run's"
            );
        }
        let source = DatasetOptions {
            images_dir: args.images_dir,
            annotations: args.annotations,
            keypoint_annotations: args.keypoint_annotations,
            images_only: args.images,
            limit: args.limit,
            shard,
        }
        .resolve()?;
        let model_dir = detbench_models::model_dir(args.model_dir.as_deref())?;
        let entries = select_models(&args.model, &model_dir)?;
        let batch_sizes = if args.batch.is_empty() {
            vec![1]
        } else {
            args.batch
        };
        if let Some(zero) = batch_sizes.iter().find(|&&b| b == 0) {
            bail!("--batch {zero}: batch sizes start at 1");
        }
        Ok(RunPlan {
            command_line: std::env::args().collect(),
            source,
            model_dir,
            entries,
            engine: args.engine.resolve()?,
            scenario: ScenarioOptions {
                warmup: args.warmup,
                batch_sizes,
                decode: DecodeMode::new(args.decode, args.decode_threads, args.decode_chunk),
                evaluation: args.eval,
                defer_scoring: shard.is_some(),
            },
            out_dir: args
                .out
                .unwrap_or_else(|| default_out_dir(&started_at, shard)),
            started_at,
            save_detections: args.save_detections,
            store: match args.no_store || shard.is_some() {
                true => None,
                false => Some(crate::cmd::store::resolve(args.db.as_ref())?),
            },
            shard,
            quiet: args.quiet,
        })
    }

    /// Runs every model at every batch size, with the progress display.
    pub fn run(&self) -> Run {
        let progress = Progress::new(self.quiet);
        let mut datasets = DatasetCache::new(self.source.clone());
        self.report_dataset(&mut datasets, &progress);
        let decoder = image_decoder();
        let mut run = Run {
            results: RunResults {
                schema_version: RESULTS_SCHEMA_VERSION,
                detbench_version: detbench_env::DETBENCH_VERSION.to_owned(),
                started_at: self.started_at.clone(),
                command_line: self.command_line.clone(),
                environment: detbench_env::capture(),
                models: Vec::new(),
                skipped: Vec::new(),
                sharding: None,
            },
            detections: Vec::new(),
            shard_rows: Vec::new(),
        };
        for entry in &self.entries {
            self.run_model(entry, &mut datasets, &decoder, &progress, &mut run);
        }
        run
    }

    /// One catalogued model at every batch size; its rows, with their agreement with the
    /// model's reference detections, go into `run`.
    fn run_model(
        &self,
        entry: &ZooEntry,
        datasets: &mut DatasetCache,
        decoder: &Arc<DecodeFn>,
        progress: &Progress,
        run: &mut Run,
    ) {
        let config = self.engine.for_model(entry);
        let checked = detbench_models::model_spec(entry, &self.model_dir, &config);
        if let Some(ShaCheck::Mismatch { expected, actual }) = &checked.sha256 {
            progress.message(&format!(
                "warning: {} has sha256 {actual}, the catalogue expects {expected}; results may \
                 not match the reference",
                checked.spec.file.file
            ));
        }
        let (outcomes, skipped) = run_model(
            &checked.spec,
            || {
                Ok(detbench_models::open_detector(
                    entry,
                    Some(&self.model_dir),
                    &config,
                )?)
            },
            datasets,
            decoder,
            &self.scenario,
            progress,
        );
        for ModelOutcome {
            mut result,
            detections,
            iou_types,
        } in outcomes
        {
            if self.shard.is_some() {
                // Scoring and the agreement with the reference wait for the merge.
                run.shard_rows.push(super::shard::shard_row(
                    datasets.dataset(entry.ground_truth()).ok().as_deref(),
                    &result,
                    &detections,
                    iou_types,
                ));
                run.results.models.push(result);
                continue;
            }
            if result.is_ok()
                && let Ok(dataset) = datasets.dataset(entry.ground_truth())
            {
                match detbench_models::reference_agreement::reference_agreement(
                    entry,
                    &dataset,
                    &result,
                    &detections,
                ) {
                    Ok(agreement) => result.reference_agreement = agreement,
                    Err(e) => progress
                        .message(&format!("warning: cannot compare with the reference: {e}")),
                }
            }
            if self.save_detections.is_some() && result.is_ok() {
                run.detections
                    .push((result.name.clone(), result.batch_size, detections));
            }
            run.results.models.push(result);
        }
        run.results.skipped.extend(skipped);
    }

    /// Warns about image files that are missing before anything is timed.
    fn report_dataset(&self, datasets: &mut DatasetCache, progress: &Progress) {
        let mut kinds: Vec<GroundTruthKind> = Vec::new();
        for entry in &self.entries {
            let kind = entry.ground_truth();
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        for kind in kinds {
            let dataset = match datasets.dataset(kind) {
                Ok(dataset) => dataset,
                Err(e) => {
                    progress.message(&format!("error: {e}"));
                    continue;
                }
            };
            for note in &dataset.notes {
                progress.message(note);
            }
            let missing = dataset.missing_files();
            if !missing.is_empty() {
                let shown: Vec<String> = missing
                    .iter()
                    .take(10)
                    .map(|i| i.path.display().to_string())
                    .collect();
                progress.message(&format!(
                    "warning: {} of {} image files are missing and will be counted as failed: {}{}",
                    missing.len(),
                    dataset.images.len(),
                    shown.join(", "),
                    if missing.len() > 10 { ", ..." } else { "" }
                ));
            }
        }
    }
}

/// The catalogue entries `--model` names; `all` is every entry whose file is in `model_dir`.
fn select_models(names: &[String], model_dir: &Path) -> anyhow::Result<Vec<&'static ZooEntry>> {
    let mut entries: Vec<&'static ZooEntry> = Vec::new();
    for name in names {
        let name = name.trim();
        if name == "all" {
            let (present, absent): (Vec<_>, Vec<_>) = detbench_models::catalogue()
                .into_iter()
                .partition(|e| model_dir.join(e.file_name).is_file());
            if !absent.is_empty() {
                eprintln!(
                    "--model all: {} catalogued models have no file in {} and are left out (see \
                     `detbench zoo`): {}",
                    absent.len(),
                    model_dir.display(),
                    absent.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
                );
            }
            entries.extend(present);
        } else {
            entries.push(detbench_models::entry(name)?);
        }
    }
    let mut seen = HashSet::new();
    entries.retain(|e| seen.insert(e.name));
    if entries.is_empty() {
        bail!("no models to run (--model {})", names.join(","));
    }
    Ok(entries)
}

/// `runs/<UTC timestamp>` (colons replaced, so the name is valid everywhere); for a shard
/// `runs/slurm-<array job id>/shard-<I>` in a Slurm job array, else
/// `runs/<UTC timestamp>-shard-<I>-of-<N>`.
fn default_out_dir(started_at: &str, shard: Option<Shard>) -> PathBuf {
    let stamp: String = started_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    let Some(shard) = shard else {
        return PathBuf::from("runs").join(stamp);
    };
    match std::env::var("SLURM_ARRAY_JOB_ID") {
        Ok(job) if !job.is_empty() => PathBuf::from("runs")
            .join(format!("slurm-{job}"))
            .join(format!("shard-{}", shard.index)),
        _ => {
            PathBuf::from("runs").join(format!("{stamp}-shard-{}-of-{}", shard.index, shard.count))
        }
    }
}
