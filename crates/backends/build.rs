//! Build script of detbench-backends. With the `torch` feature it compiles two small native
//! pieces against the libtorch that `torch-sys` found (crates/libtorch-build):
//!
//! * `src/torch/shim.cpp`, a static library with the libtorch settings tch does not expose
//!   (quantized engine, operator lookup; see the file);
//! * an empty shared library whose soname is `libtorch_python.so`. torchvision's ops library
//!   (`torchvision/_C.so`) lists `libtorch_python.so` as a dependency although the ops use none
//!   of its symbols (they all live in `libtorch_cpu.so`); the real one needs a Python
//!   interpreter's symbols. Loading this stub first satisfies the dependency by soname. It is
//!   embedded in the binary (`include_bytes!`), so nothing extra travels with it.
//!
//! Without the `torch` feature it does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "torch")]
    torch::build();
}

#[cfg(feature = "torch")]
mod torch {
    use std::path::PathBuf;
    use std::process::Command;

    use detbench_libtorch_build::{Libtorch, cc};

    pub fn build() {
        println!("cargo:rerun-if-changed=src/torch/shim.cpp");
        Libtorch::from_torch_sys()
            .cc_build()
            .file("src/torch/shim.cpp")
            .compile("detbench_torch_shim");

        build_torch_python_stub();
    }

    /// `$OUT_DIR/libtorch_python_stub.so`: an empty shared library with soname `libtorch_python.so`.
    fn build_torch_python_stub() {
        let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        let source = out_dir.join("torch_python_stub.c");
        std::fs::write(
            &source,
            "/* Stands in for libtorch_python.so; see crates/backends/build.rs. */\n\
         int detbench_torch_python_stub(void) { return 0; }\n",
        )
        .expect("write the stub source");
        let output = out_dir.join("libtorch_python_stub.so");
        let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
        let status = Command::new(compiler.path())
            .args(["-shared", "-fPIC", "-Wl,-soname,libtorch_python.so", "-o"])
            .arg(&output)
            .arg(&source)
            .status()
            .expect("run the C compiler for the libtorch_python stub");
        assert!(status.success(), "building the libtorch_python stub failed");
    }
}
