//! What detbench's layer adds to hotcoco on the results-file path, measured in one process and
//! one build so that only the layer differs: hotcoco alone (`COCO::new`, `load_res`,
//! `COCOeval` evaluate/accumulate/summarize) against `GroundTruth::load` +
//! `evaluate_results_file` (checks, per-class AP, PR curves). Runs alternate; the minimum of
//! each is printed, as the least disturbed by other load on the machine.
//!
//! ```text
//! cargo run --release -p detbench-eval --example layer_overhead -- GT.json RESULTS.json bbox [RUNS]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use detbench_eval::{EvalParams, GroundTruth, IouType, evaluate_results_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: layer_overhead GT.json RESULTS.json bbox|segm|keypoints [RUNS]".into());
    }
    let (gt_path, results_path) = (Path::new(&args[0]), Path::new(&args[1]));
    let iou_type: IouType = args[2].parse()?;
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(15);
    let hotcoco_type = match iou_type {
        IouType::Bbox => hotcoco::IouType::Bbox,
        IouType::Segm => hotcoco::IouType::Segm,
        IouType::Keypoints => hotcoco::IouType::Keypoints,
    };
    let (mut alone, mut layered) = (Duration::MAX, Duration::MAX);
    let (mut alone_stats, mut layered_stats) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let gt = hotcoco::COCO::new(gt_path)?;
        let results = gt.load_res(results_path)?;
        let mut ev = hotcoco::COCOeval::new(gt, results, hotcoco_type);
        ev.evaluate()?;
        ev.accumulate();
        let _ = ev.summarize_lines();
        alone_stats = ev.stats().unwrap_or_default().to_vec();
        drop(ev);
        alone = alone.min(started.elapsed());

        let started = Instant::now();
        let gt = GroundTruth::load(gt_path)?;
        let summary = evaluate_results_file(&gt, results_path, &EvalParams::new(iou_type))?;
        let _ = summary.summary_lines();
        layered_stats = summary.stats.clone();
        drop((summary, gt));
        layered = layered.min(started.elapsed());
    }
    if alone_stats
        .iter()
        .zip(&layered_stats)
        .any(|(a, b)| a.to_bits() != b.to_bits())
    {
        return Err("the two paths gave different stats".into());
    }
    println!(
        "{iou_type}: hotcoco alone {:.1} ms, detbench layer {:.1} ms (min of {runs}): ratio {:.3}",
        alone.as_secs_f64() * 1e3,
        layered.as_secs_f64() * 1e3,
        layered.as_secs_f64() / alone.as_secs_f64()
    );
    Ok(())
}
