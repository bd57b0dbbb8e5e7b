//! `mmcid matrix`: every design over a grid of small configurations.

use std::fmt::Write as _;
use std::io::IsTerminal;

use mmcid_kmodel::matrix::{self, CellStatus, Matrix};

/// Check every design over a grid of small configurations (CPUs 2-4, a few thread counts and
/// operation mixes: forks, vforks, failing forks, failing execs, affinity changes) and print a
/// table: design x property -> holds / violated at depth d (with the configuration) / not reached,
/// and the time. Each run uses on-the-fly stall detection and a cap on the states; a capped run
/// reports what it found but cannot claim that a property holds ("?").
/// Exit status: 0 (the table is the result; violations in old designs are expected).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only these designs (comma-separated); default: all.
    #[arg(long, value_delimiter = ',')]
    pub designs: Vec<String>,
    /// Cap on distinct states per design and configuration. The largest run, 6.18 on
    /// configuration #9, decides at 47.5 M states (1.2 GB); every other one below 30 M.
    #[arg(long, default_value_t = 60_000_000)]
    pub max_states: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Runs done at once, one thread each (default: every core). With 1, the run itself explores
    /// on one thread.
    #[arg(long, default_value_t = mmcid_engine::all_cores(), value_parser = crate::check::workers)]
    pub workers: usize,
    /// Partial-order reduction (see `mmcid check --help`).
    #[arg(long, value_enum, default_value_t = crate::check::OnOff::On)]
    pub reduction: crate::check::OnOff,
    /// Stop each run cleanly before the process would use more memory than this (`512M`, `4G`,
    /// `80%` of the memory available at start, `off`); such a run counts as capped.
    #[arg(long, default_value = crate::stop::DEFAULT_MEMORY, value_parser = crate::stop::parse_memory)]
    pub max_memory: crate::stop::MemoryLimit,
}

/// Runs `mmcid matrix`.
pub fn run(a: &Args) -> i32 {
    for d in &a.designs {
        if let Err(e) = mmcid_kmodel::config::design(d) {
            eprintln!("mmcid matrix: {e}");
            return crate::exit::USAGE;
        }
    }
    let names: Vec<&str> = a.designs.iter().map(String::as_str).collect();
    let tty = std::io::stderr().is_terminal() && !a.json;
    let base = mmcid_kmodel::checker::CheckOptions {
        workers: a.workers,
        reduction: a.reduction == crate::check::OnOff::On,
        cancel: Some(crate::stop::ctrl_c()),
        memory_limit: a.max_memory.bytes(),
        ..Default::default()
    };
    let mut running: Vec<String> = Vec::new();
    let (mut done, mut total) = (0usize, 0usize);
    let m = matrix::run(&names, &matrix::default_grid(), a.max_states, &base, &mut |ev| {
        if !tty {
            return;
        }
        let done_so_far = match ev {
            matrix::Event::Started { design, config } => {
                running.push(format!("{design} at {config}"));
                done
            }
            matrix::Event::Finished {
                design,
                config,
                done: d,
                total: t,
            } => {
                let name = format!("{design} at {config}");
                running.retain(|r| *r != name);
                (done, total) = (d, t);
                d
            }
        };
        let total = if total == 0 {
            String::from("?")
        } else {
            total.to_string()
        };
        eprint!(
            "\r\x1b[K{done_so_far}/{total} runs done; checking {}",
            running.join(", ")
        );
    });
    if tty {
        eprint!("\r\x1b[K");
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&m).expect("json"));
    } else {
        out!("{}", render(&m));
    }
    if m.cut == Some(mmcid_engine::Cut::Interrupted) {
        crate::exit::INTERRUPTED
    } else {
        crate::exit::OK
    }
}

/// The table.
pub fn render(m: &Matrix) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "configurations (cap {} states each):", m.max_states);
    for (i, g) in m.grid.iter().enumerate() {
        let _ = writeln!(s, "  #{} {:<14} {}", i + 1, g.name, g.about);
    }
    let num = |name: &str| m.grid.iter().position(|g| g.name == name).map_or(0, |i| i + 1);
    let Some(first) = m.rows.first() else { return s };
    let cols: Vec<&str> = first.cells.iter().map(|c| c.property.as_str()).collect();
    const W: usize = 7;
    let dw = m.rows.iter().map(|r| r.design.len()).max().unwrap_or(0).max(13) + 1;
    let _ = write!(s, "\n{:<dw$}", "design");
    for c in &cols {
        let _ = write!(s, "{c:<W$}");
    }
    let _ = writeln!(s, "time");
    for r in &m.rows {
        let _ = write!(s, "{:<dw$}", r.design);
        for cell in &r.cells {
            let text = match cell.status {
                CellStatus::Holds => "ok".to_string(),
                CellStatus::NotReached => "-".to_string(),
                CellStatus::Incomplete => "?".to_string(),
                _ => format!(
                    "{}#{}",
                    cell.depth.map_or("?".into(), |d| d.to_string()),
                    cell.config.as_deref().map_or(0, num)
                ),
            };
            let text = if cell.status == CellStatus::Violated {
                format!("X{text}")
            } else {
                text
            };
            let _ = write!(s, "{text:<W$}");
        }
        let _ = writeln!(s, "{:.1}s", r.seconds);
    }
    let _ = writeln!(
        s,
        "{:<dw$}{:.1}s wall, {} runs at once (a row's time adds up its runs)",
        "total", m.wall_seconds, m.threads
    );
    let _ = writeln!(
        s,
        "\nok: holds in every configuration (complete searches); Xd#n: violated, shortest trace d steps in\n\
         configuration #n; d#n (R columns): reached; -: never reached; ?: not violated, but a search was capped"
    );
    if m.cut == Some(mmcid_engine::Cut::Interrupted) {
        let _ = writeln!(
            s,
            "interrupted by Ctrl-C: the table holds the runs done so far; the last row is partial"
        );
    }
    for r in &m.rows {
        for c in &r.capped {
            let _ = writeln!(
                s,
                "capped: {} at {} after {} states",
                r.design, c.config, c.states
            );
        }
        for e in &r.errors {
            let _ = writeln!(s, "error: {} at {}: {}", r.design, e.config, e.error);
        }
    }
    s
}
