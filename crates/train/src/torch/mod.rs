//! The trainer (cargo feature `torch`): torchvision detectors trained from Rust through libtorch.
//!
//! **Route.** The model is torchvision's own detector scripted to TorchScript
//! (tools/train/export_train_models.py), put in training mode and called as
//! `forward(images: List[Tensor], targets: List[Dict[str, Tensor]])`, which returns the loss dict
//! (../shared/notes/torchscript-training.md). The alternative, rebuilding each detector from tch
//! ops, would be a second implementation of torchvision's anchor generation, box coding,
//! samplers, RoI heads and losses to keep in step with upstream; the scripted module *is*
//! upstream's code, the same file loads in Python for the parity test, and `--save` writes a
//! file the inference backend already reads. What tch cannot do (typed target dicts, autocast
//! state, foreach SGD, GradScaler's ATen ops, c10d) goes through a small C++ shim.
//!
//! **Recipe** (torchvision `references/detection`): SGD momentum 0.9, weight decay 1e-4, lr 0.02
//! per 16 images scaled per image, linear warm-up (LinearLR from 1/1000 over
//! `min(1000, len(data_loader) - 1)` iterations of epoch 0, engine.py) then MultiStepLR per epoch
//! (train.py), `RandomHorizontalFlip(0.5)` (presets.py), targets as `ConvertCocoPolysToMask`
//! (coco_utils.py), images without valid annotations removed, aspect-ratio grouped batches
//! (group_by_aspect_ratio.py). See the data-side modules for each.
//!
//! **Precision.** fp32 with TF32 off for cuBLAS and cuDNN; tf32 with both on; amp: fp16
//! autocast around forward and loss sum, with torch.amp.GradScaler's dynamic loss scaling (init
//! 2^16, growth 2, backoff 0.5, interval 2000, steps with inf/NaN gradients skipped) through
//! `_amp_foreach_non_finite_check_and_unscale_` and `_amp_update_scale_`; bf16: bf16 autocast,
//! no scaling.
//!
//! **Data parallelism.** One process per device; a c10d store (`file://` or `tcp://`), Gloo on
//! the CPU, NCCL on CUDA (the CUDA shim); rank 0's parameters and buffers broadcast at the start,
//! gradients averaged as DistributedDataParallel averages them (scaled by 1/world, summed, in
//! 25 MiB buckets in reverse parameter order) after backward. Unlike DDP the all-reduce does
//! not overlap the backward pass.

pub mod cuda;
pub mod dist;
pub mod ffi;
pub mod setup;
pub mod step;
pub mod trainer;

pub use trainer::{train, train_observed, train_on};
