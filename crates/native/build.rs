//! Build script of detbench-native. With the `cuda` feature it builds the engine, the C++ in
//! `cpp/`, into `$OUT_DIR/libdetbench_native.so`, which the crate embeds and loads at run time
//! (src/ffi.rs):
//!
//! * against the libtorch torch-sys found (`DEP_TCH_LIBTORCH_LIB`, i.e. `$LIBTORCH/lib`), linking
//!   libtorch_cpu, libc10, libtorch_cuda, libc10_cuda and the CUDA runtime the wheel ships;
//! * with the CUDA 13 headers of the PyPI wheels (`$LIBTORCH/../nvidia/cu13/include`, or
//!   `$DETBENCH_CUDA_INCLUDE`) and libcudart (`$LIBTORCH/../nvidia/cu13/lib`, or
//!   `$DETBENCH_CUDA_LIB`). No GPU and no CUDA toolkit are needed to build.
//!
//! `cpp/kernels/kernels.cuh` is both compiled into the library (for the CPU path) and embedded as
//! a string (`kernels_source.h`) that NVRTC compiles on the GPU machine.
//!
//! Without the feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "cuda")]
    engine::build();
}

#[cfg(feature = "cuda")]
mod engine {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    const SOURCES: [&str; 12] = [
        "api.cpp",
        "backbone.cpp",
        "boxes.cpp",
        "detector.cpp",
        "engine.cpp",
        "engine_cuda.cpp",
        "ops_cpu.cpp",
        "ops_cuda.cpp",
        "retinanet.cpp",
        "roi_heads.cpp",
        "rpn.cpp",
        "weights.cpp",
    ];

    fn env_path(name: &str) -> Option<PathBuf> {
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    pub fn build() {
        let lib_dir = PathBuf::from(
            std::env::var("DEP_TCH_LIBTORCH_LIB")
                .expect("torch-sys did not report its libtorch lib dir (DEP_TCH_LIBTORCH_LIB)"),
        );
        let root = lib_dir
            .parent()
            .expect("libtorch lib dir has a parent")
            .to_path_buf();
        let wheels = root.parent().map(Path::to_path_buf).unwrap_or_default();
        let cuda_include =
            env_path("DETBENCH_CUDA_INCLUDE").unwrap_or_else(|| wheels.join("nvidia/cu13/include"));
        let cuda_lib =
            env_path("DETBENCH_CUDA_LIB").unwrap_or_else(|| wheels.join("nvidia/cu13/lib"));
        // cuda_runtime_api.h includes crt/host_defines.h, which the runtime wheel leaves out: it
        // ships in the nvidia-cuda-crt wheel (headers only), installed beside the others or in
        // .deps/cuda-crt (or named by $DETBENCH_CUDA_CRT_INCLUDE).
        let crt_include = env_path("DETBENCH_CUDA_CRT_INCLUDE").unwrap_or_else(|| {
            if cuda_include.join("crt/host_defines.h").is_file() {
                cuda_include.clone()
            } else {
                wheels
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("cuda-crt/nvidia/cu13/include")
            }
        });
        for (what, path) in [
            ("CUDA headers", cuda_include.join("cuda_runtime_api.h")),
            (
                "CUDA crt headers (nvidia-cuda-crt wheel)",
                crt_include.join("crt/host_defines.h"),
            ),
            ("libcudart", cuda_lib.join("libcudart.so.13")),
        ] {
            if !path.is_file() {
                panic!(
                    "detbench-native (feature `cuda`) needs the {what} of the CUDA 13 wheels torch \
                     2.11 installs: {} is missing. Run scripts/setup.sh --torch (and \
                     crates/native/setup-cuda-headers.sh), or set DETBENCH_CUDA_INCLUDE / \
                     DETBENCH_CUDA_CRT_INCLUDE / DETBENCH_CUDA_LIB",
                    path.display()
                );
            }
        }
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        write_kernel_source(&out_dir);

        let cxx11_abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
        println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .pic(true)
            .warnings(false)
            .opt_level(2)
            .debug(false)
            .include("cpp")
            .include(&out_dir)
            .include(root.join("include"))
            .include(root.join("include/torch/csrc/api/include"))
            .include(&cuda_include)
            .include(&crt_include)
            .flag("-std=c++17")
            .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
            .flag("-DGLOG_USE_GLOG_EXPORT");
        for source in SOURCES {
            let path = PathBuf::from("cpp").join(source);
            println!("cargo:rerun-if-changed={}", path.display());
            build.file(path);
        }
        for header in std::fs::read_dir("cpp").expect("cpp/").flatten() {
            println!("cargo:rerun-if-changed={}", header.path().display());
        }
        let objects = build.compile_intermediates();
        link(
            &build,
            &objects,
            &lib_dir,
            &cuda_lib,
            &out_dir.join("libdetbench_native.so"),
        );
    }

    /// `kernels_source.h`: `kKernelsSource`, the kernels as a raw string literal for NVRTC.
    fn write_kernel_source(out_dir: &Path) {
        let path = Path::new("cpp/kernels/kernels.cuh");
        println!("cargo:rerun-if-changed={}", path.display());
        let source = std::fs::read_to_string(path).expect("read cpp/kernels/kernels.cuh");
        assert!(
            !source.contains(")DNKERNELS\""),
            "kernels.cuh contains the raw-string delimiter"
        );
        let header = format!(
            "// Generated by crates/native/build.rs from cpp/kernels/kernels.cuh.\n\
             #pragma once\nstatic const char kKernelsSource[] = R\"DNKERNELS({source})DNKERNELS\";\n"
        );
        std::fs::write(out_dir.join("kernels_source.h"), header).expect("write kernels_source.h");
    }

    fn link(
        build: &cc::Build,
        objects: &[PathBuf],
        lib_dir: &Path,
        cuda_lib: &Path,
        output: &Path,
    ) {
        let compiler = build.get_compiler();
        let status = Command::new(compiler.path())
            .arg("-shared")
            .arg("-Wl,-soname,libdetbench_native.so")
            .arg("-o")
            .arg(output)
            .args(objects)
            .arg(format!("-L{}", lib_dir.display()))
            .arg(format!("-L{}", cuda_lib.display()))
            .args([
                "-ltorch_cpu",
                "-lc10",
                "-ltorch_cuda",
                "-lc10_cuda",
                "-l:libcudart.so.13",
            ])
            .status()
            .expect("run the C++ compiler to link libdetbench_native.so");
        assert!(status.success(), "linking libdetbench_native.so failed");
    }
}
