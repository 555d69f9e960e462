//! Data loading on worker threads, so that the step waits as little as possible.
//!
//! Like `torch.utils.data.DataLoader(num_workers=N)` with its `prefetch_factor`, each job is one
//! whole batch built by one worker (decode, targets, flip); at most `workers * prefetch`
//! batches are in flight, and batches are handed out in order. Unlike the reference's loader,
//! the workers live across epochs (`persistent_workers`), so an epoch boundary costs no worker
//! start-up. A worker's error (a file that does not decode, an annotation that does not
//! rasterise) is returned by [`Loader::next_batch`] with the file named; the run stops there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::coco::TrainSet;
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::sampler::{Pick, aspect_ratio_groups, epoch_batches};
use crate::targets::{Sample, TargetKinds, build_sample};

/// One batch, in the sampler's order.
#[derive(Debug)]
pub struct Batch {
    pub epoch: usize,
    /// Index of the batch within its epoch.
    pub index: usize,
    pub samples: Vec<Sample>,
    /// Each sample's image as float32 CHW in [0, 1]: `image.to(torch.float) / 255`
    /// (`ToDtype(torch.float, scale=True)` -> `F.convert_image_dtype`), computed on the worker as
    /// the reference's DataLoader workers do (IEEE division, the same values as ATen's CPU kernel).
    pub images: Vec<Vec<f32>>,
}

/// How the loader walks the data.
#[derive(Debug, Clone)]
pub struct LoaderPlan {
    pub seed: u64,
    pub batch: usize,
    pub rank: usize,
    pub world_size: usize,
    pub hflip_prob: f64,
    /// `--aspect-ratio-group-factor`; negative for plain batches.
    pub group_factor: i32,
    pub workers: usize,
    pub prefetch: usize,
}

impl LoaderPlan {
    /// The loader's walk for `config` on this process.
    pub fn new(config: &TrainConfig) -> Self {
        let (rank, world_size) = config
            .parallel
            .as_ref()
            .map_or((0, 1), |p| (p.rank, p.world_size));
        LoaderPlan {
            seed: config.seed,
            batch: config.batch,
            rank,
            world_size,
            hflip_prob: config.recipe.hflip_prob,
            group_factor: config.recipe.aspect_ratio_group_factor,
            workers: config.workers,
            prefetch: config.prefetch,
        }
    }

    fn groups(&self, set: &TrainSet) -> Option<Vec<usize>> {
        (self.group_factor >= 0)
            .then(|| aspect_ratio_groups(&set.aspect_ratios(), self.group_factor as usize))
    }
}

/// The training set of `config`, read and checked before any libtorch work: the settings
/// ([`TrainConfig::validate`]), the annotation file for this model ([`TrainSet::load`]), and a
/// batch that fits this process's share of the data.
pub fn load_training_set(config: &TrainConfig) -> Result<TrainSet> {
    config.validate()?;
    let mut set = TrainSet::load(&config.annotations, &config.images, config.model)?;
    if let Some(n) = config.limit_images {
        set.truncate(n);
    }
    check_batches(&set, config)?;
    Ok(set)
}

/// Checks that `config`'s batch fits this process's share of `set` (read for `config`).
pub fn check_batches(set: &TrainSet, config: &TrainConfig) -> Result<()> {
    let plan = LoaderPlan::new(config);
    first_epoch(set, &plan, plan.groups(set).as_deref()).map(drop)
}

/// The batches of epoch 0; an error when there is none (the batch is larger than this rank's
/// share of the data set).
fn first_epoch(
    set: &TrainSet,
    plan: &LoaderPlan,
    groups: Option<&[usize]>,
) -> Result<Vec<Vec<Pick>>> {
    let first = epoch_batches(
        set.images.len(),
        plan.seed,
        0,
        plan.hflip_prob,
        plan.rank,
        plan.world_size,
        groups,
        plan.batch,
    );
    if first.is_empty() {
        let share = set.images.len().div_ceil(plan.world_size.max(1));
        return Err(TrainError::Config(format!(
            "batch {} is larger than the data set: {} has {} training images after removing \
             images without valid annotations ({} per process over {} process(es)); use a batch \
             of at most {share}",
            plan.batch,
            set.annotations.display(),
            set.images.len(),
            share,
            plan.world_size,
        )));
    }
    Ok(first)
}

struct Job {
    seq: usize,
    epoch: usize,
    index: usize,
    picks: Vec<Pick>,
}

type Done = (usize, Result<Batch>);

/// The worker pool and the order of batches across epochs.
pub struct Loader {
    jobs: Option<Sender<Job>>,
    stop: Arc<AtomicBool>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    plan: LoaderPlan,
    set: Arc<TrainSet>,
    groups: Option<Vec<usize>>,
    /// Batches of the epoch being queued, and where queuing stands.
    queued_epoch: usize,
    queued_batches: Vec<Vec<Pick>>,
    queued_index: usize,
    next_seq: usize,
    handed_out: usize,
    ready: BTreeMap<usize, Result<Batch>>,
    batches_per_epoch: usize,
}

impl Loader {
    /// Starts the workers. Errors when an epoch would have no batch (batch larger than this
    /// rank's share of the data set).
    pub fn start(set: Arc<TrainSet>, plan: LoaderPlan, kinds: TargetKinds) -> Result<Self> {
        let groups = plan.groups(&set);
        let first = first_epoch(&set, &plan, groups.as_deref())?;
        let (job_tx, job_rx) = unbounded::<Job>();
        let (done_tx, done_rx) = unbounded::<Done>();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..plan.workers)
            .map(|w| {
                let (jobs, done, set) = (job_rx.clone(), done_tx.clone(), Arc::clone(&set));
                let stop = Arc::clone(&stop);
                std::thread::Builder::new()
                    .name(format!("train-loader-{w}"))
                    .spawn(move || worker(jobs, done, set, kinds, stop))
                    .map_err(|e| TrainError::Loader(format!("cannot start a worker thread: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut loader = Loader {
            jobs: Some(job_tx),
            stop,
            done: done_rx,
            workers,
            batches_per_epoch: first.len(),
            queued_batches: first,
            plan,
            set,
            groups,
            queued_epoch: 0,
            queued_index: 0,
            next_seq: 0,
            handed_out: 0,
            ready: BTreeMap::new(),
        };
        let depth = loader.plan.workers * loader.plan.prefetch;
        for _ in 0..depth {
            loader.queue_one();
        }
        Ok(loader)
    }

    /// `len(data_loader)` on this rank.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    fn queue_one(&mut self) {
        if self.queued_index == self.queued_batches.len() {
            self.queued_epoch += 1;
            self.queued_index = 0;
            self.queued_batches = epoch_batches(
                self.set.images.len(),
                self.plan.seed,
                self.queued_epoch,
                self.plan.hflip_prob,
                self.plan.rank,
                self.plan.world_size,
                self.groups.as_deref(),
                self.plan.batch,
            );
        }
        let picks = self.queued_batches[self.queued_index].clone();
        let job = Job {
            seq: self.next_seq,
            epoch: self.queued_epoch,
            index: self.queued_index,
            picks,
        };
        self.queued_index += 1;
        self.next_seq += 1;
        if let Some(jobs) = &self.jobs {
            // The workers hold the receiver until the loader is dropped.
            let _ = jobs.send(job);
        }
    }

    /// The next batch, and how long this call waited for it.
    pub fn next_batch(&mut self) -> Result<(Batch, f64)> {
        let started = Instant::now();
        let seq = self.handed_out;
        while !self.ready.contains_key(&seq) {
            let (got, batch) = self
                .done
                .recv()
                .map_err(|_| TrainError::Loader("every worker thread stopped".into()))?;
            self.ready.insert(got, batch);
        }
        let batch = self.ready.remove(&seq).expect("present")?;
        let waited = started.elapsed().as_secs_f64();
        self.handed_out += 1;
        self.queue_one();
        Ok((batch, waited))
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Batches still queued are not built: the workers stop at their next job.
        self.stop.store(true, Ordering::Relaxed);
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(
    jobs: Receiver<Job>,
    done: Sender<Done>,
    set: Arc<TrainSet>,
    kinds: TargetKinds,
    stop: Arc<AtomicBool>,
) {
    while let Ok(job) = jobs.recv() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let samples = job
            .picks
            .iter()
            .map(|p| build_sample(&set.images[p.index], kinds, p.flip, &set.annotations))
            .collect::<Result<Vec<_>>>();
        let batch = samples.map(|samples| Batch {
            epoch: job.epoch,
            index: job.index,
            images: samples
                .iter()
                .map(|s| s.pixels.iter().map(|&v| f32::from(v) / 255.0).collect())
                .collect(),
            samples,
        });
        if done.send((job.seq, batch)).is_err() {
            return;
        }
    }
}
