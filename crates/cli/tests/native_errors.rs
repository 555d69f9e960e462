//! `detbench run --backend native` refuses what the native engine cannot run before anything
//! runs, naming what it runs instead: a model it does not implement, fp16 on the CPU, and (in a
//! build without the `cuda` feature) itself, with the feature to rebuild with. No results folder
//! is written for a refused run.

use std::process::{Command, Output};

fn run(args: &[&str]) -> (Output, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_detbench"))
        .args(["run", "--backend", "native", "--quiet", "--no-store"])
        .args(args)
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    (output, tmp)
}

fn refused(args: &[&str]) -> String {
    let (output, tmp) = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    assert!(
        !tmp.path().join("out").exists(),
        "a refused run wrote its results folder"
    );
    stderr
}

#[test]
fn a_model_the_engine_does_not_implement_is_refused_naming_the_three_it_does() {
    let stderr = refused(&[
        "--model",
        "fasterrcnn_resnet50_fpn,ssdlite320_mobilenet_v3_large",
    ]);
    if cfg!(feature = "cuda") {
        assert!(
            stderr.contains("does not run `ssdlite320_mobilenet_v3_large`"),
            "{stderr}"
        );
        for name in [
            "fasterrcnn_resnet50_fpn",
            "maskrcnn_resnet50_fpn",
            "retinanet_resnet50_fpn",
        ] {
            assert!(stderr.contains(name), "{stderr}");
        }
    } else {
        assert!(
            stderr.contains("no native engine") && stderr.contains("--features cuda"),
            "{stderr}"
        );
    }
}

#[test]
fn a_model_of_another_family_is_refused() {
    let stderr = refused(&["--model", "yolox_nano"]);
    if cfg!(feature = "cuda") {
        assert!(
            stderr.contains("`yolox_nano` (Yolox family)") && stderr.contains("--backend torch"),
            "{stderr}"
        );
    } else {
        assert!(stderr.contains("--features cuda"), "{stderr}");
    }
}

#[cfg(feature = "cuda")]
#[test]
fn fp16_on_the_cpu_is_refused() {
    let stderr = refused(&[
        "--model",
        "fasterrcnn_resnet50_fpn",
        "--precision",
        "fp16",
        "--device",
        "cpu",
    ]);
    assert!(
        stderr.contains("fp16 runs on CUDA only (--device cuda)"),
        "{stderr}"
    );
}

#[test]
fn a_bad_native_option_names_the_accepted_values() {
    let (output, _tmp) = run(&[
        "--model",
        "fasterrcnn_resnet50_fpn",
        "--native-mode",
        "quick",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("quick") && stderr.contains("fast") && stderr.contains("exact"),
        "{stderr}"
    );
}
