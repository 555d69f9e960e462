//! Build script of detbench-train. With the `torch` feature it compiles, against the libtorch
//! that `torch-sys` found (crates/libtorch-build), as crates/backends/build.rs does:
//!
//! * `src/torch/shim.cpp`, a static library over libtorch_cpu (module, autocast, SGD and
//!   GradScaler, c10d stores and ProcessGroupGloo). ProcessGroupGloo's header includes gloo's,
//!   which the torch wheel does not ship: Debian's `libgloo-dev` provides them (the class layout
//!   only holds gloo types behind pointers, so the header version does not change it);
//!   `scripts/setup.sh --torch` installs it.
//! * `src/torch/cuda_shim.cpp`, a shared library over libtorch_cuda / libc10_cuda (allocator
//!   statistics, ProcessGroupNCCL), embedded in the binary and opened only when CUDA is used.
//!   It needs the CUDA and NCCL headers of the nvidia-* wheels beside the libtorch
//!   (`Libtorch::cuda_includes`: `<libtorch>/../nvidia/{cu13,nccl}/include` and the
//!   nvidia-cuda-crt wheel's, or `$DETBENCH_CUDA_INCLUDE` to name others);
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

    use detbench_libtorch_build::{CUDA_INCLUDE_ENV, Libtorch, cc, has_header};

    pub fn build() {
        println!("cargo:rerun-if-changed=src/torch/shim.cpp");
        println!("cargo:rerun-if-changed=src/torch/cuda_shim.cpp");
        let libtorch = Libtorch::from_torch_sys();
        if !Path::new("/usr/include/gloo/algorithm.h").is_file() {
            panic!(
                "gloo's headers are missing (/usr/include/gloo): install Debian's libgloo-dev \
                 (scripts/setup.sh --torch does)"
            );
        }
        libtorch
            .cc_build()
            .flag("-DUSE_C10D_GLOO")
            .file("src/torch/shim.cpp")
            .compile("detbench_train_shim");
        build_cuda_shim(&libtorch);
    }

    /// `$OUT_DIR/libdetbench_train_cuda.so` (see the module documentation).
    fn build_cuda_shim(libtorch: &Libtorch) {
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let output = out_dir.join("libdetbench_train_cuda.so");
        let cuda_includes = libtorch.cuda_includes();
        let have_headers = ["cuda_runtime_api.h", "nccl.h", "crt/host_config.h"]
            .iter()
            .all(|header| has_header(&cuda_includes, header));
        let compiler = cc::Build::new()
            .cpp(true)
            .cargo_metadata(false)
            .get_compiler();
        let mut cmd = Command::new(compiler.path());
        if have_headers {
            cmd.args(["-shared", "-fPIC", "-O2", "-w", "-DUSE_C10D_NCCL"])
                .args(libtorch.cxx_flags());
            for dir in libtorch.includes().iter().chain(&cuda_includes) {
                cmd.arg(format!("-I{}", dir.display()));
            }
            cmd.arg("src/torch/cuda_shim.cpp")
                .arg(format!("-L{}", libtorch.lib_dir.display()))
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
                 NCCL) is left out; set {CUDA_INCLUDE_ENV}",
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
