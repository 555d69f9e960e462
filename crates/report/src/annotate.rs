//! Detections drawn on an image, for `detbench show`: boxes with category name and score,
//! instance masks blended semi-transparently, and keypoints joined by the COCO person skeleton.
//! Drawing goes through plotters' bitmap backend on the image's own pixels; masks are decoded
//! with hotcoco (pycocotools' RLE layout) and blended here, since plotters has no mask
//! primitive.

use detbench_eval::Detection;
use detbench_imgproc::BgrImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// The COCO person skeleton: pairs of 1-based keypoint indices, as in the `skeleton` of the
/// person category of `person_keypoints_val2017.json` (and pycocotools' `COCO.showAnns`, which
/// draws `sks = np.array(coco.loadCats(ann['category_id'])[0]['skeleton']) - 1`).
pub const COCO_PERSON_SKELETON: [[usize; 2]; 19] = [
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
];

/// Opacity of instance masks over the image.
pub const MASK_ALPHA: f64 = 0.45;

#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("detection {index} has a {mask_w}x{mask_h} mask but the image is {image_w}x{image_h}")]
    MaskSize {
        index: usize,
        mask_w: u32,
        mask_h: u32,
        image_w: usize,
        image_h: usize,
    },
    #[error("drawing: {0}")]
    Draw(String),
    #[error("cannot write {path}: the format is taken from the extension: .png, .jpg or .jpeg")]
    Format { path: String },
    #[error("cannot encode {path}: {reason}")]
    Encode { path: String, reason: String },
    #[error(transparent)]
    Write(#[from] crate::WriteError),
}

#[derive(Debug, Clone)]
pub struct DrawOptions {
    /// Detections scoring below this are not drawn.
    pub score_threshold: f64,
    /// Keypoints with a visibility/score at or below this are not drawn (COCO ground truth
    /// uses v = 0 for unlabelled points).
    pub keypoint_threshold: f64,
}

impl Default for DrawOptions {
    fn default() -> Self {
        DrawOptions {
            score_threshold: 0.3,
            keypoint_threshold: 0.0,
        }
    }
}

/// Colours per category: the palette cycled by category id.
pub use crate::palette::category_color;

/// An RGB image (row-major, 3 bytes per pixel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Draws `detections` (at or above the score threshold, lowest score first so that the best
/// end on top) over `image`.
pub fn annotate(
    image: &BgrImage,
    detections: &[Detection],
    options: &DrawOptions,
) -> Result<RgbImage, AnnotateError> {
    let (width, height) = (image.width, image.height);
    let mut rgb: Vec<u8> = image
        .data
        .chunks_exact(3)
        .flat_map(|bgr| [bgr[2], bgr[1], bgr[0]])
        .collect();
    let mut shown: Vec<(usize, &Detection)> = detections
        .iter()
        .enumerate()
        .filter(|(_, d)| d.score >= options.score_threshold)
        .collect();
    shown.sort_by(|a, b| a.1.score.total_cmp(&b.1.score));

    for &(index, detection) in &shown {
        if let Some(mask) = &detection.mask {
            if mask.width as usize != width || mask.height as usize != height {
                return Err(AnnotateError::MaskSize {
                    index,
                    mask_w: mask.width,
                    mask_h: mask.height,
                    image_w: width,
                    image_h: height,
                });
            }
            blend_mask(
                &mut rgb,
                width,
                height,
                mask,
                category_color(detection.category_id),
            );
        }
    }

    let short_side = width.min(height) as f64;
    let line = (short_side / 220.0).round().max(2.0) as u32;
    let font_px = (short_side / 32.0).round().max(13.0);
    {
        let area =
            BitMapBackend::with_buffer(&mut rgb, (width as u32, height as u32)).into_drawing_area();
        let draw_error = |e: DrawingAreaErrorKind<_>| AnnotateError::Draw(e.to_string());
        for &(_, detection) in &shown {
            let color = category_color(detection.category_id);
            if let Some(keypoints) = &detection.keypoints {
                draw_keypoints(&area, keypoints, color, line, options.keypoint_threshold)
                    .map_err(draw_error)?;
            }
            let [x, y, w, h] = detection.bbox;
            let (x0, y0) = (x.round() as i32, y.round() as i32);
            let (x1, y1) = ((x + w).round() as i32, (y + h).round() as i32);
            area.draw(&Rectangle::new(
                [(x0, y0), (x1, y1)],
                color.stroke_width(line),
            ))
            .map_err(draw_error)?;
            let name = detbench_eval::labels::coco_category_name(detection.category_id)
                .map_or_else(|| format!("class {}", detection.category_id), str::to_owned);
            draw_label(
                &area,
                &format!("{name} {:.2}", detection.score),
                (x0, y0),
                color,
                font_px,
            )
            .map_err(draw_error)?;
        }
        area.present().map_err(draw_error)?;
    }
    Ok(RgbImage {
        width,
        height,
        data: rgb,
    })
}

/// Blends `color` into the pixels under the mask (COCO RLE, column-major).
fn blend_mask(
    rgb: &mut [u8],
    width: usize,
    height: usize,
    mask: &detbench_eval::Rle,
    color: RGBColor,
) {
    let decoded = hotcoco::mask::decode(&hotcoco::Rle {
        h: mask.height,
        w: mask.width,
        counts: mask.counts.clone(),
    });
    let tint = [color.0, color.1, color.2];
    for x in 0..width {
        for y in 0..height {
            if decoded[x * height + y] == 0 {
                continue;
            }
            let at = (y * width + x) * 3;
            for c in 0..3 {
                let blended =
                    f64::from(tint[c]) * MASK_ALPHA + f64::from(rgb[at + c]) * (1.0 - MASK_ALPHA);
                rgb[at + c] = blended.round() as u8;
            }
        }
    }
}

fn draw_keypoints<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    keypoints: &[f64],
    color: RGBColor,
    line: u32,
    threshold: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let point = |k: usize| -> Option<(i32, i32)> {
        let at = k * 3;
        let v = *keypoints.get(at + 2)?;
        (v > threshold).then(|| {
            (
                keypoints[at].round() as i32,
                keypoints[at + 1].round() as i32,
            )
        })
    };
    for [a, b] in COCO_PERSON_SKELETON {
        if let (Some(p), Some(q)) = (point(a - 1), point(b - 1)) {
            area.draw(&PathElement::new(vec![p, q], color.stroke_width(line)))?;
        }
    }
    for k in 0..keypoints.len() / 3 {
        if let Some(p) = point(k) {
            let radius = line as i32 + 2;
            area.draw(&Circle::new(p, radius, WHITE.filled()))?;
            area.draw(&Circle::new(p, radius, color.stroke_width(2)))?;
        }
    }
    Ok(())
}

/// The label on a filled background just above the box's top-left corner (inside the image
/// when the box touches the top edge).
fn draw_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    (x, y): (i32, i32),
    color: RGBColor,
    font_px: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from(("sans-serif", font_px).into_font())
        .color(&WHITE)
        .pos(Pos::new(HPos::Left, VPos::Top));
    let (w, h) = area.estimate_text_size(text, &style)?;
    let (w, h) = (w as i32 + 8, h as i32 + 6);
    let top = if y - h >= 0 { y - h } else { y };
    let (image_w, _) = area.dim_in_pixel();
    let left = x.clamp(0, (image_w as i32 - w).max(0));
    area.draw(&Rectangle::new(
        [(left, top), (left + w, top + h)],
        color.mix(0.85).filled(),
    ))?;
    area.draw(&Text::new(text.to_owned(), (left + 4, top + 3), style))?;
    Ok(())
}

/// Writes the image atomically in the format its file name's extension names: `.png`, or
/// `.jpg`/`.jpeg` (quality 92); any other extension is an error naming the ones written.
pub fn save_image(image: &RgbImage, path: &Path) -> Result<(), AnnotateError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => save_png(image, path),
        Some("jpg" | "jpeg") => {
            let jpeg = detbench_imgproc::encode_jpeg(&image.data, image.width, image.height, 92)
                .map_err(|e| AnnotateError::Encode {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            crate::write_atomic(path, &jpeg)?;
            Ok(())
        }
        _ => Err(AnnotateError::Format {
            path: path.display().to_string(),
        }),
    }
}

/// Writes the image as PNG, atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), AnnotateError> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            &image.data,
            image.width as u32,
            image.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| AnnotateError::Encode {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    crate::write_atomic(path, &png)?;
    Ok(())
}
