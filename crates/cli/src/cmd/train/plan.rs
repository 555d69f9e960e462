//! The options of `detbench train` resolved once into one `TrainConfig` per model x precision x
//! batch, every run's data read and checked (annotations for the model, batch against the data
//! set, model file, output folder) before the first step of the first run; then the runs, one
//! after another, and the results out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use detbench_bench::results::{RESULTS_SCHEMA_VERSION, RunResults};
use detbench_report::run_files;
use detbench_report::store::StoreLocation;
use detbench_report::tables::TrainingEntry;
use detbench_train::coco::TrainSet;
use detbench_train::{
    GroupBackend, ModelKind, Parallel, Recipe, TrainConfig, TrainError, TrainResults,
    check_batches, load_training_set,
};

use super::Options;
use super::progress::TrainProgress;

/// Everything `detbench train` does, checked.
pub struct TrainPlan {
    started_at: String,
    command_line: Vec<String>,
    /// One per run, with the training set it reads.
    runs: Vec<(TrainConfig, TrainSet)>,
    out_dir: PathBuf,
    /// The results store, unless `--no-store` (and only on rank 0 of a data-parallel run).
    store: Option<StoreLocation>,
    quiet: bool,
}

impl TrainPlan {
    pub fn new(args: Options) -> anyhow::Result<TrainPlan> {
        let started_at = detbench_env::now_rfc3339();
        let configs = configs(&args)?;
        let single = configs.len() == 1;
        if !single && (args.save.is_some() || args.dump_first_batch.is_some()) {
            bail!(
                "--save and --dump-first-batch name one file: give one model, one batch and one \
                 precision ({} runs were asked for)",
                configs.len()
            );
        }
        // Each distinct data set is read once; every run's batch is checked against it.
        let mut sets: HashMap<(ModelKind, PathBuf, Option<usize>), TrainSet> = HashMap::new();
        let mut runs = Vec::with_capacity(configs.len());
        for config in configs {
            let key = (
                config.model,
                config.annotations.clone(),
                config.limit_images,
            );
            let set = match sets.get(&key) {
                Some(set) => {
                    // Same data: only the settings and the batch need checking.
                    config.validate()?;
                    check_batches(set, &config)?;
                    set.clone()
                }
                None => {
                    let set = load_training_set(&config)?;
                    sets.insert(key, set.clone());
                    set
                }
            };
            if !config.model_path.is_file() {
                bail!(
                    "model file {} not found: export it with `python3 \
                     tools/train/export_train_models.py --out <dir> --models {}` (Python torch \
                     and torchvision; scripts/setup.sh --train installs them)",
                    config.model_path.display(),
                    config.model
                );
            }
            runs.push((config, set));
        }
        let out_dir = args
            .out
            .clone()
            .unwrap_or_else(|| default_out_dir(&started_at));
        check_out_dir(&out_dir)?;
        let rank0 = args.parallel.rank == 0;
        Ok(TrainPlan {
            command_line: std::env::args().collect(),
            started_at,
            runs,
            out_dir,
            store: match !args.no_store && rank0 {
                true => Some(crate::cmd::store::resolve(args.db.as_ref())?),
                false => None,
            },
            quiet: args.quiet,
        })
    }

    /// Runs every configuration in turn (a failing run is recorded with why, and the others go
    /// on), then prints and writes the results.
    pub fn run_and_export(self) -> anyhow::Result<()> {
        let mut training: Vec<TrainResults> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let total = self.runs.len();
        for (index, (config, set)) in self.runs.into_iter().enumerate() {
            let label = format!(
                "[{}/{total}] {} {} batch {}",
                index + 1,
                config.model,
                config.precision,
                config.batch
            );
            let progress = TrainProgress::start(&label, &config, self.quiet);
            let outcome =
                detbench_train::torch::train_on(&config, set, &mut |step| progress.step(step));
            progress.finish();
            match outcome {
                Ok(results) => training.push(results),
                Err(TrainError::Stopped { error, partial }) => {
                    failures.push(format!("{label}: {error}"));
                    training.push(*partial);
                }
                Err(error) => failures.push(format!("{label}: {error}")),
            }
        }
        let results = RunResults {
            schema_version: RESULTS_SCHEMA_VERSION,
            detbench_version: detbench_env::DETBENCH_VERSION.to_owned(),
            started_at: self.started_at,
            command_line: self.command_line,
            environment: detbench_env::capture(),
            models: Vec::new(),
            skipped: Vec::new(),
            interrupted: false,
            training,
            sharding: None,
        };
        export(&results, &self.out_dir, self.store.as_ref())?;
        if !failures.is_empty() {
            bail!(
                "{} of {total} training runs failed:\n  {}",
                failures.len(),
                failures.join("\n  ")
            );
        }
        Ok(())
    }
}

/// The tables on stdout; results.md/.json, training.csv, training_steps.csv and the loss curves
/// in `out_dir`; the runs in the store.
fn export(
    results: &RunResults,
    out_dir: &Path,
    store: Option<&StoreLocation>,
) -> anyhow::Result<()> {
    if results.training.is_empty() {
        return Ok(());
    }
    println!("{}", run_files::console_summary(results));
    let mut written = run_files::write_run_files(out_dir, results)
        .with_context(|| format!("writing results to {}", out_dir.display()))?;
    let entries = TrainingEntry::of_run(&results.training);
    // A chart that cannot be drawn (no fontconfig or font on a GPU image) costs only the chart:
    // the results above are written and the run still goes to the store.
    match detbench_report::charts::write_loss_curves(&entries, out_dir) {
        Ok(charts) => written.extend(charts),
        Err(e) => eprintln!(
            "warning: no loss curves in {}: {e}; `detbench report --charts DIR` draws them later \
             from the store",
            out_dir.display()
        ),
    }
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!("wrote {}", names.join(", "));
    if let Some(location) = store {
        crate::cmd::store::record(location, results, &out_dir.join("results.json"))?;
    }
    Ok(())
}

/// One configuration per model x precision x batch, in that order.
fn configs(args: &Options) -> anyhow::Result<Vec<TrainConfig>> {
    if args.model.len() > 1 && args.model_file.is_some() {
        bail!("--model-file names one model's file; for several models give --model-dir");
    }
    if let Some(zero) = args.batch.iter().find(|&&b| b == 0) {
        bail!("--batch {zero}: batch sizes start at 1");
    }
    if args.threads == Some(0) {
        bail!("--threads 0: give at least 1, or leave it out for libtorch's default");
    }
    let parallel = parallel(args)?;
    let libraries = args.libraries.settings()?;
    let shared = detbench_assets::shared_dir();
    let mut configs = Vec::new();
    for &model in &args.model {
        let model_path = model_file(args, model)?;
        let annotations = match &args.annotations {
            Some(path) => path.clone(),
            None => default_annotations(shared.as_ref(), model)?,
        };
        let images = match &args.images {
            Some(path) => path.clone(),
            None => shared
                .as_ref()
                .map(|s| s.join("coco/val2017"))
                .map_err(|e| anyhow::anyhow!("no --images given, and {e}"))?,
        };
        for &precision in &args.precision {
            for &batch in &args.batch {
                let mut c = TrainConfig::new(
                    model,
                    model_path.clone(),
                    annotations.clone(),
                    images.clone(),
                );
                c.batch = batch;
                c.precision = precision;
                c.device = args.device;
                c.warmup_steps = args.warmup_steps;
                c.timed_steps = (args.steps > 0).then_some(args.steps);
                c.epochs = args.epochs;
                c.seed = args.seed;
                c.workers = args.workers;
                c.prefetch = args.prefetch;
                c.threads = args.threads;
                c.deterministic = args.deterministic;
                c.cudnn_benchmark = args.cudnn_benchmark;
                c.recipe = recipe(args);
                c.parallel = parallel.clone();
                c.save = args.save.clone();
                c.limit_images = args.limit_images;
                c.dump_first_batch = args.dump_first_batch.clone();
                c.torchvision_ops = libraries.torchvision_ops.clone();
                c.libtorch_cuda = libraries.libtorch_cuda.clone();
                configs.push(c);
            }
        }
    }
    Ok(configs)
}

fn recipe(args: &Options) -> Recipe {
    let r = &args.recipe;
    Recipe {
        lr_per_16: r.lr,
        lr_steps: r.lr_steps.clone(),
        lr_gamma: r.lr_gamma,
        hflip_prob: r.hflip_prob,
        aspect_ratio_group_factor: r.aspect_ratio_group_factor,
        ..Recipe::default()
    }
}

fn parallel(args: &Options) -> anyhow::Result<Option<Parallel>> {
    let p = &args.parallel;
    if p.world_size <= 1 {
        if p.dist_init.is_some() || p.rank != 0 {
            bail!("--dist-init and --rank are for data parallelism: give --world-size N (N > 1)");
        }
        return Ok(None);
    }
    let Some(init) = p.dist_init.clone() else {
        bail!(
            "--world-size {} needs --dist-init file:///path or tcp://host:port",
            p.world_size
        );
    };
    Ok(Some(Parallel {
        rank: p.rank,
        world_size: p.world_size,
        init,
        backend: GroupBackend::for_device(args.device),
    }))
}

/// `--model-file`, or `<model-dir>/<model>.pt`.
fn model_file(args: &Options, model: ModelKind) -> anyhow::Result<PathBuf> {
    match (&args.model_file, &args.model_dir) {
        (Some(file), _) => Ok(file.clone()),
        (None, Some(dir)) => Ok(dir.join(format!("{model}.pt"))),
        (None, None) => bail!(
            "give the model's TorchScript file with --model-file FILE or --model-dir DIR (holding \
             {model}.pt); export it with `python3 tools/train/export_train_models.py --out DIR \
             --models {model}`"
        ),
    }
}

/// The shipped subset's annotation file for `model`: person keypoints for Keypoint R-CNN.
fn default_annotations(
    shared: Result<&PathBuf, &detbench_assets::AssetError>,
    model: ModelKind,
) -> anyhow::Result<PathBuf> {
    let shared = shared.map_err(|e| anyhow::anyhow!("no --annotations given, and {e}"))?;
    let file = if model.needs_keypoints() {
        "person_keypoints_val2017_subset.json"
    } else {
        "instances_val2017_subset.json"
    };
    Ok(shared.join("coco/annotations").join(file))
}

/// The output folder must be a folder we can write into, before any step runs.
fn check_out_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: exists and is not a folder", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    let probe = dir.join(format!(".detbench-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("cannot write into the output folder {}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn default_out_dir(started_at: &str) -> PathBuf {
    let stamp: String = started_at
        .chars()
        .map(|c| if c == ':' { '-' } else { c })
        .collect();
    PathBuf::from("runs").join(stamp)
}
