//! `detbench eval`: evaluates a COCO results file against ground truth through detbench's
//! accuracy layer (hotcoco), printing exactly pycocotools' summary lines, and optionally
//! writing the stats as JSON, a per-class AP table and the precision/recall curves as CSV.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use detbench_eval::{
    EvalParams, EvalSummary, GroundTruth, ImageScope, IouType, SummaryMaxDets,
    evaluate_results_file_in, parse_area_ranges, parse_image_ids, parse_max_dets,
};
use detbench_report::tables::csv_field;
use detbench_report::write_atomic;

#[derive(clap::Args)]
pub struct Args {
    /// COCO ground-truth annotation file (e.g. instances_val2017.json).
    #[arg(long, value_name = "GT.json")]
    pub gt: PathBuf,
    /// COCO results file: [{"image_id", "category_id", "bbox", "score", ...}, ...].
    #[arg(long, value_name = "RESULTS.json")]
    pub dt: PathBuf,
    /// What to evaluate: bbox, segm or keypoints.
    #[arg(long, value_name = "bbox|segm|keypoints")]
    pub iou_type: IouType,
    /// Also write {"iou_type", "stats", "per_class", ...} to this file (full-precision floats).
    #[arg(long, value_name = "OUT.json")]
    pub json: Option<PathBuf>,
    /// Also print AP per category.
    #[arg(long)]
    pub per_class: bool,
    /// Write precision at every recall threshold (101) per IoU threshold, category and area
    /// range to this CSV file.
    #[arg(long, value_name = "OUT.csv")]
    pub pr_curves: Option<PathBuf>,
    /// Max detections per image, comma-separated [default: 1,10,100; keypoints: 20].
    #[arg(long, value_name = "N,N,N")]
    pub max_dets: Option<String>,
    /// Read the stats pycocotools reads at a fixed cap (the first AP at 100 detections, every
    /// keypoint stat at 20) at the largest --max-dets value instead. Without it, as pycocotools:
    /// with --max-dets 1,10,1000 the first AP is -1, because 100 is not in the list.
    #[arg(long)]
    pub stats_at_largest_max_dets: bool,
    /// Area ranges in pixels² as LABEL=MIN:MAX,... [default:
    /// all=0:1e10,small=0:1024,medium=1024:9216,large=9216:1e10; keypoints without small].
    #[arg(long, value_name = "LABEL=MIN:MAX,...")]
    pub area_ranges: Option<String>,
    /// Evaluate only these images (pycocotools' params.imgIds): a comma-separated list, or a
    /// file holding a JSON list of ids or one id per line [default: every image of the ground
    /// truth].
    #[arg(long, value_name = "FILE|ID,ID,...")]
    pub image_ids: Option<OsString>,
    /// Evaluate only the images that have at least one detection (for the detections of a run
    /// on part of the images, e.g. `detbench run --limit`).
    #[arg(long)]
    pub images_with_detections: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let mut params = EvalParams::new(args.iou_type);
    if let Some(text) = &args.max_dets {
        params.max_dets = parse_max_dets(text)?;
    }
    if let Some(text) = &args.area_ranges {
        params.area_ranges = parse_area_ranges(text)?;
    }
    if args.stats_at_largest_max_dets {
        params.summary_max_dets = SummaryMaxDets::Largest;
    }
    if let Some(given) = &args.image_ids {
        params.image_ids = Some(image_ids(given)?);
    }
    let scope = if args.images_with_detections {
        ImageScope::WithDetections
    } else {
        ImageScope::Params
    };
    let params = params.validated()?;
    // Output paths are checked before the evaluation runs (write_atomic would create a missing
    // folder; a mistyped one should be an error instead).
    for path in [&args.json, &args.pr_curves].into_iter().flatten() {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            bail!(
                "cannot write {}: the folder {} does not exist",
                path.display(),
                parent.display()
            );
        }
    }

    let started = Instant::now();
    let gt = GroundTruth::load(&args.gt)?;
    for warning in gt.warnings() {
        eprintln!("warning: {warning}");
    }
    let summary = evaluate_results_file_in(&gt, &args.dt, &params, scope)?;
    for warning in &summary.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "Evaluated {} detections on {} images ({}) in {:.2} s",
        summary.detections,
        summary.images,
        summary.iou_type,
        started.elapsed().as_secs_f64()
    );

    let mut stdout = std::io::stdout().lock();
    for line in summary.summary_lines() {
        writeln!(stdout, "{line}")?;
    }
    if args.per_class {
        writeln!(stdout)?;
        for line in summary.per_class_lines() {
            writeln!(stdout, "{line}")?;
        }
    }
    stdout.flush()?;

    if let Some(path) = &args.json {
        let json = summary_json(&summary, &args);
        let text = serde_json::to_string_pretty(&json)? + "\n";
        write_atomic(path, text.as_bytes())?;
    }
    if let Some(path) = &args.pr_curves {
        write_atomic(path, pr_curves_csv(&summary).as_bytes())?;
    }
    Ok(())
}

/// `--image-ids`: the ids in a file when one of that name exists, else a comma-separated list.
fn image_ids(given: &OsString) -> anyhow::Result<Vec<u64>> {
    let path = Path::new(given);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --image-ids file {}", path.display()))?;
        return parse_image_ids(&text)
            .with_context(|| format!("--image-ids file {}", path.display()));
    }
    let Some(text) = given.to_str() else {
        bail!(
            "--image-ids {}: no such file, and not a list of ids",
            path.display()
        );
    };
    parse_image_ids(text)
        .with_context(|| format!("--image-ids {text}: no such file, and not a list of ids"))
}

/// The `--json` document. serde_json writes each f64 as the shortest text that reads back to
/// the same bits, so the stats round-trip exactly.
fn summary_json(summary: &EvalSummary, args: &Args) -> serde_json::Value {
    let stat_names: Vec<&str> = summary.rows.iter().map(|row| row.name.as_str()).collect();
    serde_json::json!({
        "iou_type": summary.iou_type,
        "stats": summary.stats,
        "stat_names": stat_names,
        "per_class": summary.per_class,
        "summary": summary.summary_lines(),
        "gt": args.gt,
        "dt": args.dt,
        "images": summary.images,
        "detections": summary.detections,
        "max_dets": summary.max_dets,
        "area_ranges": summary.area_ranges,
        "warnings": summary.warnings,
    })
}

/// One row per IoU threshold × category × area range: precision at each recall threshold
/// (pycocotools' `eval['precision'][t, :, k, a, -1]`; -1 where nothing was computed).
fn pr_curves_csv(summary: &EvalSummary) -> String {
    let names: std::collections::HashMap<u64, &str> = summary
        .per_class
        .iter()
        .map(|class| (class.category_id, class.name.as_str()))
        .collect();
    let mut csv = String::from("iou_threshold,category_id,category,area,max_dets");
    for recall in &summary.recall_thresholds {
        csv.push_str(&format!(",p@r={recall:.2}"));
    }
    csv.push('\n');
    for curve in &summary.pr_curves {
        let name = names.get(&curve.category_id).copied().unwrap_or("");
        csv.push_str(&format!(
            "{:.2},{},{},{},{}",
            curve.iou_threshold,
            curve.category_id,
            csv_field(name),
            csv_field(&curve.area),
            curve.max_dets
        ));
        for precision in &curve.precision {
            csv.push_str(&format!(",{precision}"));
        }
        csv.push('\n');
    }
    csv
}
