//! `mmcid check`: explore every interleaving within bounds.

use std::fmt::Write as _;

use mmcid_engine::Cut;
use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness, Status, Violation};
use mmcid_kmodel::scenario;
use mmcid_kmodel::{Config, trace};

pub use crate::bounds::{Bounds, OnOff, args_line, workers};
use crate::exit;
use crate::progress::Bar;

/// Default state cap of `--liveness full` (its graph costs tens of bytes per edge).
pub const FULL_LIVENESS_CAP: u64 = 5_000_000;

/// Explore every interleaving of the kernel model within the bounds and report each property:
/// HOLDS / VIOLATED (with its shortest trace as CPU columns) / REACHED / NOT REACHED.
/// Exit status: 0 no violation (complete search), 1 violation found, 2 usage or input error, 3 no
/// violation but the search was cut (`--max-states`, `--max-depth`), so nothing is claimed.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub bounds: Bounds,
    /// Turn off symmetry reduction (task renaming).
    #[arg(long)]
    pub no_symmetry: bool,
    /// Partial-order reduction: `on` takes each silent kernel step (one that no other CPU can
    /// see, such as copy_process of an unpublished child) inside the transition that reaches it,
    /// which gives the same verdicts from fewer states; `off` explores every kernel step as its
    /// own transition and reports exact shortest traces (with `on` a trace can be longer by
    /// those silent steps). Traces print every kernel step either way.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub reduction: OnOff,
    /// Liveness analysis: `full` keeps the explored graph and finds stalls and weakly fair live
    /// locks; `stalls` decides each spinning state on the fly without the graph (much less
    /// memory, no live locks); `off` checks the invariants only.
    #[arg(long, default_value = "full", value_parser = ["full", "stalls", "off"])]
    pub liveness: String,
    /// Do not expand states at this depth (violations found stay shortest; the result is marked
    /// incomplete).
    #[arg(long)]
    pub max_depth: Option<u32>,
    /// Stop after this many distinct states (the result is then marked incomplete). With
    /// `--liveness full` it defaults to 5,000,000, since the kept graph grows with every edge;
    /// `--liveness stalls` and `off` have no default cap.
    #[arg(long)]
    pub max_states: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the trace of the most severe violation (a stall, else a live lock, else the first
    /// invariant) as a scenario file that `mmcid replay` replays.
    #[arg(long, value_name = "FILE")]
    pub save_trace: Option<std::path::PathBuf>,
    /// Print the CID state after every trace step.
    #[arg(long)]
    pub states: bool,
    /// Which engine: ours (default) or stateright (the independent oracle: unique states and
    /// invariant violations only, no symmetry, no stall detection).
    #[arg(long, default_value = "ours", value_parser = ["ours", "stateright"])]
    pub engine: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Threads exploring in parallel (default: every core; `MMCID_WORKERS` sets the default).
    /// Counts, findings and traces are the same with any number.
    #[arg(long, default_value_t = mmcid_engine::all_cores(), value_parser = workers)]
    pub workers: usize,
    /// Stop cleanly, with what was found so far, before the process would use more memory than
    /// this: a size (`512M`, `4G`), a share of the memory available at start (`80%`), or `off`.
    /// A search stopped so exits with status 3 (1 if it found a violation).
    #[arg(long, default_value = crate::stop::DEFAULT_MEMORY, value_parser = crate::stop::parse_memory)]
    pub max_memory: crate::stop::MemoryLimit,
}

/// Runs `mmcid check`.
pub fn run(a: &Args) -> i32 {
    let cfg = a.bounds.config();
    if let Err(e) = cfg.validate() {
        eprintln!("mmcid check: {e}");
        return exit::USAGE;
    }
    if a.engine == "stateright" {
        // The oracle explores everything with its own options: refuse what it would ignore.
        let ignored: Vec<&str> = [
            ("--max-states", a.max_states.is_some()),
            ("--max-depth", a.max_depth.is_some()),
            ("--save-trace", a.save_trace.is_some()),
            ("--states", a.states),
        ]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(f, _)| *f)
        .collect();
        if !ignored.is_empty() {
            eprintln!(
                "mmcid check: --engine stateright does not support {} (it explores the whole space, without symmetry or stall detection)",
                ignored.join(", ")
            );
            return exit::USAGE;
        }
        return crate::oracle::check(&cfg, a.json);
    }
    let liveness = match a.liveness.as_str() {
        "full" => Liveness::Full,
        "stalls" => Liveness::Stalls,
        _ => Liveness::Off,
    };
    let opts = CheckOptions {
        reduction: a.reduction == OnOff::On,
        symmetry: !a.no_symmetry,
        liveness,
        max_states: a
            .max_states
            .or((liveness == Liveness::Full).then_some(FULL_LIVENESS_CAP)),
        max_depth: a.max_depth,
        workers: a.workers,
        cancel: Some(crate::stop::ctrl_c()),
        memory_limit: a.max_memory.bytes(),
    };
    let mut bar = Bar::new(a.quiet || a.json);
    let out = match checker::run(&cfg, &opts, &mut bar) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mmcid check: {e}");
            return exit::USAGE;
        }
    };
    let mut saved = None;
    let mut save_error = None;
    // The trace most worth replaying: a stall, else a live lock, else the first invariant.
    let worst = ["stall", "livelock", "invariant"]
        .iter()
        .find_map(|k| out.violations.iter().find(|v| v.kind == *k));
    if let (Some(path), Some(v)) = (&a.save_trace, worst) {
        let comment = format!(
            "{} {}: {}\nfound by: mmcid check {}",
            v.kind,
            v.property,
            v.what(),
            args_line(&cfg)
        );
        let text = scenario::write_for(&cfg, &v.steps, &comment).expect("validated");
        match std::fs::write(path, text) {
            Ok(()) => saved = Some(path.display().to_string()),
            // The report is still printed; the failure is said after it.
            Err(e) => {
                save_error = Some(format!(
                    "mmcid check: cannot write --save-trace {}: {e}",
                    path.display()
                ))
            }
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out).expect("serialisable"));
    } else {
        print!("{}", human(&out, a.states, saved.as_deref()));
    }
    if let Some(e) = save_error {
        eprintln!("{e}");
        return exit::USAGE;
    }
    finish(&out.violations, out.complete, out.cut, a.max_memory.bytes())
}

/// The exit status of a search, and the note on a memory stop (shared with `matrix`).
pub fn finish(violations: &[Violation], complete: bool, cut: Option<Cut>, limit: Option<u64>) -> i32 {
    if cut == Some(Cut::MemoryLimit) {
        eprintln!("mmcid: {}", crate::stop::memory_note(limit));
    }
    if cut == Some(Cut::Interrupted) {
        exit::INTERRUPTED
    } else if !violations.is_empty() {
        exit::VIOLATION
    } else if !complete {
        exit::INCOMPLETE
    } else {
        exit::OK
    }
}

/// Why a search stopped early, for a person.
pub fn cut_words(cut: Option<Cut>) -> &'static str {
    match cut {
        Some(Cut::MaxStates) => "cut by --max-states",
        Some(Cut::MaxDepth) => "cut by --max-depth",
        Some(Cut::FirstViolation) => "stopped at the first violation",
        Some(Cut::Interrupted) => "interrupted by Ctrl-C",
        Some(Cut::MemoryLimit) => "stopped by --max-memory",
        None => "cut",
    }
}

/// One violation as text: its heading, the trace as CPU columns, the CID state at the violating
/// point, who owns each bit, and what went wrong (shared with `mmcid hunt`).
pub fn violation_text(c: &Config, v: &Violation, with_states: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n{} {}: {}", v.kind, v.property, v.description);
    if let Ok(columns) = trace::render_columns_for(c, &v.trace, v.cycle_start, with_states) {
        s.push_str(&columns);
    }
    let _ = writeln!(s, "\nat step {}:", v.trace.len());
    s.push_str(&v.state);
    for b in &v.bits {
        let _ = writeln!(s, "  {}", trace::bit_owners_words(b, v.snapshot.family));
    }
    let _ = writeln!(s, "what went wrong: {}", v.what());
    s
}

/// The human report: header, one status line per property, summary, then each violation.
pub fn human(o: &CheckOutcome, with_states: bool, saved: Option<&str>) -> String {
    let mut s = String::new();
    let c = &o.config;
    let b = &c.budgets;
    let _ = writeln!(
        s,
        "mmcid {} | design {} | {} CPUs | {} threads | forks<={} vforks<={} fork-fails<={} exits<={} execs<={} exec-fails<={}{} affinity<={}{} | symmetry {} | liveness {}",
        env!("CARGO_PKG_VERSION"),
        o.design,
        c.cpus,
        c.threads,
        b.forks,
        b.vforks,
        b.fork_fails,
        b.exits,
        b.execs,
        b.exec_fails,
        if b.exec_checks > 0 {
            format!(" exec-checks<={}", b.exec_checks)
        } else {
            String::new()
        },
        b.affinity,
        if b.compactions > 0 {
            format!(" compactions<={}", b.compactions)
        } else {
            String::new()
        },
        if o.symmetry { "on" } else { "off" },
        o.liveness.as_str()
    );
    let t = format!("[{:>7.2}s]", o.seconds);
    for v in o.violations.iter().filter(|v| v.kind != "invariant") {
        let _ = writeln!(
            s,
            "{:>12} {t} {:<9} {}   shortest trace: {} steps",
            "VIOLATED", v.property, v.description, v.depth
        );
    }
    let liveness_line = match (o.liveness, o.no_stall) {
        (Liveness::Full, Some(true)) => Some((
            "HOLDS",
            "no CPU spins in get_cid forever (no stall, no fair live lock)".to_string(),
        )),
        (Liveness::Stalls, Some(true)) => Some((
            "HOLDS",
            "no CPU spins in get_cid forever (stalls only; live locks not searched)".to_string(),
        )),
        (Liveness::Full | Liveness::Stalls, None) if o.violations.iter().all(|v| v.kind == "invariant") => {
            Some((
                "UNKNOWN",
                format!(
                    "stalls not decided (search cut, or {} spinning states undecided)",
                    o.stalls_undecided
                ),
            ))
        }
        _ => None,
    };
    if let Some((status, text)) = liveness_line {
        let _ = writeln!(s, "{status:>12} {t} {:<9} {text}", "stall");
    }
    for p in &o.properties {
        let status = match p.status {
            Status::Holds => "HOLDS",
            Status::Violated => "VIOLATED",
            Status::Reached => "REACHED",
            Status::NotReached => "NOT REACHED",
            Status::NotApplicable => "N/A",
            Status::Unknown => "UNKNOWN",
        };
        let depth = p
            .depth
            .map(|d| format!("   shortest trace: {d} steps"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{status:>12} {t} {:<9} {}{depth}",
            p.property.id(),
            p.description
        );
    }
    let _ = writeln!(
        s,
        "{:>12} {t} {} unique states, {} transitions, depth {}, {}, {}{}P(fingerprint collision) < {:.1e}",
        "Summary",
        o.unique_states,
        o.transitions,
        o.depth,
        if o.complete {
            "complete within bounds".to_string()
        } else {
            format!("INCOMPLETE ({})", cut_words(o.cut))
        },
        o.peak_rss_bytes.map_or(String::new(), |p| format!(
            "peak RSS {:.0} MiB = {:.1} B/state, ",
            p as f64 / (1 << 20) as f64,
            p as f64 / o.unique_states.max(1) as f64
        )),
        // Not measured by the distributed engine (`mmcid dist`): left out rather than shown as 0.
        if o.seen_parents_bytes_per_state > 0.0 {
            format!(
                "seen table + parents {:.1} B/state, ",
                o.seen_parents_bytes_per_state
            )
        } else {
            String::new()
        },
        o.collision_probability.max(1e-18)
    );
    if !o.complete {
        let raise = match o.cut {
            Some(Cut::Interrupted) => "Run it again to the end.",
            Some(Cut::MemoryLimit) => "Raise --max-memory, or use --liveness stalls.",
            _ => "Raise --max-states or --max-depth.",
        };
        let _ = writeln!(
            s,
            "warning: the search was cut ({}); HOLDS cannot be claimed (UNKNOWN above). {raise}",
            cut_words(o.cut)
        );
        if o.liveness == Liveness::Full && matches!(o.cut, Some(Cut::MaxStates | Cut::MemoryLimit)) {
            let _ = writeln!(
                s,
                "hint: --liveness full keeps the whole graph and stops at {FULL_LIVENESS_CAP} states unless told otherwise; \
                 --liveness stalls finds stalls in far less memory."
            );
        }
    }
    let not_reached: Vec<&str> = o
        .properties
        .iter()
        .filter(|p| p.status == Status::NotReached)
        .map(|p| p.property.id())
        .collect();
    if !not_reached.is_empty() {
        let _ = writeln!(
            s,
            "note: never reached: {} (the bounds may be too small to exercise them)",
            not_reached.join(", ")
        );
    }
    if o.symmetry_renamed == Some(false) {
        let _ = writeln!(
            s,
            "note: symmetry renamed no state at this bound: --no-symmetry explores the same states"
        );
    }
    for v in &o.violations {
        s.push_str(&violation_text(c, v, with_states));
    }
    if let Some(p) = saved {
        let _ = writeln!(
            s,
            "\nreplay: mmcid replay {p}      (config hash {:08x})",
            c.hash()
        );
    } else if !o.violations.is_empty() {
        let _ = writeln!(
            s,
            "\nreplay: mmcid check {} --save-trace FILE, then mmcid replay FILE",
            args_line(c)
        );
    }
    s
}
