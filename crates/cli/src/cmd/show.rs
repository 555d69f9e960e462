//! `detbench show`: runs one zoo model on one image and draws what it finds (boxes, category
//! names, scores; masks and keypoints when the model predicts them) into a PNG or JPEG.
//!
//! The image is read as stored, without EXIF rotation, as for COCO (whose ground truth is in
//! stored-pixel orientation); `--exif-rotate` turns a photo upright first.

use anyhow::{Context, bail};
use detbench_backends::EngineKind;
use detbench_bench::{ImageInput, StageClock};
use detbench_imgproc::BgrImage;
use detbench_report::annotate::{DrawOptions, annotate, save_image};
use std::path::{Path, PathBuf};

use crate::cmd::detector;
use crate::cmd::engine::EngineArgs;

#[derive(clap::Args)]
pub struct Args {
    /// Zoo name (`detbench zoo` lists them).
    #[arg(short, long, default_value = "yolox_nano")]
    model: String,

    /// The image (JPEG, PNG or BMP).
    #[arg(long)]
    image: PathBuf,

    /// Where to write the annotated image; the extension picks the format (.png, .jpg, .jpeg).
    #[arg(long, default_value = "annotated.png")]
    out: PathBuf,

    /// Turn the image upright by its EXIF orientation before the model sees it (for photos;
    /// COCO's images and ground truth are in stored-pixel orientation, so by default the
    /// pixels are used as stored, as OpenCV's imread in the reference pipelines does).
    #[arg(long)]
    exif_rotate: bool,

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
    let extension = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if !matches!(extension.as_deref(), Some("png" | "jpg" | "jpeg")) {
        bail!(
            "--out {}: the format is taken from the extension; use .png, .jpg or .jpeg",
            args.out.display()
        );
    }
    if !(0.0..=1.0).contains(&args.score_threshold) {
        bail!(
            "--score-threshold {}: expected a score between 0 and 1",
            args.score_threshold
        );
    }
    let entry = detbench_models::entry(&args.model)?;
    let config = args.engine.resolve()?.for_model(entry);
    if config.engine == EngineKind::Native {
        detector::check_native(&[entry], &config)?;
    }
    let image = read_image(&args.image, args.exif_rotate)?;
    let zoo = crate::cmd::cards::load_zoo(args.model_dir.as_deref());
    let model_dir = detbench_models::model_dir(args.model_dir.as_deref())?;
    let ctx = detbench_models::OpenContext {
        model_dir: &model_dir,
        config: &config,
        categories: None,
        zoo: &zoo,
    };
    let mut detector = detector::open(entry, &ctx).map_err(anyhow::Error::from_boxed)?;
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
    save_image(&drawn, &args.out).with_context(|| format!("writing {}", args.out.display()))?;

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

/// The image's pixels, turned upright by its EXIF orientation when `exif_rotate` asks.
fn read_image(path: &Path, exif_rotate: bool) -> anyhow::Result<BgrImage> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read image file {}", path.display()))?;
    let image = detbench_imgproc::decode_bytes(&bytes, &path.display().to_string())?;
    if !exif_rotate {
        return Ok(image);
    }
    Ok(match detbench_imgproc::exif_orientation(&bytes) {
        Some(orientation) => detbench_imgproc::apply_orientation(&image, orientation),
        None => image,
    })
}
