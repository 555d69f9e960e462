//! The settings of detbench's own engine for torchvision's detectors (`--backend native`, crate
//! `detbench-native`, cargo feature `cuda` of the CLI), typed here beside the other engines'
//! so that [`crate::BackendConfig`] carries them from the command line to the engine and into
//! the results. The engine is built on libtorch's ATen, so the libtorch library settings
//! ([`crate::TorchSettings::libtorch_cuda`], [`crate::TorchSettings::torchvision_ops`]) apply to
//! it too; device and precision are [`crate::BackendConfig`]'s.

use serde::{Deserialize, Serialize};

crate::named_enum! {
    /// Whether the engine may reorder torchvision's arithmetic for speed.
    pub enum NativeMode as "native engine mode" {
        /// BatchNorm folded into the convolutions, channels-last activations, cuDNN's fused
        /// convolution + bias + ReLU (+ residual), merged 1x1 predictors and fc6 columns
        /// permuted to the pooled layout: the benchmarked configuration. Results equal
        /// torchvision's up to the rounding of the reordered sums.
        Fast = "fast",
        /// torchvision's arithmetic order: FrozenBatchNorm2d kept as a separate multiply-add,
        /// NCHW, unfused convolutions, unmerged layers. With TF32 off it reproduces eager
        /// bit for bit on the same device: the parity configuration, not a fast one.
        Exact = "exact",
    }
}

#[cfg(feature = "clap")]
crate::clap_value_enum!(NativeMode);

/// How the native engine runs a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeSettings {
    pub mode: NativeMode,
    /// Capture each input-size bucket's forward pass as one CUDA graph (CUDA only). A bucket is
    /// one batch shape: batch size, padded height and width (torchvision's `size_divisible`
    /// rounding), and the pooler's levels; each is captured at its first call.
    pub cuda_graphs: bool,
    /// TF32 in cuDNN convolutions at fp32 (PyTorch's default, `torch.backends.cudnn.allow_tf32`);
    /// off: true fp32.
    pub allow_tf32: bool,
    /// cuDNN's benchmark mode (off: its heuristics choose; on, every new bucket re-tunes).
    pub cudnn_benchmark: bool,
    /// Candidates per image the box head's class-wise NMS considers; an image with more is
    /// flagged `inexact` (and counted in the provenance) unless its `detections_per_img` boxes
    /// were kept before the cut.
    pub nms_capacity: usize,
}

impl Default for NativeSettings {
    fn default() -> Self {
        NativeSettings {
            mode: NativeMode::Fast,
            cuda_graphs: true,
            allow_tf32: true,
            cudnn_benchmark: false,
            nms_capacity: 8192,
        }
    }
}

impl NativeSettings {
    /// The defaults in torchvision's arithmetic order ([`NativeMode::Exact`]).
    pub fn exact() -> Self {
        NativeSettings {
            mode: NativeMode::Exact,
            ..Self::default()
        }
    }

    /// The settings as the `key = value` options a run records ([`crate::BackendDescription`]).
    pub fn options(&self) -> Vec<(String, String)> {
        let on_off = |on: bool| if on { "on" } else { "off" }.to_owned();
        vec![
            ("mode".to_owned(), self.mode.to_string()),
            ("cuda_graphs".to_owned(), on_off(self.cuda_graphs)),
            ("allow_tf32".to_owned(), on_off(self.allow_tf32)),
            ("cudnn_benchmark".to_owned(), on_off(self.cudnn_benchmark)),
            ("nms_capacity".to_owned(), self.nms_capacity.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_have_one_spelling_and_settings_record_themselves() {
        assert_eq!("exact".parse::<NativeMode>().unwrap(), NativeMode::Exact);
        assert_eq!(NativeMode::Fast.to_string(), "fast");
        let err = "quick".parse::<NativeMode>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown native engine mode `quick`: expected fast or exact"
        );
        let options = NativeSettings::exact().options();
        assert_eq!(options[0], ("mode".to_owned(), "exact".to_owned()));
        assert!(options.contains(&("allow_tf32".to_owned(), "on".to_owned())));
        let json = serde_json::to_value(NativeSettings::default()).unwrap();
        assert_eq!(json["mode"], "fast");
        assert_eq!(json["nms_capacity"], 8192);
    }
}
