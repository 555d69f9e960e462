//! The CUDA half of the shim (`cuda_shim.cpp`: allocator statistics, ProcessGroupNCCL), embedded
//! in the binary and opened only once CUDA is loaded (crates/backends `runtime::ensure_cuda`),
//! so that the binary still starts where libtorch_cuda.so or a GPU is missing. It is loaded from
//! an anonymous in-memory file (memfd), as the inference backend loads its libtorch_python stub.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::OnceLock;

use detbench_backends::torch::runtime::{self, RuntimeError};

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

/// Why the CUDA shim cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CudaShimError {
    #[error(transparent)]
    Cuda(&'static RuntimeError),
    #[error("cannot make an in-memory file for the CUDA shim: {0}")]
    Memfd(std::io::Error),
    #[error("cannot load the CUDA shim: {0}")]
    Load(libloading::Error),
    #[error(
        "the CUDA shim lacks {symbol} ({source}); the binary was built without the CUDA/NCCL \
         headers (see crates/train/build.rs)"
    )]
    Symbol {
        symbol: &'static str,
        source: libloading::Error,
    },
}

fn shim() -> Result<&'static CudaShim> {
    static SHIM: OnceLock<std::result::Result<CudaShim, CudaShimError>> = OnceLock::new();
    Ok(SHIM.get_or_init(load).as_ref()?)
}

/// The shim is opened only after CUDA is loaded. `prepare_engine` has loaded it already, with the
/// configured `libtorch_cuda.so` (the runtime keeps the first answer for the process); the
/// `None` here only matters if nothing loaded it before.
fn load() -> std::result::Result<CudaShim, CudaShimError> {
    runtime::ensure_cuda(None).map_err(CudaShimError::Cuda)?;
    open_shim()
}

/// Checks that the embedded shim links against this libtorch: opens `libtorch_cuda.so` beside
/// the loaded libtorch (no GPU needed to load it) and the shim, and resolves its symbols. For
/// tests on machines without a GPU.
pub fn check_shim_links() -> Result<()> {
    let lib_dir = &runtime::libtorch().lib_dir;
    let cuda = lib_dir.join("libtorch_cuda.so");
    // SAFETY: libtorch's own CUDA library; its initialisers register CUDA kernels.
    let lib = unsafe {
        libloading::os::unix::Library::open(Some(&cuda), libc::RTLD_NOW | libc::RTLD_GLOBAL)
    }
    .map_err(|e| TrainError::Torch(format!("cannot load {}: {e}", cuda.display())))?;
    std::mem::forget(lib);
    open_shim()
        .map(|_| ())
        .map_err(|e| TrainError::Torch(e.to_string()))
}

fn open_shim() -> std::result::Result<CudaShim, CudaShimError> {
    // SAFETY: memfd_create takes a NUL-terminated name; the descriptor is ours.
    let fd = unsafe { libc::memfd_create(c"detbench_train_cuda".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(CudaShimError::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is new and owned by nothing else.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, CUDA_SHIM).map_err(CudaShimError::Memfd)?;
    let path = format!("/proc/self/fd/{fd}");
    // SAFETY: the library was built by build.rs for this libtorch; its initialisers are empty.
    let lib = unsafe {
        libloading::os::unix::Library::open(
            Some(Path::new(&path)),
            libc::RTLD_NOW | libc::RTLD_LOCAL,
        )
    }
    .map_err(CudaShimError::Load)?;
    drop(file);
    // SAFETY: the symbols have the declared C signatures (cuda_shim.cpp).
    let shim = unsafe {
        let get = |symbol: &'static str| {
            lib.get::<*const c_void>(symbol.as_bytes())
                .map(|s| *s)
                .map_err(|source| CudaShimError::Symbol { symbol, source })
        };
        CudaShim {
            peak: std::mem::transmute::<*const c_void, PeakFn>(get("dbt_cuda_peak_memory")?),
            reset: std::mem::transmute::<*const c_void, ResetFn>(get(
                "dbt_cuda_reset_peak_memory",
            )?),
            nccl: std::mem::transmute::<*const c_void, NcclFn>(get("dbt_pg_new_nccl")?),
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
