//! `detbench-train`: the trainer on the command line until `detbench train` routes to the same
//! library function (`detbench_train::torch::train_observed`). Writes the typed results as JSON.
//!
//!     detbench-train --model maskrcnn_resnet50_fpn --model-file m.pt --device cuda \
//!       --precision amp --batch 8 --warmup-steps 20 --steps 100 --out results.json

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use detbench_train::{
    ModelKind, Parallel, Precision, Recipe, TrainConfig, TrainDevice, TrainResults,
};

#[derive(Debug, Parser)]
#[command(
    name = "detbench-train",
    version,
    about = "Train a scripted torchvision detector through libtorch and time it"
)]
struct Args {
    /// maskrcnn_resnet50_fpn, fasterrcnn_resnet50_fpn, retinanet_resnet50_fpn or keypointrcnn_resnet50_fpn.
    #[arg(long)]
    model: ModelKind,
    /// The TorchScript file (tools/train/export_train_models.py).
    #[arg(long)]
    model_file: PathBuf,
    /// COCO annotation file (default: the shipped subset; person keypoints for Keypoint R-CNN).
    #[arg(long)]
    annotations: Option<PathBuf>,
    /// Image folder (default: the shipped val2017 subset).
    #[arg(long)]
    images: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// fp32 (TF32 off), tf32, amp (fp16 autocast + loss scaling) or bf16.
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: TrainDevice,
    /// Steps before timing starts.
    #[arg(long, default_value_t = 20)]
    warmup_steps: usize,
    /// Timed steps; 0 runs --epochs whole epochs instead.
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Batches prepared ahead per worker.
    #[arg(long, default_value_t = 2)]
    prefetch: usize,
    /// libtorch intra-op threads (CPU).
    #[arg(long)]
    threads: Option<usize>,
    #[arg(long)]
    deterministic: bool,
    #[arg(long)]
    cudnn_benchmark: bool,
    /// Learning rate for 16 images (scaled per image).
    #[arg(long, default_value_t = 0.02)]
    lr: f64,
    /// Epochs at which the lr drops by --lr-gamma.
    #[arg(long, value_delimiter = ',', default_value = "16,22")]
    lr_steps: Vec<usize>,
    #[arg(long, default_value_t = 0.1)]
    lr_gamma: f64,
    #[arg(long, default_value_t = 0.5)]
    hflip_prob: f64,
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    aspect_ratio_group_factor: i32,
    /// Data parallelism: this process's rank (with --world-size and --dist-init).
    #[arg(long, default_value_t = 0)]
    rank: usize,
    #[arg(long, default_value_t = 1)]
    world_size: usize,
    /// file:///path or tcp://host:port.
    #[arg(long)]
    dist_init: Option<String>,
    /// Keep only the first N training images.
    #[arg(long)]
    limit_images: Option<usize>,
    /// Write the trained module (TorchScript, eval mode) here.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Write the first batch as the model sees it (.npz), for the parity check.
    #[arg(long)]
    dump_first_batch: Option<PathBuf>,
    /// Results JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No per-step lines.
    #[arg(long)]
    quiet: bool,
}

fn config(args: &Args) -> Result<TrainConfig, String> {
    let shared = detbench_assets::shared_dir().ok();
    let default = |rel: &str| shared.as_ref().map(|s| s.join(rel));
    let annotations = args.annotations.clone().or_else(|| {
        default(if args.model == ModelKind::KeypointrcnnResnet50Fpn {
            "coco/annotations/person_keypoints_val2017_subset.json"
        } else {
            "coco/annotations/instances_val2017_subset.json"
        })
    });
    let images = args.images.clone().or_else(|| default("coco/val2017"));
    let (Some(annotations), Some(images)) = (annotations, images) else {
        return Err(
            "no --annotations/--images given and no shared data folder found (set DETBENCH_SHARED)"
                .into(),
        );
    };
    let mut c = TrainConfig::new(args.model, args.model_file.clone(), annotations, images);
    c.batch = args.batch;
    c.precision = args.precision;
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
    c.recipe = Recipe {
        lr_per_16: args.lr,
        lr_steps: args.lr_steps.clone(),
        lr_gamma: args.lr_gamma,
        hflip_prob: args.hflip_prob,
        aspect_ratio_group_factor: args.aspect_ratio_group_factor,
        ..Recipe::default()
    };
    if args.world_size > 1 {
        let init = args
            .dist_init
            .clone()
            .ok_or("--world-size > 1 needs --dist-init file:///path or tcp://host:port")?;
        let backend = if matches!(args.device, TrainDevice::Cpu) {
            "gloo"
        } else {
            "nccl"
        };
        c.parallel = Some(Parallel {
            rank: args.rank,
            world_size: args.world_size,
            init,
            backend: backend.into(),
        });
    }
    c.save = args.save.clone();
    c.limit_images = args.limit_images;
    c.dump_first_batch = args.dump_first_batch.clone();
    Ok(c)
}

fn write_results(results: &TrainResults, path: &PathBuf) -> Result<(), String> {
    let text = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("detbench-train: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(out) = &args.out
        && let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        eprintln!(
            "detbench-train: the folder of --out {} does not exist",
            out.display()
        );
        return ExitCode::from(2);
    }
    let quiet = args.quiet;
    let mut done: Vec<detbench_train::StepRecord> = Vec::new();
    let mut observe = |s: &detbench_train::StepRecord| {
        done.push(s.clone());
        if !quiet {
            let losses: Vec<String> = s.losses.iter().map(|v| format!("{v:.4}")).collect();
            eprintln!(
                "step {:>4} epoch {:>2} lr {:.6} loss {:.4} [{}] {:.1} ms (data {:.1} ms){}",
                s.step,
                s.epoch,
                s.lr,
                s.total_loss,
                losses.join(" "),
                s.step_s * 1e3,
                s.data_wait_s * 1e3,
                s.loss_scale.map_or(String::new(), |x| format!(
                    " scale {x}{}",
                    if s.skipped { " skipped" } else { "" }
                ))
            );
        }
    };
    match detbench_train::torch::train_observed(&config, &mut observe) {
        Ok(results) => {
            if let Some(t) = &results.throughput {
                eprintln!(
                    "{} {} batch {}: {:.2} images/s over {} steps after {} (step p50 {:.1} ms, p90 {:.1} ms, data wait {:.1}%)",
                    config.model.name(),
                    config.precision.as_str(),
                    config.batch,
                    t.global_images_per_s,
                    t.timed_steps,
                    t.skipped_steps,
                    t.step.p50_ms,
                    t.step.p90_ms,
                    100.0 * t.data_wait_fraction
                );
            }
            if let Some(out) = &args.out
                && let Err(e) = write_results(&results, out)
            {
                eprintln!("detbench-train: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("detbench-train: {e}");
            // Nothing lost: the steps that ran are written with the error.
            if let Some(out) = &args.out {
                let partial =
                    serde_json::json!({"error": e.to_string(), "config": config, "steps": done});
                let tmp = out.with_extension("json.tmp");
                if let Err(w) = std::fs::write(&tmp, partial.to_string())
                    .and_then(|()| std::fs::rename(&tmp, out))
                {
                    eprintln!("detbench-train: cannot write {}: {w}", out.display());
                } else {
                    eprintln!(
                        "detbench-train: the {} step(s) done are in {}",
                        done.len(),
                        out.display()
                    );
                }
            }
            ExitCode::FAILURE
        }
    }
}
