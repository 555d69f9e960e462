//! Build script of detbench-train. With the `torch` feature it compiles, against the libtorch
//! that `torch-sys` found (`DEP_TCH_LIBTORCH_LIB`), as crates/backends/build.rs does:
//!
//! * `src/torch/shim.cpp`, a static library over libtorch_cpu (module, autocast, SGD and
//!   GradScaler, c10d stores and ProcessGroupGloo). ProcessGroupGloo's header includes gloo's,
//!   which the torch wheel does not ship: Debian's `libgloo-dev` provides them (the class layout
//!   only holds gloo types behind pointers, so the header version does not change it);
//!   `scripts/setup.sh --torch` installs it.
//! * `src/torch/cuda_shim.cpp`, a shared library over libtorch_cuda / libc10_cuda (allocator
//!   statistics, ProcessGroupNCCL), embedded in the binary and opened only when CUDA is used.
//!   It needs the CUDA and NCCL headers of the nvidia-* wheels beside the libtorch
//!   (`<libtorch>/../nvidia/{cu13,nccl}/include`, `$DETBENCH_CUDA_INCLUDE` to name others);
//!   without them an empty library is embedded and the CUDA-only features say so at run time.
//!
//! Without the `torch` feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "torch")]
    torch::build();
}

#[cfg(feature = "torch")]
mod torch {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    pub fn build() {
        println!("cargo:rerun-if-changed=src/torch/shim.cpp");
        println!("cargo:rerun-if-changed=src/torch/cuda_shim.cpp");
        println!("cargo:rerun-if-env-changed=DETBENCH_CUDA_INCLUDE");
        println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
        let lib_dir = PathBuf::from(
            std::env::var("DEP_TCH_LIBTORCH_LIB")
                .expect("torch-sys did not report its libtorch lib dir (DEP_TCH_LIBTORCH_LIB)"),
        );
        let root = lib_dir
            .parent()
            .expect("the libtorch lib dir has a parent")
            .to_path_buf();
        let includes = [
            root.join("include"),
            root.join("include/torch/csrc/api/include"),
        ];
        let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
        if !Path::new("/usr/include/gloo/algorithm.h").is_file() {
            panic!(
                "gloo's headers are missing (/usr/include/gloo): install Debian's libgloo-dev \
                 (scripts/setup.sh --torch does)"
            );
        }
        cc::Build::new()
            .cpp(true)
            .pic(true)
            .warnings(false)
            .includes(&includes)
            .flag("-std=c++17")
            .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
            .flag("-DGLOG_USE_GLOG_EXPORT")
            .flag("-DUSE_C10D_GLOO")
            .file("src/torch/shim.cpp")
            .compile("detbench_train_shim");
        build_cuda_shim(&root, &lib_dir, &includes, &cxx11_abi);
    }

    /// `$OUT_DIR/libdetbench_train_cuda.so` (see the module documentation).
    fn build_cuda_shim(root: &Path, lib_dir: &Path, includes: &[PathBuf], cxx11_abi: &str) {
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let output = out_dir.join("libdetbench_train_cuda.so");
        // <deps>/torch/torch -> <deps>/torch/nvidia (the CUDA wheels) and <deps>/cuda-crt (the
        // nvidia-cuda-crt wheel: CUDA 13 moved crt/*.h there).
        let torch_dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let nvidia = torch_dir.join("nvidia");
        let crt = torch_dir
            .parent()
            .map(|d| d.join("cuda-crt/nvidia/cu13/include"))
            .unwrap_or_default();
        let cuda_includes: Vec<PathBuf> = match std::env::var_os("DETBENCH_CUDA_INCLUDE") {
            Some(v) => std::env::split_paths(&v).collect(),
            None => vec![
                nvidia.join("cu13/include"),
                nvidia.join("nccl/include"),
                crt,
            ],
        };
        let found = |file: &str| cuda_includes.iter().any(|p| p.join(file).is_file());
        let have_headers =
            found("cuda_runtime_api.h") && found("nccl.h") && found("crt/host_config.h");
        let compiler = cc::Build::new()
            .cpp(true)
            .cargo_metadata(false)
            .get_compiler();
        let mut cmd = Command::new(compiler.path());
        if have_headers {
            cmd.args(["-shared", "-fPIC", "-O2", "-std=c++17", "-w"])
                .arg(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
                .args(["-DGLOG_USE_GLOG_EXPORT", "-DUSE_C10D_NCCL"]);
            for dir in includes.iter().chain(&cuda_includes) {
                cmd.arg(format!("-I{}", dir.display()));
            }
            cmd.arg("src/torch/cuda_shim.cpp")
                .arg(format!("-L{}", lib_dir.display()))
                .args([
                    "-Wl,--no-as-needed",
                    "-ltorch_cuda",
                    "-lc10_cuda",
                    "-ltorch_cpu",
                    "-lc10",
                ])
                .arg("-o")
                .arg(&output);
        } else {
            println!(
                "cargo:warning=CUDA/NCCL headers not found in {:?}: the CUDA shim (peak memory, \
                 NCCL) is left out; set DETBENCH_CUDA_INCLUDE",
                cuda_includes
            );
            let source = out_dir.join("cuda_shim_empty.c");
            std::fs::write(
                &source,
                "int detbench_train_cuda_shim_missing(void) { return 1; }\n",
            )
            .expect("write the empty CUDA shim");
            cmd.args(["-shared", "-fPIC", "-x", "c"])
                .arg(&source)
                .arg("-o")
                .arg(&output);
        }
        let status = cmd
            .status()
            .expect("run the C++ compiler for the CUDA shim");
        assert!(status.success(), "building the CUDA shim failed: {cmd:?}");
    }
}
