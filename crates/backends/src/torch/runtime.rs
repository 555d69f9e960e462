//! The process-wide libtorch pieces that a plain link leaves out, loaded at run time:
//!
//! * **CUDA.** The PyPI torch wheel's `libtorch_cuda.so` holds every CUDA kernel and registers
//!   CUDA with libtorch from its static initialisers, but nothing in detbench calls it directly,
//!   so the linker (`--as-needed`) drops it. Linking it for good would stop the binary from
//!   starting where the CUDA libraries are missing (CI, CPU machines), so it is opened here, with
//!   `RTLD_GLOBAL`, only when a model asks for CUDA: from `$DETBENCH_LIBTORCH_CUDA`, else beside
//!   the `libtorch_cpu.so` the process already loaded. libtorch caches its CUDA hooks on first
//!   use (`at::detail::getCUDAHooks`), so it must be opened before anything asks libtorch about
//!   CUDA; [`ensure_cuda`] does that first. [`TorchSettings::libtorch_cuda`](crate::TorchSettings)
//!   names another file.
//! * **torchvision ops.** TorchScript detection models call `torchvision::nms` and
//!   `torchvision::roi_align`, registered by torchvision's `_C.so` (in Python, `import
//!   torchvision` loads it). It is opened from
//!   [`TorchSettings::torchvision_ops`](crate::TorchSettings), else from
//!   `.deps/torchvision/torchvision/_C.so` (`scripts/setup.sh --torch`). Its declared dependency
//!   `libtorch_python.so` is satisfied by a stub (see `build.rs`).
//! * **The quantized engine** and **inference mode**, through the C++ shim (`shim.cpp`).
//!
//! These are process-wide: the first model to ask decides which files are loaded.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::QuantizedEngine;
use crate::config::{LIBTORCH_CUDA_ENV, TORCHVISION_OPS_ENV};

/// Why a libtorch piece could not be loaded or set.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "CUDA was asked for, but libtorch_cuda.so is not there ({looked}). Run with a CUDA build \
         of libtorch {version} on the loader path (LD_LIBRARY_PATH=<torch>/lib), or name the \
         library with --libtorch-cuda (or ${LIBTORCH_CUDA_ENV})"
    )]
    NoCudaLibrary { looked: String, version: String },
    #[error(
        "cannot load {}: {source}. The CUDA libraries it needs (cuDNN, cuBLAS, ... from the \
         nvidia-* wheels or a CUDA install) must be findable",
        library.display()
    )]
    CudaLoad {
        library: PathBuf,
        source: libloading::Error,
    },
    #[error(
        "loaded {}, but libtorch sees no CUDA device (no NVIDIA driver, no GPU, or \
         CUDA_VISIBLE_DEVICES hides them)",
        library.display()
    )]
    NoCudaDevice { library: PathBuf },
    #[error(
        "torchvision ops library {} is not a file (expected torchvision's _C.so; from \
         --torchvision-ops or ${TORCHVISION_OPS_ENV})",
        library.display()
    )]
    OpsNotAFile { library: PathBuf },
    #[error(
        "cannot load torchvision's ops library {}: {source}. It must be the torchvision built for \
         libtorch {version} (torchvision 0.26 for torch 2.11)",
        library.display()
    )]
    OpsLoad {
        library: PathBuf,
        version: String,
        source: libloading::Error,
    },
    #[error("loaded {}, but it registered no {missing}", library.display())]
    OpsMissing { library: PathBuf, missing: String },
    #[error(
        "cannot load the libtorch_python stub: from a memfd: {memfd}; from a private temporary \
         folder: {folder}"
    )]
    Stub { memfd: String, folder: String },
    #[error(
        "quantized engine `{previous}` is already in use in this process; libtorch has one engine \
         per process, so `{asked}` cannot be selected too"
    )]
    QuantizedEngineInUse {
        previous: QuantizedEngine,
        asked: QuantizedEngine,
    },
    /// A message from the C++ shim (a caught libtorch exception).
    #[error("{0}")]
    Shim(String),
}

unsafe extern "C" {
    fn detbench_set_qengine(name: *const c_char, error: *mut c_char, error_length: usize) -> c_int;
    fn detbench_qengine() -> *const c_char;
    fn detbench_has_operator(qualified_name: *const c_char) -> c_int;
    fn detbench_torch_header_version() -> *const c_char;
    fn detbench_inference_mode_enter(error: *mut c_char, error_length: usize) -> *mut c_void;
    fn detbench_inference_mode_exit(guard: *mut c_void);
}

/// The stub standing in for `libtorch_python.so` (built by `build.rs`).
static TORCH_PYTHON_STUB: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/libtorch_python_stub.so"));

/// Where the loaded libtorch lives and which version it is.
#[derive(Debug, Clone)]
pub struct Libtorch {
    /// The folder of the `libtorch_cpu.so` this process loaded.
    pub lib_dir: PathBuf,
    /// The version of that libtorch (`torch/version.py` beside it, e.g. `2.11.0+cu130`), or of
    /// the headers detbench was compiled against when the library folder does not say.
    pub version: String,
}

/// The loaded libtorch, found once per process.
pub fn libtorch() -> &'static Libtorch {
    static LIBTORCH: OnceLock<Libtorch> = OnceLock::new();
    LIBTORCH.get_or_init(|| {
        let lib_dir = loaded_library_dir(c"_ZN2at13globalContextEv").unwrap_or_default();
        let version = read_torch_version(&lib_dir).unwrap_or_else(|| {
            // SAFETY: the shim returns a pointer to a static NUL-terminated string literal.
            let header = unsafe { CStr::from_ptr(detbench_torch_header_version()) };
            format!("{} (headers)", header.to_string_lossy())
        });
        Libtorch { lib_dir, version }
    })
}

/// The folder of the shared library that defines `symbol` in this process.
fn loaded_library_dir(symbol: &CStr) -> Option<PathBuf> {
    // SAFETY: dlsym on the default namespace with a valid C string; dladdr only reads the
    // address and fills `info`, whose `dli_fname` points to a string owned by the loader.
    unsafe {
        let address = libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr());
        if address.is_null() {
            return None;
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(address as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let file = PathBuf::from(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        );
        let file = std::fs::canonicalize(&file).unwrap_or(file);
        file.parent().map(Path::to_path_buf)
    }
}

/// `__version__` from `torch/version.py` (pip wheels) or the `build-version` file of a libtorch
/// archive, for the libtorch whose `lib` folder is `lib_dir`.
fn read_torch_version(lib_dir: &Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let value = rest.trim_start_matches([' ', ':', '=']).trim();
                let value = value.split('=').next_back().unwrap_or(value).trim();
                return Some(value.trim_matches(['\'', '"']).to_owned());
            }
        }
    }
    std::fs::read_to_string(root.join("build-version"))
        .ok()
        .map(|v| v.trim().to_owned())
}

/// Opens a shared library and keeps it loaded for the life of the process.
fn open_forever(path: &Path, flags: c_int) -> Result<(), libloading::Error> {
    // SAFETY: loading a library runs its initialisers; the libraries opened here are libtorch's
    // and torchvision's own, built for this libtorch, whose initialisers register kernels.
    let library = unsafe { libloading::os::unix::Library::open(Some(path), flags) }?;
    std::mem::forget(library);
    Ok(())
}

/// What [`ensure_cuda`] found.
#[derive(Debug, Clone)]
pub struct CudaRuntime {
    pub library: PathBuf,
    pub device_count: i64,
}

/// Makes CUDA available to libtorch (see the module documentation), once per process: from
/// `explicit` (the setting), else beside the loaded `libtorch_cpu.so`.
pub fn ensure_cuda(explicit: Option<&Path>) -> Result<&'static CudaRuntime, &'static RuntimeError> {
    static CUDA: OnceLock<Result<CudaRuntime, RuntimeError>> = OnceLock::new();
    CUDA.get_or_init(|| load_cuda(explicit)).as_ref()
}

fn load_cuda(explicit: Option<&Path>) -> Result<CudaRuntime, RuntimeError> {
    let (library, looked) = match explicit {
        Some(path) => (path.to_path_buf(), format!("{} (as set)", path.display())),
        None => {
            let path = libtorch().lib_dir.join("libtorch_cuda.so");
            let looked = format!("{} (beside the loaded libtorch_cpu.so)", path.display());
            (path, looked)
        }
    };
    if !library.is_file() {
        return Err(RuntimeError::NoCudaLibrary {
            looked,
            version: libtorch().version.clone(),
        });
    }
    open_forever(&library, libc::RTLD_NOW | libc::RTLD_GLOBAL).map_err(|source| {
        RuntimeError::CudaLoad {
            library: library.clone(),
            source,
        }
    })?;
    if !tch::Cuda::is_available() {
        return Err(RuntimeError::NoCudaDevice { library });
    }
    Ok(CudaRuntime {
        library,
        device_count: tch::Cuda::device_count(),
    })
}

/// Whether an operator (e.g. `torchvision::nms`) is registered with libtorch's dispatcher.
pub fn has_operator(qualified_name: &str) -> bool {
    let Ok(name) = CString::new(qualified_name) else {
        return false;
    };
    // SAFETY: the shim only reads the NUL-terminated string and catches every C++ exception.
    unsafe { detbench_has_operator(name.as_ptr()) == 1 }
}

/// The operators detection models need from torchvision.
pub const TORCHVISION_OPS: [&str; 2] = ["torchvision::nms", "torchvision::roi_align"];

/// Where torchvision's ops came from.
#[derive(Debug, Clone, PartialEq)]
pub enum TorchvisionOps {
    /// Registered before detbench looked (linked in, or loaded by someone else).
    AlreadyRegistered,
    /// Loaded by detbench from this file.
    Loaded(PathBuf),
    /// Not found; models that call them will fail to load with libtorch's "unknown builtin op".
    Missing { looked_in: String },
}

impl TorchvisionOps {
    /// What a run records (the backend's `torchvision_ops` option).
    pub fn describe(&self) -> String {
        match self {
            TorchvisionOps::AlreadyRegistered => "registered before loading".into(),
            TorchvisionOps::Loaded(path) => path.display().to_string(),
            TorchvisionOps::Missing { .. } => "not loaded (not found)".into(),
        }
    }
}

/// Registers torchvision's ops once per process (see the module documentation), from `explicit`
/// (the setting) or the `.deps/` folder. A library that exists but fails to load is an error; a
/// missing one is reported as [`TorchvisionOps::Missing`] so that models without torchvision ops
/// still run. Only a load or a load error is kept for the process: after `Missing`, a later call
/// that names the library still loads it (a model opened without the setting must not hide it
/// from the next one).
pub fn ensure_torchvision_ops(
    explicit: Option<&Path>,
) -> Result<&'static TorchvisionOps, &'static RuntimeError> {
    type Outcome = Result<TorchvisionOps, RuntimeError>;
    static OPS: Mutex<Option<&'static Outcome>> = Mutex::new(None);
    let mut kept = OPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(outcome) = *kept {
        return outcome.as_ref();
    }
    // Leaked: a few bytes per `Missing` answer, once for the outcome that is kept.
    let outcome: &'static Outcome = Box::leak(Box::new(load_torchvision_ops(explicit)));
    if !matches!(outcome, Ok(TorchvisionOps::Missing { .. })) {
        *kept = Some(outcome);
    }
    outcome.as_ref()
}

fn load_torchvision_ops(explicit: Option<&Path>) -> Result<TorchvisionOps, RuntimeError> {
    if TORCHVISION_OPS.iter().all(|op| has_operator(op)) {
        return Ok(TorchvisionOps::AlreadyRegistered);
    }
    let library = match explicit {
        Some(path) if !path.is_file() => {
            return Err(RuntimeError::OpsNotAFile {
                library: path.to_path_buf(),
            });
        }
        Some(path) => path.to_path_buf(),
        None => {
            let candidate =
                detbench_assets::deps_dir().map(|deps| deps.join("torchvision/torchvision/_C.so"));
            match candidate {
                Some(path) if path.is_file() => path,
                other => {
                    let looked_in = match other {
                        Some(path) => path.display().to_string(),
                        None => ".deps/torchvision/torchvision/_C.so (no .deps folder)".to_owned(),
                    };
                    return Ok(TorchvisionOps::Missing {
                        looked_in: format!(
                            "--torchvision-ops / ${TORCHVISION_OPS_ENV} (not given), {looked_in}"
                        ),
                    });
                }
            }
        }
    };
    load_torch_python_stub()?;
    // Python loads it the same way: torch.ops.load_library -> ctypes.CDLL (RTLD_LOCAL).
    open_forever(&library, libc::RTLD_NOW | libc::RTLD_LOCAL).map_err(|source| {
        RuntimeError::OpsLoad {
            library: library.clone(),
            version: libtorch().version.clone(),
            source,
        }
    })?;
    let missing: Vec<&str> = TORCHVISION_OPS
        .iter()
        .copied()
        .filter(|op| !has_operator(op))
        .collect();
    if !missing.is_empty() {
        return Err(RuntimeError::OpsMissing {
            library,
            missing: missing.join(", "),
        });
    }
    Ok(TorchvisionOps::Loaded(library))
}

/// Loads the embedded `libtorch_python.so` stub, unless a library of that name is loaded already.
fn load_torch_python_stub() -> Result<(), RuntimeError> {
    // SAFETY: RTLD_NOLOAD only asks whether a library with this soname is loaded.
    let already = unsafe {
        let handle = libc::dlopen(
            c"libtorch_python.so".as_ptr(),
            libc::RTLD_NOW | libc::RTLD_NOLOAD,
        );
        !handle.is_null()
    };
    if already {
        return Ok(());
    }
    // An anonymous in-memory file (memfd), loaded through /proc/self/fd: no path in a shared
    // temporary folder that another user could create or replace before dlopen reads it. Where
    // memfds are refused (vm.memfd_noexec = 2) or /proc is missing, a private folder (mode 0700,
    // made by mkdtemp) holds the file instead.
    load_stub_from_memfd().or_else(|memfd| {
        load_stub_from_private_folder().map_err(|folder| RuntimeError::Stub {
            memfd: memfd.to_string(),
            folder: folder.to_string(),
        })
    })
}

fn load_stub_from_memfd() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; it returns a new descriptor
    // or -1.
    let fd = unsafe { libc::memfd_create(c"libtorch_python_stub".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut file, TORCH_PYTHON_STUB)?;
    let opened = open_forever(
        Path::new(&format!("/proc/self/fd/{fd}")),
        libc::RTLD_NOW | libc::RTLD_GLOBAL,
    );
    // The mapping stays valid once loaded; the descriptor is not needed any more.
    drop(file);
    Ok(opened?)
}

fn load_stub_from_private_folder() -> Result<(), Box<dyn std::error::Error>> {
    let mut template = std::env::temp_dir()
        .join("detbench-stub-XXXXXX")
        .into_os_string()
        .into_encoded_bytes();
    template.push(0);
    // SAFETY: `template` is a writable NUL-terminated path ending in XXXXXX, which mkdtemp
    // replaces in place; it creates the folder with mode 0700 or returns null.
    let made = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(std::io::Error::last_os_error().into());
    }
    template.pop();
    let folder = PathBuf::from(std::ffi::OsString::from_vec(template));
    let path = folder.join("libtorch_python.so");
    let result: Result<(), Box<dyn std::error::Error>> = std::fs::write(&path, TORCH_PYTHON_STUB)
        .map_err(|e| format!("{}: {e}", path.display()).into())
        .and_then(|()| Ok(open_forever(&path, libc::RTLD_NOW | libc::RTLD_GLOBAL)?));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&folder);
    result
}

/// Selects the quantized engine process-wide. libtorch has one engine per process, so a second
/// model asking for another engine is an error rather than a silent switch under the first.
pub fn set_quantized_engine(engine: QuantizedEngine) -> Result<(), RuntimeError> {
    static CHOSEN: Mutex<Option<QuantizedEngine>> = Mutex::new(None);
    let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(previous) = *chosen {
        return if previous == engine {
            Ok(())
        } else {
            Err(RuntimeError::QuantizedEngineInUse {
                previous,
                asked: engine,
            })
        };
    }
    let c_name = CString::new(engine.as_str()).expect("engine names have no NUL byte");
    let mut error = [0 as c_char; 512];
    // SAFETY: the shim writes at most `error.len()` bytes (NUL-terminated) into `error`.
    let status = unsafe { detbench_set_qengine(c_name.as_ptr(), error.as_mut_ptr(), error.len()) };
    if status != 0 {
        // SAFETY: the shim NUL-terminates what it wrote (snprintf).
        let message = unsafe { CStr::from_ptr(error.as_ptr()) };
        return Err(RuntimeError::Shim(message.to_string_lossy().into_owned()));
    }
    *chosen = Some(engine);
    Ok(())
}

/// The quantized engine libtorch uses now.
pub fn quantized_engine() -> String {
    // SAFETY: the shim returns a pointer to a static string literal.
    unsafe { CStr::from_ptr(detbench_qengine()) }
        .to_string_lossy()
        .into_owned()
}

/// `torch.inference_mode()` for the life of the guard, on the thread that made it: autograd off,
/// and the autograd and ADInplaceOrView dispatch keys skipped on every operator. Not `Send`: the
/// guard must be dropped on the thread that entered the mode.
pub struct InferenceModeGuard {
    guard: *mut c_void,
}

impl InferenceModeGuard {
    pub fn enter() -> Result<Self, RuntimeError> {
        let mut error = [0 as c_char; 512];
        // SAFETY: the buffer is valid for its length; the shim writes a NUL-terminated message.
        let guard = unsafe { detbench_inference_mode_enter(error.as_mut_ptr(), error.len()) };
        if guard.is_null() {
            // SAFETY: the shim wrote a NUL-terminated string into the buffer.
            let message = unsafe { CStr::from_ptr(error.as_ptr()) };
            return Err(RuntimeError::Shim(message.to_string_lossy().into_owned()));
        }
        Ok(Self { guard })
    }
}

impl Drop for InferenceModeGuard {
    fn drop(&mut self) {
        // SAFETY: `guard` came from detbench_inference_mode_enter on this thread (the type is not
        // Send) and is released exactly once.
        unsafe { detbench_inference_mode_exit(self.guard) }
    }
}

/// Makes glibc's malloc keep freed memory and serve large blocks from the heap instead of fresh
/// `mmap`s (`mallopt(M_MMAP_MAX, 0)`, `mallopt(M_TRIM_THRESHOLD, max)`), once per process.
///
/// Why: CUDA outputs are copied into new host vectors on every call; Mask R-CNN's 100 masks at
/// image size are ~120 MB per image. glibc serves blocks above 32 MB with a fresh `mmap`, so every
/// call page-faults the whole buffer in (tens of ms in a VM) and `munmap`s it afterwards. With
/// these settings the next call's buffer reuses pages that are already resident. The setting is
/// recorded in the backend's options (`malloc`).
pub fn keep_large_buffers_resident() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: mallopt only changes allocator parameters; it is called before the buffers it
        // affects are allocated and is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, c_int::MAX);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stub is loaded from memory and then answers to its soname, which is what
    /// torchvision's `_C.so` names in its DT_NEEDED entry.
    #[test]
    fn the_stub_loads_from_memory_under_its_soname() {
        load_torch_python_stub().unwrap();
        // SAFETY: RTLD_NOLOAD only asks whether a library with this soname is loaded.
        let handle = unsafe {
            libc::dlopen(
                c"libtorch_python.so".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_NOLOAD,
            )
        };
        assert!(!handle.is_null(), "libtorch_python.so is not loaded");
        // A second call finds it loaded and does nothing.
        load_torch_python_stub().unwrap();
        // The fallback for machines without memfds loads too, and leaves no folder behind.
        let before = leftover_stub_folders();
        load_stub_from_private_folder().unwrap();
        assert_eq!(leftover_stub_folders(), before);
    }

    fn leftover_stub_folders() -> usize {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("detbench-stub-")
                })
            })
            .count()
    }
}
