//! `--report DIR`: SVG plots drawn with `plotters` and an `index.html` that shows them with the
//! summary table and a caption per plot saying what it shows and how to read it.
//!
//! Readability rules the plots follow (they are read by kernel developers comparing designs):
//! - every design has one colour of its own, the same in every plot and in the table's header
//!   ([`colour`]; the palette has as many colours as the model has designs);
//! - designs whose data are identical (the 7.0 family often is, on workloads without mode
//!   switches) are drawn once and labelled with all their names, so that no line hides another;
//!   one row per design where values are compared (bars, markers), so nothing overlaps;
//! - legends sit outside the plotting area (below it), never on the data;
//! - the ID range over time is shown as small multiples (one panel per design, shared axes), each
//!   against that design's own number of running tasks, binned (mean line, min–max band) so that
//!   the 100 µs samples' noise does not hide the level.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::report::Outcome;

/// A labelled metric of an outcome.
type Metric<T> = (&'static str, fn(&Outcome) -> T);

/// One colour per design of `mmcid_kmodel::DESIGNS`, in its order (13 designs, 13 colours). The
/// ten designs the simulator runs get the ten most distinct hues (Tableau's, grey replaced by
/// navy); the three it does not run yet (the execve fixes) get the rest. No design is grey: grey is
/// the running threads' floor in the range plot.
const PALETTE: [RGBColor; 13] = [
    RGBColor(0, 128, 96),    // 7.0+fixes: dark teal (not simulated)
    RGBColor(230, 171, 2),   // 7.0+fix-execve-cid: gold (not simulated)
    RGBColor(0, 0, 0),       // 7.0+fix-execve-revive: black (not simulated)
    RGBColor(44, 160, 44),   // 7.0+fix-affinity-switchback: green
    RGBColor(148, 103, 189), // 7.1.3: purple
    RGBColor(31, 119, 180),  // 7.0: blue
    RGBColor(227, 119, 194), // 6.19.1+vfork: pink
    RGBColor(140, 86, 75),   // 6.19.1+fork: brown
    RGBColor(255, 127, 14),  // 6.19.1: orange
    RGBColor(214, 39, 40),   // 6.19: red
    RGBColor(188, 189, 34),  // 6.19-rc7: olive
    RGBColor(23, 190, 207),  // 6.18: cyan
    RGBColor(0, 0, 128),     // 6.3: navy
];

/// Colours of other series (kinds of cost, running tasks): greys and muted tones that no design
/// uses.
const GREY: RGBColor = RGBColor(150, 150, 150);
const KINDS: [RGBColor; 3] = [
    RGBColor(76, 114, 176),
    RGBColor(221, 132, 82),
    RGBColor(196, 78, 82),
];

/// The colour of design `name`: its own entry of the report's palette, one colour per design (grey for a name the model does not
/// know, e.g. a renamed design in an old JSON file).
pub fn colour(name: &str) -> RGBColor {
    mmcid_kmodel::DESIGNS
        .iter()
        .position(|d| d.name == name)
        .map_or(GREY, |i| PALETTE[i % PALETTE.len()])
}

fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Designs whose data (by `same`) are identical, drawn as one series; in the order given.
struct Group<'a> {
    runs: Vec<&'a Outcome>,
}

impl Group<'_> {
    fn first(&self) -> &Outcome {
        self.runs[0]
    }
    fn colour(&self) -> RGBColor {
        colour(&self.first().design)
    }
    fn names(&self) -> Vec<&str> {
        self.runs.iter().map(|o| o.design.as_str()).collect()
    }
    fn label(&self) -> String {
        let n = self.names();
        if n.len() == 1 {
            n[0].to_string()
        } else {
            format!("{} (identical)", n.join(" = "))
        }
    }
}

fn groups<'a>(runs: &[&'a Outcome], same: fn(&Outcome, &Outcome) -> bool) -> Vec<Group<'a>> {
    let mut gs: Vec<Group<'a>> = Vec::new();
    for &o in runs {
        match gs.iter_mut().find(|g| same(g.first(), o)) {
            Some(g) => g.runs.push(o),
            None => gs.push(Group { runs: vec![o] }),
        }
    }
    gs
}

/// Marker k: a filled polygon around (0, 0) in pixels (circle, triangle, square, diamond,
/// triangle down).
fn marker(k: usize) -> Vec<(i32, i32)> {
    match k % 5 {
        0 => vec![
            (4, 0),
            (3, 3),
            (0, 4),
            (-3, 3),
            (-4, 0),
            (-3, -3),
            (0, -4),
            (3, -3),
        ],
        1 => vec![(0, -5), (5, 4), (-5, 4)],
        2 => vec![(-4, -4), (4, -4), (4, 4), (-4, 4)],
        3 => vec![(0, -5), (5, 0), (0, 5), (-5, 0)],
        _ => vec![(0, 5), (5, -4), (-5, -4)],
    }
}

/// How a legend entry's swatch looks.
#[derive(Clone, Copy)]
enum Swatch {
    /// Marker k.
    Marker(usize),
    /// A filled box.
    Box,
}

/// Estimated width in pixels of `s` in a sans-serif font of `px` pixels (the SVG backend has no
/// font metrics; the browser's sans-serif averages about 0.5 em per character).
fn text_w(s: &str, px: u32) -> i32 {
    (s.chars().count() as f64 * px as f64 * 0.5) as i32
}

/// Height in pixels of a legend of `entries` laid out left to right and wrapped at `width`.
fn legend_height(entries: &[(String, RGBColor, Swatch)], width: i32) -> i32 {
    legend_layout(entries, width).last().map_or(0, |p| p.1 + 20)
}

fn legend_layout(entries: &[(String, RGBColor, Swatch)], width: i32) -> Vec<(i32, i32)> {
    let (mut x, mut y) = (10, 4);
    entries
        .iter()
        .map(|(s, _, _)| {
            let w = 34 + text_w(s, 13) + 18;
            if x > 10 && x + w > width {
                x = 10;
                y += 20;
            }
            let p = (x, y);
            x += w;
            p
        })
        .collect()
}

/// Draws a legend in `area` (outside any plotting area).
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor, Swatch)],
) -> Result<(), String> {
    let width = area.dim_in_pixel().0 as i32;
    for ((s, c, sw), (x, y)) in entries.iter().zip(legend_layout(entries, width)) {
        let cy = y + 8;
        match *sw {
            Swatch::Box => {
                area.draw(&Rectangle::new([(x + 6, cy - 6), (x + 22, cy + 6)], c.filled()))
                    .map_err(err)?;
            }
            Swatch::Marker(k) => {
                area.draw(&(EmptyElement::at((x + 14, cy)) + Polygon::new(marker(k), c.filled())))
                    .map_err(err)?;
            }
        }
        area.draw(&Text::new(
            s.clone(),
            (x + 34, y + 1),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// One time bin of a series: (mid time ms, mean range, min range, max range, mean running).
type Bin = (f64, f64, f64, f64, f64);

/// The series of `o` in `n` bins of equal width over `0..xmax` ms (empty bins skipped).
fn bins(o: &Outcome, xmax: f64, n: usize) -> Vec<Bin> {
    let w = xmax / n as f64;
    let mut acc: Vec<(u64, f64, f64, f64, f64)> = vec![(0, 0.0, f64::MAX, 0.0, 0.0); n];
    for &(t, range, run) in &o.series {
        let b = ((t / w) as usize).min(n - 1);
        let a = &mut acc[b];
        a.0 += 1;
        a.1 += range as f64;
        a.2 = a.2.min(range as f64);
        a.3 = a.3.max(range as f64);
        a.4 += run as f64;
    }
    acc.iter()
        .enumerate()
        .filter(|(_, a)| a.0 > 0)
        .map(|(i, a)| {
            let k = a.0 as f64;
            ((i as f64 + 0.5) * w, a.1 / k, a.2, a.3, a.4 / k)
        })
        .collect()
}

fn xmax_of(runs: &[&Outcome]) -> f64 {
    runs.iter()
        .flat_map(|o| o.series.last().map(|s| s.0))
        .fold(0.0f64, f64::max)
        .max(1e-3)
}

/// Number of time bins: about one per 5 pixels of a 800-pixel-wide plot.
const BINS: usize = 160;

/// Per-process compactness, one row per design: where the distribution of "CIDs in use above
/// running threads" (per process and 100 µs sample) has its median, mean, 99th percentile and
/// maximum, with the values written at the row's end. No lines to overlap: each design has its row.
fn compact_plot(path: &Path, runs: &[&Outcome]) -> Result<(), String> {
    let stats: [Metric<f64>; 4] = [
        ("median", |o| o.id_excess.p50 as f64),
        ("mean", |o| o.id_excess.mean),
        ("99th percentile", |o| o.id_excess.p99 as f64),
        ("maximum", |o| o.id_excess.max as f64),
    ];
    let shapes = [0, 3, 1, 2];
    let entries: Vec<(String, RGBColor, Swatch)> = stats
        .iter()
        .zip(shapes)
        .map(|((n, _), k)| (n.to_string(), RGBColor(70, 70, 70), Swatch::Marker(k)))
        .collect();
    let n = runs.len();
    let width = 900;
    let lh = legend_height(&entries, width);
    let ch_h = 80 + 30 * n as u32;
    let root = SVGBackend::new(path, (width as u32, ch_h + lh as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(ch_h);
    let xmax = runs
        .iter()
        .map(|o| o.id_excess.max as f64)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let names: Vec<String> = runs.iter().map(|o| o.design.clone()).collect();
    let name_w = names.iter().map(|s| text_w(s, 13)).max().unwrap_or(40) + 14;
    let row = |i: usize| 100 * (n - 1 - i) as i32;
    let keys: Vec<i32> = (0..n as i32).map(|r| 100 * r + 50).collect();
    let mut ch = ChartBuilder::on(&top)
        .margin(12)
        .margin_top(24)
        .margin_right(150)
        .x_label_area_size(40)
        .y_label_area_size(name_w as u32)
        .build_cartesian_2d(0.0..xmax * 1.04, (0..100 * n as i32).with_key_points(keys))
        .map_err(err)?;
    ch.configure_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc("CIDs in use above running threads, per process and sample")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_labels((xmax as usize + 1).min(11))
        .x_label_formatter(&|v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .y_label_formatter(&|v| {
            let i = n as i64 - 1 - (*v as i64).div_euclid(100);
            usize::try_from(i)
                .ok()
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_default()
        })
        .draw()
        .map_err(err)?;
    ch.draw_series(std::iter::once(
        EmptyElement::at((xmax * 1.04, 100 * n as i32))
            + Text::new(
                "p50 · mean · p99 · max",
                (12, -2),
                ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
            ),
    ))
    .map_err(err)?;
    for (i, o) in runs.iter().enumerate() {
        let c = colour(&o.design);
        let y = row(i) + 50;
        ch.draw_series(std::iter::once(PathElement::new(
            vec![(o.id_excess.p50 as f64, y), (o.id_excess.max as f64, y)],
            c.stroke_width(2),
        )))
        .map_err(err)?;
        ch.draw_series(
            stats
                .iter()
                .zip(shapes)
                .map(|((_, f), k)| EmptyElement::at((f(o), y)) + Polygon::new(marker(k), c.filled())),
        )
        .map_err(err)?;
        ch.draw_series(std::iter::once(
            EmptyElement::at((xmax * 1.04, y))
                + Text::new(
                    format!(
                        "{} · {:.1} · {} · {}",
                        o.id_excess.p50, o.id_excess.mean, o.id_excess.p99, o.id_excess.max
                    ),
                    (12, -7),
                    ("sans-serif", 13).into_font().color(&BLACK),
                ),
        ))
        .map_err(err)?;
    }
    legend(&bottom.margin(0, 0, name_w, 0), &entries)?;
    root.present().map_err(err)
}

/// ID range in use over time as small multiples: one panel per design (identical designs once),
/// shared axes; in each, the design's running tasks (grey area, the floor no design can beat) and
/// its range in use (line: mean per bin; band: min to max per bin).
fn range_plot(path: &Path, runs: &[&Outcome]) -> Result<(), String> {
    let gs = groups(runs, |a, b| a.series == b.series);
    let cols = if gs.len() <= 2 { 1 } else { 2 };
    let rows = gs.len().div_ceil(cols);
    let (width, ph) = (900u32, 210u32);
    let root = SVGBackend::new(path, (width, ph * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xmax = xmax_of(runs);
    let binned: Vec<Vec<Bin>> = gs.iter().map(|g| bins(g.first(), xmax, BINS)).collect();
    let ymax = binned
        .iter()
        .flatten()
        .map(|b| b.3.max(b.4))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let panels = root.split_evenly((rows, cols));
    for ((g, bs), area) in gs.iter().zip(&binned).zip(&panels) {
        let c = g.colour();
        // the title, wrapped at the panel's width, in the design's colour
        let pw = area.dim_in_pixel().0 as i32;
        let mut lines: Vec<String> = vec![String::new()];
        let names = g.names();
        for (i, n) in names.iter().enumerate() {
            let piece = if i + 1 < names.len() {
                format!("{n} = ")
            } else if names.len() > 1 {
                format!("{n} (identical)")
            } else {
                n.to_string()
            };
            let cur = lines.last_mut().expect("one line");
            if !cur.is_empty() && text_w(&(cur.clone() + &piece), 14) > pw - 20 {
                lines.push(piece);
            } else {
                cur.push_str(&piece);
            }
        }
        let th = 18 * lines.len() as u32 + 4;
        let (head, body) = area.split_vertically(th);
        for (i, l) in lines.iter().enumerate() {
            head.draw(&Text::new(
                l.clone(),
                (60, 4 + 18 * i as i32),
                ("sans-serif", 14).into_font().color(&c),
            ))
            .map_err(err)?;
        }
        let mut ch = ChartBuilder::on(&body)
            .margin_left(8)
            .margin_right(14)
            .margin_bottom(6)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax * 1.08)
            .map_err(err)?;
        ch.configure_mesh()
            .max_light_lines(0)
            .bold_line_style(RGBColor(230, 230, 230))
            .x_labels(6)
            .y_labels(5)
            .x_desc("simulated time (ms)")
            .y_desc("IDs")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
        ch.draw_series(AreaSeries::new(
            bs.iter().map(|b| (b.0, b.4)),
            0.0,
            RGBColor(215, 215, 215).filled(),
        ))
        .map_err(err)?;
        let band: Vec<(f64, f64)> = bs
            .iter()
            .map(|b| (b.0, b.3))
            .chain(bs.iter().rev().map(|b| (b.0, b.2)))
            .collect();
        ch.draw_series(std::iter::once(Polygon::new(band, c.mix(0.22).filled())))
            .map_err(err)?;
        ch.draw_series(LineSeries::new(bs.iter().map(|b| (b.0, b.1)), c.stroke_width(2)))
            .map_err(err)?;
        if let (Some(v), Some(last)) = (&g.first().violation, bs.last()) {
            ch.draw_series(std::iter::once(
                EmptyElement::at((last.0, last.1))
                    + Text::new(
                        format!("◀ stopped: {} violated", v.property),
                        (8, -8),
                        ("sans-serif", 13).into_font().color(&RGBColor(180, 0, 0)),
                    ),
            ))
            .map_err(err)?;
        }
    }
    root.present().map_err(err)
}

/// Shared-line writes per context switch by kind, one horizontal stacked bar per design, its
/// total written at its end.
fn cost_plot(path: &Path, runs: &[&Outcome]) -> Result<(), String> {
    let kinds: [Metric<f64>; 3] = [
        ("bitmap atomics", |o| o.per_switch.bit_ops),
        ("per-CPU/per-task slot writes", |o| o.per_switch.slot_writes),
        ("CID lock acquisitions", |o| o.per_switch.locks),
    ];
    let entries: Vec<(String, RGBColor, Swatch)> = kinds
        .iter()
        .zip(KINDS)
        .map(|((n, _), c)| (n.to_string(), c, Swatch::Box))
        .collect();
    let n = runs.len();
    let width = 900;
    let lh = legend_height(&entries, width);
    let ch_h = 70 + 30 * n as u32;
    let root = SVGBackend::new(path, (width as u32, ch_h + lh as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(ch_h);
    let xmax = runs
        .iter()
        .map(|o| o.per_switch.shared_writes)
        .fold(0.0f64, f64::max)
        .max(0.05);
    let names: Vec<String> = runs.iter().map(|o| o.design.clone()).collect();
    let name_w = names.iter().map(|s| text_w(s, 13)).max().unwrap_or(40) + 14;
    // integer rows of 100 units (the key-point combinator formats integers only): design i on
    // row n - 1 - i, centred at 100 row + 50, the first design on top
    let row = |i: usize| 100 * (n - 1 - i) as i32;
    let keys: Vec<i32> = (0..n as i32).map(|r| 100 * r + 50).collect();
    let mut ch = ChartBuilder::on(&top)
        .margin(12)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(name_w as u32)
        .build_cartesian_2d(0.0..xmax * 1.18, (0..100 * n as i32).with_key_points(keys))
        .map_err(err)?;
    ch.configure_mesh()
        .disable_y_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc("writes to shared cache lines per context switch (mean)")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .y_label_formatter(&|v| {
            let i = n as i64 - 1 - (*v as i64).div_euclid(100);
            usize::try_from(i)
                .ok()
                .and_then(|i| names.get(i).cloned())
                .unwrap_or_default()
        })
        .draw()
        .map_err(err)?;
    for (k, (_, f)) in kinds.iter().enumerate() {
        let c = KINDS[k];
        ch.draw_series(runs.iter().enumerate().map(|(i, o)| {
            let base: f64 = kinds[..k].iter().map(|(_, g)| g(o)).sum();
            Rectangle::new([(base, row(i) + 18), (base + f(o), row(i) + 82)], c.filled())
        }))
        .map_err(err)?;
    }
    ch.draw_series(runs.iter().enumerate().map(|(i, o)| {
        EmptyElement::at((o.per_switch.shared_writes, row(i) + 50))
            + Text::new(
                format!("{:.3}", o.per_switch.shared_writes),
                (6, -7),
                ("sans-serif", 13).into_font().color(&BLACK),
            )
    }))
    .map_err(err)?;
    legend(&bottom.margin(0, 0, name_w, 0), &entries)?;
    root.present().map_err(err)
}

/// Walk-length categories: every length seen if there are at most 16, else power-of-two
/// ranges (1, 2, 3–4, 5–8, ...). Returns (label, lowest, highest) per category.
fn walk_categories(runs: &[&Outcome]) -> Vec<(String, u64, u64)> {
    let mut seen: Vec<u64> = runs
        .iter()
        .flat_map(|o| o.walk_hist.iter().map(|h| h.0))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() <= 16 {
        return seen.into_iter().map(|v| (v.to_string(), v, v)).collect();
    }
    let top = *seen.last().expect("non-empty");
    let mut cats = vec![("0".to_string(), 0, 0), ("1".to_string(), 1, 1)];
    let mut lo = 2u64;
    while lo <= top {
        let hi = (lo - 1) * 2;
        let label = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}–{hi}")
        };
        cats.push((label, lo, hi));
        lo = hi + 1;
    }
    cats.retain(|c| seen.iter().any(|&v| c.1 <= v && v <= c.2));
    cats
}

/// Fix-up walk lengths: one bar per design (identical designs once) and length category, counts
/// on a log scale with the count written on each bar. `Ok(false)` and no file if no design walked.
fn walk_plot(path: &Path, runs: &[&Outcome]) -> Result<bool, String> {
    let walked: Vec<&Outcome> = runs.iter().copied().filter(|o| !o.walk_hist.is_empty()).collect();
    if walked.is_empty() {
        return Ok(false);
    }
    let gs = groups(&walked, |a, b| a.walk_hist == b.walk_hist);
    let cats = walk_categories(&walked);
    let entries: Vec<(String, RGBColor, Swatch)> =
        gs.iter().map(|g| (g.label(), g.colour(), Swatch::Box)).collect();
    let width = 900;
    let lh = legend_height(&entries, width);
    let root = SVGBackend::new(path, (width as u32, 340 + lh as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(340);
    let counts: Vec<Vec<u64>> = gs
        .iter()
        .map(|g| {
            cats.iter()
                .map(|c| {
                    g.first()
                        .walk_hist
                        .iter()
                        .filter(|h| c.1 <= h.0 && h.0 <= c.2)
                        .map(|h| h.1)
                        .sum()
                })
                .collect()
        })
        .collect();
    let cmax = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let k = cats.len();
    // category j spans 1000 j .. 1000 (j + 1) (integer units: see cost_plot)
    let keys: Vec<i32> = (0..k as i32).map(|j| 1000 * j + 500).collect();
    let mut ch = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (0..1000 * k as i32).with_key_points(keys),
            (0.7..cmax * 3.0).log_scale(),
        )
        .map_err(err)?;
    ch.configure_mesh()
        .disable_x_mesh()
        .max_light_lines(0)
        .bold_line_style(RGBColor(230, 230, 230))
        .x_desc("CPUs or tasks visited by the walk")
        .y_desc("walks (log scale)")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_label_formatter(&|v| {
            cats.get(v.div_euclid(1000) as usize)
                .map(|c| c.0.clone())
                .unwrap_or_default()
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    let ng = gs.len() as i32;
    let w = 800 / ng;
    let labels = gs.len() * k <= 48;
    for (gi, (g, cs)) in gs.iter().zip(&counts).enumerate() {
        let c = g.colour();
        let x0 = |j: usize| 1000 * j as i32 + 100 + gi as i32 * w;
        ch.draw_series(
            cs.iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(j, &n)| Rectangle::new([(x0(j), 0.7), (x0(j) + w * 9 / 10, n as f64)], c.filled())),
        )
        .map_err(err)?;
        if labels {
            ch.draw_series(cs.iter().enumerate().filter(|&(_, &n)| n > 0).map(|(j, &n)| {
                EmptyElement::at((x0(j), n as f64))
                    + Text::new(n.to_string(), (0, -14), ("sans-serif", 11).into_font())
            }))
            .map_err(err)?;
        }
    }
    legend(&bottom, &entries)?;
    root.present().map_err(err)?;
    Ok(true)
}

/// Writes the plots and `index.html` for `outs` (the first seed of each design and workload).
pub fn write(dir: &Path, outs: &[Outcome]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut workloads: Vec<&str> = outs.iter().map(|o| o.workload.as_str()).collect();
    workloads.dedup();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mmcid sim report</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:1100px;line-height:1.4}\
         table{border-collapse:collapse;font-size:13px}th,td{white-space:nowrap}\
         td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th:first-child,td:first-child{text-align:left}\
         th{vertical-align:bottom}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}\
         .bad{color:#b00;font-weight:bold}pre{overflow-x:auto;font-size:12px}figure{margin:1.5em 0;max-width:920px}img{display:block;border:1px solid #eee;max-width:100%;height:auto}\
         figcaption{font-size:14px;color:#333;margin-top:.4em}</style></head><body>\
         <h1>mmcid sim</h1><p>Every design on the same seeded workload; the CID code is mmcid-cid's, \
         the functions the model checker runs. Times are simulated. Each design keeps its colour \
         in every plot (the square in the table's header); designs whose figures are identical are \
         drawn once and named together.</p>",
    );
    for wl in workloads {
        let mut runs: Vec<&Outcome> = outs.iter().filter(|o| o.workload == wl).collect();
        if let Some(s0) = runs.first().map(|o| o.seed) {
            runs.retain(|o| o.seed == s0);
        }
        let s = slug(wl);
        let cpus = runs.first().map_or(0, |o| o.cpus);
        let seed = runs.first().map_or(0, |o| o.seed);
        let sw = runs.first().map_or(0, |o| o.switches);
        let _ = write!(
            html,
            "<h2 id=\"{s}\">{wl}</h2><p>{cpus} CPUs, seed {seed}, {sw} context switches per design.</p>\
             <table><tr><th></th>"
        );
        for o in &runs {
            let _ = write!(
                html,
                "<th><span class=sw style=\"background:{}\"></span>{}</th>",
                hex(colour(&o.design)),
                o.design
            );
        }
        html.push_str("</tr>");
        let rows: [Metric<String>; 10] = [
            ("invariants", |o| {
                o.violation.as_ref().map_or("ok".into(), |v| {
                    format!("<span class=bad>VIOLATED {}</span>", v.property)
                })
            }),
            ("context switches", |o| o.switches.to_string()),
            ("ID range p50 / p99 / max", |o| {
                format!("{} / {} / {}", o.id_range.p50, o.id_range.p99, o.id_range.max)
            }),
            ("above running tasks p99", |o| o.id_excess.p99.to_string()),
            ("shared-line writes / switch", |o| {
                format!("{:.3}", o.per_switch.shared_writes)
            }),
            ("CID lock acquisitions / switch", |o| {
                format!("{:.3}", o.per_switch.locks)
            }),
            ("mode switches", |o| o.mode_switches.to_string()),
            ("fix-up walks (max visits)", |o| {
                format!("{} ({})", o.walk_len.count, o.walk_len.max)
            }),
            ("longest spin (µs)", |o| {
                format!("{:.1}", o.spin_ns.max as f64 / 1e3)
            }),
            ("compaction scans", |o| o.scans.to_string()),
        ];
        for (name, f) in rows {
            let _ = write!(html, "<tr><td>{name}</td>");
            for o in &runs {
                let _ = write!(html, "<td>{}</td>", f(o));
            }
            html.push_str("</tr>");
        }
        html.push_str("</table>");
        let has_series = runs.iter().any(|o| !o.series.is_empty());
        if has_series {
            compact_plot(&dir.join(format!("{s}-compact.svg")), &runs)?;
            range_plot(&dir.join(format!("{s}-range.svg")), &runs)?;
            let _ = write!(
                html,
                "<figure id=\"{s}-compact\"><img src=\"{s}-compact.svg\" alt=\"{wl}: CIDs above running threads per process\">\
                 <figcaption><b>How compact each design keeps a process's IDs.</b> Every 100 µs of \
                 simulated time, for each process with threads in user space, the simulator takes \
                 the CID range they use (largest CID + 1) minus the number of those threads: no \
                 design can do better than 0, and a higher value means user space indexes \
                 per-CID arrays further out than it needs to. Markers: median, mean, 99th \
                 percentile and maximum over all processes and samples; the numbers at the right \
                 are the same four values.</figcaption></figure>\
                 <figure id=\"{s}-range\"><img src=\"{s}-range.svg\" alt=\"{wl}: CID range in use over time, per design\">\
                 <figcaption><b>CID range in use over time, one panel per design</b> (same axes in \
                 every panel). Grey area: threads running user code (summed over processes), the \
                 floor. Coloured line: CID range in use, summed over processes, mean per time bin; \
                 pale band: its minimum to maximum within the bin. The gap between line and grey \
                 area is what the plot above measures per process; a panel that ends early marks \
                 where an invariant violation stopped that run.</figcaption></figure>"
            );
        } else {
            html.push_str(
                "<p>No time series in these outcomes (they were read back without one), so no \
                 range plots.</p>",
            );
        }
        cost_plot(&dir.join(format!("{s}-cost.svg")), &runs)?;
        let _ = write!(
            html,
            "<figure id=\"{s}-cost\"><img src=\"{s}-cost.svg\" alt=\"{wl}: CID cost per context switch\">\
             <figcaption><b>Cost of the CID code per context switch</b>, counted by the CID \
             functions themselves: atomics on the CID bitmap, stores to per-CPU (or per-task) CID \
             slots, and acquisitions of a CID lock (6.3's per-mm lock, 6.18's global one), averaged \
             over all context switches. Each is a write to a cache line other CPUs share, i.e. a \
             proxy for coherence traffic; the number at the end of each bar is the total. Fork, \
             exit, walks and scans are not counted here.</figcaption></figure>"
        );
        if walk_plot(&dir.join(format!("{s}-walks.svg")), &runs)? {
            let _ = write!(
                html,
                "<figure id=\"{s}-walks\"><img src=\"{s}-walks.svg\" alt=\"{wl}: fix-up walk lengths\">\
                 <figcaption><b>Fix-up walks by length.</b> When a process switches between \
                 per-task and per-CPU CIDs (7.0 family), a walk under its mutex visits CPUs (to \
                 hand their CIDs to tasks) or tasks (to hand theirs to CPUs); the x axis is the \
                 number of visits per walk, the bars count walks (log scale, exact count on each \
                 bar). Walks as long as the machine has CPUs are the CPU walks.</figcaption></figure>"
            );
        } else {
            html.push_str(
                "<p><b>Fix-up walks:</b> none in this workload (no design switched a process \
                 between per-task and per-CPU CIDs), so no walk-length plot.</p>",
            );
        }
        for o in runs.iter().filter(|o| o.violation.is_some()) {
            let v = o.violation.as_ref().expect("filtered");
            let _ = write!(
                html,
                "<h3>{}: {} violated</h3><p>{}</p><pre>{}</pre>",
                o.design,
                v.property,
                html_escape(&v.message),
                html_escape(&v.trace)
            );
        }
    }
    html.push_str("</body></html>\n");
    std::fs::write(dir.join("index.html"), html).map_err(err)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's first complaint: two designs in the same colour. Every design the model
    /// knows has its own.
    #[test]
    fn every_design_has_its_own_colour() {
        let cs: Vec<RGBColor> = mmcid_kmodel::DESIGNS.iter().map(|d| colour(d.name)).collect();
        for (i, a) in cs.iter().enumerate() {
            assert_ne!(*a, GREY, "{} has no colour", mmcid_kmodel::DESIGNS[i].name);
            for (j, b) in cs.iter().enumerate().skip(i + 1) {
                assert_ne!(
                    a,
                    b,
                    "{} and {} share a colour",
                    mmcid_kmodel::DESIGNS[i].name,
                    mmcid_kmodel::DESIGNS[j].name
                );
            }
        }
    }

    #[test]
    fn walk_lengths_are_bucketed_when_there_are_many() {
        let mut o = Outcome {
            design: "7.0".into(),
            ..Outcome::default()
        };
        o.walk_hist = vec![(4, 10), (5, 3), (64, 7)];
        assert_eq!(
            walk_categories(&[&o])
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>(),
            ["4", "5", "64"]
        );
        o.walk_hist = (1..=40).map(|v| (v, 1)).collect();
        let cats = walk_categories(&[&o]);
        let labels: Vec<&str> = cats.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(labels, ["1", "2", "3–4", "5–8", "9–16", "17–32", "33–64"]);
    }
}
