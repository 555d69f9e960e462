//! Loading the engine library (`libdetbench_native.so`, built by build.rs and embedded in the
//! binary) and its C interface (cpp/api.h, declared again here).
//!
//! Order matters: libtorch's CPU half is already loaded (the binary links it through tch);
//! torchvision's ops are registered next (the model files' TorchScript code calls
//! `torchvision::nms`, so they cannot be loaded without them); then `libtorch_cuda.so` is opened
//! with `RTLD_GLOBAL` from the folder of the loaded libtorch (it loads on machines without a GPU
//! too, and brings the CUDA 13 runtime libraries the engine links by soname); then the engine
//! itself, from an in-memory file. Each step names the library it could not load.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::NativeError;

static ENGINE_LIBRARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libdetbench_native.so"));

use detbench_backends::TorchSettings;
use detbench_backends::config::{LIBTORCH_CUDA_ENV, TORCHVISION_OPS_ENV};

#[repr(C)]
pub struct Settings {
    pub device: i32,
    pub half: i32,
    pub graphs: i32,
    pub fused_conv: i32,
    pub channels_last: i32,
    pub cudnn_benchmark: i32,
    pub allow_tf32: i32,
    pub nms_capacity: i64,
    pub exact: i32,
}

#[repr(C)]
pub struct Image {
    pub bgr: *const u8,
    pub height: i64,
    pub width: i64,
}

#[repr(C)]
pub struct RawResult {
    pub count: i64,
    pub boxes: *const f32,
    pub scores: *const f32,
    pub labels: *const i64,
    pub inexact: i32,
    pub mask_bits: *const u32,
    pub mask_words: i64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTiming {
    pub gpu_ms: f64,
    pub forward_ms: f64,
    pub graph_kernels: i64,
    pub other_launches: i64,
    pub graphed: i32,
    pub new_bucket: i32,
}

type Err = (*mut c_char, usize);

/// The engine library's functions.
pub struct Api {
    pub open: unsafe extern "C" fn(
        *const c_char,
        *const Settings,
        *mut *mut c_void,
        *mut c_char,
        usize,
    ) -> c_int,
    pub detect: unsafe extern "C" fn(
        *mut c_void,
        *const Image,
        i64,
        *mut RawResult,
        *mut c_char,
        usize,
    ) -> c_int,
    pub timing: unsafe extern "C" fn(*const c_void, *mut RawTiming),
    pub describe: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    pub profile_backbone: unsafe extern "C" fn(
        *mut c_void,
        i64,
        i64,
        i64,
        i32,
        *mut f64,
        *mut f64,
        *mut c_char,
        usize,
    ) -> c_int,
    pub dump_stages: unsafe extern "C" fn(
        *mut c_void,
        *const Image,
        i64,
        *const c_char,
        *mut c_char,
        usize,
    ) -> c_int,
    pub free: unsafe extern "C" fn(*mut c_void),
    pub compile_kernels:
        unsafe extern "C" fn(*const c_char, *mut *const c_char, *mut c_char, usize) -> c_int,
    pub op_batched_nms: unsafe extern "C" fn(
        *const f32,
        *const f32,
        *const i64,
        i64,
        f64,
        i32,
        i32,
        *mut i64,
        *mut i64,
        *mut c_char,
        usize,
    ) -> c_int,
    pub op_roi_align: unsafe extern "C" fn(
        *const f32,
        i64,
        i64,
        i64,
        *const f32,
        i64,
        f64,
        i64,
        i64,
        i32,
        *mut f32,
        *mut c_char,
        usize,
    ) -> c_int,
    pub op_multiscale_roi_align: unsafe extern "C" fn(
        *const *const f32,
        *const i64,
        *const i64,
        i64,
        i64,
        *const f32,
        i64,
        i64,
        i64,
        i64,
        i64,
        *mut f32,
        *mut c_char,
        usize,
    ) -> c_int,
    pub op_decode_boxes: unsafe extern "C" fn(
        *const f32,
        *const f32,
        i64,
        *const f64,
        f64,
        *mut f32,
        *mut c_char,
        usize,
    ) -> c_int,
    pub op_map_levels:
        unsafe extern "C" fn(*const f32, i64, i32, i64, i64, *mut i64, *mut c_char, usize) -> c_int,
    pub op_preprocess: unsafe extern "C" fn(
        *const u8,
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
        *const f64,
        *const f64,
        *mut f32,
        *mut c_char,
        usize,
    ) -> c_int,
    pub op_paste_masks: unsafe extern "C" fn(
        *const f32,
        i64,
        i64,
        *const f32,
        i64,
        i64,
        *mut u32,
        *mut c_char,
        usize,
    ) -> c_int,
}

/// The loaded engine library, once per process: the first call's library paths
/// ([`TorchSettings::libtorch_cuda`]) decide, as for the `torch` backend.
pub fn api(torch: &TorchSettings) -> Result<&'static Api, NativeError> {
    static API: OnceLock<Result<Api, NativeError>> = OnceLock::new();
    API.get_or_init(|| load(torch.libtorch_cuda.as_deref()))
        .as_ref()
        .map_err(Clone::clone)
}

/// [`api`] with the libtorch settings of the environment (`$DETBENCH_LIBTORCH_CUDA`), for the
/// single operations and the kernel compiler.
pub fn default_api() -> Result<&'static Api, NativeError> {
    let torch = TorchSettings::from_env().map_err(|e| NativeError::BadInput(e.to_string()))?;
    api(&torch)
}

/// A buffer for the C side's error message, and the call's result turned into ours.
pub struct ErrorBuffer([c_char; 4096]);

impl ErrorBuffer {
    pub fn new() -> Self {
        ErrorBuffer([0; 4096])
    }
    pub fn args(&mut self) -> Err {
        (self.0.as_mut_ptr(), self.0.len())
    }
    /// `Ok` for code 0, else the error of that kind with the message written into the buffer.
    pub fn check(&self, code: c_int) -> Result<(), NativeError> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: the C side writes a NUL-terminated message (snprintf) into the buffer.
        let message = unsafe { CStr::from_ptr(self.0.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Err(NativeError::from_code(code, message))
    }
}

/// Registers torchvision's ops (nms, roi_align), which the model files' TorchScript code calls,
/// from [`TorchSettings::torchvision_ops`] or `.deps/` (the `torch` backend's loader).
pub fn ensure_torchvision_ops(torch: &TorchSettings) -> Result<(), NativeError> {
    use detbench_backends::torch::runtime::{self, TorchvisionOps};
    match runtime::ensure_torchvision_ops(torch.torchvision_ops.as_deref()) {
        Ok(TorchvisionOps::Missing { looked_in }) => Err(NativeError::CudaLibrary(format!(
            "torchvision's ops library (_C.so of torchvision 0.26) was not found (looked in \
             {looked_in}); the model files' code needs it. Run scripts/setup.sh --torch or pass \
             --torchvision-ops /path/to/torchvision/_C.so (${TORCHVISION_OPS_ENV})"
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(NativeError::CudaLibrary(e.to_string())),
    }
}

fn load(libtorch_cuda: Option<&Path>) -> Result<Api, NativeError> {
    load_torch_cuda(libtorch_cuda)?;
    let library = load_engine_library()?;
    // SAFETY: the symbols are the extern "C" functions of cpp/api.h with these signatures.
    unsafe {
        macro_rules! sym {
            ($name:literal) => {
                *library.get(concat!($name, "\0").as_bytes()).map_err(|e| {
                    NativeError::Engine(format!("engine library lacks {}: {e}", $name))
                })?
            };
        }
        let api = Api {
            open: sym!("dn_engine_open"),
            detect: sym!("dn_engine_detect"),
            timing: sym!("dn_engine_timing"),
            describe: sym!("dn_engine_describe"),
            profile_backbone: sym!("dn_engine_profile_backbone"),
            dump_stages: sym!("dn_engine_dump_stages"),
            free: sym!("dn_engine_free"),
            compile_kernels: sym!("dn_compile_kernels"),
            op_batched_nms: sym!("dn_op_batched_nms"),
            op_roi_align: sym!("dn_op_roi_align"),
            op_multiscale_roi_align: sym!("dn_op_multiscale_roi_align"),
            op_decode_boxes: sym!("dn_op_decode_boxes"),
            op_map_levels: sym!("dn_op_map_levels"),
            op_paste_masks: sym!("dn_op_paste_masks"),
            op_preprocess: sym!("dn_op_preprocess"),
        };
        std::mem::forget(library);
        Ok(api)
    }
}

/// Opens libtorch_cuda.so (RTLD_GLOBAL) without asking for a device: `explicit` (the setting,
/// `--libtorch-cuda` or `$DETBENCH_LIBTORCH_CUDA`), else beside the loaded libtorch_cpu.so.
fn load_torch_cuda(explicit: Option<&Path>) -> Result<(), NativeError> {
    let (path, looked): (PathBuf, String) = match explicit {
        Some(v) => (
            v.to_path_buf(),
            format!("--libtorch-cuda / ${LIBTORCH_CUDA_ENV}: {}", v.display()),
        ),
        None => {
            let dir = detbench_backends::torch::runtime::libtorch()
                .lib_dir
                .clone();
            let p = dir.join("libtorch_cuda.so");
            let looked = format!("{} (beside the loaded libtorch_cpu.so)", p.display());
            (p, looked)
        }
    };
    // SAFETY: loading libtorch's own CUDA library, built for the loaded libtorch.
    let library = unsafe {
        libloading::os::unix::Library::open(Some(&path), libc::RTLD_NOW | libc::RTLD_GLOBAL)
    }
    .map_err(|e| {
        NativeError::CudaLibrary(format!(
            "the native engine needs libtorch_cuda.so ({looked}): {e}. Run with the CUDA build \
                 of libtorch 2.11 (the PyPI torch wheel) on LD_LIBRARY_PATH=<torch>/lib with its \
                 nvidia-* wheels (libcudart.so.13, cuBLAS, cuDNN) beside it, or name the library \
                 with --libtorch-cuda (${LIBTORCH_CUDA_ENV})"
        ))
    })?;
    std::mem::forget(library);
    Ok(())
}

/// The embedded engine library, loaded from an anonymous in-memory file (memfd).
///
/// glibc recognises an already loaded library by its path, and `/proc/self/fd/N` names whatever
/// descriptor N is now: the `torch` backend loads its libtorch_python stub the same way and closes
/// its descriptor, so a later memfd with the same number would make `dlopen` hand back the stub
/// (and the other way round). The engine's descriptor is therefore moved to a high number and
/// kept open for the life of the process.
fn load_engine_library() -> Result<libloading::os::unix::Library, NativeError> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"libdetbench_native".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return load_engine_from_folder();
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates `fd` to the lowest free number >= 900.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 900) };
    // SAFETY: `fd` is ours; the duplicate (if any) keeps the file alive.
    unsafe { libc::close(fd) };
    if high < 0 {
        return load_engine_from_folder();
    }
    // SAFETY: `high` is ours and stays open (never closed: see above).
    let mut file = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(high)
    });
    std::io::Write::write_all(&mut *file, ENGINE_LIBRARY)
        .map_err(|e| NativeError::Engine(format!("writing the engine library to memory: {e}")))?;
    let path = PathBuf::from(format!("/proc/self/fd/{high}"));
    // SAFETY: the library is detbench's own engine, built with this binary.
    let opened = unsafe {
        libloading::os::unix::Library::open(Some(&path), libc::RTLD_NOW | libc::RTLD_LOCAL)
    };
    opened.or_else(|_| load_engine_from_folder())
}

/// Fallback where memfds are refused: a private temporary folder (mkdtemp, mode 0700).
fn load_engine_from_folder() -> Result<libloading::os::unix::Library, NativeError> {
    let folder = tempfile_folder()?;
    let path = folder.join("libdetbench_native.so");
    std::fs::write(&path, ENGINE_LIBRARY)
        .map_err(|e| NativeError::Engine(format!("{}: {e}", path.display())))?;
    // SAFETY: as above.
    let opened = unsafe {
        libloading::os::unix::Library::open(Some(&path), libc::RTLD_NOW | libc::RTLD_LOCAL)
    };
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&folder);
    opened.map_err(|e| {
        NativeError::CudaLibrary(format!(
            "cannot load the native engine library: {e}. It links libtorch_cpu/libc10/libtorch_cuda/\
             libc10_cuda and libcudart.so.13 (LD_LIBRARY_PATH=<torch>/lib)"
        ))
    })
}

fn tempfile_folder() -> Result<PathBuf, NativeError> {
    let mut template = std::env::temp_dir()
        .join("detbench-native-XXXXXX")
        .into_os_string()
        .into_encoded_bytes();
    template.push(0);
    // SAFETY: a writable NUL-terminated template ending in XXXXXX, replaced in place by mkdtemp.
    let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(NativeError::Engine(format!(
            "mkdtemp: {}",
            std::io::Error::last_os_error()
        )));
    }
    template.pop();
    // SAFETY: the bytes came from an OsString and mkdtemp only replaced ASCII characters.
    Ok(PathBuf::from(unsafe {
        std::ffi::OsString::from_encoded_bytes_unchecked(template)
    }))
}
