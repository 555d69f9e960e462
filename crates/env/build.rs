//! Build-time provenance for the environment capture: the detbench version (`git describe
//! --always --dirty` of the checkout being built, else the crate version) and the rustc that
//! compiled it. Both end up in every recorded run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DETBENCH_VERSION");
    let version = std::env::var("DETBENCH_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(git_describe)
        .unwrap_or_else(|| std::env::var("CARGO_PKG_VERSION").unwrap_or_default());
    println!("cargo:rustc-env=DETBENCH_BUILD_VERSION={version}");

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = run(Command::new(rustc).arg("--version")).unwrap_or_default();
    println!("cargo:rustc-env=DETBENCH_BUILD_RUSTC={rustc_version}");
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=DETBENCH_BUILD_PROFILE={profile}");
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=DETBENCH_BUILD_TARGET={target}");
}

/// `git describe --always --dirty` of the repository holding this crate, and the files whose
/// change must re-run this script (HEAD, the branch ref, the index).
fn git_describe() -> Option<String> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").ok()?);
    let git_dir = run(Command::new("git")
        .current_dir(&manifest_dir)
        .args(["rev-parse", "--absolute-git-dir"]))?;
    let git_dir = Path::new(&git_dir);
    for watched in ["HEAD", "index", "packed-refs"] {
        let path = git_dir.join(watched);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if let Some(branch_ref) = std::fs::read_to_string(git_dir.join("HEAD"))
        .ok()
        .and_then(|head| head.strip_prefix("ref: ").map(|r| r.trim().to_owned()))
    {
        let path = git_dir.join(branch_ref);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    run(Command::new("git")
        .current_dir(&manifest_dir)
        .args(["describe", "--always", "--dirty", "--tags"]))
}

fn run(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}
