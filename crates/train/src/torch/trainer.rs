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
use crate::config::{Precision, TrainConfig};
use crate::error::{Result, TrainError};
use crate::loader::{Loader, LoaderPlan, load_training_set};
use crate::results::{PeakMemory, StepRecord, TrainResults, throughput};
use crate::schedule::LrSchedule;
use crate::targets::TargetKinds;
use crate::torch::dist::{ProcessGroup, Store};
use crate::torch::ffi::{Module, Optimizer, ScalerSettings};
use crate::torch::setup::{Engine, prepare_engine};
use crate::torch::{cuda, step};
use detbench_backends::Device;

/// DDP's default bucket size (`bucket_cap_mb=25`).
const BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// Runs the training `config` describes.
pub fn train(config: &TrainConfig) -> Result<TrainResults> {
    train_observed(config, &mut |_| {})
}

/// As [`train`], calling `observe` after every step (progress, logs). A run that fails after
/// some steps returns [`TrainError::Stopped`] with the steps done.
pub fn train_observed(
    config: &TrainConfig,
    observe: &mut dyn FnMut(&StepRecord),
) -> Result<TrainResults> {
    let set = load_training_set(config)?;
    train_on(config, set, observe)
}

/// As [`train_observed`] on a training set already read and checked by
/// [`load_training_set`] for this `config` (a command that checks every run before the first
/// one starts reads each set once).
pub fn train_on(
    config: &TrainConfig,
    set: TrainSet,
    observe: &mut dyn FnMut(&StepRecord),
) -> Result<TrainResults> {
    let started = Instant::now();
    if let Some(path) = &config.save {
        check_writable(path)?;
    }
    let engine = prepare_engine(config)?;
    let mut run = Run::new(config, set, engine)?;
    let steps = run.total_steps();
    let mut records = Vec::with_capacity(steps);
    for i in 0..steps {
        match run.step(i) {
            Ok(record) => {
                observe(&record);
                records.push(record);
            }
            Err(error) if records.is_empty() => return Err(error),
            Err(error) => {
                // Nothing measured is lost: the steps done, with why the run stopped (unless the
                // device cannot even report them any more: then the error alone).
                return Err(match run.finish(records, started, Some(&error)) {
                    Ok(partial) => TrainError::Stopped {
                        error: Box::new(error),
                        partial: Box::new(partial),
                    },
                    Err(_) => error,
                });
            }
        }
    }
    run.finish(records, started, None)
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
        let set = Arc::new(set);
        let kinds = TargetKinds {
            masks: config.model.needs_masks(),
            keypoints: config.model.needs_keypoints(),
        };
        let loader = Loader::start(Arc::clone(&set), LoaderPlan::new(config), kinds)?;
        let schedule = LrSchedule::new(config.base_lr(), r, loader.batches_per_epoch());
        if let Device::Cuda(i) = config.device {
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

    /// The results of the steps done; `stopped`: the error that ended the run early (the module
    /// is then not saved).
    fn finish(
        self,
        steps: Vec<StepRecord>,
        started: Instant,
        stopped: Option<&TrainError>,
    ) -> Result<TrainResults> {
        let config = self.config;
        let peak_memory = match config.device {
            Device::Cuda(i) => {
                let (allocated_bytes, reserved_bytes) = cuda::peak_memory(i)?;
                Some(PeakMemory {
                    allocated_bytes,
                    reserved_bytes,
                })
            }
            Device::Cpu => None,
        };
        let param_checksum = step::checksum(&self.params)?;
        let saved = match (&config.save, stopped) {
            (Some(path), None) => {
                save_module(&self.module, path)?;
                Some(path.clone())
            }
            _ => None,
        };
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
            saved,
            wall_s: started.elapsed().as_secs_f64(),
            stopped: stopped.map(ToString::to_string),
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
        Device::Cpu => ProcessGroup::gloo(store, p.rank, p.world_size)?,
        Device::Cuda(i) => cuda::nccl_group(store, p.rank, p.world_size, i)?,
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

/// Writes the module (TorchScript, eval mode) to `path` atomically.
fn save_module(module: &Module, path: &Path) -> Result<()> {
    let bytes = module.to_bytes()?;
    detbench_assets::write_atomic(path, &bytes)?;
    Ok(())
}
