//! `--report DIR`: SVG plots drawn with `plotters` and an `index.html` that shows them with the
//! summary table.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::report::Outcome;

/// A labelled metric of an outcome.
type Metric<T> = (&'static str, fn(&Outcome) -> T);

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// ID range in use over time, one line per design (and the number of running tasks, dashed).
fn range_plot(path: &Path, wl: &str, runs: &[&Outcome]) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xmax = runs
        .iter()
        .flat_map(|o| o.series.last().map(|s| s.0))
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let ymax = runs
        .iter()
        .flat_map(|o| o.series.iter().map(|s| s.1.max(s.2)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut ch = ChartBuilder::on(&root)
        .caption(
            format!("{wl}: CID range in use (sum over processes) over time"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax * 1.05)
        .map_err(err)?;
    ch.configure_mesh()
        .x_desc("simulated ms")
        .y_desc("IDs")
        .draw()
        .map_err(err)?;
    for (i, o) in runs.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let step = (o.series.len() / 2000).max(1);
        ch.draw_series(LineSeries::new(
            o.series.iter().step_by(step).map(|s| (s.0, s.1 as f64)),
            c.stroke_width(2),
        ))
        .map_err(err)?
        .label(o.design.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    if let Some(o) = runs.first() {
        let step = (o.series.len() / 2000).max(1);
        ch.draw_series(LineSeries::new(
            o.series.iter().step_by(step).map(|s| (s.0, s.2 as f64)),
            BLACK.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("running tasks ({})", o.design))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Shared-line writes per context switch, by kind, one bar group per design.
fn cost_plot(path: &Path, wl: &str, runs: &[&Outcome]) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let ymax = runs
        .iter()
        .map(|o| o.per_switch.shared_writes)
        .fold(0.0f64, f64::max)
        .max(0.01);
    let n = runs.len();
    let mut ch = ChartBuilder::on(&root)
        .caption(format!("{wl}: CID cost per context switch"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d((0..n).into_segmented(), 0.0..ymax * 1.15)
        .map_err(err)?;
    let names: Vec<String> = runs.iter().map(|o| o.design.clone()).collect();
    ch.configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("shared-line writes / switch")
        .draw()
        .map_err(err)?;
    let parts: [Metric<f64>; 3] = [
        ("bitmap atomics", |o| o.per_switch.bit_ops),
        ("slot writes", |o| o.per_switch.slot_writes),
        ("lock acquisitions", |o| o.per_switch.locks),
    ];
    for (k, (name, f)) in parts.into_iter().enumerate() {
        let c = [COLORS[0], COLORS[1], COLORS[3]][k];
        ch.draw_series(runs.iter().enumerate().map(|(i, o)| {
            let base: f64 = parts_sum(o, k);
            let v = f(o);
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), base),
                    (SegmentValue::Exact(i + 1), base + v),
                ],
                c.filled(),
            );
            r.set_margin(0, 0, 12, 12);
            r
        }))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    ch.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

fn parts_sum(o: &Outcome, k: usize) -> f64 {
    [o.per_switch.bit_ops, o.per_switch.slot_writes, o.per_switch.locks][..k]
        .iter()
        .sum()
}

/// Fix-up walk lengths, one histogram per design (log-scaled counts).
fn walk_plot(path: &Path, wl: &str, runs: &[&Outcome]) -> Result<(), String> {
    let root = SVGBackend::new(path, (900, 380)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xmax = runs
        .iter()
        .flat_map(|o| o.walk_hist.iter().map(|h| h.0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let cmax = runs
        .iter()
        .flat_map(|o| o.walk_hist.iter().map(|h| h.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut ch = ChartBuilder::on(&root)
        .caption(
            format!("{wl}: fix-up walk length (visits per walk)"),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..xmax * 1.05 + 1.0, (0.5..cmax * 2.0).log_scale())
        .map_err(err)?;
    ch.configure_mesh()
        .x_desc("visits")
        .y_desc("walks")
        .draw()
        .map_err(err)?;
    let mut any = false;
    for (i, o) in runs.iter().enumerate() {
        if o.walk_hist.is_empty() {
            continue;
        }
        any = true;
        let c = COLORS[i % COLORS.len()];
        let w = (xmax / 200.0).max(0.4);
        let off = i as f64 * w * 0.3;
        ch.draw_series(o.walk_hist.iter().map(|&(v, n)| {
            Rectangle::new(
                [
                    (v as f64 + off - w / 2.0, 0.5),
                    (v as f64 + off + w / 2.0, n as f64),
                ],
                c.mix(0.6).filled(),
            )
        }))
        .map_err(err)?
        .label(o.design.clone())
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    if any {
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    } else {
        root.draw(&Text::new(
            "no fix-up walks in this workload",
            (300, 190),
            ("sans-serif", 18),
        ))
        .map_err(err)?;
    }
    root.present().map_err(err)
}

/// Writes the plots and `index.html` for `outs` (the first seed of each design and workload).
pub fn write(dir: &Path, outs: &[Outcome]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut workloads: Vec<&str> = outs.iter().map(|o| o.workload.as_str()).collect();
    workloads.dedup();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>mmcid sim report</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;font-size:13px}\
         td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th:first-child,td:first-child{text-align:left}\
         .bad{color:#b00;font-weight:bold}img{display:block;margin:1em 0;border:1px solid #eee}</style></head><body>\
         <h1>mmcid sim</h1><p>Every design of the model on the same seeded workload; the CID code is mmcid-cid's, \
         the functions the model checker runs. Times are simulated.</p>",
    );
    for wl in workloads {
        let mut runs: Vec<&Outcome> = outs.iter().filter(|o| o.workload == wl).collect();
        if let Some(s0) = runs.first().map(|o| o.seed) {
            runs.retain(|o| o.seed == s0);
        }
        let s = slug(wl);
        range_plot(&dir.join(format!("{s}-range.svg")), wl, &runs)?;
        cost_plot(&dir.join(format!("{s}-cost.svg")), wl, &runs)?;
        walk_plot(&dir.join(format!("{s}-walks.svg")), wl, &runs)?;
        let cpus = runs.first().map_or(0, |o| o.cpus);
        let _ = write!(html, "<h2>{wl} ({cpus} CPUs)</h2><table><tr><th></th>");
        for o in &runs {
            let _ = write!(html, "<th>{}</th>", o.design);
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
        for kind in ["range", "cost", "walks"] {
            let _ = write!(html, "<img src=\"{s}-{kind}.svg\" alt=\"{wl} {kind}\">");
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
