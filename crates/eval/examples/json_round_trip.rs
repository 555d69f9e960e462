//! What skipping the results file saves: evaluates the same detections (a) in memory, image by
//! image, as `detbench run` does, and (b) the classic way — write a COCO results JSON, then load
//! and evaluate it (`detbench eval`'s path). Checks that both give the same stats bit for bit
//! and prints the median times of each step.
//!
//! ```text
//! cargo run --release -p detbench-eval --example json_round_trip -- \
//!     GT.json RESULTS.json bbox|segm|keypoints [box|mask|keypoints] [REPEAT]
//! ```
//! The detections are read from RESULTS.json once, untimed, as a model's output would already
//! be in memory. The optional 4th argument says which geometry gives a detection its area
//! (pycocotools' loadRes rule; `mask` for results files without `bbox`, e.g. the synthetic
//! dets_segm.json).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use detbench_eval::{
    Detection, DetectionArea, EvalParams, EvalSummary, Evaluator, GroundTruth, IouType, Rle,
    evaluate_results_file,
};
use serde::Serialize;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err(
            "usage: json_round_trip GT.json RESULTS.json bbox|segm|keypoints \
                    [box|mask|keypoints] [REPEAT]"
                .into(),
        );
    }
    let iou_type: IouType = args[2].parse()?;
    let area = match args.get(3).map(String::as_str) {
        None | Some("box") => DetectionArea::Box,
        Some("mask") => DetectionArea::Mask,
        Some("keypoints") => DetectionArea::Keypoints,
        Some(other) => return Err(format!("unknown area rule {other}").into()),
    };
    let repeat: usize = args.get(4).map(|r| r.parse()).transpose()?.unwrap_or(5);

    let gt = Arc::new(GroundTruth::load(&args[0])?);
    let images = detections_of(&gt, Path::new(&args[1]), iou_type)?;
    let count: usize = images.values().map(Vec::len).sum();
    let mut params = EvalParams::new(iou_type);
    params.detection_area = area;
    println!(
        "{} images with detections, {count} detections, {iou_type}, {} GT images, {repeat} runs",
        images.len(),
        gt.image_ids().len()
    );

    let scratch = tempfile::tempdir()?;
    let results_path = scratch.path().join("results.json");
    let (mut add, mut finish, mut write, mut evaluate) = (vec![], vec![], vec![], vec![]);
    for _ in 0..repeat {
        // (a) In memory: add_image per image (overlaps inference in a run), then finish().
        let started = Instant::now();
        let mut evaluator = Evaluator::new(gt.clone(), params.clone())?;
        for (&image_id, detections) in &images {
            evaluator.add_image(image_id, detections)?;
        }
        add.push(started.elapsed());
        let started = Instant::now();
        let in_memory = evaluator.finish()?;
        finish.push(started.elapsed());

        // (b) Round trip: write a COCO results file (masks as compressed RLE strings, as
        // pycocotools writes them), then load and evaluate it.
        let started = Instant::now();
        write_results(&results_path, &images, iou_type, area)?;
        write.push(started.elapsed());
        let started = Instant::now();
        let from_file = evaluate_results_file(&gt, &results_path, &params)?;
        evaluate.push(started.elapsed());
        check_same(&in_memory, &from_file)?;
    }

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (add, finish, write, evaluate) =
        (median(add), median(finish), median(write), median(evaluate));
    println!("stats identical on both paths (bit for bit), median of {repeat}:");
    println!(
        "  in memory:  add_image {:.1} ms ({:.3} ms/image) + finish {:.1} ms = {:.1} ms",
        ms(add),
        ms(add) / images.len().max(1) as f64,
        ms(finish),
        ms(add + finish)
    );
    println!(
        "  via JSON:   write {:.1} ms + load & evaluate {:.1} ms = {:.1} ms",
        ms(write),
        ms(evaluate),
        ms(write + evaluate)
    );
    println!(
        "  saving: {:.1} ms ({:.0}% of the JSON path); left after the last image: {:.1} ms vs {:.1} ms",
        ms(write + evaluate) - ms(add + finish),
        100.0 * (1.0 - (add + finish).as_secs_f64() / (write + evaluate).as_secs_f64()),
        ms(finish),
        ms(write + evaluate)
    );
    Ok(())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn check_same(a: &EvalSummary, b: &EvalSummary) -> Result<(), String> {
    let same = a.stats.len() == b.stats.len()
        && a.stats
            .iter()
            .zip(&b.stats)
            .all(|(x, y)| x.to_bits() == y.to_bits());
    if same {
        Ok(())
    } else {
        Err(format!(
            "stats differ: in memory {:?}, file {:?}",
            a.stats, b.stats
        ))
    }
}

/// The results file's detections per image (file order within an image), as a pipeline
/// would hold them: masks as uncompressed RLE.
fn detections_of(
    gt: &GroundTruth,
    path: &Path,
    iou_type: IouType,
) -> Result<BTreeMap<u64, Vec<Detection>>, Box<dyn std::error::Error>> {
    let results = detbench_eval::load_results(gt, path, &EvalParams::new(iou_type))?;
    let mut images: BTreeMap<u64, Vec<Detection>> = BTreeMap::new();
    for ann in &results.dataset.annotations {
        let mask = match ann.segmentation.as_ref().and_then(|s| s.rle_ref()) {
            Some(rle) if iou_type == IouType::Segm => {
                let rle = rle.to_rle()?;
                Some(Rle {
                    height: rle.h,
                    width: rle.w,
                    counts: rle.counts,
                })
            }
            _ => None,
        };
        images.entry(ann.image_id).or_default().push(Detection {
            image_id: ann.image_id,
            category_id: ann.category_id,
            bbox: ann.bbox.unwrap_or_default(),
            score: ann.score.unwrap_or_default(),
            mask,
            keypoints: ann.keypoints.clone(),
        });
    }
    Ok(images)
}

#[derive(Serialize)]
struct CompressedRle {
    size: [u32; 2],
    counts: String,
}

#[derive(Serialize)]
struct ResultRecord<'a> {
    image_id: u64,
    category_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bbox: Option<[f64; 4]>,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    segmentation: Option<CompressedRle>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keypoints: Option<&'a [f64]>,
}

fn write_results(
    path: &Path,
    images: &BTreeMap<u64, Vec<Detection>>,
    iou_type: IouType,
    area: DetectionArea,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"[")?;
    let mut first = true;
    for detection in images.values().flatten() {
        let segmentation = match (&detection.mask, iou_type) {
            (Some(mask), IouType::Segm) => Some(CompressedRle {
                size: [mask.height, mask.width],
                counts: hotcoco::mask::rle_to_string(&hotcoco::Rle {
                    h: mask.height,
                    w: mask.width,
                    counts: mask.counts.clone(),
                }),
            }),
            _ => None,
        };
        let record = ResultRecord {
            image_id: detection.image_id,
            category_id: detection.category_id,
            // `bbox` exactly when the area comes from it (pycocotools' loadRes rule).
            bbox: (area == DetectionArea::Box).then_some(detection.bbox),
            score: detection.score,
            segmentation,
            keypoints: match iou_type {
                IouType::Keypoints => detection.keypoints.as_deref(),
                _ => None,
            },
        };
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut out, &record)?;
    }
    out.write_all(b"]")?;
    out.flush()
}
