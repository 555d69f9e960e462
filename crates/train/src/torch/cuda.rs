//! The CUDA half of the shim (`cuda_shim.cpp`: allocator statistics, ProcessGroupNCCL), embedded
//! in the binary and opened only once CUDA is loaded (crates/backends `runtime::ensure_cuda`),
//! so that the binary still starts where libtorch_cuda.so or a GPU is missing. It is loaded from
//! an anonymous in-memory file (memfd), as the inference backend loads its libtorch_python stub.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Result, TrainError};
use crate::torch::dist::{ProcessGroup, Store};
use crate::torch::ffi::ErrBuf;

static CUDA_SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libdetbench_train_cuda.so"));

type PeakFn = unsafe extern "C" fn(c_int, *mut u64, *mut u64, *mut c_char, usize) -> c_int;
type ResetFn = unsafe extern "C" fn(c_int, *mut c_char, usize) -> c_int;
type NcclFn =
    unsafe extern "C" fn(*mut c_void, c_int, c_int, c_int, *mut c_char, usize) -> *mut c_void;

struct CudaShim {
    peak: PeakFn,
    reset: ResetFn,
    nccl: NcclFn,
}

fn shim() -> Result<&'static CudaShim> {
    static SHIM: OnceLock<std::result::Result<CudaShim, String>> = OnceLock::new();
    SHIM.get_or_init(load)
        .as_ref()
        .map_err(|e| TrainError::Torch(e.clone()))
}

fn load() -> std::result::Result<CudaShim, String> {
    detbench_backends::torch::runtime::ensure_cuda()?;
    open_shim()
}

/// Checks that the embedded shim links against this libtorch: opens `libtorch_cuda.so` beside
/// the loaded libtorch (no GPU needed to load it) and the shim, and resolves its symbols. For
/// tests on machines without a GPU.
pub fn check_shim_links() -> Result<()> {
    let lib_dir = &detbench_backends::torch::runtime::libtorch().lib_dir;
    let cuda = lib_dir.join("libtorch_cuda.so");
    // SAFETY: libtorch's own CUDA library; its initialisers register CUDA kernels.
    let lib = unsafe {
        libloading::os::unix::Library::open(Some(&cuda), libc::RTLD_NOW | libc::RTLD_GLOBAL)
    }
    .map_err(|e| TrainError::Torch(format!("cannot load {}: {e}", cuda.display())))?;
    std::mem::forget(lib);
    open_shim().map(|_| ()).map_err(TrainError::Torch)
}

fn open_shim() -> std::result::Result<CudaShim, String> {
    // SAFETY: memfd_create takes a NUL-terminated name; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(c"detbench_train_cuda".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is new and owned by nothing else.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, CUDA_SHIM).map_err(|e| e.to_string())?;
    let path = format!("/proc/self/fd/{fd}");
    // SAFETY: the library was built by build.rs for this libtorch; its initialisers are empty.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(Path::new(&path)),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    }
    .map_err(|e| format!("cannot load the CUDA shim: {e}"))?;
    drop(file);
    // SAFETY: the symbols have the declared C signatures (cuda_shim.cpp).
    let shim = unsafe {
        let get = |name: &[u8]| {
            lib.get::<*const c_void>(name).map(|s| *s).map_err(|e| {
            format!(
                "the CUDA shim lacks {} ({e}); the binary was built without the CUDA/NCCL headers \
                 (see crates/train/build.rs)",
                String::from_utf8_lossy(name)
            )
        })
        };
        CudaShim {
            peak: std::mem::transmute::<*const c_void, PeakFn>(get(b"dbt_cuda_peak_memory\0")?),
            reset: std::mem::transmute::<*const c_void, ResetFn>(get(
                b"dbt_cuda_reset_peak_memory\0",
            )?),
            nccl: std::mem::transmute::<*const c_void, NcclFn>(get(b"dbt_pg_new_nccl\0")?),
        }
    };
    std::mem::forget(lib);
    Ok(shim)
}

/// (peak allocated, peak reserved) bytes on CUDA device `index`.
pub fn peak_memory(index: usize) -> Result<(u64, u64)> {
    let s = shim()?;
    let (mut a, mut r) = (0u64, 0u64);
    let err = ErrBuf::new();
    // SAFETY: the shim writes two u64 and the message buffer.
    err.check(unsafe { (s.peak)(index as c_int, &mut a, &mut r, err.ptr(), err.len()) })?;
    Ok((a, r))
}

/// `torch.cuda.reset_peak_memory_stats(index)`.
pub fn reset_peak_memory(index: usize) -> Result<()> {
    let s = shim()?;
    let err = ErrBuf::new();
    // SAFETY: as above.
    err.check(unsafe { (s.reset)(index as c_int, err.ptr(), err.len()) })
}

/// ProcessGroupNCCL for this rank on CUDA device `device`.
pub fn nccl_group(
    store: Store,
    rank: usize,
    world_size: usize,
    device: usize,
) -> Result<ProcessGroup> {
    let s = shim()?;
    let err = ErrBuf::new();
    // SAFETY: the store is live and kept by the group.
    let raw = unsafe {
        (s.nccl)(
            store.raw,
            rank as c_int,
            world_size as c_int,
            device as c_int,
            err.ptr(),
            err.len(),
        )
    };
    if raw.is_null() {
        return Err(TrainError::Distributed(format!("nccl: {}", err.message())));
    }
    Ok(ProcessGroup::from_raw(raw, store))
}
