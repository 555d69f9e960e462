//! `detbench run`: benchmark zoo models on a COCO dataset (default: YOLOX-Nano on the shipped
//! val2017 subset, CPU) and print the results table; write results.md/.csv/.json, optionally the
//! detections, and record the run in the results store.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use detbench_backends::{
    BackendConfig, BackendDescription, Device, EngineKind, GraphOptLevel, Precision,
};
use detbench_bench::dataset::{DatasetOptions, DatasetSource, GroundTruthKind};
use detbench_bench::output;
use detbench_bench::prefetch::{DecodePlan, image_decoder};
use detbench_bench::results::{ModelFile, RESULTS_SCHEMA_VERSION, ReferenceAgreement, RunResults};
use detbench_bench::scenario::{
    DatasetCache, EvalTiming, ModelOutcome, ModelSpec, Observer, ScenarioOptions, run_model,
};
use detbench_bench::timing::summarize;
use detbench_eval::{Detection, IouType};
use detbench_models::reference_check::{self, MatchCriteria};
use detbench_models::{ModelFormat, ShaCheck, ZooEntry};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The options, boxed: they are large, and clap's subcommand enum holds them by value.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    options: Box<Options>,
}

#[derive(clap::Args)]
pub struct Options {
    /// Zoo names (comma-separated or repeated), or `all` for every catalogued model whose file
    /// is present. `detbench zoo` lists them.
    #[arg(short, long, value_delimiter = ',', default_value = "yolox_nano")]
    model: Vec<String>,

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

    /// Inference engine [default: by model format: ort for .onnx, torch for TorchScript].
    #[arg(long, value_parser = ["ort", "torch"])]
    backend: Option<String>,

    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,

    /// fp32 or fp16.
    #[arg(long, default_value = "fp32")]
    precision: String,

    /// Engine intra-op threads [default: the engine's choice].
    #[arg(long)]
    threads: Option<usize>,

    /// ONNX Runtime graph optimisation level.
    #[arg(long, default_value = "all", value_parser = ["disable", "basic", "extended", "all"])]
    graph_opt: String,

    /// ONNX Runtime execution providers to try in order (cpu, cuda, tensorrt); they need an
    /// ONNX Runtime library built with them.
    #[arg(long = "execution-provider", value_delimiter = ',')]
    execution_providers: Vec<String>,

    /// Folder holding the model files [default: the shared models folder].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,

    /// How images reach the model: `chunked` (decode a chunk of images with all cores while the
    /// model waits, then run the chunk: nothing competes with the model while it is timed),
    /// `preload` (one chunk of all images), `prefetch` (decode threads run ahead of the model on
    /// a bounded queue, competing with it for the CPU) or `inline` (decode on the timed thread;
    /// end to end then includes decode).
    #[arg(long, default_value = "chunked", value_parser = ["chunked", "preload", "prefetch", "inline"])]
    decode: String,

    /// Images per chunk in chunked mode (about 0.9 MB of memory per COCO image).
    #[arg(long, default_value_t = 512)]
    decode_chunk: usize,

    /// Decode threads [default: all cores for chunked/preload; 1 for prefetch, so that decoding
    /// takes at most one core from the model].
    #[arg(long)]
    decode_threads: Option<usize>,

    /// When detections are scored: after the timed pass, on every core (no effect on timing),
    /// or on a background thread while the model runs.
    #[arg(long, default_value = "after-run", value_parser = ["after-run", "overlap"])]
    eval: String,

    /// Output folder for results.md, results.csv and results.json [default:
    /// runs/<UTC timestamp>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Write the detections as a COCO results file (with several models or batch sizes, the
    /// model name and batch are added before the extension).
    #[arg(long, value_name = "FILE")]
    save_detections: Option<PathBuf>,

    /// Results store [default: $DETBENCH_DB, else runs/detbench.db].
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,

    /// Do not record the run in the results store.
    #[arg(long)]
    no_store: bool,

    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
}

/// Progress on stderr: a bar per pass when stderr is a terminal, messages always.
struct Progress {
    bar: std::cell::RefCell<Option<ProgressBar>>,
    show_bar: bool,
}

impl Observer for Progress {
    fn message(&self, text: &str) {
        match self.bar.borrow().as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }
    fn start_pass(&self, label: &str, total: usize) {
        if !self.show_bar {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} images {elapsed}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }
    fn advance(&self, n: usize) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(n as u64);
        }
    }
    fn finish_pass(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let args = *args.options;
    let started_at = detbench_report::environment::now_rfc3339();
    let command_line: Vec<String> = std::env::args().collect();
    let source = DatasetOptions {
        images_dir: args.images_dir.clone(),
        annotations: args.annotations.clone(),
        keypoint_annotations: args.keypoint_annotations.clone(),
        images_only: args.images.clone(),
        limit: args.limit,
    }
    .resolve()?;
    let model_dir = detbench_models::model_dir(args.model_dir.as_deref())?;
    let entries = select_models(&args.model, &model_dir)?;
    let base_config = backend_config(&args)?;
    let evaluation = match args.eval.as_str() {
        "overlap" => EvalTiming::Overlap,
        _ => EvalTiming::AfterRun,
    };
    let batch_sizes: Vec<usize> = if args.batch.is_empty() {
        vec![1]
    } else {
        args.batch.clone()
    };
    if let Some(zero) = batch_sizes.iter().find(|&&b| b == 0) {
        bail!("--batch {zero}: batch sizes start at 1");
    }

    let progress = Progress {
        bar: std::cell::RefCell::new(None),
        show_bar: !args.quiet && std::io::stderr().is_terminal(),
    };
    let mut datasets = DatasetCache::new(source.clone());
    report_dataset(&mut datasets, &entries, &progress);
    let decoder = image_decoder();

    let mut results = RunResults {
        schema_version: RESULTS_SCHEMA_VERSION,
        detbench_version: detbench_report::environment::DETBENCH_VERSION.to_owned(),
        started_at,
        command_line,
        environment: serde_json::to_value(detbench_report::capture_environment())?,
        models: Vec::new(),
        skipped: Vec::new(),
    };
    let mut saved_detections: Vec<(String, usize, Vec<Detection>)> = Vec::new();
    for entry in &entries {
        let config = config_for(entry, &base_config, args.backend.is_some());
        let spec = model_spec(entry, &model_dir, &config, &progress);
        let kind = spec.ground_truth;
        let options = ScenarioOptions {
            warmup: args.warmup,
            batch_sizes: batch_sizes.clone(),
            decode: decode_plan(&args),
            evaluation,
        };
        let (outcomes, skipped) = run_model(
            &spec,
            || {
                detbench_models::open_detector(*entry, Some(&model_dir), &config)
                    .map_err(|e| e.to_string())
            },
            &mut datasets,
            &decoder,
            &options,
            &progress,
        );
        for ModelOutcome {
            mut result,
            detections,
        } in outcomes
        {
            if result.is_ok() {
                result.reference_agreement =
                    reference_agreement(entry, kind, &source, &result, &detections, &progress);
            }
            if args.save_detections.is_some() && result.is_ok() {
                saved_detections.push((result.name.clone(), result.batch_size, detections));
            }
            results.models.push(result);
        }
        results.skipped.extend(skipped);
    }

    println!("{}", output::main_table(&results));
    if let Some(table) = output::mask_table(&results) {
        println!("\nMasks (points):\n{table}");
    }
    if let Some(table) = output::keypoint_table(&results) {
        println!("\nKeypoints (points):\n{table}");
    }
    if let Some(table) = output::stage_table(&results) {
        println!("\nLatency per stage, mean / median / p99 ms per call:\n{table}");
    }
    if let Some(table) = output::agreement_table(&results) {
        println!("\nAgreement with the reference detections:\n{table}");
    }
    let notes = output::notes(&results);
    if !notes.is_empty() {
        println!("\n{}", notes.join("\n"));
    }

    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&results.started_at));
    let written = output::write_run_files(&out_dir, &results)
        .with_context(|| format!("writing results to {}", out_dir.display()))?;
    eprintln!(
        "wrote {}",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &args.save_detections {
        save_detections(path, &saved_detections)?;
    }
    if !args.no_store {
        let db = detbench_report::store::resolve_path(args.db.as_deref());
        let mut store = detbench_report::Store::open(&db)
            .with_context(|| format!("opening the results store {}", db.display()))?;
        store
            .record_run(&results)
            .with_context(|| format!("recording the run in {}", db.display()))?;
        eprintln!("recorded in {}", db.display());
    }

    let failed: Vec<String> = results
        .models
        .iter()
        .filter(|m| !m.is_ok())
        .map(|m| format!("{}: {}", m.name, m.status))
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

fn backend_config(args: &Options) -> anyhow::Result<BackendConfig> {
    let device: Device = args.device.parse().map_err(anyhow::Error::msg)?;
    let precision: Precision = args.precision.parse().map_err(anyhow::Error::msg)?;
    let graph_opt = match args.graph_opt.as_str() {
        "disable" => GraphOptLevel::Disable,
        "basic" => GraphOptLevel::Basic,
        "extended" => GraphOptLevel::Extended,
        _ => GraphOptLevel::All,
    };
    if args.threads == Some(0) {
        bail!("--threads 0: give at least 1, or leave it out for the engine's default");
    }
    Ok(BackendConfig {
        engine: match args.backend.as_deref() {
            Some("torch") => EngineKind::Torch,
            _ => EngineKind::Ort,
        },
        device,
        precision,
        threads: args.threads,
        graph_opt,
        execution_providers: args.execution_providers.clone(),
    })
}

/// The engine for `entry`: `--backend` when given, else the one that reads its format.
fn config_for(entry: &ZooEntry, base: &BackendConfig, engine_chosen: bool) -> BackendConfig {
    let mut config = base.clone();
    if !engine_chosen {
        config.engine = match entry.format {
            ModelFormat::TorchScript => EngineKind::Torch,
            _ => EngineKind::Ort,
        };
    }
    config
}

fn engine_name(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Ort => "onnxruntime",
        EngineKind::Torch => "libtorch",
    }
}

/// What the harness needs to know of a model before opening it; checks the file's sha256
/// against the catalogue and warns on a mismatch.
fn model_spec(
    entry: &ZooEntry,
    model_dir: &Path,
    config: &BackendConfig,
    progress: &Progress,
) -> ModelSpec {
    let path = model_dir.join(entry.file_name);
    let sha256 = if path.is_file() {
        match detbench_models::verify_sha256(entry, &path) {
            Ok(check) => {
                if let ShaCheck::Mismatch { expected, actual } = &check {
                    progress.message(&format!(
                        "warning: {} has sha256 {actual}, the catalogue expects {expected}; \
                         results may not match the reference",
                        path.display()
                    ));
                }
                match check {
                    ShaCheck::Match | ShaCheck::PrefixMatch => {
                        Some(detbench_models::sha256_file(&path).ok()).flatten()
                    }
                    ShaCheck::Mismatch { actual, .. } | ShaCheck::Unknown { actual } => {
                        Some(actual)
                    }
                }
            }
            Err(_) => None,
        }
    } else {
        None
    };
    let mut options = vec![(
        "threads".to_owned(),
        config
            .threads
            .map_or("engine default".to_owned(), |t| t.to_string()),
    )];
    if config.engine == EngineKind::Ort {
        options.push((
            "graph_opt".to_owned(),
            format!("{:?}", config.graph_opt).to_lowercase(),
        ));
    }
    ModelSpec {
        name: entry.name.to_owned(),
        family: format!("{:?}", entry.family),
        // The table's Input column: the network input size, or the zoo's description for a
        // model that resizes inside.
        input: match entry.input_size {
            Some((w, h)) => format!("{w}x{h}"),
            None => entry.input.to_owned(),
        },
        file: ModelFile {
            file: path.display().to_string(),
            sha256,
        },
        ground_truth: ground_truth_kind(entry),
        requested_backend: Some(BackendDescription {
            engine: engine_name(config.engine).to_owned(),
            engine_version: String::new(),
            device: config.device.to_string(),
            precision: config.precision.as_str().to_owned(),
            options,
        }),
    }
}

/// How images reach the model (see `--decode`).
fn decode_plan(args: &Options) -> DecodePlan {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.decode_threads.map(|t| t.max(1));
    match args.decode.as_str() {
        "prefetch" => DecodePlan::Prefetch {
            threads: threads.unwrap_or(1),
        },
        "preload" => DecodePlan::Chunked {
            threads: threads.unwrap_or(cores),
            chunk: usize::MAX,
        },
        "inline" => DecodePlan::Inline,
        _ => DecodePlan::Chunked {
            threads: threads.unwrap_or(cores),
            chunk: args.decode_chunk.max(1),
        },
    }
}

/// Keypoint models are scored on the person-keypoint file, all others on the instance file.
fn ground_truth_kind(entry: &ZooEntry) -> GroundTruthKind {
    if entry.iou_types.contains(&IouType::Keypoints) {
        GroundTruthKind::Keypoints
    } else {
        GroundTruthKind::Instances
    }
}

/// Warns about image files that are missing before anything is timed.
fn report_dataset(datasets: &mut DatasetCache, entries: &[&ZooEntry], progress: &Progress) {
    let mut kinds: Vec<GroundTruthKind> = Vec::new();
    for entry in entries {
        let kind = ground_truth_kind(entry);
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    for kind in kinds {
        match datasets.dataset(kind) {
            Ok(dataset) => {
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
            Err(e) => progress.message(&format!("error: {e}")),
        }
    }
}

/// The reference results of a catalogued model: the folder of `../shared/reference` whose
/// stats.json names the model's file, and in it the detections (or, for keypoint models, the
/// keypoints obtained with YOLOX boxes).
fn reference_file(entry: &ZooEntry, kind: GroundTruthKind) -> Option<(PathBuf, PathBuf)> {
    let root = detbench_assets::shared::reference().ok()?;
    for dir in std::fs::read_dir(&root).ok()?.flatten() {
        let stats_path = dir.path().join("stats.json");
        let Ok(text) = std::fs::read_to_string(&stats_path) else {
            continue;
        };
        let Ok(stats) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let names_file = ["onnx_file", "model_file"].iter().any(|key| {
            stats[key]
                .as_str()
                .and_then(|f| Path::new(f).file_name())
                .is_some_and(|f| f == entry.file_name)
        });
        if !names_file {
            continue;
        }
        let (results, gt) = match kind {
            GroundTruthKind::Instances => (
                dir.path().join("detections_subset.json"),
                detbench_assets::shared::instances_subset().ok()?,
            ),
            GroundTruthKind::Keypoints => (
                dir.path().join("keypoints_yoloxboxes_subset.json"),
                detbench_assets::shared::keypoints_subset().ok()?,
            ),
        };
        return results.is_file().then_some((results, gt));
    }
    None
}

/// Agreement with the reference detections, when the model has a reference and the run used
/// the ground truth the reference was made on (the shipped subset, possibly `--limit`ed).
fn reference_agreement(
    entry: &ZooEntry,
    kind: GroundTruthKind,
    source: &DatasetSource,
    result: &detbench_bench::results::ModelResult,
    detections: &[Detection],
    progress: &Progress,
) -> Option<ReferenceAgreement> {
    if !source.has_ground_truth() {
        return None;
    }
    let (reference_path, reference_gt) = reference_file(entry, kind)?;
    let reference_sha = detbench_bench::dataset::sha256_file(&reference_gt).ok()?;
    if result.dataset.annotation_sha256.as_deref() != Some(reference_sha.as_str()) {
        return None;
    }
    let reference = match reference_check::load_results(&reference_path) {
        Ok(reference) => reference,
        Err(e) => {
            progress.message(&format!("warning: cannot compare with the reference: {e}"));
            return None;
        }
    };
    // The images the model processed: the run's dataset less its failed images.
    let failed: HashSet<&str> = result
        .failed_images
        .iter()
        .map(|f| f.file.as_str())
        .collect();
    let dataset_images: Vec<(u64, String)> = dataset_image_list(result)?;
    let processed: Vec<u64> = dataset_images
        .iter()
        .filter(|(_, file)| !failed.contains(file.as_str()))
        .map(|(id, _)| *id)
        .collect();
    let processed_set: HashSet<u64> = processed.iter().copied().collect();
    let reference: Vec<Detection> = reference
        .into_iter()
        .filter(|d| processed_set.contains(&d.image_id))
        .collect();
    let criteria = MatchCriteria::default();
    let agreement = match kind {
        GroundTruthKind::Instances => {
            reference_check::compare_boxes(&reference, detections, &criteria)
        }
        GroundTruthKind::Keypoints => {
            reference_check::compare_keypoints(&reference, detections, &criteria)
        }
    };
    let count = |dets: &[Detection]| {
        let mut counts: BTreeMap<u64, i64> = BTreeMap::new();
        for d in dets {
            *counts.entry(d.image_id).or_default() += 1;
        }
        counts
    };
    let (ours, theirs) = (count(detections), count(&reference));
    let differences: Vec<f64> = processed
        .iter()
        .map(|id| {
            (ours.get(id).copied().unwrap_or(0) - theirs.get(id).copied().unwrap_or(0)) as f64
        })
        .collect();
    let matched_quality: (f64, usize) = agreement
        .per_image
        .iter()
        .filter_map(|i| {
            i.mean_match_quality
                .map(|q| (q * i.matched as f64, i.matched))
        })
        .fold((0.0, 0), |(s, n), (q, m)| (s + q, n + m));
    let mean_quality =
        (matched_quality.1 > 0).then(|| matched_quality.0 / matched_quality.1 as f64);
    Some(ReferenceAgreement {
        reference_file: reference_path.display().to_string(),
        kind: match kind {
            GroundTruthKind::Instances => "boxes",
            GroundTruthKind::Keypoints => "keypoints",
        }
        .to_owned(),
        iou_threshold: criteria.min_iou,
        max_joint_distance: criteria.max_joint_distance,
        score_tolerance: criteria.score_tolerance,
        reference_detections: agreement.reference_count,
        detections: agreement.candidate_count,
        matched_geometry: agreement.matched_geometry,
        matched: agreement.matched,
        matched_fraction: agreement.matched_fraction(),
        mean_iou_matched: if kind == GroundTruthKind::Instances {
            mean_quality
        } else {
            None
        },
        mean_joint_distance_matched: if kind == GroundTruthKind::Keypoints {
            mean_quality
        } else {
            None
        },
        joint_fraction: agreement.joint_fraction(),
        max_score_difference: agreement.max_score_diff,
        max_coordinate_difference: agreement.max_coordinate_diff,
        count_difference_per_image: summarize(&differences),
        images_with_equal_count: differences.iter().filter(|d| **d == 0.0).count(),
        images: processed.len(),
    })
}

/// (image id, file name) of every image of a result's dataset, re-read from its annotation file.
fn dataset_image_list(result: &detbench_bench::results::ModelResult) -> Option<Vec<(u64, String)>> {
    let annotations = PathBuf::from(result.dataset.annotation_file.as_ref()?);
    let dataset = detbench_bench::dataset::Dataset::coco(
        Path::new(&result.dataset.image_dir),
        &annotations,
        Some(result.dataset.images),
    )
    .ok()?;
    Some(
        dataset
            .images
            .into_iter()
            .map(|i| (i.id, i.file_name))
            .collect(),
    )
}

/// `runs/<UTC timestamp>` (colons replaced, so the name is valid everywhere).
fn default_out_dir(started_at: &str) -> PathBuf {
    let stamp: String = started_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    PathBuf::from("runs").join(stamp)
}

/// Writes each row's detections as a COCO results file: `path` itself for a single row, else
/// `<stem>.<model>[.b<batch>].<ext>` beside it.
fn save_detections(path: &Path, rows: &[(String, usize, Vec<Detection>)]) -> anyhow::Result<()> {
    if rows.is_empty() {
        eprintln!("--save-detections: no successful rows, nothing written");
        return Ok(());
    }
    for (name, batch, detections) in rows {
        let target = if rows.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or("json".into());
            let batch = if *batch == 1 {
                String::new()
            } else {
                format!(".b{batch}")
            };
            path.with_file_name(format!("{stem}.{name}{batch}.{ext}"))
        };
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_vec(&output::coco_results_json(detections))?;
        output::write_atomic(&target, &json)
            .with_context(|| format!("writing detections to {}", target.display()))?;
        eprintln!(
            "wrote {} detections to {}",
            detections.len(),
            target.display()
        );
    }
    Ok(())
}
