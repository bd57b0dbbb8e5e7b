//! `mmcid check`: explore every interleaving within bounds.

use std::fmt::Write as _;

use mmcid_kmodel::checker::{self, CheckOptions, CheckOutcome, Liveness, Violation};
use mmcid_kmodel::scenario;
use mmcid_kmodel::{Budgets, Config, trace};

use crate::exit;
use crate::progress::Bar;

/// Default state cap of `--liveness full` (its graph costs tens of bytes per edge).
pub const FULL_LIVENESS_CAP: u64 = 5_000_000;

/// The model's bounds, shared by `check`, `bench` and `explore`.
#[derive(clap::Args, Debug, Clone)]
pub struct Bounds {
    /// Design to check (`mmcid designs` lists them).
    #[arg(long, default_value = "7.0")]
    pub design: String,
    /// Possible CPUs (num_possible_cpus), 1-8.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub cpus: u8,
    /// Threads of the process at the start (created by the model's own fork steps), 1-8.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub threads: u8,
    /// CPUs the process may use at the start (the first N); default: all.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub allowed: Option<u8>,
    /// pthread_create budget (clone with CLONE_VM|CLONE_THREAD).
    #[arg(long, default_value_t = 1, value_parser = budget)]
    pub forks: u8,
    /// vfork budget (CLONE_VM child in a new thread group).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub vforks: u8,
    /// How many forks may fail after copy_mm.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub fork_fails: u8,
    /// exit budget.
    #[arg(long, default_value_t = 2, value_parser = budget)]
    pub exits: u8,
    /// Successful execve budget.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub execs: u8,
    /// Failing execve budget (fails before the point of no return: ENOEXEC, LSM denial).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub exec_fails: u8,
    /// execveat(..., AT_EXECVE_CHECK) budget: the same exec window as a failing execve
    /// (before_execve, then after_execve on the old mm), returning 0.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub exec_checks: u8,
    /// sched_setaffinity budget (each grows a task's mask by one CPU; needs --allowed).
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub affinity: u8,
    /// Design 6.18 only: runs of the compaction scan (task_work mm_cid_work), each remote-clearing
    /// at most one CPU's CID.
    #[arg(long, default_value_t = 0, value_parser = budget)]
    pub compactions: u8,
}

/// A worker count: at least 1.
pub fn workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("at least one worker is needed".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

/// A budget: 0..=15 (`mmcid_kmodel::config::MAX_BUDGET`).
fn budget(s: &str) -> Result<u8, String> {
    let max = mmcid_kmodel::config::MAX_BUDGET;
    match s.parse::<u64>() {
        Ok(n) if n <= max as u64 => Ok(n as u8),
        Ok(n) => Err(format!("{n} is out of range: a budget is 0..={max}")),
        Err(_) => Err(format!("not a number: {s:?}")),
    }
}

impl Bounds {
    /// The model configuration.
    pub fn config(&self) -> Config {
        Config {
            design: self.design.clone(),
            cpus: self.cpus,
            threads: self.threads,
            allowed: self.allowed,
            budgets: Budgets {
                forks: self.forks,
                vforks: self.vforks,
                fork_fails: self.fork_fails,
                exits: self.exits,
                execs: self.execs,
                exec_fails: self.exec_fails,
                exec_checks: self.exec_checks,
                affinity: self.affinity,
                compactions: self.compactions,
            },
        }
    }
}

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
        ..CheckOptions::default()
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
            v.what,
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
    if !out.violations.is_empty() {
        exit::VIOLATION
    } else if !out.complete {
        exit::INCOMPLETE
    } else {
        exit::OK
    }
}

/// A switch that is on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// The flags that reproduce `cfg`.
pub fn args_line(cfg: &Config) -> String {
    mmcid_kmodel::hunt::check_args(cfg)
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
        let _ = writeln!(s, "  {b}");
    }
    let _ = writeln!(s, "what went wrong: {}", v.what);
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
        o.liveness
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
        ("full", Some(true)) => Some((
            "HOLDS",
            "no CPU spins in get_cid forever (no stall, no fair live lock)".to_string(),
        )),
        ("stalls", Some(true)) => Some((
            "HOLDS",
            "no CPU spins in get_cid forever (stalls only; live locks not searched)".to_string(),
        )),
        ("full" | "stalls", None) if o.violations.iter().all(|v| v.kind == "invariant") => Some((
            "UNKNOWN",
            format!(
                "stalls not decided (search cut, or {} spinning states undecided)",
                o.stalls_undecided
            ),
        )),
        _ => None,
    };
    if let Some((status, text)) = liveness_line {
        let _ = writeln!(s, "{status:>12} {t} {:<9} {text}", "stall");
    }
    for p in &o.properties {
        let status = match p.status {
            "holds" => "HOLDS",
            "violated" => "VIOLATED",
            "reached" => "REACHED",
            "not_reached" => "NOT REACHED",
            "not_applicable" => "N/A",
            _ => "UNKNOWN",
        };
        let depth = p
            .depth
            .map(|d| format!("   shortest trace: {d} steps"))
            .unwrap_or_default();
        let _ = writeln!(s, "{status:>12} {t} {:<9} {}{depth}", p.property, p.description);
    }
    let _ = writeln!(
        s,
        "{:>12} {t} {} unique states, {} transitions, depth {}, {}, {}{}P(fingerprint collision) < {:.1e}",
        "Summary",
        o.unique_states,
        o.transitions,
        o.depth,
        if o.complete {
            "complete within bounds"
        } else {
            "INCOMPLETE (cut by --max-states or --max-depth)"
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
        let _ = writeln!(
            s,
            "warning: the search was cut; HOLDS cannot be claimed (UNKNOWN above). Raise --max-states or --max-depth."
        );
        if o.liveness == "full" {
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
        .filter(|p| p.status == "not_reached")
        .map(|p| p.property.as_str())
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
