//! What a training run reports, typed and serialisable: per-step records (losses, lr, loss
//! scale, step and data-wait time) and the summary the tables read (images/s after the warm-up,
//! NVIDIA's PyTorch convention, step-time percentiles, peak GPU memory).
//!
//! Percentiles are `detbench_assets::percentile`, MLPerf LoadGen's nearest rank, as everywhere in
//! detbench.

use std::path::PathBuf;

use detbench_assets::percentile;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

/// One optimiser step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based over the run.
    pub step: usize,
    pub epoch: usize,
    /// The lr this step used.
    pub lr: f64,
    /// Loss components in the model's order (`loss_classifier`, `loss_box_reg`, `loss_mask`,
    /// `loss_objectness`, `loss_rpn_box_reg` for Mask R-CNN), as float64 of the float32 values.
    pub losses: Vec<f64>,
    /// Their sum, as engine.py's `sum(loss for loss in loss_dict.values())`.
    pub total_loss: f64,
    /// Wall time of the whole step (data wait included), ending after a device synchronise.
    pub step_s: f64,
    /// Time the step waited for its batch from the loader.
    pub data_wait_s: f64,
    /// amp: the loss scale this step used; `None` otherwise.
    pub loss_scale: Option<f64>,
    /// amp: the optimiser step was skipped (inf/NaN gradients).
    pub skipped: bool,
}

/// Summary statistics of a set of durations, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// `None` for no samples.
    pub fn of_seconds(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = samples.iter().map(|s| s * 1e3).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let at = |p: f64| percentile(&sorted, p);
        Some(Stats {
            n,
            mean_ms: sorted.iter().sum::<f64>() / n as f64,
            p50_ms: at(0.5)?,
            p90_ms: at(0.9)?,
            p99_ms: at(0.99)?,
            min_ms: sorted[0],
            max_ms: sorted[n - 1],
        })
    }
}

/// Throughput over the timed steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Steps skipped before timing (warm-up).
    pub skipped_steps: usize,
    /// Steps timed.
    pub timed_steps: usize,
    /// Images per second on this process over the timed steps:
    /// `timed_steps * batch / (sum of their step times)`.
    pub images_per_s: f64,
    /// The same over all processes (`images_per_s * world_size`, every rank running the same
    /// number of steps in lock step).
    pub global_images_per_s: f64,
    /// NVIDIA DeepLearningExamples' PyTorch Mask R-CNN convention: every step of the run, the
    /// warm-up included (`steps * batch / total time`).
    pub nvidia_pytorch_images_per_s: f64,
    pub step: Stats,
    pub data_wait: Stats,
    /// Share of the timed steps' time spent waiting for data.
    pub data_wait_fraction: f64,
}

/// Peak device memory (libtorch's CUDA caching allocator), over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeakMemory {
    /// `torch.cuda.max_memory_allocated()`.
    pub allocated_bytes: u64,
    /// `torch.cuda.max_memory_reserved()`.
    pub reserved_bytes: u64,
}

/// The results of one run on one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResults {
    pub config: TrainConfig,
    /// Images of the training set after the reference's filtering.
    pub dataset_images: usize,
    pub removed_images: usize,
    pub batches_per_epoch: usize,
    pub warmup_iters: usize,
    pub world_size: usize,
    pub rank: usize,
    pub loss_names: Vec<String>,
    pub steps: Vec<StepRecord>,
    pub throughput: Option<Throughput>,
    pub peak_memory: Option<PeakMemory>,
    /// Engine settings as (name, value): libtorch version, CUDA, TF32 flags, threads, ...
    pub options: Vec<(String, String)>,
    /// Sum and sum of squares of every parameter after the last step (float64), the same on
    /// every rank when data parallelism keeps them in step.
    pub param_checksum: [f64; 2],
    pub saved: Option<PathBuf>,
    /// Wall time of the whole run (model load to the last step).
    pub wall_s: f64,
    /// Why the run stopped before its last step (a NaN loss, an unreadable image, ...); `None`
    /// when it ran every step. A stopped run keeps the steps it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

impl TrainResults {
    /// The label of a run in tables and charts: the model, precision and batch (per GPU), with
    /// the number of processes when there are several.
    pub fn label(&self) -> String {
        let c = &self.config;
        let mut label = format!("{} {} batch {}", c.model, c.precision, c.batch);
        if self.world_size > 1 {
            label.push_str(&format!(" x {} processes", self.world_size));
        }
        label
    }
}

/// The throughput summary of `steps` once `skip` steps are left out.
pub fn throughput(
    steps: &[StepRecord],
    skip: usize,
    batch: usize,
    world_size: usize,
) -> Option<Throughput> {
    let timed = steps.get(skip..).filter(|s| !s.is_empty())?;
    let step_s: Vec<f64> = timed.iter().map(|s| s.step_s).collect();
    let wait_s: Vec<f64> = timed.iter().map(|s| s.data_wait_s).collect();
    let total: f64 = step_s.iter().sum();
    let all_total: f64 = steps.iter().map(|s| s.step_s).sum();
    let images_per_s = (timed.len() * batch) as f64 / total;
    Some(Throughput {
        skipped_steps: skip,
        timed_steps: timed.len(),
        images_per_s,
        global_images_per_s: images_per_s * world_size as f64,
        nvidia_pytorch_images_per_s: (steps.len() * batch) as f64 / all_total,
        step: Stats::of_seconds(&step_s)?,
        data_wait: Stats::of_seconds(&wait_s)?,
        data_wait_fraction: wait_s.iter().sum::<f64>() / total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(i: usize, s: f64) -> StepRecord {
        StepRecord {
            step: i,
            epoch: 0,
            lr: 0.0,
            losses: vec![1.0],
            total_loss: 1.0,
            step_s: s,
            data_wait_s: s / 10.0,
            loss_scale: None,
            skipped: false,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Stats::of_seconds(&(1..=10).map(|i| i as f64 / 1e3).collect::<Vec<_>>()).unwrap();
        // sorted[floor(10 * 0.5)] = 6 ms, sorted[9] = 10 ms for p90 and p99
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms), (6.0, 10.0, 10.0));
        assert!((s.mean_ms - 5.5).abs() < 1e-12);
        assert!(Stats::of_seconds(&[]).is_none());
    }

    #[test]
    fn throughput_skips_the_warm_up_and_the_nvidia_figure_does_not() {
        let steps: Vec<StepRecord> = (0..4)
            .map(|i| step(i, if i == 0 { 1.0 } else { 0.5 }))
            .collect();
        let t = throughput(&steps, 1, 2, 1).unwrap();
        assert_eq!(t.timed_steps, 3);
        assert!((t.images_per_s - 4.0).abs() < 1e-12);
        assert!((t.nvidia_pytorch_images_per_s - 8.0 / 2.5).abs() < 1e-12);
        assert!((t.data_wait_fraction - 0.1).abs() < 1e-12);
        assert!(throughput(&steps, 4, 2, 1).is_none());
    }
}
