//! Drives the native engine (and, for comparison, detbench's `torch` backend) over the shipped
//! COCO images the way `detbench run` times a model, for the GPU runs of issue 15
//! (tools/native/gpu_run.sh): per call, the `inference` stage of the pipeline (upload,
//! preprocessing, forward, download); per run, detections (COCO results), detections per image,
//! the engine's GPU timings and kernel launches, and optionally a backbone profile and stage dumps.
//!
//!     detbench-native-bench --models-dir DIR --images DIR --annotations FILE \
//!         --models fasterrcnn_resnet50_fpn --runs native-fp16,torch-fp32 --batch 1 \
//!         --limit 60 --warmup 10 --out FILE.json [--detections-dir DIR]
//!
//! Warm-up as the harness (crates/bench/src/runner.rs): `warmup` calls cycling over the first
//! max(warmup, batch) images. A run that fails (out of memory at a large batch, a missing
//! library) is recorded with its error and the next run goes on.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use detbench_backends::{BackendConfig, Device, EngineKind, NativeMode, NativeSettings, Precision};
use detbench_bench::timing::percentile;
use detbench_bench::{Detector, ImageInput, Stage, StageClock};
use detbench_eval::Detection;
use detbench_imgproc::BgrImage;
use detbench_models::families::torchvision::{ListModelConfig, ListModelDetector};
use detbench_native::NativeDetector;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Time the native engine against detbench's torch backend on the shipped images")]
struct Args {
    #[arg(long)]
    models_dir: PathBuf,
    #[arg(long)]
    images: PathBuf,
    #[arg(long)]
    annotations: PathBuf,
    /// Comma-separated torchvision builder names (files <models-dir>/<name>.pt).
    #[arg(long)]
    models: String,
    /// Comma-separated runs ENGINE-PRECISION: native-fp16, torch-fp32, ...; the native engine
    /// takes modifiers: native+exact (`NativeMode::Exact`, torchvision's arithmetic order),
    /// native+notf32 (no TF32 in cuDNN), native+nographs.
    #[arg(long, default_value = "native-fp16,native-fp32")]
    runs: String,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 60)]
    limit: usize,
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    #[arg(long, default_value = "cuda")]
    device: String,
    #[arg(long)]
    out: PathBuf,
    /// Write each run's COCO detections to <dir>/<model>_<run>_b<batch>.json.
    #[arg(long)]
    detections_dir: Option<PathBuf>,
    /// Profile the backbone (graph replays) at these N x H x W shapes, e.g. 1x800x1088,8x800x1344.
    #[arg(long)]
    profile_backbone: Option<String>,
    /// Dump the native engine's stages for the first image into this folder.
    #[arg(long)]
    stages: Option<PathBuf>,
    /// The engine mode of the stage dumps (`fast` or `exact`).
    #[arg(long, default_value = "fast")]
    stages_mode: NativeMode,
    /// Dump the stages of this image id instead of the first image.
    #[arg(long)]
    stages_image: Option<u64>,
    /// The precisions of the stage dumps (comma-separated).
    #[arg(long, default_value = "fp32,fp16", value_delimiter = ',')]
    stages_precisions: Vec<Precision>,
    #[arg(long)]
    no_graphs: bool,
    /// Warm up with one untimed pass over every batch of the run (steady state: every input-size
    /// bucket seen), instead of the harness's `--warmup` calls.
    #[arg(long)]
    prewarm_all: bool,
    /// Stop starting new runs after this many seconds.
    #[arg(long)]
    deadline_s: Option<u64>,
}

struct Shipped {
    ids: Vec<u64>,
    images: Vec<BgrImage>,
}

fn load_images(args: &Args) -> Result<Shipped> {
    let text = std::fs::read_to_string(&args.annotations)
        .with_context(|| format!("{}", args.annotations.display()))?;
    let doc: Value = serde_json::from_str(&text)?;
    let mut files: Vec<(u64, String)> = doc["images"]
        .as_array()
        .context("annotations without images")?
        .iter()
        .map(|im| {
            (
                im["id"].as_u64().unwrap_or(0),
                im["file_name"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    files.sort();
    files.truncate(args.limit);
    let mut out = Shipped {
        ids: Vec::new(),
        images: Vec::new(),
    };
    for (id, name) in files {
        out.images.push(
            detbench_imgproc::decode_file(args.images.join(&name)).with_context(|| name.clone())?,
        );
        out.ids.push(id);
    }
    Ok(out)
}

enum Opened {
    Native(Box<NativeDetector>),
    Torch(Box<ListModelDetector>),
}

impl Opened {
    fn detector(&mut self) -> &mut dyn Detector {
        match self {
            Opened::Native(d) => d.as_mut(),
            Opened::Torch(d) => d.as_mut(),
        }
    }
}

fn open(args: &Args, model: &str, run: &str) -> Result<Opened> {
    let (engine, precision) = run.split_once('-').context("a run is ENGINE-PRECISION")?;
    let precision = match precision {
        "fp32" => Precision::Fp32,
        "fp16" => Precision::Fp16,
        other => anyhow::bail!("unknown precision {other}"),
    };
    let device: Device = args.device.parse()?;
    let path = args.models_dir.join(format!("{model}.pt"));
    let mut tokens = engine.split('+');
    match tokens.next().unwrap_or("") {
        "native" => {
            let modifiers: Vec<&str> = tokens.collect();
            let mut native = if modifiers.contains(&"exact") {
                NativeSettings::exact()
            } else {
                NativeSettings::default()
            };
            native.cuda_graphs = !args.no_graphs && !modifiers.contains(&"nographs");
            native.allow_tf32 = !modifiers.contains(&"notf32");
            Ok(Opened::Native(Box::new(NativeDetector::open(
                model,
                &path,
                &native_config(device, precision, native),
            )?)))
        }
        "torch" => {
            let config = BackendConfig {
                engine: EngineKind::Torch,
                device,
                precision,
                torch: detbench_backends::TorchSettings::from_env().unwrap_or_default(),
                ..BackendConfig::default()
            };
            let backend = detbench_backends::open(&path, &config)?;
            let masks = model.starts_with("maskrcnn");
            Ok(Opened::Torch(Box::new(ListModelDetector::new(
                model,
                backend,
                ListModelConfig::torchvision(masks, false),
            ))))
        }
        other => anyhow::bail!("unknown engine {other}"),
    }
}

/// The native engine's configuration: `device`, `precision`, `native`, the libtorch library
/// paths from the environment (`$DETBENCH_TORCHVISION_OPS`, `$DETBENCH_LIBTORCH_CUDA`).
fn native_config(device: Device, precision: Precision, native: NativeSettings) -> BackendConfig {
    BackendConfig {
        engine: EngineKind::Native,
        device,
        precision,
        native,
        torch: detbench_backends::TorchSettings::from_env().unwrap_or_default(),
        ..BackendConfig::default()
    }
}

/// One run: warm-up, timed calls, detections and timings.
fn run_one(args: &Args, shipped: &Shipped, model: &str, run: &str) -> Result<Value> {
    let opened = Instant::now();
    let mut opened_detector = open(args, model, run)?;
    let open_s = opened.elapsed().as_secs_f64();
    let inputs: Vec<ImageInput<'_>> = shipped
        .ids
        .iter()
        .zip(&shipped.images)
        .map(|(&image_id, image)| ImageInput { image_id, image })
        .collect();
    let head = &inputs[..inputs.len().min(args.warmup.max(args.batch))];
    let warm = Instant::now();
    if args.prewarm_all {
        for batch in inputs.chunks_exact(args.batch) {
            opened_detector
                .detector()
                .detect(batch, &mut StageClock::new())
                .map_err(anyhow::Error::msg)?;
        }
    }
    for call in 0..if args.prewarm_all { 0 } else { args.warmup } {
        let batch: Vec<_> = (0..args.batch)
            .map(|k| head[(call * args.batch + k) % head.len()])
            .collect();
        opened_detector
            .detector()
            .detect(&batch, &mut StageClock::new())
            .map_err(anyhow::Error::msg)?;
    }
    let warmup_s = warm.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    let mut totals = Vec::new();
    let mut gpu = Vec::new();
    let mut detections: Vec<Detection> = Vec::new();
    let mut per_image = Vec::new();
    for batch in inputs.chunks_exact(args.batch) {
        let mut clock = StageClock::new();
        let start = Instant::now();
        let found = opened_detector
            .detector()
            .detect(batch, &mut clock)
            .map_err(anyhow::Error::msg)?;
        totals.push(start.elapsed().as_secs_f64() * 1e3);
        samples.push(clock.spent(Stage::Inference).as_secs_f64() * 1e3);
        if let Opened::Native(d) = &mut opened_detector {
            gpu.push(serde_json::to_value(d.engine().timing())?);
        }
        for d in found {
            per_image.push(d.len());
            detections.extend(d);
        }
    }
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    // LoadGen's nearest rank, as `detbench run` reports; NaN without samples.
    let at = |p: f64| percentile(&sorted, p).unwrap_or(f64::NAN);
    let images = per_image.len().max(1);
    let mut result = json!({
        "model": model, "run": run, "batch": args.batch, "calls": samples.len(),
        "open_s": open_s, "warmup_s": warmup_s, "prewarm_all": args.prewarm_all,
        "median_ms": at(0.5), "p10_ms": at(0.1), "p90_ms": at(0.9),
        "images_per_second": (args.batch * samples.len()) as f64 / (samples.iter().sum::<f64>() / 1e3),
        "detections_per_image": per_image.iter().sum::<usize>() as f64 / images as f64,
        "samples_ms": samples, "total_ms": totals, "gpu": gpu,
        "backend": opened_detector.detector().backend(),
        "provenance": opened_detector.detector().provenance(),
    });
    if let Some(dir) = &args.detections_dir {
        let path = dir.join(format!("{model}_{run}_b{}.json", args.batch));
        detbench_assets::write_atomic(&path, &serde_json::to_vec(&detections)?)?;
        result["detections_file"] = json!(path.display().to_string());
    }
    Ok(result)
}

fn extras(args: &Args, shipped: &Shipped, model: &str) -> Result<Value> {
    let mut out = json!({});
    let device: Device = args.device.parse()?;
    let path = args.models_dir.join(format!("{model}.pt"));
    if let Some(shapes) = &args.profile_backbone {
        let mut rows = Vec::new();
        for precision in [Precision::Fp16, Precision::Fp32] {
            let config = native_config(device, precision, NativeSettings::default());
            let mut d = NativeDetector::open(model, &path, &config)?;
            for shape in shapes.split(',') {
                let dims: Vec<usize> = shape.split('x').filter_map(|v| v.parse().ok()).collect();
                anyhow::ensure!(dims.len() == 3, "a shape is NxHxW: {shape}");
                let (ms, flops) = d.engine().profile_backbone(dims[0], dims[1], dims[2], 50)?;
                rows.push(json!({"precision": precision.as_str(), "shape": shape, "median_ms": ms, "gflops": flops / 1e9,
                                 "tflops_per_s": flops / (ms / 1e3) / 1e12}));
            }
        }
        out["backbone"] = json!(rows);
    }
    if let Some(dir) = &args.stages {
        let index = match args.stages_image {
            Some(id) => shipped
                .ids
                .iter()
                .position(|&i| i == id)
                .with_context(|| format!("--stages-image {id}: not among the loaded images"))?,
            None => 0,
        };
        let native = NativeSettings {
            mode: args.stages_mode,
            ..NativeSettings::default()
        };
        for &precision in &args.stages_precisions {
            let folder = dir.join(format!("{model}_{}", precision.as_str()));
            std::fs::create_dir_all(&folder)?;
            let config = native_config(device, precision, native.clone());
            let mut d = NativeDetector::open(model, &path, &config)?;
            d.engine().dump_stages(&[&shipped.images[index]], &folder)?;
        }
        out["stages"] = json!({"folder": dir.display().to_string(), "mode": args.stages_mode,
                               "image_id": shipped.ids[index]});
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let shipped = load_images(&args)?;
    let mut runs = Vec::new();
    let mut extra = json!({});
    for model in args.models.split(',').filter(|m| !m.is_empty()) {
        for run in args.runs.split(',').filter(|r| !r.is_empty()) {
            if args
                .deadline_s
                .is_some_and(|d| started.elapsed().as_secs() >= d)
            {
                eprintln!("[native-bench] deadline passed: skipping {model} {run}");
                continue;
            }
            let result = run_one(&args, &shipped, model, run).unwrap_or_else(|e| {
                json!({"model": model, "run": run, "batch": args.batch, "error": format!("{e:#}")})
            });
            eprintln!(
                "[native-bench] {model} {run} b{}: median {:.2} ms, p10 {:.2} ms, {:.1} dets/img {}",
                args.batch,
                result["median_ms"].as_f64().unwrap_or(f64::NAN),
                result["p10_ms"].as_f64().unwrap_or(f64::NAN),
                result["detections_per_image"].as_f64().unwrap_or(f64::NAN),
                result["error"].as_str().unwrap_or("")
            );
            runs.push(result);
            write_out(&args.out, &runs, &extra)?;
        }
        if args.profile_backbone.is_some() || args.stages.is_some() {
            extra[model] = extras(&args, &shipped, model)
                .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
            write_out(&args.out, &runs, &extra)?;
        }
    }
    Ok(())
}

fn write_out(path: &Path, runs: &[Value], extra: &Value) -> Result<()> {
    let doc = json!({"tool": "detbench-native-bench", "runs": runs, "extra": extra});
    detbench_assets::write_atomic(path, &serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}
