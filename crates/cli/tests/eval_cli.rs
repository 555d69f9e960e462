//! `detbench eval` on files: every pair of `../shared/conformance/goldens_*_pycocotools.json`
//! must print pycocotools 2.0.11's summary lines exactly and write its stats to `--json` bit
//! for bit; the other options and bad input are checked too. Runs the built binary.
//!
//! The hotcoco fixture whose ground truth uses annotation id 0 is the one deliberate difference
//! (../shared/conformance/NOTES.md): pycocotools cannot match an annotation with id 0 (0 means
//! "unmatched" in its match arrays) and scores perfect detections AP 0.442; hotcoco, and so
//! detbench, scores them 1.0 and warns.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

struct Pair {
    gt: PathBuf,
    dt: PathBuf,
    iou_type: String,
    stats: Vec<f64>,
    summary: Vec<String>,
}

impl Pair {
    fn is_zero_id_pair(&self) -> bool {
        self.gt.ends_with("hotcoco/fixtures/zero_gt.json")
    }
}

fn golden_pairs() -> Vec<Pair> {
    let conformance = detbench_assets::shared::conformance().unwrap();
    let annotations = detbench_assets::shared::instances_subset()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut pairs = Vec::new();
    for (file, gt_dir) in [
        ("goldens_fixtures_pycocotools.json", conformance.clone()),
        ("goldens_subset_synthetic_pycocotools.json", annotations),
    ] {
        let text = std::fs::read_to_string(conformance.join(file)).unwrap();
        let goldens: Value = serde_json::from_str(&text).unwrap();
        for result in goldens["results"].as_array().unwrap() {
            pairs.push(Pair {
                gt: gt_dir.join(result["gt"].as_str().unwrap()),
                dt: conformance.join(result["dt"].as_str().unwrap()),
                iou_type: result["iouType"].as_str().unwrap().to_owned(),
                stats: floats(&result["stats"]),
                summary: result["summary"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            });
        }
    }
    assert_eq!(pairs.len(), 12);
    pairs
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn detbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_detbench"))
        .args(args)
        .output()
        .expect("the detbench binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn eval_args<'a>(pair: &'a Pair, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "eval",
        "--gt",
        pair.gt.to_str().unwrap(),
        "--dt",
        pair.dt.to_str().unwrap(),
        "--iou-type",
        &pair.iou_type,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn every_golden_pair_prints_pycocotools_lines_and_writes_exact_stats() {
    let dir = tempfile::tempdir().unwrap();
    for (i, pair) in golden_pairs().iter().enumerate() {
        let json_path = dir.path().join(format!("stats_{i}.json"));
        let output = detbench(&eval_args(pair, &["--json", json_path.to_str().unwrap()]));
        let stdout = text(&output.stdout);
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{}: {stderr}", pair.dt.display());

        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(written["iou_type"], pair.iou_type.as_str());
        let stats = floats(&written["stats"]);
        let expected = if pair.is_zero_id_pair() {
            // Perfect detections of 3 medium objects (2 on one image): AP 1; AR@1 = 2/3 as
            // numpy's pairwise mean over the 10 IoU thresholds gives it.
            vec![
                1.0,
                1.0,
                1.0,
                -1.0,
                1.0,
                -1.0,
                0.6666666666666667,
                1.0,
                1.0,
                -1.0,
                1.0,
                -1.0,
            ]
        } else {
            pair.stats.clone()
        };
        let same = stats.len() == expected.len()
            && stats
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{}:\n got  {stats:?}\n want {expected:?}",
            pair.dt.display()
        );

        if pair.is_zero_id_pair() {
            assert!(
                stderr.contains("id 0") && stderr.contains("pycocotools"),
                "{stderr}"
            );
        } else {
            let lines: Vec<&str> = stdout.lines().collect();
            assert_eq!(lines, pair.summary, "{}", pair.dt.display());
        }
        let per_class = written["per_class"].as_array().unwrap();
        assert!(!per_class.is_empty());
    }
}

fn subset_bbox_pair() -> Pair {
    golden_pairs()
        .into_iter()
        .find(|p| p.dt.ends_with("synthetic_dets_bbox.json"))
        .unwrap()
}

#[test]
fn per_class_table_and_pr_curves() {
    let pair = subset_bbox_pair();
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("pr.csv");
    let json_path = dir.path().join("stats.json");
    let output = detbench(&eval_args(
        &pair,
        &[
            "--per-class",
            "--pr-curves",
            csv_path.to_str().unwrap(),
            "--json",
            json_path.to_str().unwrap(),
        ],
    ));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..12], pair.summary[..]);
    assert_eq!(lines[12], "");
    assert!(
        lines[13].contains("category") && lines[13].contains("AP"),
        "{}",
        lines[13]
    );
    // 80 categories; the person row shows the AP of the JSON's per_class entry to 3 decimals.
    assert_eq!(lines.len(), 14 + 80);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let person = written["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["category_id"] == 1)
        .unwrap();
    let person_ap = person["ap"].as_f64().unwrap();
    let row = lines.iter().find(|l| l.contains(" person ")).unwrap();
    assert!(row.ends_with(&format!("{person_ap:.3}")), "{row}");

    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    let header: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(header.len(), 5 + 101);
    assert_eq!(header[5], "p@r=0.00");
    assert_eq!(header[105], "p@r=1.00");
    // 10 IoU thresholds x 80 categories x 4 area ranges.
    assert_eq!(rows.len() - 1, 10 * 80 * 4);
    // The mean of person's 10 x 101 precisions at area all (the -1s excluded) is its AP.
    let person_rows: Vec<Vec<f64>> = rows[1..]
        .iter()
        .map(|r| r.split(',').collect::<Vec<_>>())
        .filter(|cells| cells[1] == "1" && cells[3] == "all")
        .map(|cells| cells[5..].iter().map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(person_rows.len(), 10);
    let values: Vec<f64> = person_rows
        .into_iter()
        .flatten()
        .filter(|&p| p > -1.0)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((mean - person_ap).abs() < 1e-12, "{mean} vs {person_ap}");
}

#[test]
fn max_dets_and_area_ranges_are_configurable() {
    let pair = subset_bbox_pair();
    // The defaults spelt out give the goldens.
    let output = detbench(&eval_args(
        &pair,
        &[
            "--max-dets",
            "1,10,100",
            "--area-ranges",
            "all=0:1e10,small=0:1024,medium=1024:9216,large=9216:1e10",
        ],
    ));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().collect::<Vec<_>>(), pair.summary);

    // Other values: pycocotools 2.0.11's stats for the same settings (PYCOCOTOOLS_CUSTOM).
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("custom.json");
    let custom = |extra: &[&str]| {
        let mut args = vec![
            "--max-dets",
            "20,1,5",
            "--area-ranges",
            "all=0:1e10,small=0:4096,medium=4096:9216,large=9216:1e10",
            "--json",
            json_path.to_str().unwrap(),
        ];
        args.extend(extra);
        let output = detbench(&eval_args(&pair, &args));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
        (text(&output.stdout), floats(&written["stats"]))
    };
    let bits = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    };
    // As pycocotools: the first AP is read at 100 detections, which is not in the list: -1.
    let (stdout, stats) = custom(&[]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("maxDets=100 ] = -1.000"), "{}", lines[0]);
    assert!(lines[6].contains("maxDets=  1 ]"), "{}", lines[6]);
    assert!(lines[7].contains("maxDets=  5 ]"), "{}", lines[7]);
    assert_eq!(stats[0], -1.0);
    assert!(
        bits(&stats[1..], &PYCOCOTOOLS_CUSTOM[1..]),
        "got {stats:?}\nwant {PYCOCOTOOLS_CUSTOM:?}"
    );
    // The other reading: at the largest value, 20.
    let (stdout, stats) = custom(&["--stats-at-largest-max-dets"]);
    assert!(
        stdout.lines().next().unwrap().contains("maxDets= 20 ]"),
        "{stdout}"
    );
    assert!(
        bits(&stats, &PYCOCOTOOLS_CUSTOM),
        "got {stats:?}\nwant {PYCOCOTOOLS_CUSTOM:?}"
    );

    let output = detbench(&eval_args(&pair, &["--max-dets", "1,100"]));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("exactly 3 max-detection value(s)"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn bad_input_exits_with_an_error_naming_the_file() {
    let pair = subset_bbox_pair();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad_results.json");
    std::fs::write(
        &bad,
        r#"[{"image_id": 139, "category_id": 1, "bbox": [1, 2, -3, 4], "score": 0.5}]"#,
    )
    .unwrap();
    let output = detbench(&[
        "eval",
        "--gt",
        pair.gt.to_str().unwrap(),
        "--dt",
        bad.to_str().unwrap(),
        "--iou-type",
        "bbox",
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("bad_results.json") && stderr.contains("negative width"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());

    let missing = dir.path().join("missing.json");
    let output = detbench(&[
        "eval",
        "--gt",
        missing.to_str().unwrap(),
        "--dt",
        bad.to_str().unwrap(),
        "--iou-type",
        "bbox",
    ]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("missing.json"),
        "{}",
        text(&output.stderr)
    );

    let output = detbench(&["eval", "--gt", "a", "--dt", "b", "--iou-type", "boxes"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("unknown IoU type `boxes`"),
        "{}",
        text(&output.stderr)
    );

    // --json into a folder that does not exist: an error, and no stats file anywhere.
    let output = detbench(&eval_args(
        &pair,
        &[
            "--json",
            dir.path().join("no/such/dir/out.json").to_str().unwrap(),
        ],
    ));
    assert!(!output.status.success());
    assert!(!dir.path().join("no").exists());
}

/// pycocotools 2.0.11 on the subset's synthetic bbox results with `params.maxDets = [20, 1, 5]`
/// and `params.areaRng = [[0, 1e10], [0, 4096], [4096, 9216], [9216, 1e10]]` (`ev.stats` after
/// evaluate/accumulate/summarize), except the first value: pycocotools' `summarize()` reads
/// AP@[.50:.95] at `_summarize`'s default `maxDets=100`, which is not among these maxDets, and
/// gives -1 (detbench's default too); `--stats-at-largest-max-dets` reads it at the largest
/// maxDets instead. The value here is pycocotools' own `_summarize(1, maxDets=20)`, i.e.
/// `np.mean(p[p > -1])` of `ev.eval['precision'][:, :, :, 0, -1]`.
const PYCOCOTOOLS_CUSTOM: [f64; 12] = [
    0.29807197977290567,
    0.6088340681841226,
    0.23096025740385462,
    0.3379194005270017,
    0.3328244567241669,
    0.30471803849325246,
    0.2883501760449248,
    0.3963672890067571,
    0.4208366701940561,
    0.40923959430035034,
    0.4371245357746763,
    0.41129319014564913,
];
