//! `detbench show`: runs one zoo model on one image and draws what it finds (boxes, category
//! names, scores; masks and keypoints when the model predicts them) into a PNG.

use anyhow::{Context, bail};
use detbench_bench::{ImageInput, StageClock};
use detbench_report::annotate::{DrawOptions, annotate, save_png};
use std::path::PathBuf;

use crate::cmd::engine::EngineArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Zoo name (`detbench zoo` lists them).
    #[arg(short, long, default_value = "yolox_nano")]
    model: String,

    /// The image (JPEG, PNG or BMP).
    #[arg(long)]
    image: PathBuf,

    /// Where to write the annotated PNG.
    #[arg(long, default_value = "annotated.png")]
    out: PathBuf,

    /// Detections scoring below this are not drawn.
    #[arg(long, default_value_t = 0.3)]
    score_threshold: f64,

    #[command(flatten)]
    engine: EngineArgs,

    /// Folder holding the model files [default: the shared models folder].
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.score_threshold) {
        bail!(
            "--score-threshold {}: expected a score between 0 and 1",
            args.score_threshold
        );
    }
    let entry = detbench_models::entry(&args.model)?;
    let config = args.engine.resolve()?.for_model(entry);
    let image = detbench_imgproc::decode_file(&args.image)?;
    let mut detector = detbench_models::open_detector(entry, args.model_dir.as_deref(), &config)?;
    // COCO file names are the image id; anything else is image 0.
    let image_id = args
        .image
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut clock = StageClock::new();
    let detections = detector
        .detect(
            &[ImageInput {
                image_id,
                image: &image,
            }],
            &mut clock,
        )
        .map_err(|e| anyhow::anyhow!("{} on {}: {e}", args.model, args.image.display()))?
        .into_iter()
        .next()
        .unwrap_or_default();
    let options = DrawOptions {
        score_threshold: args.score_threshold,
        ..DrawOptions::default()
    };
    let drawn = annotate(&image, &detections, &options)?;
    save_png(&drawn, &args.out).with_context(|| format!("writing {}", args.out.display()))?;

    let mut shown: Vec<_> = detections
        .iter()
        .filter(|d| d.score >= args.score_threshold)
        .collect();
    shown.sort_by(|a, b| b.score.total_cmp(&a.score));
    println!(
        "{}: {} detections, {} at score >= {} drawn into {}",
        args.model,
        detections.len(),
        shown.len(),
        args.score_threshold,
        args.out.display()
    );
    for d in shown {
        let name = detbench_eval::labels::coco_category_name(d.category_id)
            .map_or_else(|| format!("class {}", d.category_id), str::to_owned);
        let [x, y, w, h] = d.bbox;
        let extras = match (&d.mask, &d.keypoints) {
            (Some(_), Some(_)) => " +mask +keypoints",
            (Some(_), None) => " +mask",
            (None, Some(_)) => " +keypoints",
            (None, None) => "",
        };
        println!(
            "  {name:<16} {:.3}  box [{x:.1}, {y:.1}, {w:.1}, {h:.1}]{extras}",
            d.score
        );
    }
    Ok(())
}
