//! Shared pieces of the trainer's tests: the Python interpreter with torch + torchvision (live
//! peer, installed by `scripts/setup.sh --train`), the small Mask R-CNN exported once per target
//! folder, and the shipped COCO subset.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Environment variable naming the Python interpreter (default `<deps>/venv/bin/python`).
pub const PYTHON_ENV: &str = "DETBENCH_TRAIN_PYTHON";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn shared() -> PathBuf {
    detbench_assets::shared_dir().expect("the shared data folder (DETBENCH_SHARED)")
}

pub fn annotations() -> PathBuf {
    shared().join("coco/annotations/instances_val2017_subset.json")
}

pub fn images() -> PathBuf {
    shared().join("coco/val2017")
}

/// A `python` command with torch and torchvision importable.
pub fn python() -> Command {
    let deps = detbench_assets::deps_dir().expect("the .deps folder (scripts/setup.sh --train)");
    let interpreter = std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| deps.join("venv/bin/python"));
    assert!(
        interpreter.is_file(),
        "no Python interpreter at {} (run scripts/setup.sh --train, or set ${PYTHON_ENV})",
        interpreter.display()
    );
    let mut cmd = Command::new(interpreter);
    let path = std::env::join_paths([deps.join("torch"), deps.join("torchvision")]).unwrap();
    cmd.env("PYTHONPATH", path).env("PYTHONUNBUFFERED", "1");
    cmd
}

/// The Mask R-CNN of the CPU tests (min_size 320, max_size 512, seed 0), exported once.
pub fn small_maskrcnn() -> PathBuf {
    small_model("maskrcnn_resnet50_fpn")
}

/// A torchvision detector of the CPU tests (`maskrcnn_resnet50_fpn`, `fasterrcnn_resnet50_fpn`,
/// `retinanet_resnet50_fpn` or `keypointrcnn_resnet50_fpn`; min_size 320, max_size 512, seed 0),
/// exported once into the target's temporary folder, which every test binary of the workspace
/// shares (the CLI's training test uses the same files).
pub fn small_model(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train-models");
    let file = dir.join(format!("{name}_small.pt"));
    if !file.is_file() {
        let status = python()
            .arg(repo_root().join("tools/train/export_train_models.py"))
            .args(["--models", name, "--min-size", "320", "--max-size", "512"])
            .args(["--suffix", "small", "--seed", "0", "--out"])
            .arg(&dir)
            .status()
            .expect("run export_train_models.py");
        assert!(status.success(), "export_train_models.py failed for {name}");
    }
    file
}

/// The shipped person-keypoints subset (Keypoint R-CNN's training set).
pub fn keypoint_annotations() -> PathBuf {
    shared().join("coco/annotations/person_keypoints_val2017_subset.json")
}
