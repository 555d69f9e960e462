//! The options of a run, resolved once (ripgrep's low-level to high-level arguments): the
//! dataset source after its defaults, the zoo entries (built-in and user cards, a model file,
//! a card), the engine settings, the scenario, and where the results go. [`RunPlan::run`] then
//! drives the harness model by model, each model's class map resolved against the dataset's
//! categories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use detbench_backends::EngineKind;
use detbench_bench::dataset::{DatasetOptions, DatasetSource, GroundTruthKind};
use detbench_bench::interrupt;
use detbench_bench::mlperf::{LoadgenOptions, run_model_loadgen};
use detbench_bench::prefetch::{DecodeFn, DecodeMode, image_decoder};
use detbench_bench::results::{RESULTS_SCHEMA_VERSION, RunResults, SkippedRun};
use detbench_bench::scenario::{DatasetCache, ModelOutcome, Observer, ScenarioOptions, run_model};
use detbench_bench::{Detector, DetectorError};
use detbench_eval::Detection;
use detbench_models::card::DatasetCategory;
use detbench_models::zoo::CardOrigin;
use detbench_models::{ModelFormat, OpenContext, ShaCheck, Zoo, ZooEntry};

use super::outputs::{self, OutputPaths};
use super::progress::Progress;
use super::scenario::RunContext;
use super::{Options, ShardArg};
use crate::cmd::cards::load_zoo;
use crate::cmd::detector;
use crate::cmd::engine::{EngineChoice, check_thread_count};
use detbench_bench::shard::{Shard, ShardRow};
use detbench_report::store::StoreLocation;

/// Everything a run needs, typed and with its defaults applied.
pub struct RunPlan {
    pub started_at: String,
    pub command_line: Vec<String>,
    source: DatasetSource,
    model_dir: PathBuf,
    /// Where companions (a top-down model's person detector) are found.
    zoo: Zoo,
    entries: Vec<ZooEntry>,
    engine: EngineChoice,
    scenario: ScenarioOptions,
    pub out_dir: PathBuf,
    pub save_detections: Option<PathBuf>,
    /// The results store, unless `--no-store` (or a shard: the merge records the run).
    pub store: Option<StoreLocation>,
    /// This process's shard of the run (`--shard`).
    pub shard: Option<Shard>,
    quiet: bool,
    /// `--scenario`: each model runs under MLPerf LoadGen instead of the plain timed pass.
    loadgen: Option<LoadgenOptions>,
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
    /// Resolves and checks every option, in the order a user would meet their errors, and
    /// refuses the run when its outputs could not be written.
    pub fn new(args: Options) -> anyhow::Result<RunPlan> {
        let started_at = detbench_env::now_rfc3339();
        let shard = resolve_shard(&args)?;
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
        let zoo = load_zoo(args.model_dir.as_deref());
        let engine = args.engine.resolve()?;
        let given = given_model(args.model_file.as_deref(), args.card.as_deref(), &engine)?;
        let entries = model_entries(given, args.model, &model_dir, &zoo, &engine)?;
        let batch_sizes = batch_sizes(args.batch)?;
        check_decode_options(args.decode_chunk, args.decode_threads)?;
        let out_dir = args
            .out
            .unwrap_or_else(|| default_out_dir(&started_at, shard));
        let loadgen = args.scenario.resolve(&RunContext {
            batch_sizes: &batch_sizes,
            warmup: args.warmup,
            decode_threads: args.decode_threads,
            out_dir: &out_dir,
        })?;
        let plan = RunPlan {
            command_line: crate::cmd::command_line(),
            source,
            model_dir,
            zoo,
            entries,
            engine,
            scenario: ScenarioOptions {
                warmup: args.warmup,
                batch_sizes,
                decode: DecodeMode::new(args.decode, args.decode_threads, args.decode_chunk),
                evaluation: args.eval,
                defer_scoring: shard.is_some(),
            },
            out_dir,
            started_at,
            save_detections: args.save_detections,
            store: match args.no_store || shard.is_some() {
                true => None,
                false => Some(crate::cmd::store::resolve(args.db.as_ref())?),
            },
            shard,
            quiet: args.quiet,
            loadgen,
        };
        plan.check_outputs(args.overwrite)?;
        Ok(plan)
    }

    /// Refuses the run at once when its results could not be written (see [`outputs`]).
    fn check_outputs(&self, overwrite: bool) -> anyhow::Result<()> {
        let mut inputs: Vec<PathBuf> = self
            .entries
            .iter()
            .map(|e| e.file_path(&self.model_dir))
            .collect();
        if let DatasetSource::Coco {
            instances,
            keypoints,
            ..
        } = &self.source
        {
            inputs.extend([instances.clone(), keypoints.clone()]);
        }
        let detection_files = self
            .entries
            .iter()
            .flat_map(|e| {
                self.scenario
                    .batch_sizes
                    .iter()
                    .filter_map(|&b| self.detections_file(&e.name, b))
            })
            .collect();
        OutputPaths {
            out_dir: &self.out_dir,
            overwrite,
            detection_files,
            // An SQLite store that cannot be opened refuses the run; a PostgreSQL server that
            // cannot be reached now only warns (`check_reachable`): `detbench import` records
            // the results files later.
            store: self.store.as_ref().and_then(StoreLocation::path),
            inputs,
        }
        .check()
    }

    /// Whether `--save-detections` was given.
    pub fn saves_detections(&self) -> bool {
        self.save_detections.is_some()
    }

    /// Where `--save-detections` puts the detections of one row (none without the option).
    pub fn detections_file(&self, model: &str, batch: usize) -> Option<PathBuf> {
        let single_row = self.entries.len() * self.scenario.batch_sizes.len() == 1;
        self.save_detections
            .as_deref()
            .map(|base| outputs::detections_file(base, model, batch, single_row))
    }

    /// Runs every model at every batch size, with the progress display. Fails before anything
    /// runs when the LoadGen settings do not fit a dataset.
    pub fn run(&self) -> anyhow::Result<Run> {
        let progress = Progress::new(self.quiet);
        let mut datasets = DatasetCache::new(self.source.clone());
        self.report_dataset(&mut datasets, &progress);
        if let Some(loadgen) = &self.loadgen {
            super::scenario_settings::validate(loadgen, &self.entries, &mut datasets)?;
        }
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
                interrupted: false,
                training: Vec::new(),
                sharding: None,
            },
            detections: Vec::new(),
            shard_rows: Vec::new(),
        };
        for entry in &self.entries {
            if interrupt::requested() {
                run.results
                    .skipped
                    .extend(self.scenario.batch_sizes.iter().map(|&b| SkippedRun {
                        name: entry.name.to_owned(),
                        batch_size: b,
                        reason: interrupt::NOT_MEASURED.to_owned(),
                    }));
                continue;
            }
            self.run_model(entry, &mut datasets, &decoder, &progress, &mut run);
        }
        run.results.interrupted = interrupt::requested();
        Ok(run)
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
        let categories = dataset_categories(datasets, entry);
        if let Some(ShaCheck::Mismatch { expected, actual }) = &checked.sha256 {
            progress.message(&format!(
                "warning: {} has sha256 {actual}, the catalogue expects {expected}; results may \
                 not match the reference",
                checked.spec.file.file
            ));
        }
        let open = || -> Result<Box<dyn Detector>, DetectorError> {
            let ctx = OpenContext {
                model_dir: &self.model_dir,
                config: &config,
                categories: categories.as_deref(),
                zoo: &self.zoo,
            };
            detector::open(entry, &ctx)
        };
        let (outcomes, skipped) = match &self.loadgen {
            Some(loadgen) => {
                run_model_loadgen(&checked.spec, &open, datasets, decoder, loadgen, progress)
            }
            None => run_model(
                &checked.spec,
                open,
                datasets,
                decoder,
                &self.scenario,
                progress,
            ),
        };
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
            // A LoadGen row has the detections of every image only in accuracy mode.
            let has_all = result.scenario.as_ref().is_none_or(|s| s.scores_accuracy());
            if result.is_ok()
                && has_all
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
            if self.save_detections.is_some() && result.is_ok() && has_all {
                run.detections
                    .push((result.name.clone(), result.batch_size, detections));
            }
            run.results.models.push(result);
        }
        run.results.skipped.extend(skipped);
    }

    /// Warns about image files that are missing, and about the ground truth, before anything
    /// is timed.
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
            // What `detbench eval` would say about the same file (lenient metadata, id 0, ...).
            if let Ok(Some(gt)) = datasets.ground_truth(kind) {
                for warning in gt.warnings() {
                    progress.message(&format!("warning: {warning}"));
                }
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

/// The model `--model-file` and/or `--card` give, if any: a file with its card (or described by
/// itself), or a card alone (its file beside it, else in the model folder).
/// `--shard`, with `auto` read from the scheduler's variables, refusing the options a shard
/// cannot honour (`--scenario`, `--save-detections`).
fn resolve_shard(args: &Options) -> anyhow::Result<Option<Shard>> {
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
    if shard.is_some() && args.scenario.scenario.is_some() {
        bail!(
            "--scenario with --shard: a LoadGen scenario times one process's queries; run it \
             unsharded (or on one device each)"
        );
    }
    if shard.is_some() && args.save_detections.is_some() {
        bail!(
            "--save-detections with --shard: a shard's detections are in its shard.json; \
             `detbench merge --save-detections FILE` writes the whole run's"
        );
    }
    Ok(shard)
}

/// The zoo entries to run: the given model file or card, then the `--model` names (yolox_nano
/// when neither is given), each name once; native-engine runs are checked up front.
fn model_entries(
    mut entries: Vec<ZooEntry>,
    names: Vec<String>,
    model_dir: &Path,
    zoo: &Zoo,
    engine: &EngineChoice,
) -> anyhow::Result<Vec<ZooEntry>> {
    let names = if names.is_empty() && entries.is_empty() {
        vec!["yolox_nano".to_owned()]
    } else {
        names
    };
    entries.extend(select_models(&names, model_dir, zoo)?);
    let mut seen = HashSet::new();
    entries.retain(|e| seen.insert(e.name.clone()));
    if engine.requested() == Some(EngineKind::Native) {
        let refs: Vec<&ZooEntry> = entries.iter().collect();
        if let Some(first) = refs.first() {
            detector::check_native(&refs, &engine.for_model(first))?;
        }
    }
    Ok(entries)
}

/// `--batch`, 1 when not given; every size at least 1.
fn batch_sizes(batch: Vec<usize>) -> anyhow::Result<Vec<usize>> {
    let batch_sizes = if batch.is_empty() { vec![1] } else { batch };
    if let Some(zero) = batch_sizes.iter().find(|&&b| b == 0) {
        bail!("--batch {zero}: batch sizes start at 1");
    }
    Ok(batch_sizes)
}

/// Checks `--decode-chunk` (at least 1) and `--decode-threads` (at least 1, and no more than the
/// machine allows).
fn check_decode_options(chunk: usize, threads: Option<usize>) -> anyhow::Result<()> {
    if chunk == 0 {
        bail!("--decode-chunk 0: a chunk holds at least 1 image");
    }
    if let Some(threads) = threads {
        if threads == 0 {
            bail!("--decode-threads 0: give at least 1, or leave it out for the default");
        }
        check_thread_count("--decode-threads", threads)?;
    }
    Ok(())
}

fn given_model(
    model_file: Option<&Path>,
    card: Option<&Path>,
    engine: &EngineChoice,
) -> anyhow::Result<Vec<ZooEntry>> {
    let card_of = |path: &Path| detbench_models::card::load(path);
    Ok(match (model_file, card) {
        (Some(file), card) => {
            let card = card.map(card_of).transpose()?;
            let format = ModelFormat::from_path(file).unwrap_or(ModelFormat::Onnx);
            let config = engine.with_default(format.default_engine());
            vec![detbench_models::model_file_entry(file, card, &config)?]
        }
        (None, Some(path)) => vec![ZooEntry::from_card(
            card_of(path)?,
            CardOrigin::File(path.to_path_buf()),
        )],
        (None, None) => Vec::new(),
    })
}

/// The zoo entries `--model` names; `all` is every entry whose file is present.
fn select_models(names: &[String], model_dir: &Path, zoo: &Zoo) -> anyhow::Result<Vec<ZooEntry>> {
    let mut entries: Vec<ZooEntry> = Vec::new();
    for name in names {
        let name = name.trim();
        if name == "all" {
            entries.extend(runnable_models(model_dir, zoo));
        } else {
            entries.push(zoo.get(name)?.clone());
        }
    }
    if entries.is_empty() && !names.is_empty() {
        bail!("no models to run (--model {})", names.join(","));
    }
    Ok(entries)
}

/// `--model all`: every catalogued model whose file is in `model_dir` and whose engine this
/// build has; the others are named on stderr with why.
fn runnable_models(model_dir: &Path, zoo: &Zoo) -> Vec<ZooEntry> {
    let (present, absent): (Vec<&ZooEntry>, Vec<&ZooEntry>) = zoo
        .entries()
        .iter()
        .partition(|e| e.file_path(model_dir).is_file());
    if !absent.is_empty() {
        eprintln!(
            "--model all: {} models of the zoo have no file in {} and are left out (see \
             `detbench zoo`): {}",
            absent.len(),
            model_dir.display(),
            absent
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let (built, unbuilt): (Vec<_>, Vec<_>) = present
        .into_iter()
        .partition(|e| e.default_engine().is_built());
    for engine in detbench_backends::EngineKind::ALL {
        let names: Vec<&str> = unbuilt
            .iter()
            .filter(|e| e.default_engine() == *engine)
            .map(|e| e.name.as_str())
            .collect();
        if !names.is_empty() {
            eprintln!(
                "--model all: {} model(s) need the {} engine, which this build does not have \
                 (rebuild with `--features {}`, README \"{}\"), and are left out: {}",
                names.len(),
                engine.cli_name(),
                engine.info().feature,
                engine.info().readme,
                names.join(", ")
            );
        }
    }
    built.into_iter().cloned().collect()
}

/// The categories of the dataset `entry` is scored on (`None` for a speed-only run), which its
/// class map is matched against.
fn dataset_categories(
    datasets: &mut DatasetCache,
    entry: &ZooEntry,
) -> Option<Vec<DatasetCategory>> {
    let ground_truth = datasets.ground_truth(entry.ground_truth()).ok().flatten()?;
    Some(
        ground_truth
            .categories()
            .into_iter()
            .map(|(id, name)| DatasetCategory { id, name })
            .collect(),
    )
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
