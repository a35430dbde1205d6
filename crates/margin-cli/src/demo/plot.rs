//! The demo's picture: two scatter plots side by side (the 2-D PCA view of the held-out
//! embeddings before and after training), one colour per class, titles and a legend drawn with
//! the built-in pixel font. Only plotters' bitmap backend and PNG encoder are used: no fonts, no
//! system libraries.

use super::font;
use crate::error::CliError;
use plotters::prelude::*;
use std::path::Path;

/// Image size in pixels.
pub const WIDTH: u32 = 1200;
pub const HEIGHT: u32 = 720;

/// Layout: each panel is half the width; a title band on top, a square plot, a legend band.
const PANEL: i32 = WIDTH as i32 / 2;
const TITLE_BAND: i32 = 64;
const PLOT_SIDE: i32 = 580;
const LEGEND_TOP: i32 = TITLE_BAND + PLOT_SIDE + 14;
const POINT_RADIUS: i32 = 3;

/// Matplotlib's "tab10" palette: ten colours that stay apart for most readers.
const CLASS_COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of class `label` (labels beyond ten classes reuse the palette).
fn class_color(label: i64) -> RGBColor {
    CLASS_COLORS[label.rem_euclid(CLASS_COLORS.len() as i64) as usize]
}

/// One scatter plot: two title lines and the 2-D points (one per label).
pub struct Panel<'a> {
    pub title: String,
    pub subtitle: String,
    pub points: &'a [[f64; 2]],
}

/// Draws `panels` (left, right) over `labels` and writes the PNG to `path`. A failed write
/// removes the partial file.
pub fn write_png(path: &Path, panels: [Panel<'_>; 2], labels: &[i64]) -> Result<(), CliError> {
    let result = draw(path, &panels, labels);
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result.map_err(|e| CliError::runtime(format!("cannot write {}: {e}", path.display())))
}

type Area<'b> = DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>;
type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(path: &Path, panels: &[Panel<'_>; 2], labels: &[i64]) -> DrawResult {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    for (k, panel) in panels.iter().enumerate() {
        draw_panel(&root, k as i32 * PANEL, panel, labels)?;
    }
    draw_legend(&root, labels)?;
    root.present()?;
    Ok(())
}

/// Text of `color`, 2 screen pixels per font pixel when it fits in `max_width`, else 1.
fn draw_text(
    area: &Area<'_>,
    text: &str,
    x: i32,
    y: i32,
    max_width: i32,
    color: &RGBColor,
) -> DrawResult {
    let scale = if font::text_width(text, 2) <= max_width {
        2
    } else {
        1
    };
    for (dx, dy) in font::ink(text, scale) {
        let (x0, y0) = (x + dx, y + dy);
        area.draw(&Rectangle::new(
            [(x0, y0), (x0 + scale, y0 + scale)],
            color.filled(),
        ))?;
    }
    Ok(())
}

fn draw_panel(area: &Area<'_>, left: i32, panel: &Panel<'_>, labels: &[i64]) -> DrawResult {
    let text_width = PANEL - 24;
    let line = (font::HEIGHT + 4) * 2;
    draw_text(area, &panel.title, left + 12, 12, text_width, &BLACK)?;
    draw_text(
        area,
        &panel.subtitle,
        left + 12,
        12 + line,
        text_width,
        &RGBColor(70, 70, 70),
    )?;

    let x0 = left + (PANEL - PLOT_SIDE) / 2;
    let y0 = TITLE_BAND;
    let frame = [(x0, y0), (x0 + PLOT_SIDE, y0 + PLOT_SIDE)];
    area.draw(&Rectangle::new(
        frame,
        RGBColor(180, 180, 180).stroke_width(1),
    ))?;

    // One scale for both axes (PCA axes are comparable), centred on the origin, with a margin.
    let extent = panel
        .points
        .iter()
        .flat_map(|p| [p[0].abs(), p[1].abs()])
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max);
    let half = f64::from(PLOT_SIDE) / 2.0 - 2.0 * f64::from(POINT_RADIUS);
    let scale = if extent > 0.0 { half / extent } else { 0.0 };
    let (cx, cy) = (
        f64::from(x0) + f64::from(PLOT_SIDE) / 2.0,
        f64::from(y0) + f64::from(PLOT_SIDE) / 2.0,
    );
    for (p, &label) in panel.points.iter().zip(labels) {
        if !(p[0].is_finite() && p[1].is_finite()) {
            continue;
        }
        let (px, py) = ((cx + p[0] * scale) as i32, (cy - p[1] * scale) as i32);
        let color = class_color(label);
        area.draw(&Circle::new(
            (px, py),
            POINT_RADIUS,
            color.mix(0.8).filled(),
        ))?;
    }
    // Each class's label at its mean: where the classes sit relative to each other.
    for (label, mean) in class_means(panel.points, labels) {
        let (px, py) = ((cx + mean[0] * scale) as i32, (cy - mean[1] * scale) as i32);
        let color = class_color(label);
        area.draw(&Circle::new((px, py), 11, WHITE.filled()))?;
        area.draw(&Circle::new((px, py), 11, color.stroke_width(3)))?;
        let name = label.to_string();
        let (w, h) = (font::text_width(&name, 2), font::HEIGHT * 2);
        draw_text(area, &name, px - w / 2, py - h / 2, i32::MAX, &BLACK)?;
    }
    Ok(())
}

/// The mean of each class's finite points, by label.
fn class_means(points: &[[f64; 2]], labels: &[i64]) -> Vec<(i64, [f64; 2])> {
    let mut sums: std::collections::BTreeMap<i64, ([f64; 2], f64)> = Default::default();
    for (p, &label) in points.iter().zip(labels) {
        if p[0].is_finite() && p[1].is_finite() {
            let e = sums.entry(label).or_default();
            e.0[0] += p[0];
            e.0[1] += p[1];
            e.1 += 1.0;
        }
    }
    sums.into_iter()
        .map(|(label, (s, n))| (label, [s[0] / n, s[1] / n]))
        .collect()
}

/// A coloured dot and the class label for each class present, centred under both panels.
fn draw_legend(area: &Area<'_>, labels: &[i64]) -> DrawResult {
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let names: Vec<String> = classes.iter().map(i64::to_string).collect();
    let item = |name: &String| 24 + font::text_width(name, 2) + 28;
    let total: i32 = names.iter().map(item).sum();
    let mut x = (WIDTH as i32 - total).max(0) / 2;
    let y = LEGEND_TOP + 12;
    for (class, name) in classes.iter().zip(&names) {
        area.draw(&Circle::new(
            (x + 8, y + font::HEIGHT),
            7,
            class_color(*class).filled(),
        ))?;
        draw_text(area, name, x + 24, y, i32::MAX, &BLACK)?;
        x += item(name);
    }
    Ok(())
}
