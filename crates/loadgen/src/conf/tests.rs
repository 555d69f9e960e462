//! Tests of the config parser: LoadGen's lookup order, units and keys, and the errors.
use super::*;

fn parse(text: &str) -> Result<ConfFile, ConfError> {
    ConfFile::parse(Path::new("user.conf"), text)
}

#[test]
fn builtin_mlperf_conf_parses_and_sets_mlperf_rules() {
    let mut s = TestSettings::new(Scenario::Server);
    s.apply_mlperf_conf("retinanet", Scenario::Server);
    assert_eq!(s.min_duration_ms, 600_000);
    assert_eq!(s.server_target_latency_ns, 100_000_000);
    assert_eq!(s.server_target_latency_percentile, 0.99);
    assert_eq!(s.performance_sample_count_override, 64);
    assert_eq!(s.schedule_rng_seed, 16_159_082_839_903_944_936);
    let mut r = TestSettings::new(Scenario::Server);
    r.apply_mlperf_conf("resnet50", Scenario::Server);
    assert_eq!(r.server_target_latency_ns, 15_000_000);
}

#[test]
fn wildcards_follow_loadgens_precedence() {
    let conf = parse(
        "*.*.min_query_count = 10\n\
         m.*.min_query_count = 20\n\
         *.Offline.min_query_count = 30\n\
         m.Offline.min_query_count = 40 # exact wins\n\
         m.Offline.min_query_count = 50\n",
    )
    .unwrap();
    let count = |model: &str, scenario| {
        let mut s = TestSettings::new(scenario);
        conf.apply(&mut s, model, scenario, ConfKind::User);
        s.min_query_count
    };
    assert_eq!(
        count("m", Scenario::Offline),
        50,
        "the later line overrides"
    );
    assert_eq!(count("other", Scenario::Offline), 30);
    assert_eq!(count("m", Scenario::Server), 20);
    assert_eq!(count("other", Scenario::Server), 10);
}

#[test]
fn units_and_fixed_scenario_keys() {
    let conf = parse(
        "*.SingleStream.target_latency = 12.5\n\
         *.Server.target_latency = 100\n\
         *.Server.target_latency_percentile = 99\n\
         *.Offline.target_qps = 250\n",
    )
    .unwrap();
    let mut s = TestSettings::new(Scenario::SingleStream);
    conf.apply(&mut s, "yolox", Scenario::SingleStream, ConfKind::User);
    assert_eq!(s.single_stream_expected_latency_ns, 12_500_000.0);
    assert_eq!(s.server_target_latency_ns, 100_000_000);
    assert_eq!(s.server_target_latency_percentile, 0.99);
    assert_eq!(s.offline_expected_qps, 250.0);
}

#[test]
fn seeds_in_a_user_conf_are_ignored_with_a_warning() {
    let conf = parse("*.*.schedule_rng_seed = 5\n").unwrap();
    let mut s = TestSettings::new(Scenario::Server);
    let warnings = conf.apply(&mut s, "m", Scenario::Server, ConfKind::User);
    assert_eq!(s.schedule_rng_seed, 0);
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].line, 1);
    let warnings = conf.apply(&mut s, "m", Scenario::Server, ConfKind::Mlperf);
    assert_eq!(s.schedule_rng_seed, 5);
    assert!(warnings.is_empty());
}

fn line_error(text: &str) -> (usize, String, String) {
    match parse(text).unwrap_err() {
        ConfError::Line {
            line, key, message, ..
        } => (line, key, message),
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn errors_name_the_line_and_the_key() {
    let (line, key, msg) = line_error("# ok\n*.*.min_duration = 10\n*.*.min_durration = 5\n");
    assert_eq!((line, key.as_str()), (3, "*.*.min_durration"));
    assert!(msg.contains("unknown key 'min_durration'"), "{msg}");

    let (line, _, msg) = line_error("*.server.target_qps = 5\n");
    assert_eq!(line, 1);
    assert!(msg.contains("unknown scenario 'server'"), "{msg}");

    let (_, _, msg) = line_error("*.*.min_duration=10\n");
    assert!(msg.contains("spaces around '='"), "{msg}");

    let (_, _, msg) = line_error("*.*.min_duration = ten\n");
    assert!(msg.contains("not a number"), "{msg}");

    let (_, _, msg) = line_error("*.*.min_duration = 1.5\n");
    assert!(msg.contains("unsigned integer"), "{msg}");

    let (_, _, msg) = line_error("*.Server.target_qps = -3\n");
    assert!(msg.contains("0 or more"), "{msg}");

    let (_, _, msg) = line_error("*.Server.target_latency_percentile = 0.99x\n");
    assert!(msg.contains("not a number"), "{msg}");

    let (_, _, msg) = line_error("*.*.min_duration = 10 20\n");
    assert!(msg.contains("after the value"), "{msg}");

    let (_, _, msg) = line_error("min_duration = 10\n");
    assert!(msg.contains("model.scenario.key"), "{msg}");
}

#[test]
fn accuracy_log_probability_is_a_percentage_from_0_to_100() {
    let conf =
        parse("*.*.accuracy_log_probability = 0\nm.*.accuracy_log_probability = 50\n").unwrap();
    let mut s = TestSettings::new(Scenario::Offline);
    conf.apply(&mut s, "m", Scenario::Offline, ConfKind::Mlperf);
    assert_eq!(s.accuracy_log_probability, 0.5);
    let (_, key, msg) = line_error("*.*.accuracy_log_probability = 101\n");
    assert_eq!(key, "*.*.accuracy_log_probability");
    assert!(msg.contains("from 0 to 100"), "{msg}");
}

#[test]
fn c_number_forms() {
    assert_eq!(parse_c_uint("0x10"), Some(16));
    assert_eq!(parse_c_uint("010"), Some(8));
    assert_eq!(parse_c_uint("0"), Some(0));
    assert_eq!(parse_c_uint("-1"), None);
    assert_eq!(parse_c_uint("1.0"), None);
    assert_eq!(parse_c_float("1e3"), Some(1000.0));
    assert_eq!(strtoull_prefix("12.5"), 12);
    assert_eq!(strtoull_prefix("1e3"), 1);
    assert_eq!(strtoull_prefix("0x1f"), 31);
    assert_eq!(strtoull_prefix("017"), 15);
}

#[test]
fn reading_a_missing_file_names_it() {
    let mut s = TestSettings::default();
    let err = s
        .apply_user_conf(Path::new("/nonexistent/user.conf"), "m", Scenario::Offline)
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/user.conf"), "{err}");
}

#[test]
fn a_user_conf_warns_about_its_own_lines_only() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.conf");
    std::fs::write(&clean, "*.Server.target_qps = 8\n").unwrap();
    let mut s = TestSettings::new(Scenario::Server);
    let warnings = s.apply_user_conf(&clean, "yolo", Scenario::Server).unwrap();
    // The built-in mlperf.conf has `*.Server.target_duration`, a key no LoadGen code reads:
    // no warning for it, since the user cannot change that file.
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(s.server_target_qps, 8.0);

    let noisy = dir.path().join("noisy.conf");
    std::fs::write(&noisy, "# seeds\n*.Server.target_duration = 0\n").unwrap();
    let warnings = s.apply_user_conf(&noisy, "yolo", Scenario::Server).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].path, noisy);
    assert_eq!(warnings[0].line, 2);
}
