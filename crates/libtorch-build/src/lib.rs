//! What the build scripts of detbench-backends, detbench-native and detbench-train share when
//! they compile C++ against libtorch (each with its `torch`/`cuda` feature): where `torch-sys`
//! found libtorch (its `DEP_TCH_LIBTORCH_LIB`, i.e. `$LIBTORCH/lib`), the folders of the PyPI
//! wheels beside it, and a C++17 `cc::Build` with libtorch's headers and the ABI flags torch-sys
//! compiles its own C++ with (torch-sys build.rs, `SystemInfo::make`), and the CUDA 13 / NCCL
//! header folders of the wheels torch 2.11 installs beside itself ([`Libtorch::cuda_includes`]).
//! A build-dependency only: panicking is how a build script reports what is missing.

use std::path::{Path, PathBuf};

pub use cc;

/// The libtorch that `torch-sys` found.
#[derive(Debug, Clone)]
pub struct Libtorch {
    /// `$LIBTORCH` (the wheel's `torch/` folder).
    pub root: PathBuf,
    /// `$LIBTORCH/lib`.
    pub lib_dir: PathBuf,
    /// `_GLIBCXX_USE_CXX11_ABI`: `$LIBTORCH_CXX11_ABI`, else 1 (the PyPI wheels').
    pub cxx11_abi: String,
}

impl Libtorch {
    /// The libtorch of `torch-sys` (a dependency of the crate being built, which makes cargo pass
    /// `DEP_TCH_LIBTORCH_LIB`); also asks cargo to re-run the script when the ABI setting changes.
    pub fn from_torch_sys() -> Libtorch {
        let lib_dir = PathBuf::from(
            std::env::var("DEP_TCH_LIBTORCH_LIB")
                .expect("torch-sys did not report its libtorch lib dir (DEP_TCH_LIBTORCH_LIB)"),
        );
        let root = lib_dir
            .parent()
            .expect("the libtorch lib dir has a parent")
            .to_path_buf();
        println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
        let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
        Libtorch {
            root,
            lib_dir,
            cxx11_abi,
        }
    }

    /// libtorch's two include folders.
    pub fn includes(&self) -> [PathBuf; 2] {
        [
            self.root.join("include"),
            self.root.join("include/torch/csrc/api/include"),
        ]
    }

    /// The folder holding the torch wheel's packages (`<deps>/torch`: `torch/`, and the
    /// `nvidia/` CUDA wheels beside it).
    pub fn wheels(&self) -> PathBuf {
        self.root
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// The compiler flags every C++ file compiled against libtorch needs besides the includes:
    /// C++17 and torch-sys's ABI defines.
    pub fn cxx_flags(&self) -> [String; 3] {
        [
            "-std=c++17".to_owned(),
            format!("-D_GLIBCXX_USE_CXX11_ABI={}", self.cxx11_abi),
            "-DGLOG_USE_GLOG_EXPORT".to_owned(),
        ]
    }

    /// A position-independent C++ build with libtorch's includes and [`Libtorch::cxx_flags`]
    /// (compiler warnings off: libtorch's headers are noisy).
    pub fn cc_build(&self) -> cc::Build {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .pic(true)
            .warnings(false)
            .includes(self.includes());
        for flag in self.cxx_flags() {
            build.flag(flag);
        }
        build
    }

    /// The header folders of the CUDA wheels, in search order: `$DETBENCH_CUDA_INCLUDE` (a path
    /// list) when set, else the runtime's and NCCL's (`<wheels>/nvidia/{cu13,nccl}/include`) and
    /// the nvidia-cuda-crt wheel's (`<deps>/cuda-crt/nvidia/cu13/include`: CUDA 13 moved
    /// `crt/*.h` out of the runtime wheel; `scripts/setup.sh --torch` installs it there). Cargo
    /// re-runs the script when the variable changes.
    pub fn cuda_includes(&self) -> Vec<PathBuf> {
        println!("cargo:rerun-if-env-changed={CUDA_INCLUDE_ENV}");
        if let Some(list) = std::env::var_os(CUDA_INCLUDE_ENV).filter(|v| !v.is_empty()) {
            return std::env::split_paths(&list).collect();
        }
        let wheels = self.wheels();
        let deps = wheels.parent().map(Path::to_path_buf).unwrap_or_default();
        vec![
            wheels.join("nvidia/cu13/include"),
            wheels.join("nvidia/nccl/include"),
            deps.join("cuda-crt/nvidia/cu13/include"),
        ]
    }
}

/// The variable that names the CUDA header folders ([`Libtorch::cuda_includes`]).
pub const CUDA_INCLUDE_ENV: &str = "DETBENCH_CUDA_INCLUDE";

/// Whether `header` (a path such as `crt/host_defines.h`) is in one of `dirs`.
pub fn has_header(dirs: &[PathBuf], header: &str) -> bool {
    dirs.iter().any(|dir| dir.join(header).is_file())
}
