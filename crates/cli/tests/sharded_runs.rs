//! Sharded runs with the real YOLOX-Nano on the shipped subset: shards run as local processes
//! fed the Slurm array variables (`--shard auto`), merged, equal the unsharded run bit for bit;
//! the merge's refusals name the shards; a shard killed mid-run is named as missing;
//! `--allow-partial` marks the result; `--devices cpu,cpu` adds an "N devices" row.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The binary, with the shared data folder pinned: shards run from a temporary folder, where the
/// search for `../shared` could find another copy (e.g. `/tmp/shared`) than the unsharded run
/// does, and the reference file's path is part of the results compared.
fn detbench() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_detbench"));
    command.env(
        detbench_assets::SHARED_ENV,
        detbench_assets::shared_dir().unwrap(),
    );
    command
}

fn check(output: Output) -> Output {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `detbench run --model yolox_nano --warmup 2 --quiet` plus `extra`.
fn run(extra: &[&str]) -> Command {
    let mut command = detbench();
    command
        .args(["run", "--model", "yolox_nano", "--warmup", "2", "--quiet"])
        .args(extra);
    command
}

/// Shard `index` of `count` through `--shard auto` and Slurm's array variables, writing into
/// `root/shard-<index>` (the default out folder of an array task, under `root`).
fn slurm_task(root: &Path, index: usize, count: usize, extra: &[&str]) -> Command {
    let mut command = run(&["--shard", "auto"]);
    command
        .args(extra)
        .current_dir(root)
        .env("SLURM_ARRAY_JOB_ID", "4242")
        .env("SLURM_ARRAY_TASK_ID", index.to_string())
        .env("SLURM_ARRAY_TASK_COUNT", count.to_string())
        .env("SLURM_ARRAY_TASK_MIN", "0")
        .env("SLURM_ARRAY_TASK_MAX", (count - 1).to_string());
    command
}

fn shard_dir(root: &Path, index: usize) -> PathBuf {
    root.join("runs/slurm-4242").join(format!("shard-{index}"))
}

/// The whole subset (206 images) unsharded, and in 3 shards run at once as the 3 tasks of a
/// Slurm array would: the merge's stats, per-class AP, detections per image, failed images,
/// reference agreement and detections file equal the unsharded run's exactly; its latency
/// pools every shard's samples.
#[test]
fn a_merge_of_three_shards_equals_the_unsharded_run_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let full = root.join("full");
    check(
        run(&["--no-store", "--out"])
            .arg(&full)
            .arg("--save-detections")
            .arg(root.join("full.json"))
            .output()
            .unwrap(),
    );
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            slurm_task(root, i, 3, &[])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for task in tasks {
        check(task.wait_with_output().unwrap());
    }
    let merged = root.join("merged");
    let db = root.join("store.db");
    let merge = check(
        detbench()
            .args(["merge", "runs/slurm-4242", "--out"])
            .arg(&merged)
            .arg("--save-detections")
            .arg(root.join("merged.json"))
            .arg("--db")
            .arg(&db)
            .current_dir(root)
            .output()
            .unwrap(),
    );
    assert!(stderr(&merge).contains("as run 1"), "{}", stderr(&merge));

    let a = json(&full.join("results.json"));
    let b = json(&merged.join("results.json"));
    assert_merge_equals_the_unsharded_run(root, &a["models"][0], &b["models"][0]);
    assert_latency_pools_every_shard(root, &b["models"][0]);
    assert_shards_are_listed(&b, &merged);
    // The merged run is in the store, its shards with it.
    let store = detbench_report::Store::open(&db).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!((runs[0].shard_count, runs[0].partial), (Some(3), false));
    assert_eq!(
        store
            .query_i64("SELECT count(*) FROM result_shards", &[])
            .unwrap(),
        3
    );
}

/// The merged model row (`mb`) equals the unsharded one (`ma`) in everything but timing, and so
/// does the detections file.
fn assert_merge_equals_the_unsharded_run(root: &Path, ma: &Value, mb: &Value) {
    for key in [
        "status",
        "bbox",
        "detections_per_image",
        "failed_images",
        "reference_agreement",
        "dataset",
        "model",
        "backend",
    ] {
        assert_eq!(ma[key], mb[key], "{key} differs");
    }
    assert_eq!(ma["bbox"]["stats"].as_array().unwrap().len(), 12);
    assert!(ma["bbox"]["stats"][0].as_f64().unwrap() > 0.2);
    assert_eq!(mb["dataset"]["images"], 206);
    assert_eq!(
        std::fs::read(root.join("full.json")).unwrap(),
        std::fs::read(root.join("merged.json")).unwrap(),
        "the merged detections file differs from the unsharded run's"
    );
}

/// Latency: every shard's samples, pooled; each shard's own summary beside them.
fn assert_latency_pools_every_shard(root: &Path, mb: &Value) {
    let shards: Vec<Value> = (0..3)
        .map(|i| json(&shard_dir(root, i).join("shard.json")))
        .collect();
    let latency = &mb["latency"];
    let pooled: Vec<f64> = shards
        .iter()
        .flat_map(|s| {
            s["run"]["models"][0]["latency"]["end_to_end_samples_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let samples: Vec<f64> = latency["end_to_end_samples_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(samples, pooled);
    assert_eq!(samples.len(), 206);
    assert_eq!(latency["timed_images"], 206);
    let mut sorted = samples.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(latency["end_to_end"]["p99"].as_f64().unwrap(), sorted[203]);
    assert_eq!(latency["end_to_end"]["max"].as_f64().unwrap(), sorted[205]);
    let per_shard = mb["sharding"]["shards"].as_array().unwrap();
    assert_eq!(per_shard.len(), 3);
    for (i, shard) in per_shard.iter().enumerate() {
        let own = &shards[i]["run"]["models"][0]["latency"];
        assert_eq!(shard["shard"], i);
        assert_eq!(shard["end_to_end"], own["end_to_end"]);
        assert_eq!(shard["images"], [69, 69, 68][i]);
    }
}

/// Each shard's environment and command line are listed, in results.json (`b`) and results.md.
fn assert_shards_are_listed(b: &Value, merged: &Path) {
    let sharding = &b["sharding"];
    assert_eq!(sharding["count"], 3);
    assert_eq!(sharding["partial"], false);
    for (i, origin) in sharding["shards"].as_array().unwrap().iter().enumerate() {
        assert_eq!(origin["shard"], i);
        assert!(origin["environment"]["cpu"].is_object());
        assert!(
            origin["command_line"]
                .as_array()
                .unwrap()
                .contains(&Value::from("auto"))
        );
    }
    let md = std::fs::read_to_string(merged.join("results.md")).unwrap();
    assert!(md.contains("- sharded: 3 shards, all merged"), "{md}");
    assert!(md.contains("## Each shard's own latency"), "{md}");
}

/// Shards on 12 images, 2 each of 3 (or another split), for the refusal tests.
fn small_shards(root: &Path, count: usize, extra: &[&str]) {
    for i in 0..count {
        check(
            slurm_task(root, i, count, &["--limit", "12"])
                .args(extra)
                .output()
                .unwrap(),
        );
    }
}

fn merge(root: &Path, inputs: &[&str], extra: &[&str]) -> Output {
    detbench()
        .arg("merge")
        .args(inputs)
        .args(["--out", "merged", "--no-store"])
        .args(extra)
        .current_dir(root)
        .output()
        .unwrap()
}

#[test]
fn missing_shards_are_named_and_a_partial_merge_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    small_shards(root, 3, &[]);
    std::fs::remove_dir_all(shard_dir(root, 1)).unwrap();
    let refused = merge(root, &["runs/slurm-4242"], &[]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("1 of 3 shards missing: shard 1/3")
            && message.contains("Rerun --shard 1/3")
            && message.contains("--allow-partial"),
        "{message}"
    );
    assert!(!root.join("merged").exists());

    let partial = check(merge(root, &["runs/slurm-4242"], &["--allow-partial"]));
    assert!(
        stderr(&partial).contains("partial merge"),
        "{}",
        stderr(&partial)
    );
    let results = json(&root.join("merged/results.json"));
    assert_eq!(results["sharding"]["partial"], true);
    assert_eq!(results["sharding"]["missing"], serde_json::json!([1]));
    assert_eq!(results["models"][0]["dataset"]["images"], 8);
    let md = std::fs::read_to_string(root.join("merged/results.md")).unwrap();
    assert!(md.contains("PARTIAL: shards 1 missing"), "{md}");
}

/// A shard killed (SIGKILL) mid-run leaves its folder without shard.json; the merge names the
/// shard and the folder.
#[test]
fn a_shard_killed_mid_run_is_named_by_the_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    check(slurm_task(root, 0, 2, &["--limit", "40"]).output().unwrap());
    let mut doomed = slurm_task(root, 1, 2, &["--limit", "40"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once its timed pass is about to start (the harness says so on stderr).
    let lines = std::io::BufReader::new(doomed.stderr.take().unwrap());
    let started = std::io::BufRead::lines(lines)
        .map_while(Result::ok)
        .any(|line| line.contains("20 images; decode"));
    assert!(started, "the shard never started its pass");
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    // The task's folder, as the job script makes it for its log.
    let dir = shard_dir(root, 1);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(!dir.join("shard.json").exists());
    let refused = merge(root, &["runs/slurm-4242"], &[]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("shard 1/2") && message.contains("shard-1"),
        "{message}"
    );
    assert!(message.contains("killed mid-run"), "{message}");
}

#[test]
fn shards_of_different_runs_are_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    small_shards(root, 2, &[]);
    // Another setting: ONNX Runtime's graph optimisation.
    let other = root.join("other");
    std::fs::create_dir(&other).unwrap();
    check(
        slurm_task(&other, 1, 2, &["--limit", "12", "--graph-opt", "basic"])
            .output()
            .unwrap(),
    );
    let mixed = merge(
        root,
        &[
            "runs/slurm-4242/shard-0",
            "other/runs/slurm-4242/shard-1/shard.json",
        ],
        &[],
    );
    let message = stderr(&mixed);
    assert!(!mixed.status.success());
    assert!(
        message.contains("not of one run: yolox_nano: backend.options differs")
            && message.contains("shard-0/shard.json")
            && message.contains("other/runs/slurm-4242/shard-1/shard.json"),
        "{message}"
    );

    // Another model.
    let model = root.join("model");
    std::fs::create_dir(&model).unwrap();
    check(
        slurm_task(&model, 1, 2, &["--limit", "12"])
            .args(["--model", "nanodet_m_320"])
            .output()
            .unwrap(),
    );
    let mixed = merge(
        root,
        &["runs/slurm-4242/shard-0", "model/runs/slurm-4242/shard-1"],
        &[],
    );
    assert!(
        stderr(&mixed).contains("models and batch sizes differs: yolox_nano in"),
        "{}",
        stderr(&mixed)
    );

    // Another image list (--limit): not the partition.
    let limit = root.join("limit");
    std::fs::create_dir(&limit).unwrap();
    check(
        slurm_task(&limit, 1, 2, &["--limit", "20"])
            .output()
            .unwrap(),
    );
    let mixed = merge(
        root,
        &["runs/slurm-4242/shard-0", "limit/runs/slurm-4242/shard-1"],
        &[],
    );
    let message = stderr(&mixed);
    assert!(
        message.contains("does not hold its part of the run")
            || message.contains("images in the run differs"),
        "{message}"
    );

    // A shard twice, and shards whose images overlap.
    let twice = merge(
        root,
        &[
            "runs/slurm-4242/shard-0",
            "runs/slurm-4242/shard-0/shard.json",
        ],
        &[],
    );
    assert!(
        stderr(&twice).contains("shard 0/2 is given twice"),
        "{}",
        stderr(&twice)
    );
    let path = shard_dir(root, 1).join("shard.json");
    let mut shard: Value = json(&path);
    shard["rows"][0]["image_ids"][0] =
        json(&shard_dir(root, 0).join("shard.json"))["rows"][0]["image_ids"][0].clone();
    std::fs::write(&path, serde_json::to_vec(&shard).unwrap()).unwrap();
    let overlap = merge(root, &["runs/slurm-4242"], &[]);
    assert!(
        stderr(&overlap).contains("shards overlap: image 139"),
        "{}",
        stderr(&overlap)
    );
}

/// Two CPU workers at once: a "2 devices" row beside the single-device row, with the same
/// accuracy bit for bit and the scaling efficiency.
#[test]
fn two_cpu_workers_add_a_row_with_the_scaling_efficiency() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let output = check(
        run(&[
            "--limit",
            "24",
            "--devices",
            "cpu,cpu",
            "--no-store",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap(),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("| yolox_nano (2 devices) |"), "{stdout}");
    let results = json(&out.join("results.json"));
    let models = results["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    let (one, two) = (&models[0], &models[1]);
    assert_eq!(one["bbox"], two["bbox"]);
    assert_eq!(one["detections_per_image"], two["detections_per_image"]);
    assert!(one.get("sharding").is_none());
    let scaling = &two["sharding"]["scaling"];
    assert_eq!(two["sharding"]["devices"], 2);
    let single = one["latency"]["images_per_second"].as_f64().unwrap();
    let both = two["latency"]["images_per_second"].as_f64().unwrap();
    assert_eq!(
        scaling["single_device_images_per_second"].as_f64().unwrap(),
        single
    );
    assert_eq!(scaling["images_per_second"].as_f64().unwrap(), both);
    let efficiency = scaling["efficiency"].as_f64().unwrap();
    assert!((efficiency - both / (2.0 * single)).abs() < 1e-12);
    assert_eq!(two["latency"]["timed_images"], 24);
    let devices = two["sharding"]["shards"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    assert!(
        devices
            .iter()
            .all(|d| d["device"] == "cpu" && d["images"] == 12)
    );
    // Each worker left its files and log.
    for worker in ["single", "shard-0", "shard-1"] {
        assert!(out.join("devices").join(format!("{worker}.log")).is_file());
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## Scaling over devices"), "{md}");
}
