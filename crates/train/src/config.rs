//! The typed settings of a training run, parsed once at the edge (the binary, later `detbench
//! train`) and checked before any timed work.
//!
//! Defaults follow torchvision's `references/detection/train.py` (`--lr 0.02` for 16 images, i.e.
//! 8 GPUs x 2 images, `--momentum 0.9`, `--weight-decay 1e-4`, `--lr-steps 16 22`,
//! `--lr-gamma 0.1`, `--aspect-ratio-group-factor 3`, `--workers 4`) and the timing convention of
//! the issue (skip 20 steps, time 100).

use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The torchvision detectors the trainer knows: what targets each needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    MaskrcnnResnet50Fpn,
    FasterrcnnResnet50Fpn,
    RetinanetResnet50Fpn,
    KeypointrcnnResnet50Fpn,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::MaskrcnnResnet50Fpn,
        ModelKind::FasterrcnnResnet50Fpn,
        ModelKind::RetinanetResnet50Fpn,
        ModelKind::KeypointrcnnResnet50Fpn,
    ];

    /// torchvision's builder name (`torchvision.models.detection.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::MaskrcnnResnet50Fpn => "maskrcnn_resnet50_fpn",
            ModelKind::FasterrcnnResnet50Fpn => "fasterrcnn_resnet50_fpn",
            ModelKind::RetinanetResnet50Fpn => "retinanet_resnet50_fpn",
            ModelKind::KeypointrcnnResnet50Fpn => "keypointrcnn_resnet50_fpn",
        }
    }

    /// Whether targets carry `masks` (as the reference's `with_masks = "mask" in args.model`).
    pub fn needs_masks(self) -> bool {
        self == ModelKind::MaskrcnnResnet50Fpn
    }

    /// Whether targets carry `keypoints` (the `coco_kp` dataset of the reference).
    pub fn needs_keypoints(self) -> bool {
        self == ModelKind::KeypointrcnnResnet50Fpn
    }
}

impl FromStr for ModelKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "unknown model `{s}` (expected one of: {})",
                    ModelKind::ALL.map(ModelKind::name).join(", ")
                ))
            })
    }
}

/// Numeric precision of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// fp32 with TF32 off for matmul (cuBLAS) and convolutions (cuDNN).
    Fp32,
    /// fp32 tensors, TF32 tensor-core math on for matmul and cuDNN.
    Tf32,
    /// fp16 autocast with dynamic loss scaling (torch.amp.GradScaler's rules); TF32 off.
    Amp,
    /// bf16 autocast, no loss scaling; TF32 off.
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 4] = [
        Precision::Fp32,
        Precision::Tf32,
        Precision::Amp,
        Precision::Bf16,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Amp => "amp",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn allows_tf32(self) -> bool {
        self == Precision::Tf32
    }
}

impl FromStr for Precision {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "unknown precision `{s}` (expected fp32, tf32, amp or bf16)"
                ))
            })
    }
}

/// Where the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainDevice {
    Cpu,
    Cuda(usize),
}

impl std::fmt::Display for TrainDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainDevice::Cpu => f.write_str("cpu"),
            TrainDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for TrainDevice {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(TrainDevice::Cpu),
            "cuda" => Ok(TrainDevice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(TrainDevice::Cuda)
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "unknown device `{other}` (expected cpu, cuda or cuda:N)"
                    ))
                }),
        }
    }
}

/// The optimiser and learning-rate schedule (torchvision's train.py + engine.py).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Learning rate for 16 images per step (train.py's `--lr 0.02` on 8 GPUs x 2 images); the
    /// step's lr is `lr_per_16 * global_batch / 16` ("the learning rate should be changed to
    /// 0.02/8*$NGPU" for 2 images per GPU).
    pub lr_per_16: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Epochs at which the lr is multiplied by `lr_gamma` (MultiStepLR, stepped per epoch).
    pub lr_steps: Vec<usize>,
    pub lr_gamma: f64,
    /// engine.py: `warmup_factor = 1.0 / 1000`, LinearLR over `min(1000, len(data_loader) - 1)`
    /// steps of epoch 0.
    pub warmup_factor: f64,
    pub warmup_max_iters: usize,
    /// `RandomHorizontalFlip(p)` of presets.DetectionPresetTrain(data_augmentation="hflip").
    pub hflip_prob: f64,
    /// `--aspect-ratio-group-factor` (negative: plain BatchSampler, drop_last=True).
    pub aspect_ratio_group_factor: i32,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            lr_per_16: 0.02,
            momentum: 0.9,
            weight_decay: 1e-4,
            lr_steps: vec![16, 22],
            lr_gamma: 0.1,
            warmup_factor: 1.0 / 1000.0,
            warmup_max_iters: 1000,
            hflip_prob: 0.5,
            aspect_ratio_group_factor: 3,
        }
    }
}

/// Data parallelism: this process is `rank` of `world_size`, one per device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parallel {
    pub rank: usize,
    pub world_size: usize,
    /// Rendezvous: `file:///path` (c10d FileStore) or `tcp://host:port` (c10d TCPStore, rank 0
    /// serves).
    pub init: String,
    /// `gloo` (CPU tensors) or `nccl` (CUDA tensors).
    pub backend: String,
}

/// Everything one training run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelKind,
    /// TorchScript file made by tools/train/export_train_models.py.
    pub model_path: PathBuf,
    pub annotations: PathBuf,
    pub images: PathBuf,
    /// Images per step on this process (per GPU).
    pub batch: usize,
    pub precision: Precision,
    pub device: TrainDevice,
    /// Steps run before timing starts.
    pub warmup_steps: usize,
    /// Steps timed after the warm-up (`None`: every remaining step of `epochs`).
    pub timed_steps: Option<usize>,
    /// Epochs to run when `timed_steps` is `None`; otherwise enough epochs are run to reach
    /// `warmup_steps + timed_steps` steps.
    pub epochs: usize,
    /// Seed of the data order, the flips and libtorch's generators.
    pub seed: u64,
    /// Data-loading worker threads (train.py's `--workers`, default 4).
    pub workers: usize,
    /// Batches prepared ahead of the step (the bounded queue between workers and the step).
    pub prefetch: usize,
    /// libtorch intra-op threads on the CPU (`None`: libtorch's default).
    pub threads: Option<usize>,
    /// `torch.use_deterministic_algorithms(True)` and cuDNN benchmark off.
    pub deterministic: bool,
    /// cuDNN benchmark mode (train.py leaves it off unless asked).
    pub cudnn_benchmark: bool,
    pub recipe: Recipe,
    pub parallel: Option<Parallel>,
    /// Where to write the trained module (TorchScript, eval mode) after the last step.
    pub save: Option<PathBuf>,
    /// Keep only the first N images of the training set (tests, quick runs).
    pub limit_images: Option<usize>,
    /// Write the first batch as the model receives it (`img{i}`, `boxes{i}`, `labels{i}`,
    /// `masks{i}`, `keypoints{i}`) to this .npz file, for the parity check against PyTorch.
    pub dump_first_batch: Option<PathBuf>,
}

impl TrainConfig {
    /// A configuration with the reference defaults for `model`.
    pub fn new(
        model: ModelKind,
        model_path: PathBuf,
        annotations: PathBuf,
        images: PathBuf,
    ) -> Self {
        TrainConfig {
            model,
            model_path,
            annotations,
            images,
            batch: 2,
            precision: Precision::Fp32,
            device: TrainDevice::Cpu,
            warmup_steps: 20,
            timed_steps: Some(100),
            epochs: 1,
            seed: 0,
            workers: 4,
            prefetch: 2,
            threads: None,
            deterministic: false,
            cudnn_benchmark: false,
            recipe: Recipe::default(),
            parallel: None,
            save: None,
            limit_images: None,
            dump_first_batch: None,
        }
    }

    /// Images per optimiser step over all processes.
    pub fn global_batch(&self) -> usize {
        self.batch * self.parallel.as_ref().map_or(1, |p| p.world_size)
    }

    /// The base learning rate, scaled per image from 0.02 for 16 images.
    pub fn base_lr(&self) -> f64 {
        self.recipe.lr_per_16 * self.global_batch() as f64 / 16.0
    }

    /// Checks what can be checked without the data: ranges and combinations.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.batch == 0 {
            return Err(TrainError::Config("batch must be at least 1".into()));
        }
        if self.workers == 0 {
            return Err(TrainError::Config(
                "workers must be at least 1 (data loading runs on worker threads)".into(),
            ));
        }
        if self.prefetch == 0 {
            return Err(TrainError::Config("prefetch must be at least 1".into()));
        }
        if self.timed_steps == Some(0) {
            return Err(TrainError::Config("timed steps must be at least 1".into()));
        }
        if self.timed_steps.is_none() && self.epochs == 0 {
            return Err(TrainError::Config("epochs must be at least 1".into()));
        }
        if self.device == TrainDevice::Cpu
            && matches!(self.precision, Precision::Amp | Precision::Tf32)
        {
            return Err(TrainError::Config(format!(
                "precision {} needs a CUDA device (fp16 autocast and TF32 are GPU features); on \
                 the CPU use fp32 or bf16",
                self.precision.as_str()
            )));
        }
        if let Some(p) = &self.parallel {
            if p.world_size == 0 || p.rank >= p.world_size {
                return Err(TrainError::Config(format!(
                    "rank {} of world size {}: expected 0 <= rank < world size",
                    p.rank, p.world_size
                )));
            }
            match (p.backend.as_str(), self.device) {
                ("gloo", TrainDevice::Cpu) | ("nccl", TrainDevice::Cuda(_)) => {}
                (backend, device) => {
                    return Err(TrainError::Config(format!(
                        "process-group backend `{backend}` on {device}: use gloo for cpu and \
                         nccl for cuda"
                    )));
                }
            }
        }
        let r = &self.recipe;
        if !(r.lr_per_16 > 0.0 && r.lr_per_16.is_finite()) {
            return Err(TrainError::Config(format!(
                "lr must be > 0, got {}",
                r.lr_per_16
            )));
        }
        if !(0.0..=1.0).contains(&r.hflip_prob) {
            return Err(TrainError::Config(format!(
                "horizontal-flip probability must be in [0, 1], got {}",
                r.hflip_prob
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_expected() {
        for m in ModelKind::ALL {
            assert_eq!(m.name().parse::<ModelKind>().unwrap(), m);
        }
        for p in Precision::ALL {
            assert_eq!(p.as_str().parse::<Precision>().unwrap(), p);
        }
        let e = "yolo".parse::<ModelKind>().unwrap_err().to_string();
        assert!(e.contains("maskrcnn_resnet50_fpn"), "{e}");
        assert_eq!(
            "cuda:3".parse::<TrainDevice>().unwrap(),
            TrainDevice::Cuda(3)
        );
        assert!("gpu".parse::<TrainDevice>().is_err());
    }

    #[test]
    fn lr_is_scaled_per_image_from_16() {
        let mut c = TrainConfig::new(
            ModelKind::MaskrcnnResnet50Fpn,
            "m.pt".into(),
            "a.json".into(),
            "img".into(),
        );
        c.batch = 2;
        assert!((c.base_lr() - 0.0025).abs() < 1e-15);
        c.parallel = Some(Parallel {
            rank: 0,
            world_size: 8,
            init: "file:///tmp/x".into(),
            backend: "gloo".into(),
        });
        assert!((c.base_lr() - 0.02).abs() < 1e-15);
    }

    #[test]
    fn cpu_amp_and_bad_ranks_are_refused() {
        let mut c = TrainConfig::new(
            ModelKind::FasterrcnnResnet50Fpn,
            "m.pt".into(),
            "a.json".into(),
            "img".into(),
        );
        c.precision = Precision::Amp;
        assert!(c.validate().unwrap_err().to_string().contains("CUDA"));
        c.precision = Precision::Fp32;
        c.parallel = Some(Parallel {
            rank: 2,
            world_size: 2,
            init: "file:///tmp/x".into(),
            backend: "gloo".into(),
        });
        assert!(c.validate().is_err());
    }
}
