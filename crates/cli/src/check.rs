//! `mmcid check`: explore every interleaving within bounds.

use mmcid_engine::Cut;
use mmcid_kmodel::checker::{self, CheckOptions, Liveness, Violation};
use mmcid_kmodel::scenario;

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
    /// Turn off symmetry reduction: task renaming, CPU renaming (6.18 with every CPU allowed, no
    /// affinity change and no compaction scan, unless `--liveness full`), and forgetting dead
    /// values (values no step reads before writing them again, such as the CPU a dead task last
    /// ran on).
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
    let memory = a.max_memory.resolve();
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
        memory_limit: memory.bytes,
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
        outln!("{}", serde_json::to_string_pretty(&out).expect("serialisable"));
    } else {
        out!(
            "{}",
            crate::render::text::check_report(&out, a.states, saved.as_deref())
        );
    }
    if let Some(e) = save_error {
        eprintln!("{e}");
        return exit::USAGE;
    }
    finish(&out.violations, out.complete, out.cut, memory)
}

/// The exit status of a search, and the note on a memory stop (shared with `matrix`).
pub fn finish(
    violations: &[Violation],
    complete: bool,
    cut: Option<Cut>,
    limit: crate::stop::Resolved,
) -> i32 {
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
