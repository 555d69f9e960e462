//! The loss-curve chart of training runs (`loss_curves.{png,svg}`): one panel for the summed
//! loss and one per loss component (`loss_classifier`, `loss_box_reg`, ...), step on the x axis,
//! a line per run in the palette's colours, the runs named in a legend above the panels.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Chart, ChartError, DrawError, FONT, WIDTH, check_font, save_both};
use crate::palette::PALETTE;
use crate::tables::TrainingEntry;

/// The panel of the summed loss.
const TOTAL: &str = "total loss";
const PANEL_HEIGHT: u32 = 360;
const LEGEND_LINE: u32 = 30;

/// One run's curves: `(step, value)` per panel, in panel order.
struct RunCurves {
    label: String,
    panels: Vec<Vec<(i64, f64)>>,
}

struct LossChart {
    panel_names: Vec<String>,
    runs: Vec<RunCurves>,
}

/// Writes `loss_curves.png` and `loss_curves.svg` into `dir` for the runs that did at least one
/// step; nothing (an empty list) when none did.
pub fn write_loss_curves(
    entries: &[TrainingEntry],
    dir: &Path,
) -> Result<Vec<PathBuf>, ChartError> {
    let entries: Vec<&TrainingEntry> = entries
        .iter()
        .filter(|e| !e.results.steps.is_empty())
        .collect();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    check_font()?;
    let mut panel_names = vec![TOTAL.to_owned()];
    for e in &entries {
        for name in &e.results.loss_names {
            if !panel_names.contains(name) {
                panel_names.push(name.clone());
            }
        }
    }
    let labels = run_labels(&entries);
    let runs = entries
        .iter()
        .zip(labels)
        .map(|(e, label)| {
            let r = e.results;
            let panels = panel_names
                .iter()
                .map(|name| {
                    let index = r.loss_names.iter().position(|n| n == name);
                    r.steps
                        .iter()
                        .filter_map(|s| {
                            let value = match index {
                                Some(i) => *s.losses.get(i)?,
                                None if name == TOTAL => s.total_loss,
                                None => return None,
                            };
                            value.is_finite().then_some((s.step as i64, value))
                        })
                        .collect()
                })
                .collect();
            RunCurves { label, panels }
        })
        .collect();
    let chart = LossChart { panel_names, runs };
    let height = chart.legend_height() + chart.panel_rows() * PANEL_HEIGHT;
    save_both(dir, "loss_curves", (WIDTH, height), &chart, None)
}

/// The runs' labels, told apart by run id (or position) where two are alike.
fn run_labels(entries: &[&TrainingEntry]) -> Vec<String> {
    let base: Vec<String> = entries.iter().map(|e| e.results.label()).collect();
    base.iter()
        .enumerate()
        .map(|(i, label)| {
            if base.iter().filter(|l| *l == label).count() == 1 {
                return label.clone();
            }
            match entries[i].run {
                Some(run) => format!("{label} #{run}"),
                None => format!("{label} ({})", i + 1),
            }
        })
        .collect()
}

impl LossChart {
    fn columns(&self) -> usize {
        if self.panel_names.len() > 1 { 2 } else { 1 }
    }

    fn panel_rows(&self) -> u32 {
        self.panel_names.len().div_ceil(self.columns()) as u32
    }

    /// The title line and one legend line per run.
    fn legend_height(&self) -> u32 {
        60 + LEGEND_LINE * self.runs.len() as u32 + 10
    }
}

impl Chart for LossChart {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
        area.fill(&WHITE).map_err(e)?;
        let (header, body) = area.split_vertically(self.legend_height());
        let (width, _) = header.dim_in_pixel();
        let title = TextStyle::from((FONT, 28).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        header
            .draw(&Text::new(
                "Training loss per step",
                (width as i32 / 2, 14),
                title,
            ))
            .map_err(e)?;
        for (i, run) in self.runs.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let y = 60 + (i as u32 * LEGEND_LINE) as i32;
            header
                .draw(&Rectangle::new(
                    [(40, y + 6), (80, y + 12)],
                    colour.filled(),
                ))
                .map_err(e)?;
            header
                .draw(&Text::new(
                    run.label.clone(),
                    (92, y),
                    (FONT, 18).into_font(),
                ))
                .map_err(e)?;
        }
        let rows = self.panel_rows() as usize;
        let panels = body.split_evenly((rows, self.columns()));
        for (index, (panel, name)) in panels.iter().zip(&self.panel_names).enumerate() {
            self.draw_panel(panel, name, index)?;
        }
        Ok(())
    }
}

impl LossChart {
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        name: &str,
        index: usize,
    ) -> Result<(), DrawError> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| DrawError(e.to_string());
        let points = || self.runs.iter().flat_map(|r| r.panels[index].iter());
        let x_max = points().map(|p| p.0).max().unwrap_or(0).max(1);
        let (y_min, y_max) = points().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
        let (y_min, y_max) = if y_min.is_finite() {
            let pad = ((y_max - y_min) * 0.08).max(1e-6);
            ((y_min - pad).max(0.0), y_max + pad)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(name, (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0..x_max, y_min..y_max)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 15))
            .x_labels((x_max as usize + 1).min(12))
            .light_line_style(RGBColor(238, 238, 238))
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(e)?;
        for (i, run) in self.runs.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    run.panels[index].iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(e)?;
            if run.panels[index].len() == 1 {
                // A single step draws no line: mark the point.
                chart
                    .draw_series(
                        run.panels[index]
                            .iter()
                            .map(|&p| Circle::new(p, 4, colour.filled())),
                    )
                    .map_err(e)?;
            }
        }
        Ok(())
    }
}
