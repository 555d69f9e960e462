//! The three charts drawn on any plotters backend: latency bars with a p99 whisker, stacked
//! stage times, and the speed/accuracy frontier.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DrawError, FONT, PUBLISHED_TEXT, Stage};
use crate::palette::PALETTE;

pub(super) struct LatencyBar {
    pub(super) label: String,
    pub(super) mean: f64,
    pub(super) p99: f64,
}

/// Horizontal bars (model names stay readable however many there are), mean with a whisker
/// to p99, values printed at the bar ends.
pub(super) fn draw_latency<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    bars: &[LatencyBar],
) -> Result<(), DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    area.fill(&WHITE).map_err(e)?;
    let x_max = bars.iter().map(|b| b.p99.max(b.mean)).fold(0.0, f64::max) * 1.35;
    let n = bars.len();
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = bar_frame(
        area,
        Some("End-to-end latency per call: mean (bar) and p99 (whisker)"),
        &labels,
        x_max,
        "latency (ms per call; per image at batch 1)",
    )?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = n - 1 - i;
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (b.mean, SegmentValue::Exact(i + 1)),
                ],
                PALETTE[0].mix(0.85).filled(),
            );
            bar.set_margin(10, 10, 0, 0);
            bar
        }))
        .map_err(e)?;
    let whisker = BLACK.stroke_width(2);
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = n - 1 - i;
            PathElement::new(
                vec![
                    (b.mean, SegmentValue::CenterOf(i)),
                    (b.p99, SegmentValue::CenterOf(i)),
                ],
                whisker,
            )
        }))
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let i = n - 1 - i;
            EmptyElement::at((b.p99, SegmentValue::CenterOf(i)))
                + PathElement::new(vec![(0, -10), (0, 10)], whisker)
                + Text::new(
                    format!("{} / p99 {} ms", format_ms(b.mean), format_ms(b.p99)),
                    (10, -9),
                    (FONT, 17).into_font(),
                )
        }))
        .map_err(e)?;
    Ok(())
}

/// The coordinates of the horizontal-bar charts: milliseconds across, one segment per label.
type BarCoord = Cartesian2d<RangedCoordf64, SegmentedCoord<RangedCoordusize>>;

/// The frame of a horizontal-bar chart on `area`: optional caption, x from 0 to `x_max` with
/// `x_desc`, one row per label (the first at the top, wide enough for the longest), and the mesh.
fn bar_frame<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: Option<&str>,
    labels: &[String],
    x_max: f64,
    x_desc: &str,
) -> Result<ChartContext<'a, DB, BarCoord>, DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    let n = labels.len();
    let mut builder = ChartBuilder::on(area);
    if let Some(caption) = caption {
        builder.caption(caption, (FONT, 28));
    }
    let mut chart = builder
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(label_area_width(labels.iter().map(String::as_str)))
        .build_cartesian_2d(0.0..x_max.max(1e-3), (0..n - 1).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(x_desc)
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 18))
        .y_labels(n)
        .y_label_formatter(&|v| segment_label(v, labels))
        .x_label_formatter(&|x| format_tick(*x, x_max))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

pub(super) struct StageStack {
    pub(super) label: String,
    pub(super) means: Vec<f64>,
}

pub(super) fn draw_stages<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    stacks: &[StageStack],
) -> Result<(), DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    area.fill(&WHITE).map_err(e)?;
    let x_max = stacks
        .iter()
        .map(|s| s.means.iter().sum::<f64>())
        .fold(0.0, f64::max)
        * 1.4;
    let n = stacks.len();
    let label_width = label_area_width(stacks.iter().map(|s| s.label.as_str()));
    // Title and a one-line legend above the chart, so that the legend never covers a bar.
    let (header, body) = area.split_vertically(100);
    let (width, _) = header.dim_in_pixel();
    let title = TextStyle::from((FONT, 28).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    header
        .draw(&Text::new(
            "Latency by stage: mean per call",
            (width as i32 / 2, 16),
            title,
        ))
        .map_err(e)?;
    let legend_font =
        TextStyle::from((FONT, 18).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let mut x = label_width as i32 + 20;
    for (k, stage) in Stage::ALL.iter().map(|s| s.as_str()).enumerate() {
        header
            .draw(&Rectangle::new(
                [(x, 64), (x + 24, 82)],
                PALETTE[k].filled(),
            ))
            .map_err(e)?;
        header
            .draw(&Text::new(stage, (x + 32, 73), legend_font.clone()))
            .map_err(e)?;
        x += 60 + 11 * stage.len() as i32;
    }
    let labels: Vec<String> = stacks.iter().map(|s| s.label.clone()).collect();
    let mut chart = bar_frame(&body, None, &labels, x_max, "time (ms per call)")?;
    for (k, &color) in PALETTE.iter().enumerate().take(Stage::ALL.len()) {
        chart
            .draw_series(stacks.iter().enumerate().map(|(i, s)| {
                let i = n - 1 - i;
                let start: f64 = s.means[..k].iter().sum();
                let mut bar = Rectangle::new(
                    [
                        (start, SegmentValue::Exact(i)),
                        (start + s.means[k], SegmentValue::Exact(i + 1)),
                    ],
                    color.filled(),
                );
                bar.set_margin(10, 10, 0, 0);
                bar
            }))
            .map_err(e)?;
    }
    chart
        .draw_series(stacks.iter().enumerate().map(|(i, s)| {
            let i = n - 1 - i;
            let total: f64 = s.means.iter().sum();
            let inference = s.means[2];
            EmptyElement::at((total, SegmentValue::CenterOf(i)))
                + Text::new(
                    format!(
                        "{} ms in stages, inference {} ms",
                        format_ms(total),
                        format_ms(inference)
                    ),
                    (10, 0),
                    TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
                )
        }))
        .map_err(e)?;
    Ok(())
}

pub(super) struct FrontierPoint {
    pub(super) label: String,
    pub(super) latency_ms: f64,
    pub(super) ap: f64,
    pub(super) published: bool,
    /// The image set the AP was measured on (images evaluated); the frontier joins only the
    /// points of one set.
    pub(super) image_set: Option<i64>,
}

/// Whether the latency axis is logarithmic: when the points span more than 20x (e.g. a 300 ms
/// published figure beside 5 ms measurements), a linear axis crushes the fast ones together.
pub(super) fn log_latency_axis(points: &[FrontierPoint]) -> bool {
    let min = points
        .iter()
        .map(|p| p.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let max = points.iter().map(|p| p.latency_ms).fold(0.0, f64::max);
    min > 0.0 && max / min > 20.0
}

/// Points on the speed/accuracy frontier: sorted by latency, each more accurate than every
/// faster point (ties in latency keep the more accurate).
fn pareto_frontier(points: &[&FrontierPoint]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<&&FrontierPoint> = points.iter().collect();
    sorted.sort_by(|a, b| {
        a.latency_ms
            .total_cmp(&b.latency_ms)
            .then(b.ap.total_cmp(&a.ap))
    });
    let mut best = f64::NEG_INFINITY;
    let mut frontier = Vec::new();
    for p in sorted {
        if p.ap > best {
            best = p.ap;
            frontier.push((p.latency_ms, p.ap));
        }
    }
    frontier
}

/// The speed/accuracy chart: box AP against mean latency, a frontier per image set through the
/// measured points, measured and published points labelled, and a legend.
pub(super) fn draw_frontier<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[FrontierPoint],
) -> Result<(), DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    area.fill(&WHITE).map_err(e)?;
    let axis = LatencyAxis::of(points);
    let mut chart = frontier_chart(area, points, axis)?;
    let measured: Vec<&FrontierPoint> = points.iter().filter(|p| !p.published).collect();
    draw_frontier_lines(&mut chart, &measured, axis)?;
    draw_frontier_points(area, &mut chart, points, axis)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 18))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// The frontier chart's coordinates: latency (see [`LatencyAxis`]) by box AP.
type FrontierCoord = Cartesian2d<RangedCoordf64, RangedCoordf64>;

/// The frontier chart's latency axis: linear in ms, or log10(ms) on a linear axis with its ticks
/// labelled in ms.
#[derive(Clone, Copy)]
struct LatencyAxis {
    log: bool,
    /// The slowest point's latency (ms) with room for its label.
    max: f64,
}

impl LatencyAxis {
    /// The axis that shows these points: logarithmic when [`log_latency_axis`] says so.
    fn of(points: &[FrontierPoint]) -> Self {
        LatencyAxis {
            log: log_latency_axis(points),
            max: points.iter().map(|p| p.latency_ms).fold(0.0, f64::max) * 1.35,
        }
    }

    /// A latency's position on the axis.
    fn x(self, ms: f64) -> f64 {
        if self.log { ms.log10() } else { ms }
    }

    /// The axis range, in axis units, from just below the fastest point to past the slowest.
    fn range(self, points: &[FrontierPoint]) -> std::ops::Range<f64> {
        if self.log {
            let min = points
                .iter()
                .map(|p| p.latency_ms)
                .fold(f64::INFINITY, f64::min);
            (min.log10() - 0.2)..(self.max.log10() + 0.1)
        } else {
            0.0..self.max.max(1e-3)
        }
    }
}

/// Builds the frontier chart with its caption, axes, axis descriptions and mesh.
fn frontier_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    points: &[FrontierPoint],
    axis: LatencyAxis,
) -> Result<ChartContext<'a, DB, FrontierCoord>, DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    let y_max = (points.iter().map(|p| p.ap).fold(0.0, f64::max) * 1.15).max(1.0);
    let mut chart = ChartBuilder::on(area)
        .caption("Speed/accuracy: box AP against mean latency", (FONT, 28))
        .margin(24)
        .x_label_area_size(64)
        .y_label_area_size(80)
        .build_cartesian_2d(axis.range(points), 0.0..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(if axis.log {
            "mean latency (ms per call, log scale; per image at batch 1)"
        } else {
            "mean latency (ms per call; per image at batch 1)"
        })
        .y_desc("box AP (%, COCO AP@[.50:.95])")
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 18))
        .x_label_formatter(&|v| {
            if axis.log {
                format_ms(10f64.powf(*v))
            } else {
                format_tick(*v, axis.max)
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(e)?;
    Ok(chart)
}

/// Draws one frontier line per image set through the measured points (an AP on 20 images is not
/// comparable with one on 206), with one legend entry for all of them.
fn draw_frontier_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, FrontierCoord>,
    measured: &[&FrontierPoint],
    axis: LatencyAxis,
) -> Result<(), DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    let mut sets: Vec<Option<i64>> = measured.iter().map(|p| p.image_set).collect();
    sets.sort();
    sets.dedup();
    let line = PALETTE[0].stroke_width(2);
    let mut legend_drawn = false;
    for set in &sets {
        let members: Vec<&FrontierPoint> = measured
            .iter()
            .copied()
            .filter(|p| p.image_set == *set)
            .collect();
        let frontier: Vec<(f64, f64)> = pareto_frontier(&members)
            .into_iter()
            .map(|(ms, ap)| (axis.x(ms), ap))
            .collect();
        if frontier.len() < 2 {
            continue;
        }
        let series = chart
            .draw_series(LineSeries::new(frontier, line))
            .map_err(e)?;
        if !legend_drawn {
            legend_drawn = true;
            series
                .label(if sets.len() > 1 {
                    "speed/accuracy frontier (measured, one per image set)"
                } else {
                    "speed/accuracy frontier (measured)"
                })
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        }
    }
    Ok(())
}

/// Draws the measured (circles) and published (triangles) points, each labelled, with label
/// positions chosen over all points at once so that labels avoid each other.
fn draw_frontier_points<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &mut ChartContext<'_, DB, FrontierCoord>,
    points: &[FrontierPoint],
    axis: LatencyAxis,
) -> Result<(), DrawError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
    let label_font = TextStyle::from((FONT, 17).into_font());
    let anchors: Vec<(i32, i32)> = points
        .iter()
        .map(|p| chart.backend_coord(&(axis.x(p.latency_ms), p.ap)))
        .collect();
    let texts: Vec<String> = points.iter().map(point_text).collect();
    let sizes: Vec<(u32, u32)> = texts
        .iter()
        .map(|t| area.estimate_text_size(t, &label_font).unwrap_or((0, 0)))
        .collect();
    let (x_range, y_range) = chart.plotting_area().get_pixel_range();
    let placements = place_labels(&anchors, &sizes, (x_range, y_range));
    let label = |i: usize, color: &'static RGBColor| {
        let (dx, dy, hpos) = placements[i];
        Text::new(
            texts[i].clone(),
            (dx, dy),
            label_font.color(color).pos(Pos::new(hpos, VPos::Center)),
        )
    };
    let indices = |published: bool| -> Vec<usize> {
        (0..points.len())
            .filter(|&i| points[i].published == published)
            .collect()
    };
    if points.iter().any(|p| !p.published) {
        chart
            .draw_series(indices(false).into_iter().map(|i| {
                EmptyElement::at((axis.x(points[i].latency_ms), points[i].ap))
                    + Circle::new((0, 0), 7, PALETTE[0].filled())
                    + label(i, &BLACK)
            }))
            .map_err(e)?
            .label("measured by detbench")
            .legend(|(x, y)| Circle::new((x + 12, y), 7, PALETTE[0].filled()));
    }
    if points.iter().any(|p| p.published) {
        let color = PALETTE[1];
        chart
            .draw_series(indices(true).into_iter().map(|i| {
                EmptyElement::at((axis.x(points[i].latency_ms), points[i].ap))
                    + TriangleMarker::new((0, 0), 9, color.stroke_width(3))
                    + label(i, &PUBLISHED_TEXT)
            }))
            .map_err(e)?
            .label("published (source's own hardware and data)")
            .legend(move |(x, y)| TriangleMarker::new((x + 12, y), 9, color.stroke_width(3)));
    }
    Ok(())
}

/// A point's label: name, AP and latency.
pub(super) fn point_text(p: &FrontierPoint) -> String {
    format!(
        "{} ({:.1} AP, {} ms)",
        p.label,
        p.ap,
        format_ms(p.latency_ms)
    )
}

/// Greedy label placement: for each point in turn, the first of a few positions around it
/// (right/left, above/below, then further out) whose text box stays inside the plot and
/// overlaps no marker and no label placed before. Returns (dx, dy, anchor) per point.
fn place_labels(
    anchors: &[(i32, i32)],
    sizes: &[(u32, u32)],
    (x_range, y_range): (std::ops::Range<i32>, std::ops::Range<i32>),
) -> Vec<(i32, i32, HPos)> {
    const MARKER: i32 = 10;
    let candidates = [
        (12, -16, HPos::Left),
        (12, 16, HPos::Left),
        (-12, -16, HPos::Right),
        (-12, 16, HPos::Right),
        (12, -38, HPos::Left),
        (12, 38, HPos::Left),
        (-12, -38, HPos::Right),
        (-12, 38, HPos::Right),
        (12, -60, HPos::Left),
        (-12, 60, HPos::Right),
    ];
    let markers: Vec<[i32; 4]> = anchors
        .iter()
        .map(|&(x, y)| [x - MARKER, y - MARKER, x + MARKER, y + MARKER])
        .collect();
    let overlaps =
        |a: &[i32; 4], b: &[i32; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
    let mut placed: Vec<[i32; 4]> = Vec::new();
    let mut result = Vec::new();
    for (i, &(x, y)) in anchors.iter().enumerate() {
        let (w, h) = (sizes[i].0 as i32, sizes[i].1 as i32);
        let boxed = |(dx, dy, hpos): (i32, i32, HPos)| {
            let left = if matches!(hpos, HPos::Left) {
                x + dx
            } else {
                x + dx - w
            };
            [left, y + dy - h / 2, left + w, y + dy + h / 2]
        };
        let fits = |b: &[i32; 4]| {
            b[0] >= x_range.start
                && b[2] <= x_range.end
                && b[1] >= y_range.start
                && b[3] <= y_range.end
        };
        let free = |b: &[i32; 4]| {
            !markers.iter().any(|m| overlaps(b, m)) && !placed.iter().any(|p| overlaps(b, p))
        };
        let choice = candidates
            .iter()
            .copied()
            .find(|&c| {
                let b = boxed(c);
                fits(&b) && free(&b)
            })
            .or_else(|| candidates.iter().copied().find(|&c| fits(&boxed(c))))
            .unwrap_or(candidates[0]);
        placed.push(boxed(choice));
        result.push(choice);
    }
    result
}

/// Space for the longest category label at 18 px (about 10 px per character).
pub(super) fn label_area_width<'a>(labels: impl Iterator<Item = &'a str>) -> u32 {
    let longest = labels.map(|l| l.chars().count()).max().unwrap_or(0) as u32;
    (longest * 10 + 30).clamp(120, 560)
}

pub(super) fn segment_label(value: &SegmentValue<usize>, labels: &[String]) -> String {
    match value {
        // Rows run top to bottom: the first label is drawn in the highest segment.
        SegmentValue::CenterOf(i) if *i < labels.len() => labels[labels.len() - 1 - i].clone(),
        _ => String::new(),
    }
}

/// An axis tick: as many decimals as the axis range needs.
pub(super) fn format_tick(value: f64, axis_max: f64) -> String {
    if axis_max >= 20.0 {
        format!("{value:.0}")
    } else if axis_max >= 2.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Milliseconds with as many decimals as their size needs.
pub(super) fn format_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_points_better_than_every_faster_one() {
        let p = |latency_ms, ap| FrontierPoint {
            label: String::new(),
            latency_ms,
            ap,
            published: false,
            image_set: None,
        };
        let points = [
            p(10.0, 20.0),
            p(5.0, 15.0),
            p(12.0, 18.0),
            p(30.0, 30.0),
            p(10.0, 22.0),
        ];
        let refs: Vec<&FrontierPoint> = points.iter().collect();
        assert_eq!(
            pareto_frontier(&refs),
            vec![(5.0, 15.0), (10.0, 22.0), (30.0, 30.0)]
        );
    }
}
