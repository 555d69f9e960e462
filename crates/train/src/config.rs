//! The typed settings of a training run, parsed once at the edge (`detbench train`) and checked
//! before any timed work.
//!
//! Defaults follow torchvision's `references/detection/train.py` (`--lr 0.02` for 16 images, i.e.
//! 8 GPUs x 2 images, `--momentum 0.9`, `--weight-decay 1e-4`, `--lr-steps 16 22`,
//! `--lr-gamma 0.1`, `--aspect-ratio-group-factor 3`, `--workers 4`) and the timing convention of
//! the issue (skip 20 steps, time 100).

use std::path::PathBuf;

use detbench_backends::Device;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

detbench_backends::named_enum! {
    /// The torchvision detectors the trainer knows (torchvision's builder names,
    /// `torchvision.models.detection.<name>`): what targets each needs.
    pub enum ModelKind as "training model" {
        MaskrcnnResnet50Fpn = "maskrcnn_resnet50_fpn",
        FasterrcnnResnet50Fpn = "fasterrcnn_resnet50_fpn",
        RetinanetResnet50Fpn = "retinanet_resnet50_fpn",
        KeypointrcnnResnet50Fpn = "keypointrcnn_resnet50_fpn",
    }
}

impl ModelKind {
    /// Whether targets carry `masks` (as the reference's `with_masks = "mask" in args.model`).
    pub fn needs_masks(self) -> bool {
        self == ModelKind::MaskrcnnResnet50Fpn
    }

    /// Whether targets carry `keypoints` (the `coco_kp` dataset of the reference).
    pub fn needs_keypoints(self) -> bool {
        self == ModelKind::KeypointrcnnResnet50Fpn
    }
}

detbench_backends::named_enum! {
    /// Numeric precision of the training step.
    pub enum Precision as "training precision" {
        /// fp32 with TF32 off for matmul (cuBLAS) and convolutions (cuDNN).
        Fp32 = "fp32",
        /// fp32 tensors, TF32 tensor-core math on for matmul and cuDNN.
        Tf32 = "tf32",
        /// fp16 autocast with dynamic loss scaling (torch.amp.GradScaler's rules); TF32 off.
        Amp = "amp",
        /// bf16 autocast, no loss scaling; TF32 off.
        Bf16 = "bf16",
    }
}

impl Precision {
    pub fn allows_tf32(self) -> bool {
        self == Precision::Tf32
    }
}

detbench_backends::named_enum! {
    /// The c10d process-group backend of data parallelism.
    pub enum GroupBackend as "process-group backend" {
        /// ProcessGroupGloo: CPU tensors.
        Gloo = "gloo",
        /// ProcessGroupNCCL: CUDA tensors.
        Nccl = "nccl",
    }
}

impl GroupBackend {
    /// The backend for tensors on `device`: Gloo on the CPU, NCCL on CUDA (as torchrun's
    /// default `init_process_group` choice).
    pub fn for_device(device: Device) -> Self {
        match device {
            Device::Cpu => GroupBackend::Gloo,
            Device::Cuda(_) => GroupBackend::Nccl,
        }
    }
}

#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(ModelKind);
#[cfg(feature = "clap")]
detbench_backends::clap_value_enum!(Precision);

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

/// Where the processes of a data-parallel run meet (`torch.distributed`'s `init_method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendezvous {
    /// `file:///path`: c10d's FileStore on a file every process can reach.
    File(PathBuf),
    /// `tcp://host:port`: c10d's TCPStore, served by rank 0.
    Tcp { host: String, port: u16 },
}

/// Text that is not a rendezvous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rendezvous `{0}`: expected file:///path or tcp://host:port")]
pub struct BadRendezvous(pub String);

impl std::str::FromStr for Rendezvous {
    type Err = BadRendezvous;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadRendezvous(s.to_owned());
        if let Some(path) = s.strip_prefix("file://") {
            return if path.starts_with('/') {
                Ok(Rendezvous::File(PathBuf::from(path)))
            } else {
                Err(bad())
            };
        }
        let (host, port) = s
            .strip_prefix("tcp://")
            .and_then(|rest| rest.rsplit_once(':'))
            .ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Rendezvous::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl std::fmt::Display for Rendezvous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendezvous::File(path) => write!(f, "file://{}", path.display()),
            Rendezvous::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

impl Serialize for Rendezvous {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rendezvous {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Data parallelism: this process is `rank` of `world_size`, one per device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parallel {
    pub rank: usize,
    pub world_size: usize,
    pub init: Rendezvous,
    /// Gloo (CPU tensors) or NCCL (CUDA tensors).
    pub backend: GroupBackend,
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
    pub device: Device,
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
    /// torchvision's ops library (`.../torchvision/_C.so`); `None`: the one
    /// `scripts/setup.sh --torch` installs into `.deps/`.
    #[serde(default)]
    pub torchvision_ops: Option<PathBuf>,
    /// `libtorch_cuda.so`; `None`: beside the `libtorch_cpu.so` the process loaded.
    #[serde(default)]
    pub libtorch_cuda: Option<PathBuf>,
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
            device: Device::Cpu,
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
            torchvision_ops: None,
            libtorch_cuda: None,
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
        if self.device == Device::Cpu && matches!(self.precision, Precision::Amp | Precision::Tf32)
        {
            return Err(TrainError::Config(format!(
                "precision {} needs a CUDA device (fp16 autocast and TF32 are GPU features); on \
                 the CPU use fp32 or bf16",
                self.precision
            )));
        }
        if let Some(p) = &self.parallel {
            if p.world_size == 0 || p.rank >= p.world_size {
                return Err(TrainError::Config(format!(
                    "rank {} of world size {}: expected 0 <= rank < world size",
                    p.rank, p.world_size
                )));
            }
            if p.backend != GroupBackend::for_device(self.device) {
                return Err(TrainError::Config(format!(
                    "process-group backend `{}` on {}: use gloo for cpu and nccl for cuda",
                    p.backend, self.device
                )));
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
        for &m in ModelKind::ALL {
            assert_eq!(m.as_str().parse::<ModelKind>().unwrap(), m);
        }
        for &p in Precision::ALL {
            assert_eq!(p.as_str().parse::<Precision>().unwrap(), p);
        }
        let e = "yolo".parse::<ModelKind>().unwrap_err().to_string();
        assert!(e.contains("maskrcnn_resnet50_fpn"), "{e}");
        assert_eq!(
            serde_json::to_string(&ModelKind::RetinanetResnet50Fpn).unwrap(),
            "\"retinanet_resnet50_fpn\""
        );
        assert_eq!(
            GroupBackend::for_device(Device::Cuda(1)),
            GroupBackend::Nccl
        );
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
            init: Rendezvous::File("/tmp/x".into()),
            backend: GroupBackend::Gloo,
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
            init: Rendezvous::File("/tmp/x".into()),
            backend: GroupBackend::Gloo,
        });
        assert!(c.validate().is_err());
    }
}
