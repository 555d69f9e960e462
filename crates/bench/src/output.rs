//! What a run writes for people and programs: the results table in the published benchmarks'
//! format (Markdown), a per-stage latency table, failures, `results.csv`, `results.json` and
//! COCO results files. Every file is written atomically: a temporary file in the destination
//! folder, renamed into place, so a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use detbench_eval::Detection;

use crate::results::{DETECTION_STAT_NAMES, KEYPOINT_STAT_NAMES, ModelResult, RunResults, Summary};

/// Writes `bytes` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let with_path =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut tmp = tempfile::Builder::new()
        .prefix(".detbench-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(with_path)?;
    tmp.write_all(bytes).map_err(with_path)?;
    tmp.as_file().sync_all().map_err(with_path)?;
    tmp.persist(path).map_err(|e| with_path(e.error))?;
    Ok(())
}

/// Writes `results.md`, `results.csv` and `results.json` into `dir` (created if needed).
pub fn write_run_files(dir: &Path, results: &RunResults) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
    let json = serde_json::to_vec_pretty(results).map_err(std::io::Error::other)?;
    let files = [
        ("results.md", markdown_report(results).into_bytes()),
        ("results.csv", csv_report(results).into_bytes()),
        ("results.json", json),
    ];
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = dir.join(name);
        write_atomic(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// The detections as a COCO results file (a JSON array of `image_id`, `category_id`, `bbox`,
/// `score`, plus `segmentation` as compressed RLE and `keypoints` when present), the format
/// `pycocotools.COCO.loadRes` and `detbench eval` read.
pub fn coco_results_json(detections: &[Detection]) -> serde_json::Value {
    serde_json::Value::Array(
        detections
            .iter()
            .map(|d| {
                let mut entry = serde_json::json!({
                    "image_id": d.image_id,
                    "category_id": d.category_id,
                    "bbox": d.bbox,
                    "score": d.score,
                });
                if let Some(mask) = &d.mask {
                    let rle = hotcoco::types::Rle {
                        h: mask.height,
                        w: mask.width,
                        counts: mask.counts.clone(),
                    };
                    entry["segmentation"] = serde_json::json!({
                        "size": [mask.height, mask.width],
                        "counts": hotcoco::mask::rle_to_string(&rle),
                    });
                }
                if let Some(keypoints) = &d.keypoints {
                    entry["keypoints"] = serde_json::json!(keypoints);
                }
                entry
            })
            .collect(),
    )
}

/// The table label of a row: the zoo name, with the batch size when it is not 1.
fn row_label(m: &ModelResult) -> String {
    if m.batch_size == 1 {
        m.name.clone()
    } else {
        format!("{} (batch {})", m.name, m.batch_size)
    }
}

/// "onnxruntime 1.31.1 cpu fp32", or what is known of it.
pub fn backend_label(m: &ModelResult) -> String {
    match &m.backend {
        Some(b) => format!(
            "{} {} {} {}",
            b.engine, b.engine_version, b.device, b.precision
        )
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "),
        None => "-".to_owned(),
    }
}

/// A stat in AP points (x100), one decimal, as published tables show them; `-1` (no ground
/// truth in that area range) prints as `-`.
fn points(v: f64) -> String {
    if v < 0.0 {
        "-".to_owned()
    } else {
        format!("{:.1}", v * 100.0)
    }
}

fn ms(v: f64) -> String {
    format!("{v:.2}")
}

/// A table cell's text made safe for a Markdown table: `|` escaped, line breaks (an engine's
/// multi-line error message) joined into one line.
fn md_cell(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn md_row(cells: &[String]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
    format!("| {} |", cells.join(" | "))
}

fn md_header(cells: &[&str]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
    format!(
        "| {} |\n|{}|",
        cells.join(" | "),
        cells.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    )
}

/// The main table: `Model | Input | Backend/precision | AP AP50 AP75 APs APm APl AR1 AR10 AR100
/// ARs ARm ARl | images/s | p99 ms | total s | mean ms | median ms | min ms`. Stats are bbox, in
/// points; latencies are per call (per image at batch 1), end to end.
pub fn main_table(results: &RunResults) -> String {
    let mut head = vec!["Model", "Input", "Backend/precision"];
    head.extend(DETECTION_STAT_NAMES);
    head.extend([
        "images/s",
        "p99 ms",
        "total s",
        "mean ms",
        "median ms",
        "min ms",
    ]);
    let mut lines = vec![md_header(&head)];
    for m in &results.models {
        let mut cells = vec![row_label(m), m.input.clone(), backend_label(m)];
        if !m.is_ok() {
            cells.push(m.status.clone());
            cells.extend(std::iter::repeat_n("-".to_owned(), head.len() - 4));
            lines.push(md_row(&cells));
            continue;
        }
        match &m.bbox {
            Some(acc) => cells.extend(acc.stats.iter().map(|&v| points(v))),
            None => cells.extend(std::iter::repeat_n("n/a".to_owned(), 12)),
        }
        match &m.latency {
            Some(l) => cells.extend([
                format!("{:.1}", l.images_per_second),
                ms(l.end_to_end.p99),
                format!("{:.2}", l.total_seconds),
                ms(l.end_to_end.mean),
                ms(l.end_to_end.median),
                ms(l.end_to_end.min),
            ]),
            None => cells.extend(std::iter::repeat_n("-".to_owned(), 6)),
        }
        lines.push(md_row(&cells));
    }
    lines.join("\n")
}

/// Keypoint stats (points) of the rows that have them, or `None`.
pub fn keypoint_table(results: &RunResults) -> Option<String> {
    stats_table(results, |m| m.keypoints.as_ref(), &KEYPOINT_STAT_NAMES)
}

/// Mask (segm) stats (points) of the rows that have them, or `None`.
pub fn mask_table(results: &RunResults) -> Option<String> {
    stats_table(results, |m| m.segm.as_ref(), &DETECTION_STAT_NAMES)
}

/// `Model | <stat names>` for the rows where `accuracy` gives stats, or `None` when none does.
fn stats_table(
    results: &RunResults,
    accuracy: impl Fn(&ModelResult) -> Option<&crate::results::Accuracy>,
    names: &[&str],
) -> Option<String> {
    let rows: Vec<(&ModelResult, &crate::results::Accuracy)> = results
        .models
        .iter()
        .filter_map(|m| Some((m, accuracy(m)?)))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut head = vec!["Model"];
    head.extend(names);
    let mut lines = vec![md_header(&head)];
    for (m, acc) in rows {
        let mut cells = vec![row_label(m)];
        cells.extend(acc.stats.iter().map(|&v| points(v)));
        lines.push(md_row(&cells));
    }
    Some(lines.join("\n"))
}

fn mean_median_p99(s: &Summary) -> String {
    format!("{:.2} / {:.2} / {:.2}", s.mean, s.median, s.p99)
}

/// Per-stage latency (mean / median / p99 ms per call) of the rows that ran.
pub fn stage_table(results: &RunResults) -> Option<String> {
    let rows: Vec<&ModelResult> = results
        .models
        .iter()
        .filter(|m| m.latency.is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let head = [
        "Model",
        "decode",
        "preprocess",
        "inference",
        "postprocess",
        "end to end",
        "valid",
    ];
    let mut lines = vec![md_header(&head)];
    for m in rows {
        let l = m.latency.as_ref().unwrap();
        let mut cells = vec![row_label(m)];
        for stage in ["decode", "preprocess", "inference", "postprocess"] {
            cells.push(
                l.stages
                    .iter()
                    .find(|s| s.stage == stage)
                    .map(|s| mean_median_p99(&s.summary))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        cells.push(format!(
            "{}{}",
            mean_median_p99(&l.end_to_end),
            if l.includes_decode {
                " (incl. decode)"
            } else {
                ""
            }
        ));
        cells.push(if l.valid {
            "yes".into()
        } else {
            "no (see notes)".into()
        });
        lines.push(md_row(&cells));
    }
    Some(lines.join("\n"))
}

/// Reference agreement of the rows that have one.
pub fn agreement_table(results: &RunResults) -> Option<String> {
    let rows: Vec<&ModelResult> = results
        .models
        .iter()
        .filter(|m| m.reference_agreement.is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let head = [
        "Model",
        "matched",
        "geometry only",
        "mean IoU (matched)",
        "max |score diff|",
        "count diff per image (mean / min / max)",
        "images with equal count",
    ];
    let mut lines = vec![md_header(&head)];
    for m in rows {
        let a = m.reference_agreement.as_ref().unwrap();
        let quality = match (a.mean_iou_matched, a.mean_joint_distance_matched) {
            (Some(iou), _) => format!("{iou:.5}"),
            (None, Some(px)) => format!("{px:.3} px (joints)"),
            _ => "-".into(),
        };
        lines.push(md_row(&[
            row_label(m),
            format!(
                "{}/{} = {:.2}%{}",
                a.matched,
                a.reference_detections,
                a.matched_fraction * 100.0,
                a.joint_fraction
                    .map(|f| format!(" (joints {:.2}%)", f * 100.0))
                    .unwrap_or_default()
            ),
            format!("{}", a.matched_geometry),
            quality,
            format!("{:.2e}", a.max_score_difference),
            a.count_difference_per_image
                .as_ref()
                .map(|s| format!("{:+.2} / {:+} / {:+}", s.mean, s.min, s.max))
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", a.images_with_equal_count, a.images),
        ]));
    }
    Some(lines.join("\n"))
}

/// Failed images, skipped batch sizes and validity notes, as Markdown bullet lists.
pub fn notes(results: &RunResults) -> Vec<String> {
    let mut out = Vec::new();
    for m in &results.models {
        let label = row_label(m);
        if !m.failed_images.is_empty() {
            out.push(format!(
                "- {label}: {} failed image(s):",
                m.failed_images.len()
            ));
            for f in &m.failed_images {
                out.push(format!("  - {}: {}", f.file, f.reason));
            }
        }
        if let Some(l) = &m.latency {
            for note in &l.validity_notes {
                out.push(format!("- {label}: timing flagged: {note}"));
            }
        }
    }
    for s in &results.skipped {
        out.push(format!("- {}: {}", s.name, s.reason));
    }
    out
}

/// Everything above, as `results.md`.
pub fn markdown_report(results: &RunResults) -> String {
    let mut doc = format!(
        "# detbench run\n\n- started: {}\n- detbench: {}\n- command: `{}`\n",
        results.started_at,
        results.detbench_version,
        results.command_line.join(" ")
    );
    // One line per distinct dataset: a run of box and keypoint models reads two annotation files.
    let mut dataset_lines: Vec<String> = Vec::new();
    for m in &results.models {
        let line = format!(
            "- dataset: {} images from {}{}\n",
            m.dataset.images,
            m.dataset.image_dir,
            match (&m.dataset.annotation_file, &m.dataset.annotation_sha256) {
                (Some(f), Some(sha)) => format!(", ground truth {f} (sha256 {sha})"),
                _ => ", no ground truth (speed only)".to_owned(),
            }
        );
        if !dataset_lines.contains(&line) {
            dataset_lines.push(line);
        }
    }
    for line in dataset_lines {
        doc.push_str(&line);
    }
    if let Some(harness) = results
        .models
        .iter()
        .find_map(|m| m.provenance.get("harness"))
    {
        doc.push_str(&format!(
            "- decode: {}; warm-up: {} calls; scoring: {}\n",
            harness["decode"], harness["warmup_iterations"], harness["evaluation"]
        ));
    }
    doc.push_str(
        "\nAP/AR: COCO bbox stats in points (pycocotools definitions, hotcoco). Latency: end to \
         end per call (per image at batch 1), ms; percentiles nearest-rank as MLPerf LoadGen.\n\n",
    );
    doc.push_str(&main_table(results));
    doc.push('\n');
    if let Some(t) = mask_table(results) {
        doc.push_str("\n## Masks\n\n");
        doc.push_str(&t);
        doc.push('\n');
    }
    if let Some(t) = keypoint_table(results) {
        doc.push_str("\n## Keypoints\n\n");
        doc.push_str(&t);
        doc.push('\n');
    }
    if let Some(t) = stage_table(results) {
        doc.push_str("\n## Latency per stage (mean / median / p99 ms per call)\n\n");
        doc.push_str(&t);
        doc.push('\n');
    }
    if let Some(t) = agreement_table(results) {
        doc.push_str("\n## Agreement with the reference detections\n\n");
        doc.push_str(&t);
        doc.push('\n');
    }
    let notes = notes(results);
    if !notes.is_empty() {
        doc.push_str("\n## Notes\n\n");
        doc.push_str(&notes.join("\n"));
        doc.push('\n');
    }
    doc
}

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180). Hand-written:
/// one function does not justify a CSV crate.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// One row per model and batch size, full precision.
pub fn csv_report(results: &RunResults) -> String {
    let mut head: Vec<String> = [
        "model",
        "batch_size",
        "status",
        "input",
        "engine",
        "engine_version",
        "device",
        "precision",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    head.extend(DETECTION_STAT_NAMES.iter().map(|s| format!("bbox_{s}")));
    head.extend(DETECTION_STAT_NAMES.iter().map(|s| format!("segm_{s}")));
    head.extend(KEYPOINT_STAT_NAMES.iter().map(|s| format!("keypoints_{s}")));
    head.extend(
        [
            "images_per_second",
            "total_s",
            "e2e_mean_ms",
            "e2e_median_ms",
            "e2e_min_ms",
            "e2e_max_ms",
            "e2e_std_ms",
            "e2e_p90_ms",
            "e2e_p95_ms",
            "e2e_p99_ms",
            "decode_mean_ms",
            "preprocess_mean_ms",
            "inference_mean_ms",
            "postprocess_mean_ms",
            "timing_valid",
            "images",
            "failed_images",
            "annotation_sha256",
            "model_file",
            "model_sha256",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut lines = vec![head.join(",")];
    for m in &results.models {
        let b = m.backend.as_ref();
        let mut row: Vec<String> = vec![
            m.name.clone(),
            m.batch_size.to_string(),
            m.status.clone(),
            m.input.clone(),
            b.map(|b| b.engine.clone()).unwrap_or_default(),
            b.map(|b| b.engine_version.clone()).unwrap_or_default(),
            b.map(|b| b.device.clone()).unwrap_or_default(),
            b.map(|b| b.precision.clone()).unwrap_or_default(),
        ];
        let stats = |acc: Option<&crate::results::Accuracy>, n: usize| -> Vec<String> {
            match acc {
                Some(a) => a.stats.iter().map(|v| v.to_string()).collect(),
                None => vec![String::new(); n],
            }
        };
        row.extend(stats(m.bbox.as_ref(), 12));
        row.extend(stats(m.segm.as_ref(), 12));
        row.extend(stats(m.keypoints.as_ref(), 10));
        match &m.latency {
            Some(l) => {
                let e = &l.end_to_end;
                row.extend(
                    [
                        l.images_per_second,
                        l.total_seconds,
                        e.mean,
                        e.median,
                        e.min,
                        e.max,
                        e.std,
                        e.p90,
                        e.p95,
                        e.p99,
                    ]
                    .iter()
                    .map(|v| v.to_string()),
                );
                for stage in ["decode", "preprocess", "inference", "postprocess"] {
                    row.push(
                        l.stages
                            .iter()
                            .find(|s| s.stage == stage)
                            .map(|s| s.summary.mean.to_string())
                            .unwrap_or_default(),
                    );
                }
                row.push(l.valid.to_string());
            }
            None => row.extend(vec![String::new(); 15]),
        }
        row.extend([
            m.dataset.images.to_string(),
            m.failed_images.len().to_string(),
            m.dataset.annotation_sha256.clone().unwrap_or_default(),
            m.model.file.clone(),
            m.model.sha256.clone().unwrap_or_default(),
        ]);
        lines.push(
            row.iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    lines.push(String::new());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{DatasetIdentity, ModelFile};

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.json");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["results.json"]);
        // A folder that does not exist: an error naming the file, nothing written.
        let err = write_atomic(&dir.path().join("no/such/x.json"), b"x").unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }

    /// A run of a box-and-mask model (failed with a multi-line engine error on its second
    /// setting) and a keypoint model read from another annotation file.
    fn mixed_run() -> RunResults {
        let model = |name: &str, status: &str, annotations: &str, images: usize| ModelResult {
            name: name.into(),
            status: status.into(),
            family: "test".into(),
            input: "any".into(),
            model: ModelFile {
                file: format!("{name}.pt"),
                sha256: None,
            },
            backend: None,
            batch_size: 1,
            dataset: DatasetIdentity {
                image_dir: "coco/val2017".into(),
                annotation_file: Some(annotations.into()),
                annotation_sha256: Some(format!("{images:064}")),
                images,
            },
            bbox: None,
            segm: None,
            keypoints: None,
            latency: None,
            detections_per_image: None,
            failed_images: vec![],
            reference_agreement: None,
            provenance: serde_json::Value::Null,
        };
        let stats = |base: f64, n: usize| crate::results::Accuracy {
            stats: (0..n).map(|k| base + k as f64 / 1000.0).collect(),
            per_class: vec![],
        };
        let mut masks = model("maskrcnn", "ok", "instances.json", 206);
        masks.bbox = Some(stats(0.5, 12));
        masks.segm = Some(stats(0.25, 12));
        let mut failed = model(
            "maskrcnn",
            "failed: Got invalid dimensions\n index: 2 | Got: 640",
            "instances.json",
            206,
        );
        failed.batch_size = 2;
        let mut pose = model("keypointrcnn", "ok", "person_keypoints.json", 128);
        pose.bbox = Some(stats(0.4, 12));
        pose.keypoints = Some(stats(0.6, 10));
        RunResults {
            schema_version: 1,
            detbench_version: "test".into(),
            started_at: "2026-11-28T00:00:00Z".into(),
            command_line: vec!["detbench".into(), "run".into()],
            environment: serde_json::Value::Null,
            models: vec![masks, failed, pose],
            skipped: vec![],
        }
    }

    #[test]
    fn mask_stats_reach_markdown_and_csv() {
        let run = mixed_run();
        let md = markdown_report(&run);
        let masks = md.split("## Masks").nth(1).expect("a Masks section");
        assert!(
            masks.contains("| maskrcnn | 25.0 | 25.1 | 25.2 |"),
            "{masks}"
        );
        assert!(!mask_table(&run).unwrap().contains("keypointrcnn"));
        let csv = csv_report(&run);
        let mut lines = csv.lines();
        let head: Vec<&str> = lines.next().unwrap().split(',').collect();
        let column = |name: &str| head.iter().position(|h| *h == name).unwrap();
        let first: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(first[column("segm_AP")], "0.25");
        assert_eq!(first[column("segm_ARl")], "0.261");
        assert_eq!(first[column("bbox_AP")], "0.5");
        assert_eq!(first[column("keypoints_AP")], "");
        assert_eq!(head.len(), first.len());
    }

    #[test]
    fn markdown_tables_survive_pipes_and_line_breaks_and_name_every_dataset() {
        let md = markdown_report(&mixed_run());
        // Every table row has as many cells as its header: no `|` or line break splits one.
        for table in md.split("\n\n").filter(|t| t.starts_with('|')) {
            let cells = |line: &str| line.replace("\\|", "").matches('|').count();
            let mut lines = table.lines();
            let header = cells(lines.next().unwrap());
            for line in lines {
                assert_eq!(cells(line), header, "{table}");
            }
        }
        assert!(
            md.contains("failed: Got invalid dimensions index: 2 \\| Got: 640"),
            "{md}"
        );
        assert!(md.contains("206 images from coco/val2017, ground truth instances.json"));
        assert!(md.contains("128 images from coco/val2017, ground truth person_keypoints.json"));
        assert_eq!(
            md_header(&["max |score diff|"]),
            "| max \\|score diff\\| |\n|---|"
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn coco_results_have_compressed_masks_and_keypoints() {
        let d = Detection {
            image_id: 7,
            category_id: 1,
            bbox: [1.0, 2.0, 3.0, 4.0],
            score: 0.5,
            mask: Some(detbench_eval::Rle {
                height: 2,
                width: 2,
                counts: vec![1, 2, 1],
            }),
            keypoints: Some(vec![1.0, 2.0, 2.0]),
        };
        let json = coco_results_json(&[d]);
        assert_eq!(json[0]["image_id"], 7);
        assert_eq!(json[0]["bbox"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(json[0]["segmentation"]["size"], serde_json::json!([2, 2]));
        assert!(json[0]["segmentation"]["counts"].is_string());
        assert_eq!(json[0]["keypoints"], serde_json::json!([1.0, 2.0, 2.0]));
    }
}
