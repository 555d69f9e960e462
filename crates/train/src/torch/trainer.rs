//! The training loop: torchvision's `engine.train_one_epoch` step for step, timed.
//!
//! Per step: wait for the loader's next batch (data wait), move it to the device, run
//! `forward(images, targets)` under autocast for amp/bf16 and sum the losses, read the losses
//! back (`.item()`; a NaN or infinite sum stops the run with the step and every component, as
//! engine.py does), `zero_grad` + backward (scaled for amp), average the gradients over the
//! process group, SGD step (skipped by the scaler on inf/NaN gradients), lr schedule, and a
//! device synchronise so that the step's time covers its GPU work.
//!
//! One run per process at a time: libtorch's generator, thread count and deterministic switch
//! are process-wide, so two runs on parallel threads would draw each other's random numbers.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tch::Tensor;

use crate::coco::TrainSet;
use crate::config::{Precision, TrainConfig, TrainDevice};
use crate::error::{Result, TrainError};
use crate::loader::{Loader, LoaderPlan};
use crate::results::{PeakMemory, StepRecord, TrainResults, throughput};
use crate::schedule::LrSchedule;
use crate::targets::TargetKinds;
use crate::torch::dist::{ProcessGroup, Store};
use crate::torch::ffi::{Module, Optimizer, ScalerSettings};
use crate::torch::setup::{Engine, prepare_engine};
use crate::torch::{cuda, step};

/// DDP's default bucket size (`bucket_cap_mb=25`).
const BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Runs the training `config` describes.
pub fn train(config: &TrainConfig) -> Result<TrainResults> {
    train_observed(config, &mut |_| {})
}

/// As [`train`], calling `observe` after every step (progress, logs).
pub fn train_observed(
    config: &TrainConfig,
    observe: &mut dyn FnMut(&StepRecord),
) -> Result<TrainResults> {
    let started = Instant::now();
    config.validate()?;
    if let Some(path) = &config.save {
        check_writable(path)?;
    }
    let mut set = TrainSet::load(&config.annotations, &config.images, config.model)?;
    if let Some(n) = config.limit_images {
        set.truncate(n);
    }
    let engine = prepare_engine(config)?;
    let mut run = Run::new(config, set, engine)?;
    let steps = run.total_steps();
    let mut records = Vec::with_capacity(steps);
    for i in 0..steps {
        let record = run.step(i)?;
        observe(&record);
        records.push(record);
    }
    run.finish(records, started)
}

/// Fails early when `path` cannot be written (its folder is missing or read-only).
fn check_writable(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".detbench-train-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| TrainError::Output {
        path: path.to_path_buf(),
        reason: format!("its folder {} is not writable: {e}", dir.display()),
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Everything a run holds between steps.
struct Run<'a> {
    config: &'a TrainConfig,
    engine: Engine,
    set: Arc<TrainSet>,
    module: Module,
    params: Vec<Tensor>,
    optimizer: Optimizer,
    group: Option<ProcessGroup>,
    loader: Loader,
    schedule: LrSchedule,
    loss_names: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(config: &'a TrainConfig, set: TrainSet, engine: Engine) -> Result<Self> {
        let device = engine.device;
        let mut module = Module::load(&config.model_path)?;
        module.to_device(device)?;
        module.set_training(true)?;
        let all = module.parameters()?;
        let params: Vec<Tensor> = all
            .iter()
            .filter(|(_, _, g)| *g)
            .map(|(_, t, _)| t.shallow_clone())
            .collect();
        if params.is_empty() {
            return Err(TrainError::Model {
                path: config.model_path.clone(),
                reason: "no parameter requires a gradient".into(),
            });
        }
        let r = &config.recipe;
        let mut optimizer = Optimizer::new(
            &params.iter().collect::<Vec<_>>(),
            r.momentum,
            r.weight_decay,
        )?;
        if config.precision == Precision::Amp {
            optimizer.enable_scaler(device, ScalerSettings::default())?;
        }
        let group = match &config.parallel {
            Some(p) => Some(join_group(config, &module, p)?),
            None => None,
        };
        let (rank, world) = config
            .parallel
            .as_ref()
            .map_or((0, 1), |p| (p.rank, p.world_size));
        let set = Arc::new(set);
        let kinds = TargetKinds {
            masks: config.model.needs_masks(),
            keypoints: config.model.needs_keypoints(),
        };
        let plan = LoaderPlan {
            seed: config.seed,
            batch: config.batch,
            rank,
            world_size: world,
            hflip_prob: r.hflip_prob,
            group_factor: r.aspect_ratio_group_factor,
            workers: config.workers,
            prefetch: config.prefetch,
        };
        let loader = Loader::start(Arc::clone(&set), plan, kinds)?;
        let schedule = LrSchedule::new(config.base_lr(), r, loader.batches_per_epoch());
        if let TrainDevice::Cuda(i) = config.device {
            cuda::reset_peak_memory(i)?;
        }
        Ok(Run {
            config,
            engine,
            set,
            module,
            params,
            optimizer,
            group,
            loader,
            schedule,
            loss_names: Vec::new(),
        })
    }

    fn total_steps(&self) -> usize {
        match self.config.timed_steps {
            Some(t) => self.config.warmup_steps + t,
            None => self.config.epochs * self.loader.batches_per_epoch(),
        }
    }

    fn world(&self) -> usize {
        self.config.parallel.as_ref().map_or(1, |p| p.world_size)
    }

    fn step(&mut self, index: usize) -> Result<StepRecord> {
        let t0 = Instant::now();
        let (batch, data_wait_s) = self.loader.next_batch()?;
        let device = self.engine.device;
        let on_device = step::to_device(&batch, device)?;
        if index == 0 {
            if let Some(path) = &self.config.dump_first_batch {
                step::dump_batch(&on_device, &batch, path)?;
            }
            // The same generator state before the first forward on every side (parity).
            tch::manual_seed(self.config.seed as i64);
        }
        let (losses, total) = self.module.forward(
            &on_device.images,
            &on_device.targets,
            device,
            self.engine.autocast,
        )?;
        if self.loss_names.is_empty() {
            self.loss_names = losses.iter().map(|(n, _)| n.clone()).collect();
        }
        let world = self.world();
        let (values, total_value) =
            step::loss_values(&losses, &total, self.group.as_ref().map(|g| (g, world)))?;
        if !total_value.is_finite() {
            let components = self
                .loss_names
                .iter()
                .zip(&values)
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(TrainError::NonFiniteLoss {
                step: index,
                epoch: batch.epoch,
                total: total_value,
                components,
            });
        }
        self.optimizer.backward(&total)?;
        drop((losses, total, on_device));
        if let Some(pg) = &self.group {
            step::average_gradients(&self.optimizer.grads()?, pg, world, BUCKET_BYTES)?;
        }
        let lr = self.schedule.lr();
        let (skipped, scale) = self.optimizer.step(lr)?;
        self.schedule.step_iteration();
        if batch.index + 1 == self.loader.batches_per_epoch() {
            self.schedule.step_epoch();
        }
        self.engine.synchronize()?;
        Ok(StepRecord {
            step: index,
            epoch: batch.epoch,
            lr,
            losses: values,
            total_loss: total_value,
            step_s: t0.elapsed().as_secs_f64(),
            data_wait_s,
            loss_scale: (self.config.precision == Precision::Amp).then_some(scale),
            skipped,
        })
    }

    fn finish(self, steps: Vec<StepRecord>, started: Instant) -> Result<TrainResults> {
        let config = self.config;
        let peak_memory = match config.device {
            TrainDevice::Cuda(i) => {
                let (allocated_bytes, reserved_bytes) = cuda::peak_memory(i)?;
                Some(PeakMemory {
                    allocated_bytes,
                    reserved_bytes,
                })
            }
            TrainDevice::Cpu => None,
        };
        let param_checksum = step::checksum(&self.params)?;
        if let Some(path) = &config.save {
            save_atomically(&self.module, path)?;
        }
        let world = self.world();
        let skip = if config.timed_steps.is_some() {
            config.warmup_steps
        } else {
            config.warmup_steps.min(steps.len().saturating_sub(1))
        };
        Ok(TrainResults {
            config: config.clone(),
            dataset_images: self.set.images.len(),
            removed_images: self.set.removed,
            batches_per_epoch: self.loader.batches_per_epoch(),
            warmup_iters: self.schedule.warmup_iters(),
            world_size: world,
            rank: config.parallel.as_ref().map_or(0, |p| p.rank),
            loss_names: self.loss_names,
            throughput: throughput(&steps, skip, config.batch, world),
            steps,
            peak_memory,
            options: self.engine.options.clone(),
            param_checksum,
            saved: config.save.clone(),
            wall_s: started.elapsed().as_secs_f64(),
        })
    }
}

/// Creates the process group and copies rank 0's parameters and buffers to every rank, as
/// DistributedDataParallel does when it wraps a module (`_sync_module_states`).
fn join_group(
    config: &TrainConfig,
    module: &Module,
    p: &crate::config::Parallel,
) -> Result<ProcessGroup> {
    let store = Store::new(&p.init, p.rank, p.world_size)?;
    let group = match config.device {
        TrainDevice::Cpu => ProcessGroup::gloo(store, p.rank, p.world_size)?,
        TrainDevice::Cuda(i) => cuda::nccl_group(store, p.rank, p.world_size, i)?,
    };
    let _guard = tch::no_grad_guard();
    let params: Vec<Tensor> = module
        .parameters()?
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    let buffers: Vec<Tensor> = module.buffers()?.into_iter().map(|(_, t)| t).collect();
    let all: Vec<&Tensor> = params.iter().chain(&buffers).collect();
    group.broadcast(&all, 0)?;
    Ok(group)
}

/// Writes the module to a temporary file beside `path`, then renames it into place.
fn save_atomically(module: &Module, path: &Path) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    module.save(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TrainError::Output {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}
