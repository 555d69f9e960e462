//! Charts of stored results, drawn with plotters as PNG (bitmap backend, PNG-encoded by the
//! `image` crate) and SVG, each written atomically:
//!
//! - `latency.{png,svg}`: mean end-to-end latency per model and setting, with a whisker to p99;
//! - `frontier.{png,svg}`: box AP against mean latency, points labelled, with the
//!   speed/accuracy (Pareto) frontier of the measured points; published points drawn apart;
//! - `stages.{png,svg}`: mean time per stage (decode, preprocess, inference, postprocess),
//!   stacked;
//! - `loss_curves.{png,svg}`: training runs' losses per step, one panel per loss component
//!   ([`loss`]).
//!
//! Text goes through FreeType with the system's sans-serif font (fontconfig); Debian's
//! `fonts-dejavu-core` is enough.

use crate::store::ResultRecord;
use crate::write_atomic;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

use detbench_bench::Stage;
use detbench_eval::IouType;
use image::ImageEncoder;

mod draw;
pub mod loss;

use draw::{FrontierPoint, LatencyBar, StageStack, draw_frontier, draw_latency, draw_stages};
pub use loss::write_loss_curves;

/// A plotters drawing error, as text (its type depends on the backend drawn on).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DrawError(String);

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("drawing {chart}: {reason}")]
    Draw { chart: String, reason: DrawError },
    #[error(transparent)]
    Write(#[from] crate::WriteError),
    #[error("cannot encode {path} as PNG: {reason}")]
    Encode { path: String, reason: String },
    #[error(
        "no sans-serif font found for chart text (plotters needs one through fontconfig); on \
         Debian install fonts-dejavu-core (scripts/setup.sh does)"
    )]
    NoFont,
    #[error(
        "cannot load the fontconfig library that chart text needs ({reason}); on Debian install \
         libfontconfig1, or put the folder holding libfontconfig.so.1 on LD_LIBRARY_PATH"
    )]
    NoFontconfig { reason: String },
}

const FONT: &str = "sans-serif";
/// Text colour of published points' labels (a dark orange, matching their markers).
const PUBLISHED_TEXT: RGBColor = RGBColor(150, 80, 10);
const WIDTH: u32 = 1400;

/// Writes every chart that the records support into `dir` and returns the files written.
/// A chart with nothing to show (no latency, no AP) is skipped.
pub fn write_charts(records: &[ResultRecord], dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    check_font()?;
    let measured: Vec<&ResultRecord> = records
        .iter()
        .filter(|r| !r.is_published() && r.latency.is_some())
        .collect();
    let (labels, footnote) = marked_labels(&measured);
    let mut written = Vec::new();

    if !measured.is_empty() {
        let bars = latency_bars(&measured, &labels);
        let height = bar_chart_height(bars.len());
        written.extend(save_both(
            dir,
            "latency",
            (WIDTH, height),
            &LatencyChart(&bars),
            footnote,
        )?);

        let stacks = stage_stacks(&measured, &labels);
        if !stacks.is_empty() {
            let height = bar_chart_height(stacks.len());
            written.extend(save_both(
                dir,
                "stages",
                (WIDTH, height),
                &StagesChart(&stacks),
                footnote,
            )?);
        }
    }

    let points = frontier_points(records, &measured, &labels);
    if !points.is_empty() {
        written.extend(save_both(
            dir,
            "frontier",
            (WIDTH, 900),
            &FrontierChart(&points),
            footnote,
        )?);
    }
    Ok(written)
}

/// The measured records' labels, those whose timing the harness flagged as not valid marked
/// with " *", and the footnote that explains the mark when any is.
fn marked_labels(measured: &[&ResultRecord]) -> (Vec<String>, Option<&'static str>) {
    let mut labels = setting_labels(measured);
    let mut footnote = None;
    for (label, r) in labels.iter_mut().zip(measured) {
        if r.latency.as_ref().is_some_and(|l| !l.valid) {
            label.push_str(" *");
            footnote =
                Some("* timing flagged as not valid by the harness (see the report's notes)");
        }
    }
    (labels, footnote)
}

/// One latency bar (mean, p99 end to end) per measured record.
fn latency_bars(measured: &[&ResultRecord], labels: &[String]) -> Vec<LatencyBar> {
    measured
        .iter()
        .zip(labels)
        .map(|(r, label)| {
            let l = r.latency.as_ref().expect("filtered");
            LatencyBar {
                label: label.clone(),
                mean: l.end_to_end.mean,
                p99: l.end_to_end.p99,
            }
        })
        .collect()
}

/// One stack of stage means per measured record that has stage timings.
fn stage_stacks(measured: &[&ResultRecord], labels: &[String]) -> Vec<StageStack> {
    measured
        .iter()
        .zip(labels)
        .filter(|(r, _)| !r.stages.is_empty())
        .map(|(r, label)| StageStack {
            label: label.clone(),
            means: Stage::ALL
                .iter()
                .map(|s| r.stage_mean_ms(*s).unwrap_or(0.0))
                .collect(),
        })
        .collect()
}

/// The frontier chart's points: every measured record with a latency and a box AP, then every
/// published one. APs on different image sets (a --limit run beside a full one) are labelled
/// with their image count, and each set gets its own frontier.
fn frontier_points(
    records: &[ResultRecord],
    measured: &[&ResultRecord],
    labels: &[String],
) -> Vec<FrontierPoint> {
    let mut image_sets: Vec<Option<i64>> = measured
        .iter()
        .filter(|r| ap_percent(r).is_some())
        .map(|r| r.dataset_images)
        .collect();
    image_sets.sort();
    image_sets.dedup();
    let mixed_sets = image_sets.len() > 1;
    let mut points: Vec<FrontierPoint> = measured
        .iter()
        .zip(labels)
        .filter_map(|(r, label)| {
            let label = match (mixed_sets, r.dataset_images) {
                (true, Some(n)) => format!("{label} [{n} images]"),
                _ => label.clone(),
            };
            Some(FrontierPoint {
                label,
                latency_ms: r.latency_mean_ms()?,
                ap: ap_percent(r)?,
                published: false,
                image_set: r.dataset_images,
            })
        })
        .collect();
    points.extend(records.iter().filter(|r| r.is_published()).filter_map(|r| {
        Some(FrontierPoint {
            label: format!("{} [{}]", r.model, r.published.as_ref()?.name),
            latency_ms: r.latency_mean_ms()?,
            ap: ap_percent(r)?,
            published: true,
            image_set: None,
        })
    }));
    points
}

fn ap_percent(r: &ResultRecord) -> Option<f64> {
    r.stat(IouType::Bbox, "AP")
        .filter(|v| *v >= 0.0)
        .map(|v| v * 100.0)
}

fn bar_chart_height(bars: usize) -> u32 {
    (200 + 56 * bars as u32).max(420)
}

/// Fails early, with advice, when the fontconfig library cannot be loaded or finds no
/// sans-serif font. The library is loaded through the same lazy loader font-kit uses, asked
/// first: font-kit unwraps a failed load, which would panic inside plotters.
fn check_font() -> Result<(), ChartError> {
    if let Err(e) = fontconfig_sys::statics::LIB_RESULT.as_ref() {
        return Err(ChartError::NoFontconfig {
            reason: e.to_string(),
        });
    }
    let style: TextStyle = (FONT, 16).into_font().into();
    let probe = style.font.box_size("Ag");
    match probe {
        Ok((w, h)) if w > 0 && h > 0 => Ok(()),
        _ => Err(ChartError::NoFont),
    }
}

/// A label per record: the model name, plus the settings (engine, device, precision, batch)
/// that differ between the records charted.
fn setting_labels(records: &[&ResultRecord]) -> Vec<String> {
    type Getter = fn(&ResultRecord) -> String;
    let settings: [Getter; 5] = [
        |r| r.engine.map(|e| e.to_string()).unwrap_or_default(),
        |r| r.device.map(|d| d.to_string()).unwrap_or_default(),
        |r| r.precision.map(|p| p.to_string()).unwrap_or_default(),
        |r| {
            r.batch_size
                .map(|b| format!("batch {b}"))
                .unwrap_or_default()
        },
        |r| match r.threads {
            None => "default threads".to_owned(),
            Some(1) => "1 thread".to_owned(),
            Some(t) => format!("{t} threads"),
        },
    ];
    let varying: Vec<&Getter> = settings
        .iter()
        .filter(|get| {
            let mut values: Vec<String> = records.iter().map(|r| get(r)).collect();
            values.sort();
            values.dedup();
            values.len() > 1
        })
        .collect();
    let mut labels: Vec<String> = records
        .iter()
        .map(|r| {
            let parts: Vec<String> = varying.iter().map(|get| get(r)).collect();
            if parts.is_empty() {
                r.model.clone()
            } else {
                format!("{} ({})", r.model, parts.join(", "))
            }
        })
        .collect();
    // The same model and settings measured in several runs: tell them apart by run id.
    for i in 0..labels.len() {
        if labels.iter().filter(|l| **l == labels[i]).count() > 1 {
            let same: Vec<usize> = (0..labels.len())
                .filter(|&j| labels[j] == labels[i])
                .collect();
            for j in same {
                labels[j] = format!("{} #{}", labels[j], records[j].run_id);
            }
        }
    }
    labels
}

/// A chart that can be drawn on any plotters backend (bitmap for PNG, SVG).
trait Chart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError>;
}

struct LatencyChart<'a>(&'a [LatencyBar]);
struct StagesChart<'a>(&'a [StageStack]);
struct FrontierChart<'a>(&'a [FrontierPoint]);

impl Chart for LatencyChart<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        draw_latency(area, self.0)
    }
}

impl Chart for StagesChart<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        draw_stages(area, self.0)
    }
}

impl Chart for FrontierChart<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        draw_frontier(area, self.0)
    }
}

/// Draws a chart on a PNG bitmap and on an SVG, and writes both atomically.
fn save_both(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    chart: &impl Chart,
    footnote: Option<&str>,
) -> Result<Vec<PathBuf>, ChartError> {
    let draw_error = |reason: DrawError| ChartError::Draw {
        chart: stem.to_owned(),
        reason,
    };
    let png_path = dir.join(format!("{stem}.png"));
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        chart.draw(&area).map_err(draw_error)?;
        draw_footnote(&area, footnote).map_err(draw_error)?;
        area.present()
            .map_err(|e| draw_error(DrawError(e.to_string())))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, size.0, size.1, image::ExtendedColorType::Rgb8)
        .map_err(|e| ChartError::Encode {
            path: png_path.display().to_string(),
            reason: e.to_string(),
        })?;
    write_atomic(&png_path, &png)?;

    let svg_path = dir.join(format!("{stem}.svg"));
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&area).map_err(draw_error)?;
        draw_footnote(&area, footnote).map_err(draw_error)?;
        area.present()
            .map_err(|e| draw_error(DrawError(e.to_string())))?;
    }
    write_atomic(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// A line of small print in the bottom-left corner.
fn draw_footnote<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    footnote: Option<&str>,
) -> Result<(), DrawError> {
    let Some(text) = footnote else {
        return Ok(());
    };
    let (_, height) = area.dim_in_pixel();
    area.draw(&Text::new(
        text.to_owned(),
        (16, height as i32 - 26),
        (FONT, 16).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(|e| DrawError(e.to_string()))
}
