//! The text reports: traces as CPU columns (one column per CPU, time downwards, the way the
//! kernel mails draw interleavings), the report of `check` (and `dist`, `hunt`) and of `replay`.
//! They are made from the model's typed results ([`mmcid_kmodel::trace::TraceStep`]'s effects,
//! [`mmcid_kmodel::facts`]), whose small types say themselves in kernel words; the layout is here.
//! The `--json` form of the same results is their serde form, described by [`crate::schema`].

use std::fmt::Write as _;

use mmcid_engine::Cut;
use mmcid_kmodel::Config;
use mmcid_kmodel::checker::{CheckOutcome, Liveness, Status, Violation};
use mmcid_kmodel::family::{Family, ModelVisitor, with_model};
use mmcid_kmodel::model::KernelModel;
use mmcid_kmodel::replay::{ReplayEnd, ReplayOutcome};
use mmcid_kmodel::trace::{self, Snapshot, TraceStep, cn, tn};

use crate::check::{FULL_LIVENESS_CAP, args_line};
use crate::render::state;

/// Renders described steps as CPU columns, from the state `init` they start in. `cycle_start`:
/// index of the first step of a live lock's cycle (a `--- cycle ---` rule is drawn before it and
/// `back to step k` after the last). `with_state`: a state line under each step.
pub fn render_columns(
    init: &Snapshot,
    steps: &[TraceStep],
    cycle_start: Option<usize>,
    with_state: bool,
) -> String {
    const W: usize = 30;
    let mut out = String::new();
    let _ = write!(out, "step ");
    for c in &init.cpus {
        let _ = write!(out, "{:<W$}", cn(c.cpu));
    }
    out.push('\n');
    let _ = write!(out, "{:>4} ", 0);
    for c in &init.cpus {
        let cell = match c.curr {
            Some(t) => format!(
                "{} cid {}",
                tn(t),
                state::task_cid(init.family, &init.tasks[t as usize])
            ),
            None => "idle".to_string(),
        };
        let _ = write!(out, "{:<W$}", cell);
    }
    out.push('\n');
    if with_state {
        let _ = writeln!(out, "     {}", state::state_line(init));
    }
    for (i, st) in steps.iter().enumerate() {
        if Some(i) == cycle_start {
            let _ = writeln!(out, "     --- cycle ---");
        }
        let pad = " ".repeat(W * st.cpu as usize);
        let head = match (st.task, &st.arg) {
            (Some(t), Some(a)) => format!("T{t} {} {a}", st.function),
            (Some(t), None) => format!("T{t} {}", st.function),
            (None, Some(a)) => format!("{} {a}", st.function),
            (None, None) => st.function.clone(),
        };
        let _ = writeln!(out, "{:>4} {pad}{head}", st.step);
        let multi_mm = st.snapshot.mms.len() > 1;
        for e in &st.effect {
            let _ = writeln!(out, "     {pad}  {}", e.words(multi_mm));
        }
        if with_state {
            let _ = writeln!(out, "     {}", state::state_line(&st.snapshot));
        }
    }
    if let Some(k) = cycle_start {
        let _ = writeln!(out, "     back to step {k} (up to renaming of tasks)");
    }
    out
}

/// The initial state of `cfg`'s model, as a snapshot (a trace's columns start from it).
pub fn initial_snapshot(cfg: &Config) -> Result<Snapshot, String> {
    struct Init;
    impl ModelVisitor for Init {
        type Out = Snapshot;
        fn visit<F: Family>(self, m: KernelModel<F>) -> Snapshot {
            trace::snapshot(m.initial_state())
        }
    }
    with_model(cfg, Init)
}

/// [`render_columns`] from the initial state of `cfg`.
pub fn render_columns_for(
    cfg: &Config,
    steps: &[TraceStep],
    cycle_start: Option<usize>,
    with_state: bool,
) -> Result<String, String> {
    Ok(render_columns(
        &initial_snapshot(cfg)?,
        steps,
        cycle_start,
        with_state,
    ))
}

/// One violation as text: its heading, the trace as CPU columns, the CID state at the violating
/// point, who owns each bit, and what went wrong (shared with `mmcid hunt`).
pub fn violation_text(c: &Config, v: &Violation, with_states: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n{} {}: {}", v.kind, v.property, v.description);
    if let Ok(columns) = render_columns_for(c, &v.trace, v.cycle_start, with_states) {
        s.push_str(&columns);
    }
    let _ = writeln!(s, "\nat step {}:", v.trace.len());
    s.push_str(&state::state_report(&v.snapshot));
    for b in &v.bits {
        let _ = writeln!(s, "  {}", b.words(v.snapshot.family));
    }
    let _ = writeln!(s, "what went wrong: {}", v.what());
    s
}

/// The human report: header, one status line per property, summary, then each violation.
pub fn check_report(o: &CheckOutcome, with_states: bool, saved: Option<&str>) -> String {
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
        match (o.symmetry, o.cpu_symmetry) {
            (true, true) => "on (tasks, CPUs)",
            (true, false) => "on",
            (false, _) => "off",
        },
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

/// The text report of `mmcid replay`: the trace as CPU columns, the state at the end, who owns
/// each bit, the properties that fired and how the replay ended.
pub fn replay_report(o: &ReplayOutcome, with_state: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mmcid replay | design {} | {} CPUs | {} threads",
        o.design, o.config.cpus, o.config.threads
    );
    s.push_str(&render_columns_for(&o.config, &o.steps, None, with_state).unwrap_or_default());
    let _ = writeln!(s, "\nat the end (step {}):", o.steps.len());
    s.push_str(&state::state_report(&o.snapshot));
    for b in &o.bits {
        let _ = writeln!(s, "  {}", b.words(o.snapshot.family));
    }
    for v in &o.violations {
        let _ = writeln!(
            s,
            "VIOLATED {} ({}) first after step {}",
            v.property, v.description, v.step
        );
    }
    match (o.outcome, &o.stalled) {
        (ReplayEnd::Completed, _) => {
            let _ = writeln!(s, "outcome: completed, no CPU spinning");
        }
        (ReplayEnd::Stall, Some(c)) => {
            let cpus: Vec<String> = c.iter().map(|c| format!("CPU{c}")).collect();
            let _ = writeln!(
                s,
                "outcome: STALL: {} spin(s) in get_cid and no continuation within the budgets releases it",
                cpus.join(", ")
            );
        }
        (_, Some(_)) => {
            let _ = writeln!(
                s,
                "outcome: a CPU spins in get_cid, but some continuation releases it"
            );
        }
        (_, None) => {
            let _ = writeln!(
                s,
                "outcome: a CPU spins in get_cid; whether it can be released was not decided (raise --max-states)"
            );
        }
    }
    s
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
