//! Running the checker on a configuration and turning the engine's findings into kernel terms:
//! CPU-column traces, the CID state at the violating point, and one sentence on what went wrong.
//! The CLI only renders what this module returns.

use mmcid_cid::Mode;
use mmcid_engine::{
    EngineError, FindingKind, Model, Observer, Options, PropertyKind, Report, check, trace_states,
};
use serde::Serialize;

use crate::config::Config;
use crate::invariants::PROPERTIES;
use crate::model::KernelModel;
use crate::state::{CidOp, LegacyMm, LegacyTask, Sched, State};
use crate::step::Step;
use crate::trace::{self, TraceStep};

/// Version of the JSON output format.
pub const FORMAT_VERSION: u32 = 1;

/// One violation (or reachability witness) in kernel terms.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// Property id (`I1`…), or `stall` / `livelock`.
    pub property: String,
    /// `invariant`, `stall`, `livelock` (or `sometimes` for a reachability witness).
    pub kind: &'static str,
    /// The property's sentence.
    pub description: String,
    /// Length of the shortest trace (for a live lock: of the prefix).
    pub depth: u32,
    /// The spinning CPU, for stalls and live locks.
    pub cpu: Option<u16>,
    /// The steps.
    pub trace: Vec<TraceStep>,
    /// For a live lock: index of the first step of the cycle.
    pub cycle_start: Option<usize>,
    /// The CID state at the violating point, as text.
    pub state: String,
    /// Who owns each set bit there.
    pub bits: Vec<String>,
    /// What went wrong, in the kernel's terms.
    pub what: String,
    /// The raw steps (for `--save-trace`).
    #[serde(skip)]
    pub steps: Vec<Step>,
}

/// The status of one property after a run.
#[derive(Clone, Debug, Serialize)]
pub struct PropertyStatus {
    /// Property id.
    pub property: String,
    /// Its sentence.
    pub description: String,
    /// `holds`, `violated`, `reached`, `not_reached`, `unknown` (search incomplete),
    /// `not_applicable` (a mode property of a design without modes).
    pub status: &'static str,
    /// Depth of the shortest witness, if any.
    pub depth: Option<u32>,
}

/// The result of `mmcid check`.
#[derive(Clone, Debug, Serialize)]
pub struct CheckOutcome {
    /// JSON format version.
    pub format_version: u32,
    /// Design name.
    pub design: String,
    /// The configuration.
    pub config: Config,
    /// States generated (initial states plus transitions).
    pub states: u64,
    /// Transitions explored.
    pub transitions: u64,
    /// Distinct states stored (symmetry classes when symmetry is on).
    pub unique_states: u64,
    /// Deepest BFS level.
    pub depth: u32,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// False if a bound (max states) cut the search.
    pub complete: bool,
    /// Symmetry reduction was on.
    pub symmetry: bool,
    /// Liveness analysis asked for: `off`, `stalls` (on the fly), `full` (graph: stalls and live
    /// locks).
    pub liveness: &'static str,
    /// Spinning states whose stall question stayed undecided (on-the-fly limit reached).
    pub stalls_undecided: u64,
    /// Bytes per stored state (Seen + Parents).
    pub bytes_per_state: f64,
    /// Estimated probability that a fingerprint collision hid a state.
    pub collision_probability: f64,
    /// Violations, shortest first within each property.
    pub violations: Vec<Violation>,
    /// Every property's status.
    pub properties: Vec<PropertyStatus>,
    /// Whether the stall / live-lock analysis found nothing (None when it did not run).
    pub no_stall: Option<bool>,
}

/// How much liveness analysis a check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// None: safety invariants only.
    Off,
    /// Stalls only, decided on the fly for each spinning state (no graph kept; cheap in memory).
    Stalls,
    /// Stalls and weakly fair live locks, from the whole explored graph.
    Full,
}

/// Options of a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Task-renaming symmetry.
    pub symmetry: bool,
    /// Stall and live-lock detection.
    pub liveness: Liveness,
    /// Stop after this many distinct states.
    pub max_states: Option<u64>,
    /// Do not expand states at this depth (findings stay shortest; the result is incomplete).
    pub max_depth: Option<u32>,
}

/// States one on-the-fly stall decision may explore.
pub const STALL_SEARCH_LIMIT: u64 = 2_000_000;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            symmetry: true,
            liveness: Liveness::Full,
            max_states: None,
            max_depth: None,
        }
    }
}

/// Builds the model of `cfg` and checks it.
pub fn run(cfg: &Config, opts: &CheckOptions, observer: &mut dyn Observer) -> Result<CheckOutcome, String> {
    let model = KernelModel::new(cfg.clone())?;
    let eopts = Options {
        symmetry: opts.symmetry,
        liveness: opts.liveness == Liveness::Full,
        stall_search: (opts.liveness == Liveness::Stalls).then_some(STALL_SEARCH_LIMIT),
        max_states: opts.max_states,
        max_depth: opts.max_depth,
        ..Options::default()
    };
    let report = check(&model, &eopts, observer).map_err(|e: EngineError| e.to_string())?;
    Ok(outcome(&model, cfg, opts, &report))
}

/// Turns an engine report into a [`CheckOutcome`].
pub fn outcome(model: &KernelModel, cfg: &Config, opts: &CheckOptions, r: &Report<Step>) -> CheckOutcome {
    let mut violations = Vec::new();
    // The mode properties (R1-R3, R5) describe the 7.0 family's per-task/per-CPU modes; the older
    // designs have no modes, so they do not apply there (R4, a spin, does).
    let modes = crate::config::design(&cfg.design).is_ok_and(|d| d.family == crate::config::Family::Rewrite);
    let mut statuses: Vec<PropertyStatus> = PROPERTIES
        .iter()
        .map(|p| PropertyStatus {
            property: p.name.into(),
            description: p.description.into(),
            status: match (p.kind, r.complete) {
                (PropertyKind::Sometimes, _) if !modes && p.name != "R4" => "not_applicable",
                (PropertyKind::Always, true) => "holds",
                (PropertyKind::Sometimes, true) => "not_reached",
                _ => "unknown",
            },
            depth: None,
        })
        .collect();
    for f in &r.findings {
        if let Some(p) = f.property {
            statuses[p].status = if f.kind == FindingKind::Sometimes {
                "reached"
            } else {
                "violated"
            };
            statuses[p].depth = Some(f.depth);
        }
        if f.kind == FindingKind::Sometimes {
            continue;
        }
        let states = match trace_states(model, &f.trace) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let last = states.last().expect("a trace has a state");
        let (property, description, kind) = match f.kind {
            FindingKind::Invariant => {
                let p = &PROPERTIES[f.property.unwrap()];
                (p.name.to_string(), p.description.to_string(), "invariant")
            }
            FindingKind::Stall => (
                "stall".into(),
                "a CPU spins in get_cid and no continuation within the bounds releases it".into(),
                "stall",
            ),
            FindingKind::Livelock => (
                "livelock".into(),
                "a CPU spins in get_cid forever on a weakly fair cycle while the others keep moving".into(),
                "livelock",
            ),
            FindingKind::Sometimes => unreachable!(),
        };
        let steps = trace::describe(&model.params, model.initial_state(), &f.trace.actions);
        violations.push(Violation {
            what: explain(&property, f.agent, last),
            property,
            kind,
            description,
            depth: f.depth,
            cpu: f.agent,
            trace: steps,
            cycle_start: f.trace.cycle_start,
            state: trace::state_report(last),
            bits: (0..last.mms.len())
                .flat_map(|m| trace::bit_owners(last, m as u8))
                .collect(),
            steps: f.trace.actions.clone(),
        });
    }
    let analysed = match opts.liveness {
        Liveness::Off => false,
        Liveness::Stalls => r.complete && r.stalls_undecided == 0,
        Liveness::Full => r.liveness_checked,
    };
    let no_stall = analysed.then(|| {
        !r.findings
            .iter()
            .any(|f| matches!(f.kind, FindingKind::Stall | FindingKind::Livelock))
    });
    CheckOutcome {
        format_version: FORMAT_VERSION,
        design: cfg.design.clone(),
        config: cfg.clone(),
        states: r.transitions + 1,
        transitions: r.transitions,
        unique_states: r.unique_states,
        depth: r.max_depth,
        seconds: r.seconds,
        complete: r.complete,
        symmetry: opts.symmetry,
        liveness: match opts.liveness {
            Liveness::Off => "off",
            Liveness::Stalls => "stalls",
            Liveness::Full => "full",
        },
        stalls_undecided: r.stalls_undecided,
        bytes_per_state: r.bytes_per_state,
        collision_probability: r.collision_probability,
        violations,
        properties: statuses,
        no_stall,
    }
}

/// One sentence, in the kernel's terms, on what is wrong in `s`.
pub fn explain(property: &str, agent: Option<u16>, s: &State) -> String {
    if s.mms.first().is_some_and(|m| m.legacy != LegacyMm::None) {
        return explain_legacy(property, agent, s);
    }
    let mut why = Vec::new();
    for (m, mm) in s.mms.iter().enumerate() {
        let c = &mm.cid;
        for (i, t) in s.tasks.iter().enumerate() {
            if t.mm != Some(m as u8) {
                continue;
            }
            let id = i as u8;
            if t.cid.cid.on_task() && c.mode.percpu() && !s.walking(m as u8) {
                let vis = if s.published(id) {
                    ""
                } else {
                    ", invisible to the fix-up walk"
                };
                why.push(format!("T{i} owns plain CID {} in per-CPU mode{vis}", t.cid.cid));
            }
            if t.cid.active && !s.published(id) {
                why.push(format!("T{i} is counted as a CID user before it is visible"));
            }
            if t.cid.active
                && t.cid.cid.is_unset()
                && s.on_cpu_settled(id)
                && t.cid_op.is_none()
                && t.op == crate::state::Op::User
            {
                why.push(format!("T{i} runs in user space without a CID"));
            }
        }
        if c.users > 0 && c.mode.in_transit() && !s.walking(m as u8) {
            why.push(format!("mode {} with no fix-up walk running", c.mode));
        }
        if c.mode == Mode::PER_TASK && c.users > 0 && c.pcpu.iter().take(s.cpus.len()).any(|x| x.on_cpu()) {
            why.push("a CPU still owns a CID in per-task mode".into());
        }
        if let Some(b) = c.faults.out_of_range {
            why.push(format!("drop() cleared bit {b}, outside the {}-bit bitmap", c.np));
        }
        if let Some(b) = c.faults.already_clear {
            why.push(format!("drop() cleared bit {b}, which nobody owned"));
        }
        if let Some(w) = c.faults.warn {
            why.push(format!("WARN_ON: {w:?}"));
        }
    }
    let head = match (property, agent) {
        ("stall", Some(cpu)) | ("livelock", Some(cpu)) => {
            let holder = if s.cpus[cpu as usize].spin.is_some() {
                "in schedin, holding its rq lock with IRQs off".to_string()
            } else {
                let t = s.curr(cpu as u8);
                match t.map(|t| s.task(t).cid_op) {
                    Some(Some(CidOp::ForkSpinLocked { .. })) => {
                        "in sched_mm_cid_fork, holding mm.lock with IRQs off".into()
                    }
                    _ => "in sched_mm_cid_fork, holding mm.mutex".to_string(),
                }
            };
            let full = s
                .mms
                .first()
                .map(|m| m.cid.bitmap.weight() == m.cid.np as u32)
                .unwrap_or(false);
            let blocked: Vec<String> = s
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.sched == Sched::Runnable && t.cpu == cpu as u8)
                .map(|(i, _)| format!("T{i}"))
                .collect();
            let mut h = format!("CPU{cpu} spins in get_cid {holder}");
            if full {
                h.push_str("; every CID bit is set");
            }
            if !blocked.is_empty() {
                h.push_str(&format!(
                    "; {} wait(s) on its run queue, which nobody can lock",
                    blocked.join(", ")
                ));
            }
            h
        }
        _ => String::new(),
    };
    match (head.is_empty(), why.is_empty()) {
        (true, true) => format!("{property} fails"),
        (true, false) => why.join("; "),
        (false, true) => head,
        (false, false) => format!("{head}; {}", why.join("; ")),
    }
}

/// A model of `cfg` that starts from `state` instead of the configuration's initial state (used
/// to ask whether a replayed spin can ever end).
pub fn continuation_stalls(cfg: &Config, state: &State, max_states: u64) -> Result<Vec<u16>, String> {
    let model = KernelModel::from_state(cfg.clone(), *state)?;
    let opts = Options {
        symmetry: true,
        liveness: true,
        max_states: Some(max_states),
        ..Options::default()
    };
    let r = check(&model, &opts, &mut mmcid_engine::NoObserver).map_err(|e| e.to_string())?;
    if !r.complete {
        return Err(format!(
            "the continuation has more than {max_states} states; not decided"
        ));
    }
    let mut spinning = Vec::new();
    model.spinning(state, &mut spinning);
    Ok(r.findings
        .iter()
        .filter(|f| f.kind == FindingKind::Stall && f.depth == 0)
        .filter_map(|f| f.agent)
        .filter(|a| spinning.contains(a))
        .collect())
}

/// [`explain`] for the pre-rewrite designs: the design's own check messages.
fn explain_legacy(property: &str, agent: Option<u16>, s: &State) -> String {
    use mmcid_cid::legacy::{self as lg, v6_3, v6_18};
    let mut why = Vec::new();
    if let Some(cpu) = agent {
        if let Some(k) = s.cpus[cpu as usize].legacy_spin {
            why.push(format!(
                "CPU{cpu} busy-waits in mm_cid_get ({k:?}) holding its rq lock with IRQs off"
            ));
        }
    }
    for (m, mm) in s.mms.iter().enumerate() {
        let tasks = || {
            s.tasks
                .iter()
                .enumerate()
                .filter(move |(_, t)| t.mm == Some(m as u8))
        };
        let running = || tasks().filter(|(i, t)| t.legacy.active() && s.on_cpu_settled(*i as u8));
        if let Err(e) = lg::check_unique(running().filter_map(|(_, t)| t.legacy.mm_cid())) {
            why.push(format!("mm{m} running tasks: {e}"));
        }
        for (i, t) in running().filter(|(_, t)| t.op == crate::state::Op::User && t.cid_op.is_none()) {
            let e = match (&mm.legacy, &t.legacy) {
                (LegacyMm::V63(x), LegacyTask::V63(y)) => v6_3::check_bound(x, y).err(),
                (LegacyMm::V618(x), LegacyTask::V618(y)) => v6_18::check_bound(x, y).err(),
                _ => None,
            };
            if let Some(e) = e {
                why.push(format!("T{i} in user space: {e}"));
            }
        }
        match &mm.legacy {
            LegacyMm::V63(x) => {
                if let Err(e) = v6_3::check_ownership(x, tasks().filter_map(|(_, t)| t.legacy.mm_cid())) {
                    why.push(format!("mm{m}: {e}"));
                }
                if x.faults != Default::default() {
                    why.push(format!("mm{m} faults {:?}", x.faults));
                }
            }
            LegacyMm::V618(x) => {
                if let Err(e) = v6_18::check_ownership(x, crate::legacy::in_flight(s, m as u8)) {
                    why.push(format!("mm{m}: {e}"));
                }
                for (i, t) in running() {
                    if let LegacyTask::V618(y) = &t.legacy {
                        if !v6_18::holds_slot_copy(x, t.cpu, y) {
                            why.push(format!(
                                "T{i} runs with mm_cid {} but CPU{}'s slot holds {}",
                                y.mm_cid,
                                t.cpu,
                                x.slot(t.cpu).cid
                            ));
                        }
                    }
                }
                if x.faults != Default::default() {
                    why.push(format!("mm{m} faults {:?}", x.faults));
                }
            }
            LegacyMm::None => {}
        }
    }
    if why.is_empty() {
        format!("{property} fails")
    } else {
        why.join("; ")
    }
}
