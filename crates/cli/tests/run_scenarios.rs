//! `detbench run --scenario ...` with the real YOLOX-Nano on a few images of the shipped subset:
//! each scenario's LoadGen logs, results.json record and store row; accuracy mode scoring the
//! same AP as a plain run; `--mlperf` giving LoadGen's detection settings; and the settings that
//! must be refused with an error naming the flag or the config line.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn detbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
}

/// `detbench run` with `args` writing into `out` (no store unless `args` name one).
fn run(out: &Path, args: &[&str]) -> Output {
    detbench()
        .args(["run", "--quiet", "--warmup", "2", "--threads", "2"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn results(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap()
}

fn summary(out: &Path, row: &str) -> String {
    std::fs::read_to_string(out.join("loadgen").join(row).join("mlperf_log_summary.txt")).unwrap()
}

#[test]
fn single_stream_writes_loadgens_summary_results_and_a_store_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let db = tmp.path().join("store.db");
    let stdout = ok(&run(
        &out,
        &[
            "--scenario",
            "single-stream",
            "--limit",
            "8",
            "--min-duration-ms",
            "200",
            "--min-query-count",
            "20",
            "--db",
            db.to_str().unwrap(),
        ],
    ));
    assert!(stdout.contains("| yolox_nano (SingleStream) |"), "{stdout}");
    // 20 queries are short of early stopping's 64: a quick look, INVALID, and it says why.
    let text = summary(&out, "yolox_nano-SingleStream");
    assert!(text.contains("Scenario : SingleStream"), "{text}");
    assert!(text.contains("per sample: preprocess + inference + postprocess"));
    assert!(text.contains("Result is : INVALID"), "{text}");
    assert!(text.contains("  Early stopping satisfied: NO"), "{text}");
    assert!(text.contains("min_duration (ms): 200"), "{text}");
    assert!(stdout.contains("INVALID: early stopping"), "{stdout}");

    let json = results(&out);
    let s = &json["models"][0]["scenario"];
    assert_eq!(s["scenario"], "SingleStream");
    assert_eq!(s["validity"], "INVALID");
    assert_eq!(s["settings"]["min_query_count"], 20);
    assert_eq!(s["settings"]["performance_sample_count"], 8);
    let latencies = s["sample_latencies_ns"].as_array().unwrap();
    let queries = s["performance"]["query_count"].as_u64().unwrap();
    assert!(queries >= 20 && latencies.len() as u64 == queries);
    assert!(json["models"][0]["latency"].is_null());
    assert!(
        s["settings_sources"][1]
            .as_str()
            .unwrap()
            .contains("--min-duration-ms 200")
    );

    let store = detbench_report::Store::open(&db).unwrap();
    let (scenario, validity, count, blob): (String, String, i64, Vec<u8>) = store
        .sqlite_connection()
        .unwrap()
        .query_row(
            "SELECT scenario, validity, sample_count, sample_latencies_ns FROM scenario_results",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (scenario.as_str(), validity.as_str()),
        ("SingleStream", "INVALID")
    );
    assert_eq!(count as u64, queries);
    assert_eq!(blob.len() as u64, 8 * queries);
    let id = store.results(&Default::default()).unwrap()[0].result_id;
    let record = store.scenario_record(id).unwrap().unwrap();
    assert_eq!(record.sample_latencies_ns.len() as u64, queries);
}

#[test]
fn accuracy_mode_scores_the_same_ap_as_a_plain_run() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    ok(&run(&plain, &["--limit", "12", "--no-store"]));
    let scenario = tmp.path().join("scenario");
    ok(&run(
        &scenario,
        &[
            "--scenario",
            "offline",
            "--mode",
            "accuracy",
            "--limit",
            "12",
            "--no-store",
        ],
    ));
    let a = results(&plain)["models"][0]["bbox"]["stats"].clone();
    let b = results(&scenario)["models"][0]["bbox"]["stats"].clone();
    assert!(a.as_array().unwrap().len() == 12 && a == b, "{a}\n{b}");
    let json = results(&scenario);
    assert_eq!(json["models"][0]["scenario"]["accuracy_samples_issued"], 12);
    // LoadGen's accuracy log holds every sample's detections: 7 float32 per detection.
    let log: Value = serde_json::from_slice(
        &std::fs::read(scenario.join("loadgen/yolox_nano-Offline/mlperf_log_accuracy.json"))
            .unwrap(),
    )
    .unwrap();
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 12);
    let hex = entries.iter().map(|e| e["data"].as_str().unwrap().len());
    let detections: usize = hex.map(|chars| chars / 2 / 28).sum();
    let per_image = &json["models"][0]["detections_per_image"];
    assert_eq!(
        detections as f64,
        per_image["mean"].as_f64().unwrap() * 12.0
    );
}

#[test]
fn server_and_multi_stream_run_with_their_own_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("server");
    ok(&run(
        &out,
        &[
            "--scenario",
            "server",
            "--target-qps",
            "10",
            "--target-latency-ms",
            "250",
            "--limit",
            "8",
            "--min-duration-ms",
            "500",
            "--min-query-count",
            "5",
            "--no-store",
        ],
    ));
    let text = summary(&out, "yolox_nano-Server");
    assert!(text.contains("Completed samples per second"), "{text}");
    assert!(text.contains("  Performance constraints satisfied : "));
    assert!(text.contains("target_latency (ns): 250000000"), "{text}");
    assert!(text.contains("target_qps : 10"), "{text}");

    let out = tmp.path().join("multi");
    ok(&run(
        &out,
        &[
            "--scenario",
            "multi-stream",
            "--samples-per-query",
            "4",
            "--limit",
            "8",
            "--min-duration-ms",
            "100",
            "--min-query-count",
            "5",
            "--no-store",
        ],
    ));
    let text = summary(&out, "yolox_nano-MultiStream");
    assert!(text.contains("99.0th percentile latency (ns)"), "{text}");
    assert!(text.contains("Per-query latency:"), "{text}");
    assert!(text.contains("samples_per_query : 4"), "{text}");
    let s = &results(&out)["models"][0]["scenario"];
    let queries = s["performance"]["query_count"].as_u64().unwrap();
    assert_eq!(
        s["performance"]["sample_count"].as_u64().unwrap(),
        4 * queries
    );
}

#[test]
fn mlperf_gives_loadgens_detection_settings_under_the_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let conf = tmp.path().join("user.conf");
    std::fs::write(
        &conf,
        "# a user config\n*.Server.target_qps = 4\n*.*.qsl_rng_seed = 5\n",
    )
    .unwrap();
    let output = run(
        &out,
        &[
            "--scenario",
            "server",
            "--mlperf-conf",
            conf.to_str().unwrap(),
            "--min-duration-ms",
            "300",
            "--min-query-count",
            "2",
            "--no-store",
        ],
    );
    ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "user.conf:3: *.*.qsl_rng_seed: LoadGen reads this key only from mlperf.conf"
        ),
        "{stderr}"
    );
    let s = &results(&out)["models"][0]["scenario"]["settings"];
    // retinanet's Server bound (100 ms, not the wildcard's 10), its 64 performance samples,
    // MLPerf's seeds, the user config's QPS, and the flags over all of them.
    assert_eq!(s["target_latency_ns"], 100_000_000);
    assert_eq!(s["performance_sample_count"], 64);
    assert_eq!(s["qsl_rng_seed"].as_u64(), Some(2085463073848966840));
    assert_eq!(s["target_qps"], 4.0);
    assert_eq!(s["min_duration_ms"], 300);
    assert_eq!(s["target_latency_percentile"], 0.99);
    let text = summary(&out, "yolox_nano-Server");
    assert!(text.contains("Result is : INVALID"), "{text}");
}

#[test]
fn bad_settings_are_refused_naming_the_flag_or_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["--scenario", "server", "--target-qps", "-5"],
            vec!["server_target_qps = -5", "--target-qps", "above 0"],
        ),
        (
            vec!["--scenario", "single-stream", "--min-duration-ms", "0"],
            vec!["min_duration_ms = 0", "--min-duration-ms"],
        ),
        (
            vec![
                "--scenario",
                "multi-stream",
                "--samples-per-query",
                "9",
                "--limit",
                "5",
            ],
            vec![
                "multi_stream_samples_per_query = 9",
                "--samples-per-query",
                "5 samples",
            ],
        ),
        (
            vec!["--scenario", "offline", "--latency-percentile", "99"],
            vec!["--latency-percentile applies to the SingleStream"],
        ),
        (
            vec!["--scenario", "server", "--batch", "2"],
            vec!["--max-batch"],
        ),
        (
            vec!["--scenario", "offline", "--find-peak-qps"],
            vec!["--find-peak-qps applies to the Server scenario"],
        ),
        (
            vec!["--scenario", "single-stream", "--min-duration-ms", "-3"],
            vec!["'-3'", "--min-duration-ms"],
        ),
        (vec!["--target-qps", "5"], vec!["--scenario"]),
        (
            vec!["--scenario", "batch"],
            vec!["single-stream, multi-stream, server, offline"],
        ),
    ]
    .into_iter()
    .map(|(args, want)| (args.into_iter().map(String::from).collect(), want))
    .collect();
    for (args, wanted) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = failed(&run(&out, &[&args[..], &["--no-store"]].concat()));
        for want in wanted {
            assert!(stderr.contains(want), "{args:?}: {want:?} not in\n{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(!out.join("results.json").exists(), "nothing ran");

    // An unknown key in a user config: the file, the line and the key.
    let conf = tmp.path().join("user.conf");
    std::fs::write(
        &conf,
        "*.Server.target_qps = 4\n\n*.Server.target_qpz = 3\n",
    )
    .unwrap();
    let stderr = failed(&run(
        &out,
        &[
            "--scenario",
            "server",
            "--mlperf-conf",
            conf.to_str().unwrap(),
            "--no-store",
        ],
    ));
    let want = format!(
        "{}:3: *.Server.target_qpz: unknown key 'target_qpz'",
        conf.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
}
