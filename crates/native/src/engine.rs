//! The native engine behind a safe handle: open a model file with a
//! [`BackendConfig`] (device, precision, [`detbench_backends::NativeSettings`]), run
//! batches of decoded images, read per-call GPU timings, profile the backbone, dump stages.

use std::ffi::{CStr, CString, c_void};
use std::path::Path;

use detbench_backends::{
    BackendConfig, BackendDescription, Device, EngineKind, NativeMode, Precision,
};
use detbench_imgproc::BgrImage;

use crate::NativeError;
use crate::ffi::{self, Api, ErrorBuffer, Image, RawResult, RawTiming, Settings};

/// One image's detections, in original-image pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageDetections {
    /// `[x1, y1, x2, y2]` per detection.
    pub boxes: Vec<[f32; 4]>,
    pub scores: Vec<f32>,
    /// torchvision's labels, which are COCO category ids (and 11 "N/A" slots).
    pub labels: Vec<i64>,
    /// Mask R-CNN: per detection, `width * words` column-major bit words (see [`crate::rle`]).
    pub masks: Vec<Vec<u32>>,
    /// The image overflowed the NMS capacity (its detections may differ from torchvision's).
    pub inexact: bool,
}

/// GPU-side timing of the last call (CUDA events), and its kernel launches.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct CallTiming {
    /// First upload to last download, on the GPU's clock.
    pub gpu_ms: f64,
    /// The forward pass alone (the graph replay).
    pub forward_ms: f64,
    /// Kernel nodes in the replayed graph.
    pub graph_kernels: i64,
    /// Kernels and copies launched outside the graph (preprocessing, mask pasting, copies).
    pub other_launches: i64,
    pub graphed: bool,
    /// The call built (and captured) a new bucket.
    pub new_bucket: bool,
}

/// An open engine (one model, one device, one precision).
pub struct NativeEngine {
    api: &'static Api,
    handle: *mut c_void,
}

// SAFETY: the engine is used from one thread at a time (`&mut self` for every call that runs
// work); the C++ side keeps no thread-local state between calls.
unsafe impl Send for NativeEngine {}

impl NativeEngine {
    /// Opens a TorchScript model file (tools/gpu/export_torchvision.py) with the device,
    /// precision, native settings and libtorch library paths of `config`.
    pub fn open(path: &Path, config: &BackendConfig) -> Result<Self, NativeError> {
        if !path.is_file() {
            return Err(NativeError::ModelFile(format!(
                "model file {} not found",
                path.display()
            )));
        }
        let api = ffi::api(&config.torch)?;
        ffi::ensure_torchvision_ops(&config.torch)?;
        let native = &config.native;
        let fast = native.mode == NativeMode::Fast;
        let raw = Settings {
            device: match config.device {
                Device::Cpu => -1,
                Device::Cuda(i) => i as i32,
            },
            half: match config.precision {
                Precision::Fp32 => 0,
                Precision::Fp16 => 1,
                Precision::Int8 => {
                    return Err(NativeError::UnsupportedPrecision(
                        "the native engine runs fp32 or fp16 (CUDA); int8 is a property of a \
                         quantized model file"
                            .into(),
                    ));
                }
            },
            graphs: i32::from(native.cuda_graphs),
            fused_conv: i32::from(fast),
            channels_last: i32::from(fast),
            cudnn_benchmark: i32::from(native.cudnn_benchmark),
            allow_tf32: i32::from(native.allow_tf32),
            nms_capacity: native.nms_capacity as i64,
            exact: i32::from(!fast),
        };
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
            NativeError::BadInput(format!("{} contains a NUL byte", path.display()))
        })?;
        let mut handle = std::ptr::null_mut();
        let mut error = ErrorBuffer::new();
        let (buffer, length) = error.args();
        // SAFETY: valid pointers for the call's duration; the C side writes `handle` on success.
        let code = unsafe { (api.open)(c_path.as_ptr(), &raw, &mut handle, buffer, length) };
        error.check(code)?;
        Ok(NativeEngine { api, handle })
    }

    /// Detects objects in a batch of images (any sizes).
    pub fn detect(&mut self, images: &[&BgrImage]) -> Result<Vec<ImageDetections>, NativeError> {
        let raw_images: Vec<Image> = images
            .iter()
            .map(|im| Image {
                bgr: im.data.as_ptr(),
                height: im.height as i64,
                width: im.width as i64,
            })
            .collect();
        for im in images {
            if im.data.len() != im.width * im.height * 3 {
                return Err(NativeError::BadInput(format!(
                    "an image of {}x{} has {} bytes, expected {}",
                    im.width,
                    im.height,
                    im.data.len(),
                    im.width * im.height * 3
                )));
            }
        }
        let mut results: Vec<RawResult> = (0..images.len())
            .map(|_| RawResult {
                count: 0,
                boxes: std::ptr::null(),
                scores: std::ptr::null(),
                labels: std::ptr::null(),
                inexact: 0,
                mask_bits: std::ptr::null(),
                mask_words: 0,
            })
            .collect();
        let mut error = ErrorBuffer::new();
        let (buffer, length) = error.args();
        // SAFETY: the images outlive the call; `results` has one slot per image.
        let code = unsafe {
            (self.api.detect)(
                self.handle,
                raw_images.as_ptr(),
                raw_images.len() as i64,
                results.as_mut_ptr(),
                buffer,
                length,
            )
        };
        error.check(code)?;
        Ok(results
            .iter()
            .zip(images)
            .map(|(r, im)| copy_result(r, im.width))
            .collect())
    }

    /// The last call's GPU timing (zeros on the CPU).
    pub fn timing(&self) -> CallTiming {
        let mut t = RawTiming::default();
        // SAFETY: `t` is a valid out-pointer.
        unsafe { (self.api.timing)(self.handle, &mut t) };
        CallTiming {
            gpu_ms: t.gpu_ms,
            forward_ms: t.forward_ms,
            graph_kernels: t.graph_kernels,
            other_launches: t.other_launches,
            graphed: t.graphed != 0,
            new_bucket: t.new_bucket != 0,
        }
    }

    /// What the engine is and how it runs (architecture, device, settings, buckets), as JSON.
    pub fn describe(&mut self) -> serde_json::Value {
        // SAFETY: the C side returns a NUL-terminated string valid until the next call.
        let text = unsafe { CStr::from_ptr((self.api.describe)(self.handle)) }
            .to_string_lossy()
            .into_owned();
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// Median ms of `iters` graph replays of the backbone + FPN on an N x H x W input, and its
    /// convolution FLOPs.
    pub fn profile_backbone(
        &mut self,
        n: usize,
        h: usize,
        w: usize,
        iters: i32,
    ) -> Result<(f64, f64), NativeError> {
        let (mut ms, mut flops) = (0.0, 0.0);
        let mut error = ErrorBuffer::new();
        let (buffer, length) = error.args();
        // SAFETY: valid out-pointers.
        let code = unsafe {
            (self.api.profile_backbone)(
                self.handle,
                n as i64,
                h as i64,
                w as i64,
                iters,
                &mut ms,
                &mut flops,
                buffer,
                length,
            )
        };
        error.check(code)?;
        Ok((ms, flops))
    }

    /// Writes the intermediate tensors of one un-graphed pass over `images` to `folder`/*.npy.
    pub fn dump_stages(&mut self, images: &[&BgrImage], folder: &Path) -> Result<(), NativeError> {
        let raw: Vec<Image> = images
            .iter()
            .map(|im| Image {
                bgr: im.data.as_ptr(),
                height: im.height as i64,
                width: im.width as i64,
            })
            .collect();
        let c_folder = CString::new(folder.as_os_str().as_encoded_bytes())
            .map_err(|_| NativeError::BadInput("folder name with a NUL byte".into()))?;
        let mut error = ErrorBuffer::new();
        let (buffer, length) = error.args();
        // SAFETY: valid pointers for the call.
        let code = unsafe {
            (self.api.dump_stages)(
                self.handle,
                raw.as_ptr(),
                raw.len() as i64,
                c_folder.as_ptr(),
                buffer,
                length,
            )
        };
        error.check(code)
    }
}

impl Drop for NativeEngine {
    fn drop(&mut self) {
        // SAFETY: the handle came from `open` and is freed once.
        unsafe { (self.api.free)(self.handle) }
    }
}

fn copy_result(r: &RawResult, width: usize) -> ImageDetections {
    let n = r.count.max(0) as usize;
    if n == 0 {
        return ImageDetections {
            inexact: r.inexact != 0,
            ..Default::default()
        };
    }
    // SAFETY: the C side keeps `count` boxes/scores/labels (and masks) alive until the next call.
    unsafe {
        let boxes = std::slice::from_raw_parts(r.boxes, 4 * n);
        let per_mask = width * r.mask_words.max(0) as usize;
        ImageDetections {
            boxes: boxes
                .chunks_exact(4)
                .map(|b| [b[0], b[1], b[2], b[3]])
                .collect(),
            scores: std::slice::from_raw_parts(r.scores, n).to_vec(),
            labels: std::slice::from_raw_parts(r.labels, n).to_vec(),
            masks: if r.mask_bits.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(r.mask_bits, n * per_mask)
                    .chunks_exact(per_mask)
                    .map(<[u32]>::to_vec)
                    .collect()
            },
            inexact: r.inexact != 0,
        }
    }
}

/// The engine's kernels compiled to PTX by NVRTC for `arch` (e.g. `compute_90`); no GPU needed.
pub fn compile_kernels(arch: &str) -> Result<String, NativeError> {
    let api = ffi::default_api()?;
    let c_arch =
        CString::new(arch).map_err(|_| NativeError::BadInput("arch with a NUL byte".into()))?;
    let mut ptx = std::ptr::null();
    let mut error = ErrorBuffer::new();
    let (buffer, length) = error.args();
    // SAFETY: valid pointers; the PTX text stays valid until the next call on this thread.
    let code = unsafe { (api.compile_kernels)(c_arch.as_ptr(), &mut ptx, buffer, length) };
    error.check(code)?;
    // SAFETY: NUL-terminated text from the C side.
    Ok(unsafe { CStr::from_ptr(ptx) }
        .to_string_lossy()
        .into_owned())
}

pub mod ops;

/// Sets libtorch's intra-op threads when `threads` asks (process-wide, as the `torch` backend
/// does) and returns the count it runs with.
pub fn set_threads(threads: Option<usize>) -> usize {
    if let Some(threads) = threads {
        tch::set_num_threads(threads as i32);
    }
    tch::get_num_threads().max(0) as usize
}

/// What a run records about the engine: `native`, the version of the libtorch it is built on and
/// runs against, device, precision, and the settings as options (with the engine's own account
/// of its architecture and settings, `describe()`, in the row's provenance).
pub fn describe_backend(
    config: &BackendConfig,
    threads: usize,
    description: &serde_json::Value,
) -> BackendDescription {
    let libtorch = detbench_backends::torch::runtime::libtorch();
    let mut options = vec![
        (
            EngineKind::Torch.name().to_owned(),
            libtorch.lib_dir.display().to_string(),
        ),
        (
            "architecture".to_owned(),
            description["architecture"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
        ),
    ];
    options.extend(config.native.options());
    options.push(("intra_op_threads".to_owned(), threads.to_string()));
    BackendDescription {
        engine: EngineKind::Native,
        engine_version: libtorch.version.clone(),
        device: config.device,
        precision: config.precision,
        threads: Some(threads),
        options,
    }
}
