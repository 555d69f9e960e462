//! `detbench run` under the faults of issue 11: outputs checked before the timed pass, a
//! measurement kept when an output cannot be written, Ctrl-C, permissions, arguments that used
//! to panic or hang, odd image folders, and the newcomer's defaults (store location, `--model
//! all`, a batch size no model takes).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn detbench(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detbench"));
    // The default store lives in the data folder: keep it inside the test's folder.
    command
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env_remove("DETBENCH_DB");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn results(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap()
}

/// A quick run: the first `limit` images, no warm-up, no store.
fn quick(home: &Path, model: &str, limit: &str) -> Command {
    let mut command = detbench(home);
    command.args([
        "run", "--model", model, "--limit", limit, "--warmup", "0", "--quiet",
    ]);
    command
}

#[test]
fn outputs_are_checked_before_the_timed_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt.json");
    std::fs::copy(detbench_assets::shared::instances_subset().unwrap(), &gt).unwrap();
    let before = std::fs::read(&gt).unwrap();
    let refused = |command: &mut Command, wanted: &str| {
        let started = Instant::now();
        let out = command.arg("--no-store").output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(wanted), "{wanted:?} not in:\n{stderr}");
        assert!(
            !stderr.contains("images; decode"),
            "the pass ran:\n{stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    };
    // The ground truth as the detections file.
    refused(
        quick(tmp.path(), "fastestdet", "2")
            .arg("--annotations")
            .arg(&gt)
            .arg("--save-detections")
            .arg(&gt),
        "would overwrite",
    );
    assert_eq!(std::fs::read(&gt).unwrap(), before);
    // The run's own results.json.
    let out = tmp.path().join("out");
    refused(
        quick(tmp.path(), "fastestdet", "2")
            .arg("--out")
            .arg(&out)
            .arg("--save-detections")
            .arg(out.join("results.json")),
        "which this run writes too",
    );
    // A folder that cannot be written (even by root).
    refused(
        quick(tmp.path(), "fastestdet", "2").args(["--out", "/proc/detbench-out"]),
        "--out /proc/detbench-out: cannot write in /proc",
    );
    // A folder that already holds results, unless --overwrite; umask 022 gives 0644 files.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("results.json"), b"{}").unwrap();
    refused(
        quick(tmp.path(), "fastestdet", "2").arg("--out").arg(&out),
        "already holds results (results.json); pass --overwrite",
    );
    let script = format!(
        "umask 022; exec \"$0\" run --model fastestdet --limit 2 --warmup 0 --quiet --no-store \
         --overwrite --out '{}'",
        out.display()
    );
    let run = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_detbench")])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    for name in ["results.md", "results.csv", "results.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{name}");
    }
    assert_eq!(results(&out)["models"][0]["status"], "ok");
}

/// results.json cannot be written (a folder is in its place): no results file is replaced
/// (they are a set), the detections and the store still get the run, and the error says what
/// is missing.
#[test]
fn a_failed_output_keeps_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("results.json")).unwrap();
    let dets = tmp.path().join("dets.json");
    let db = tmp.path().join("store.db");
    let run = quick(tmp.path(), "fastestdet", "2")
        .arg("--overwrite")
        .arg("--out")
        .arg(&out)
        .arg("--save-detections")
        .arg(&dets)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("some outputs were not written")
            && stderr.contains("results.md, results.csv and results.json in"),
        "{stderr}"
    );
    assert!(!out.join("results.md").exists());
    assert!(dets.is_file());
    assert!(stderr.contains("recorded in the results store"), "{stderr}");
    let list = detbench(tmp.path())
        .args(["report", "--list-runs", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        text(&list.stdout).contains("detbench run"),
        "{}",
        text(&list.stdout)
    );
}

/// Spawns a run and returns it with its stderr lines, sending SIGINT (`count` times, `gap`
/// apart) once a line containing `when` appears.
fn interrupt_when(
    mut command: Command,
    when: &str,
    count: usize,
    gap: Duration,
) -> (Output, String) {
    let mut child = command
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let mut sent = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if !sent && line.contains(when) {
            for i in 0..count {
                if i > 0 {
                    std::thread::sleep(gap);
                }
                Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status()
                    .unwrap();
            }
            sent = true;
        }
    }
    (child.wait_with_output().unwrap(), seen)
}

#[test]
fn ctrl_c_keeps_the_finished_rows_and_a_second_one_exits_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = tmp.path().join("store.db");
    let mut command = quick(tmp.path(), "fastestdet,yolox_nano", "40");
    command.arg("--out").arg(&out).arg("--db").arg(&db);
    let (run, stderr) = interrupt_when(command, "yolox_nano: 40 images", 1, Duration::ZERO);
    assert_eq!(run.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted (Ctrl-C): 1 finished row(s)"),
        "{stderr}"
    );
    let json = results(&out);
    assert_eq!(json["interrupted"], true);
    assert_eq!(json["models"].as_array().unwrap().len(), 1);
    assert_eq!(json["models"][0]["name"], "fastestdet");
    assert_eq!(json["skipped"][0]["name"], "yolox_nano");
    assert!(
        json["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not measured: the run was interrupted (Ctrl-C)"),
        "{}",
        json["skipped"]
    );
    assert!(stderr.contains("recorded in the results store"), "{stderr}");

    // Two Ctrl-C while the first chunk of images is decoded: out at once, nothing written.
    let out = tmp.path().join("out2");
    let mut command = quick(tmp.path(), "yolox_nano", "206");
    command
        .args(["--decode-threads", "1", "--no-store"])
        .arg("--out")
        .arg(&out);
    let (run, stderr) = interrupt_when(
        command,
        "yolox_nano: 206 images",
        2,
        Duration::from_millis(100),
    );
    assert_eq!(run.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("second Ctrl-C: exiting now"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn arguments_that_used_to_panic_or_hang_are_refused_or_taken() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, wanted) in [
        (
            &["--threads", "100000"][..],
            "--threads 100000: this machine has",
        ),
        (
            &["--decode-threads", "0"][..],
            "--decode-threads 0: give at least 1",
        ),
        (
            &["--decode-threads", "100000"][..],
            "--decode-threads 100000: this machine has",
        ),
        (
            &["--decode-chunk", "0"][..],
            "--decode-chunk 0: a chunk holds at least 1 image",
        ),
    ] {
        let started = Instant::now();
        let out = quick(tmp.path(), "fastestdet", "2")
            .args(args)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?}");
    }
    // A non-UTF-8 output folder: taken as given (clap reads arguments as OsString).
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::OsStr::from_bytes(b"o_\xff");
    let out = tmp.path().join(name);
    let run = quick(tmp.path(), "fastestdet", "1")
        .arg("--no-store")
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.join("results.json").is_file());
}

#[test]
fn odd_image_folders_and_mismatched_ground_truth_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    std::fs::create_dir_all(images.join("x.jpg")).unwrap();
    std::os::unix::fs::symlink(images.join("gone.jpg"), images.join("link.jpg")).unwrap();
    let coco = detbench_assets::shared::coco_images().unwrap();
    std::fs::copy(
        coco.join("000000000139.jpg"),
        images.join("000000000139.jpg"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let run = detbench(tmp.path())
        .args([
            "run",
            "--model",
            "fastestdet",
            "--warmup",
            "0",
            "--quiet",
            "--no-store",
        ])
        .arg("--images")
        .arg(&images)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let json = results(&out);
    let failed: Vec<(String, String)> = json["models"][0]["failed_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_owned(),
                f["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].0 == "link.jpg"
            && failed[0]
                .1
                .contains("symbolic link whose target does not exist"),
        "{failed:?}"
    );
    assert!(
        failed[1].0 == "x.jpg" && failed[1].1.contains("a folder, not an image file"),
        "{failed:?}"
    );

    // A keypoint model scored on an instances file: a failed row that says why, not -1s.
    let instances = detbench_assets::shared::instances_subset().unwrap();
    let run = quick(tmp.path(), "simplepose_yolox", "2")
        .arg("--no-store")
        .arg("--keypoint-annotations")
        .arg(&instances)
        .arg("--out")
        .arg(tmp.path().join("kp"))
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has no annotation with keypoints (an instances file?)"),
        "{stderr}"
    );
}

#[test]
fn newcomer_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    // The default store is in the platform data folder, and `env` and the run say where.
    let store: PathBuf = tmp.path().join("data/detbench/detbench.db");
    let run = quick(tmp.path(), "fastestdet", "1")
        .arg("--out")
        .arg(tmp.path().join("out"))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(store.is_file(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "recorded in the results store {} as run 1",
            store.display()
        )),
        "{stderr}"
    );
    let env = detbench(tmp.path()).arg("env").output().unwrap();
    assert!(
        text(&env.stdout).contains(&format!("results store  {} (default)", store.display())),
        "{}",
        text(&env.stdout)
    );
    // A batch size no model takes: said, and a failure.
    let run = quick(tmp.path(), "fastestdet", "1")
        .args(["--batch", "100000", "--no-store", "--out"])
        .arg(tmp.path().join("big"))
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nothing was measured: every batch size was skipped"),
        "{stderr}"
    );
    // An expected error has no backtrace, whatever RUST_BACKTRACE says.
    let run = detbench(tmp.path())
        .env("RUST_BACKTRACE", "1")
        .args([
            "eval",
            "--gt",
            "missing.json",
            "--dt",
            "missing.json",
            "--iou-type",
            "bbox",
        ])
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read missing.json"),
        "{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

/// `--model all` leaves out what the default build cannot run (D2Go needs `--features torch`)
/// with a note, instead of failing the run.
#[cfg(not(feature = "torch"))]
#[test]
fn model_all_leaves_out_models_the_build_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = quick(tmp.path(), "all", "1")
        .arg("--no-store")
        .arg("--out")
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("need the torch engine, which this build does not have")
            && stderr.contains("d2go_fasterrcnn_fbnetv3a_int8"),
        "{stderr}"
    );
    let json = results(&tmp.path().join("out"));
    assert!(
        json["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "ok" && m["backend"]["engine"] == "onnxruntime")
    );
}

/// `show` writes the format its `--out` extension names (or refuses), and `--exif-rotate` turns
/// a photo upright by its EXIF orientation (by default pixels are used as stored, as for COCO).
#[test]
fn show_picks_the_format_and_can_turn_photos_upright() {
    let tmp = tempfile::tempdir().unwrap();
    let coco = detbench_assets::shared::coco_images().unwrap();
    // A COCO image (640x426) with an EXIF segment saying "rotate 90 clockwise".
    let jpeg = std::fs::read(coco.join("000000000139.jpg")).unwrap();
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend(1u16.to_le_bytes());
    tiff.extend(0x0112u16.to_le_bytes());
    tiff.extend(3u16.to_le_bytes());
    tiff.extend(1u32.to_le_bytes());
    tiff.extend(6u16.to_le_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut photo = vec![0xFF, 0xD8, 0xFF, 0xE1];
    photo.extend(((app1.len() + 2) as u16).to_be_bytes());
    photo.extend(app1);
    photo.extend(&jpeg[2..]);
    let image = tmp.path().join("photo.jpg");
    std::fs::write(&image, photo).unwrap();
    let show = |out: &Path, extra: &[&str]| {
        detbench(tmp.path())
            .args(["show", "--model", "fastestdet", "--image"])
            .arg(&image)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = show(&tmp.path().join("s.webp"), &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("use .png, .jpg or .jpeg"),
        "{}",
        text(&refused.stderr)
    );
    let jpg = tmp.path().join("s.jpg");
    let run = show(&jpg, &[]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let written = std::fs::read(&jpg).unwrap();
    assert_eq!(&written[..3], b"\xFF\xD8\xFF", "a JPEG file");
    let stored = detbench_imgproc::decode_bytes(&written, "s.jpg").unwrap();
    assert_eq!((stored.width, stored.height), (640, 426));
    let png = tmp.path().join("s.png");
    let run = show(&png, &["--exif-rotate"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let upright = detbench_imgproc::decode_file(&png).unwrap();
    assert_eq!((upright.width, upright.height), (426, 640));
}

/// Importing the same Markdown twice (same content, source and device) is refused unless
/// `--again`.
#[test]
fn import_md_detects_a_second_import() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("zoo.md");
    std::fs::write(&md, "| Weight | Box MAP |\n|---|---|\n| a | 21.3 |\n").unwrap();
    let db = tmp.path().join("s.db");
    let import = |extra: &[&str]| {
        detbench(tmp.path())
            .arg("import-md")
            .arg(&md)
            .args(["--source", "Zoo", "--db"])
            .arg(&db)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(import(&[]).status.success());
    let again = import(&[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("was already imported as \"published: Zoo\"")
            && text(&again.stderr).contains("(run 1)"),
        "{}",
        text(&again.stderr)
    );
    assert!(import(&["--again"]).status.success());
}
