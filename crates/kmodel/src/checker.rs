//! Running the checker on a configuration and turning the engine's findings into kernel terms:
//! the kernel steps of each trace with their typed effects, the typed state at the violating
//! point, who owns each bit, and the facts of what went wrong. The CLI only renders what this
//! module returns.

use mmcid_engine::{
    Cut, EngineError, FindingKind, Model, Observer, Options, PropertyKind, Report, check, trace_states,
};
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::Config;
use crate::facts::{BitOwners, Fact};
use crate::family::{Family, ModelVisitor, with_model};
use crate::invariants::{Class, Property};
use crate::model::KernelModel;
use crate::ops::Step;
use crate::state::State;
use crate::trace::{self, TraceStep};

/// Version of the JSON output format (3: property statuses carry their `kind`; `kind` and
/// `status` are closed sets, described in `docs/schema/`; 4: no text in data fields: a
/// violation's `what` became typed `facts`, `bits` typed owners, the `state` text went (the
/// typed `snapshot`, now with every mm's CID state, carries it), and a trace step's `effect`
/// lines became typed effects and its `state` line a `snapshot`; `matrix`'s cells, capped and
/// rejected configurations are objects with named fields instead of pairs; 5: the snapshot says
/// where each task is in the kernel (`at`, `cid_op`; 6.18: `last_mm_cid`, `migrate_from_cpu`) and
/// what each CPU is in the middle of (`schedin`; 6.18: `mm_cid_get`, `migrating`), 6.18's mm its
/// `cpus_allowed`, and 6.18's `mm_cid_get` and migration continuations in effects and facts are
/// typed (`GetPoint`, `MigratePoint`) instead of the serde form of the CID crate's types); 6:
/// `check` says whether symmetry also renamed CPUs (`cpu_symmetry`).
pub const FORMAT_VERSION: u32 = 6;

/// What a violation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// An invariant fails in the last state of the trace.
    Invariant,
    /// A CPU spins in `get_cid` and no continuation within the bounds releases it.
    Stall,
    /// A CPU spins forever on a weakly fair cycle while the others keep moving.
    Livelock,
}

impl Liveness {
    /// Its name in reports (`off`, `stalls`, `full`).
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Off => "off",
            Liveness::Stalls => "stalls",
            Liveness::Full => "full",
        }
    }
}

impl ViolationKind {
    /// Its name in reports (`invariant`, `stall`, `livelock`).
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Invariant => "invariant",
            ViolationKind::Stall => "stall",
            ViolationKind::Livelock => "livelock",
        }
    }
}

impl std::fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ViolationKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The verdict on one property after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An invariant held in every state of a complete search.
    Holds,
    /// An invariant failed in some state.
    Violated,
    /// A reachability goal was reached.
    Reached,
    /// A complete search never reached a reachability goal.
    NotReached,
    /// Not violated or reached, but the search was cut: nothing can be claimed.
    Unknown,
    /// A property about the 7.0 family's modes, in a design without modes.
    NotApplicable,
}

impl Status {
    /// Its name in reports (`holds`, `violated`, `reached`, `not_reached`, `unknown`,
    /// `not_applicable`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Holds => "holds",
            Status::Violated => "violated",
            Status::Reached => "reached",
            Status::NotReached => "not_reached",
            Status::Unknown => "unknown",
            Status::NotApplicable => "not_applicable",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One violation in kernel terms.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Violation {
    /// Property id (`I1`…), or `stall` / `livelock`.
    pub property: String,
    /// What kind of violation it is.
    pub kind: ViolationKind,
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
    /// Who runs where, which CIDs the tasks hold and each mm's CID state at the violating point.
    pub snapshot: trace::Snapshot,
    /// Who owns each set bit there.
    pub bits: Vec<BitOwners>,
    /// What is wrong at the violating point, as facts built from the state (empty when no fact
    /// shows it beyond the property's promise).
    pub facts: Vec<Fact>,
    /// The raw steps (for `--save-trace`).
    #[serde(skip)]
    #[schemars(skip)]
    pub steps: Vec<Step>,
}

impl Violation {
    /// What went wrong, in one sentence of the kernel's terms ([`crate::facts::sentence`]).
    pub fn what(&self) -> String {
        crate::facts::sentence(&self.property, &self.facts)
    }
}

/// The status of one property after a run.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PropertyStatus {
    /// The property.
    pub property: Property,
    /// Invariant or reachability goal.
    pub kind: Class,
    /// Its promise, in the kernel's terms.
    pub description: String,
    /// The verdict.
    pub status: Status,
    /// Depth of the shortest witness, if any.
    pub depth: Option<u32>,
}

/// The result of `mmcid check` (its `--json` output; schema: `docs/schema/check.json`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
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
    /// Why the search stopped early, if it did: `max_states`, `max_depth`, `interrupted`
    /// (Ctrl-C), `memory_limit` (`--max-memory`).
    pub cut: Option<Cut>,
    /// Symmetry reduction was on.
    pub symmetry: bool,
    /// Symmetry also renamed CPUs ([`KernelModel::with_cpu_symmetry`]: 6.18 configurations
    /// that treat every CPU alike, without `--liveness full`).
    pub cpu_symmetry: bool,
    /// Liveness analysis asked for: `off`, `stalls` (on the fly), `full` (graph: stalls and live
    /// locks).
    pub liveness: Liveness,
    /// Spinning states whose stall question stayed undecided (on-the-fly limit reached).
    pub stalls_undecided: u64,
    /// Bytes per stored state of the visited set and the parent pointers alone (not what the
    /// process uses: see `peak_rss_per_state`).
    pub seen_parents_bytes_per_state: f64,
    /// Peak resident memory of the process during the check, in bytes (Linux `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// `peak_rss_bytes / unique_states`: memory per state as a user meets it.
    pub peak_rss_per_state: Option<f64>,
    /// Threads that explored.
    pub workers: usize,
    /// Estimated probability that a fingerprint collision hid a state.
    pub collision_probability: f64,
    /// Violations, shortest first within each property.
    pub violations: Vec<Violation>,
    /// Every property's status.
    pub properties: Vec<PropertyStatus>,
    /// Whether the stall / live-lock analysis found nothing (None when it did not run).
    pub no_stall: Option<bool>,
    /// With symmetry on: whether it renamed any state. `Some(false)`: `--no-symmetry` would
    /// explore exactly the same states at this bound.
    pub symmetry_renamed: Option<bool>,
}

/// How much liveness analysis a check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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
    /// Take silent steps inside the transition that reaches them ([`crate::ops::silent`]): the
    /// same verdicts from fewer states; traces may be longer than the shortest by those steps.
    pub reduction: bool,
    /// Threads exploring in parallel (the same counts and traces with any number).
    pub workers: usize,
    /// A flag that stops the search cleanly (Ctrl-C), with the partial result.
    pub cancel: Option<mmcid_engine::Cancel>,
    /// Stop cleanly, with the partial result, before the search's memory passes this many bytes.
    pub memory_limit: Option<u64>,
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
            reduction: true,
            workers: mmcid_engine::all_cores(),
            cancel: None,
            memory_limit: None,
        }
    }
}

/// The engine options of a check.
pub fn engine_options(opts: &CheckOptions) -> Options {
    Options {
        symmetry: opts.symmetry,
        liveness: opts.liveness == Liveness::Full,
        stall_search: (opts.liveness == Liveness::Stalls).then_some(STALL_SEARCH_LIMIT),
        max_states: opts.max_states,
        max_depth: opts.max_depth,
        workers: opts.workers.max(1),
        cancel: opts.cancel.clone(),
        memory_limit: opts.memory_limit,
        ..Options::default()
    }
}

/// Builds the model of `cfg` and checks it.
pub fn run(cfg: &Config, opts: &CheckOptions, observer: &mut dyn Observer) -> Result<CheckOutcome, String> {
    struct Run<'a> {
        opts: &'a CheckOptions,
        observer: &'a mut dyn Observer,
    }
    impl ModelVisitor for Run<'_> {
        type Out = Result<CheckOutcome, String>;
        fn visit<F: Family>(self, model: KernelModel<F>) -> Self::Out {
            // CPU symmetry renames agents: not with the whole-graph live-lock analysis.
            let cpus = self.opts.symmetry && self.opts.liveness != Liveness::Full;
            run_model(
                &model.with_reduction(self.opts.reduction).with_cpu_symmetry(cpus),
                self.opts,
                self.observer,
            )
        }
    }
    with_model(cfg, Run { opts, observer })?
}

/// Checks `model` (see [`run`]).
pub fn run_model<F: Family>(
    model: &KernelModel<F>,
    opts: &CheckOptions,
    observer: &mut dyn Observer,
) -> Result<CheckOutcome, String> {
    let report = check(model, &engine_options(opts), observer).map_err(|e: EngineError| e.to_string())?;
    Ok(outcome(model, &model.config, opts, &report))
}

/// Turns an engine report into a [`CheckOutcome`].
pub fn outcome<F: Family>(
    model: &KernelModel<F>,
    cfg: &Config,
    opts: &CheckOptions,
    r: &Report<Step>,
) -> CheckOutcome {
    let mut violations = Vec::new();
    // The mode properties (R1-R3, R5) describe the 7.0 family's per-task/per-CPU modes; the older
    // designs have no modes, so they do not apply there (R4, a spin, does).
    let modes = F::KIND == crate::config::FamilyKind::Rewrite;
    let mut statuses: Vec<PropertyStatus> = Property::ALL
        .iter()
        .map(|&p| PropertyStatus {
            property: p,
            kind: p.class(),
            description: p.promise().into(),
            status: match (p.kind(), r.complete) {
                (PropertyKind::Sometimes, _) if !modes && p.about_modes() => Status::NotApplicable,
                (PropertyKind::Always, true) => Status::Holds,
                (PropertyKind::Sometimes, true) => Status::NotReached,
                _ => Status::Unknown,
            },
            depth: None,
        })
        .collect();
    for f in &r.findings {
        // The engine's transitions, each expanded into the kernel steps it took (several when
        // reduction fused silent steps into it); depths are counted in kernel steps.
        let (kernel_steps, starts) = trace::expand(&model.params, model.initial_state(), &f.trace.actions);
        let depth = match f.trace.cycle_start {
            Some(k) => starts[k] as u32,
            None => kernel_steps.len() as u32,
        };
        if let Some(p) = f.property {
            statuses[p].status = if f.kind == FindingKind::Sometimes {
                Status::Reached
            } else {
                Status::Violated
            };
            statuses[p].depth = Some(depth);
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
                let p = Property::from_index(f.property.expect("an invariant finding names its property"))
                    .expect("a property of this model");
                (
                    p.id().to_string(),
                    p.promise().to_string(),
                    ViolationKind::Invariant,
                )
            }
            FindingKind::Stall => (
                "stall".into(),
                "a CPU spins in get_cid and no continuation within the bounds releases it".into(),
                ViolationKind::Stall,
            ),
            FindingKind::Livelock => (
                "livelock".into(),
                "a CPU spins in get_cid forever on a weakly fair cycle while the others keep moving".into(),
                ViolationKind::Livelock,
            ),
            FindingKind::Sometimes => unreachable!(),
        };
        let steps = trace::describe(&model.params.unreduced(), model.initial_state(), &kernel_steps);
        violations.push(Violation {
            facts: F::explain(&property, f.agent, last),
            property,
            kind,
            description,
            depth,
            cpu: f.agent,
            trace: steps,
            cycle_start: f.trace.cycle_start.map(|k| starts[k]),
            snapshot: trace::snapshot(last),
            bits: (0..last.mms.len())
                .flat_map(|m| trace::bit_owners(last, m as u8))
                .collect(),
            steps: kernel_steps,
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
        cut: r.cut,
        symmetry: opts.symmetry,
        cpu_symmetry: model.params.cpu_symmetry,
        liveness: opts.liveness,
        stalls_undecided: r.stalls_undecided,
        seen_parents_bytes_per_state: r.bytes_per_state,
        peak_rss_bytes: r.peak_rss_bytes,
        peak_rss_per_state: r.peak_rss_per_state,
        workers: r.workers,
        collision_probability: r.collision_probability,
        violations,
        properties: statuses,
        no_stall,
        symmetry_renamed: opts.symmetry.then(|| model.symmetry_renamed()),
    }
}

/// A model of `cfg` that starts from `state` instead of the configuration's initial state (used
/// to ask whether a replayed spin can ever end).
pub fn continuation_stalls<F: Family>(
    cfg: &Config,
    state: &State<F>,
    max_states: u64,
) -> Result<Vec<u16>, String> {
    let model = KernelModel::<F>::from_state(cfg.clone(), *state)?;
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
