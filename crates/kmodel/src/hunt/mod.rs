//! `mmcid hunt`: find the bugs of a design without being told where they live.
//!
//! A hunt alternates two lanes, sharing the work (successors computed) half and half:
//!
//! - **Exhaustive**: the configurations of the [ladder](space::ladder), smallest first, each
//!   checked breadth first with on-the-fly stall detection and a cap on the states (as
//!   `mmcid check --liveness stalls --max-states N`), in two rounds. Round 0 runs the whole ladder
//!   with a tenth of the cap: most small configurations fit whole, and the others are still
//!   checked to the depth that allows (every violation up to that depth, shortest first; the seed's
//!   stall at depth 12 of `c3t2f2` needs 25,000 states of its 15 million). Round 1 (a third of
//!   the exhaustive work) runs the configurations round 0 cut with the full cap; a configuration
//!   of round 1 that *dominates* (has at least each knob of) one that round 1 had to cut again is
//!   handed to the swarm instead, since it would not fit either.
//! - **Swarm**: random walks ([`mmcid_engine::swarm()`]) on the configurations the ladder handed
//!   over and on random configurations up to 8 CPUs and a dozen threads. Each new violation (the
//!   first of each property and site in a round) is shrunk ([`mmcid_engine::shrink()`]), its
//!   configuration lowered knob by knob while the shrunk trace still reaches it, and checked
//!   breadth first there to the shrunk trace's depth, so that what is reported is, where that
//!   fits, a shortest trace that `mmcid check` reproduces. A stall is decided with no operation
//!   budget left (see `no_budget_left`), i.e. as `check` decides it in the configuration trimmed
//!   to what the trace used.
//!
//! Findings met by both lanes keep the smallest configuration (by [`space::size`]), then the
//! shortest trace.
//!
//! # Root-cause signature
//!
//! Violations are merged into findings by a [`Signature`]: the property (or `stall`), the kernel
//! function at the violating step (for an invariant, the step into the first violating state; for
//! a stall, the step where the stalled CPU started the spin that never ends: its schedin in
//! `schedule`, or `sched_mm_cid_fork` under `mm.lock`), and the set of *operations the trace
//! needs* (`clone`, `vfork`, `fork_fail`, `exit`, `execve`, `execve_fail`, `sched_setaffinity`,
//! and 6.18's `task_work` compaction). Why this and not the whole trace: the same bug is reached
//! by many interleavings and in many configurations, and what stays the same is which property
//! breaks, where, and which user-visible operations have to happen for it (the operations name the
//! knobs a kernel developer must turn to reproduce it); CPU and thread numbers, scheduling noise
//! and the configuration's size are left out on purpose, so the same bug found at `c3t2f2` and at
//! `c4t3f2` is one finding. The operations are read off a *minimal* trace (a shortest BFS trace,
//! or a 1-minimal shrunk one), so an operation that merely happened along the way is not counted.
//! A violation whose operations *include* a known finding's (same property and site) is that
//! finding reached with more than it needs, and is merged into it (listed as a variant): on 7.0,
//! the failed execve's own walk preempted (F4) needs `clone+execve_fail` at `c2t2f1ef1` and only
//! `execve_fail` at `c1t2ef2`, where a second failing execve plays the fork's part.
//! The signature can still split one root cause that two different minimal recipes reach, and it
//! cannot tell apart two bugs with the same property, site and operations; both are printed, so a
//! reader can judge.
//!
//! # Determinism
//!
//! Given the seed, the order of the work is fixed (the ladder, the lanes' alternation by work
//! done, the random configurations and walks); the budget only decides where the run stops.

pub mod space;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mmcid_engine::swarm::{StallOracle, reaches};
use mmcid_engine::{
    self as engine, Finding, FindingKind, Flow, Memory, Model, Options, Report, SwarmOptions, Target, Trace,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::checker::{self, CheckOptions, Liveness, Violation};
use crate::config::{Config, FamilyKind, design};
use crate::family::{Family, Lazy618, PerSwitch63, Rewrite};
use crate::invariants::Property;
use crate::model::KernelModel;
use crate::ops::{StartOp, Step};
use crate::state::State;
use crate::trace;
pub use space::Limits;

/// How hunt code obtains the kernel model of a configuration: the one place it is built.
///
/// [`Designs`] builds the named design's model; a test can hand in a model with a bug put back.
pub trait Kernel<F: Family> {
    /// The model of `cfg`.
    fn model(&self, cfg: &Config) -> Result<KernelModel<F>, String>;
}

/// The designs as they are ([`KernelModel::new`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Designs;

impl<F: Family> Kernel<F> for Designs {
    fn model(&self, cfg: &Config) -> Result<KernelModel<F>, String> {
        KernelModel::new(cfg.clone())
    }
}

/// JSON format version of [`HuntReport`] (2: its violations take `check`'s format 4: typed
/// facts, bit owners, effects and snapshots instead of text; 3: `check`'s format 5, the
/// snapshot's program points and continuations).
pub const FORMAT_VERSION: u32 = 3;

/// How to hunt.
#[derive(Clone, Debug)]
pub struct HuntOptions {
    /// The design.
    pub design: String,
    /// Wall-clock budget.
    pub budget: Duration,
    /// Seed of the random configurations and walks.
    pub seed: u64,
    /// Cap on the distinct states of one exhaustive check.
    pub max_states: u64,
    /// Limit of each stall sub-search of the exhaustive lane.
    pub stall_limit: u64,
    /// Limit of each stall sub-search of the swarm (smaller: a walk meets many spins, and in a
    /// large configuration a true stall's continuation is rarely small enough to decide).
    pub swarm_stall_limit: u64,
    /// The exhaustive ladder's part of the space.
    pub ladder: Limits,
    /// The swarm's part of the space.
    pub swarm: Limits,
    /// Steps per swarm round (one configuration).
    pub swarm_round: u64,
    /// Stop after this many configurations (exhaustive and swarm): with it, a run that ends
    /// before its time budget is the same on any machine.
    pub max_configs: Option<u64>,
    /// A flag that stops the hunt cleanly (Ctrl-C): the breadth-first check under way stops at
    /// once, the hunt reports what it found so far with `stop: "stopped"`.
    pub cancel: Option<mmcid_engine::Cancel>,
    /// Each breadth-first check stops cleanly before the process passes this many bytes (the
    /// configuration then counts as capped).
    pub memory_limit: Option<u64>,
}

impl HuntOptions {
    /// Defaults for `design` and `budget`.
    pub fn new(design: &str, budget: Duration) -> HuntOptions {
        HuntOptions {
            design: design.to_string(),
            budget,
            seed: 0,
            max_states: 250_000,
            stall_limit: 200_000,
            swarm_stall_limit: 50_000,
            ladder: Limits::LADDER,
            swarm: Limits::SWARM,
            swarm_round: 300_000,
            max_configs: None,
            cancel: None,
            memory_limit: None,
        }
    }
}

/// A root-cause signature (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
pub struct Signature {
    /// Property id, or `stall`.
    pub property: String,
    /// The kernel function at the violating step (`init` if the initial state violates).
    pub site: String,
    /// The operations the trace needs, sorted.
    pub needs: Vec<String>,
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let needs = if self.needs.is_empty() {
            "nothing but scheduling".to_string()
        } else {
            self.needs.join("+")
        };
        write!(f, "{} at {} needs {needs}", self.property, self.site)
    }
}

/// Operations a trace may need (the kernel functions that start them).
const OPERATIONS: &[&str] = &[
    "clone",
    "vfork",
    "fork_fail",
    "exit",
    "execve",
    "execve_fail",
    "sched_setaffinity",
    "task_work",
];

/// One distinct finding.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HuntFinding {
    /// Its signature, as text.
    pub signature: String,
    /// Its signature.
    pub cause: Signature,
    /// The smallest configuration it was found in.
    pub config: Config,
    /// That configuration's short name (`c3t2f2`).
    pub config_name: String,
    /// The `mmcid check` command that reproduces it.
    pub command: String,
    /// True if a breadth-first check of that configuration to that depth met this signature (so
    /// `command` shows this very finding); false if only the swarm's shrunk trace shows it (then
    /// `scenario` replays it with `mmcid replay`).
    pub check_confirmed: bool,
    /// `exhaustive` or `swarm`: which lane met it first.
    pub found_by: &'static str,
    /// For a finding first met by the swarm: the length of the walk's prefix before shrinking.
    pub raw_depth: Option<u32>,
    /// How many configurations met it.
    pub configs: u32,
    /// The first configurations that met it (short names, at most 8).
    pub found_in: Vec<String>,
    /// Other sets of operations that reached it (merged in: they include `cause.needs`).
    pub variants: Vec<String>,
    /// The violation as `check` reports it (its JSON fields, `property`, `kind`, `depth`, `trace`,
    /// `snapshot`, `bits`, `facts`..., appear at this level): the trace is a shortest one in the
    /// configuration when `check_confirmed`.
    #[serde(flatten)]
    pub violation: Violation,
    /// A scenario file that replays the trace (`mmcid replay`).
    pub scenario: String,
}

impl HuntFinding {
    /// Property id, or `stall`.
    pub fn property(&self) -> &str {
        &self.violation.property
    }
    /// `invariant` or `stall`.
    pub fn kind(&self) -> &str {
        self.violation.kind.as_str()
    }
    /// Length of the trace.
    pub fn depth(&self) -> u32 {
        self.violation.depth
    }
}

/// The result of a hunt.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct HuntReport {
    /// JSON format version.
    pub format_version: u32,
    /// The design.
    pub design: String,
    /// The budget, in seconds.
    pub budget_s: f64,
    /// The seed.
    pub seed: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Why it stopped: `budget`, `max_configs`, or `stopped` (the caller). (The swarm's random
    /// configurations never run out.)
    pub stop: &'static str,
    /// Configurations tried (exhaustively and by the swarm).
    pub configs_tried: u64,
    /// Configurations checked whole.
    pub exhaustive_complete: u64,
    /// Configurations checked breadth first up to the state cap (not whole): capped by the full
    /// cap, or by the first round's cap and not yet run again.
    pub exhaustive_capped: u64,
    /// Configurations of the ladder skipped because they dominate a capped one (handed to the
    /// swarm).
    pub dominated: u64,
    /// Size of the ladder, and how far the hunt got in it.
    pub ladder_size: u64,
    /// Ladder configurations visited (checked or skipped).
    pub ladder_done: u64,
    /// The size of the largest configuration checked whole.
    pub largest_complete: Option<String>,
    /// Configurations given to the swarm.
    pub swarm_configs: u64,
    /// Random walks.
    pub swarm_walks: u64,
    /// Steps of the walks.
    pub swarm_steps: u64,
    /// Spinning states the swarm could not decide (stall sub-search limit).
    pub swarm_stalls_undecided: u64,
    /// Distinct states stored by the exhaustive lane, summed.
    pub exhaustive_states: u64,
    /// The distinct findings, in the order met.
    pub findings: Vec<HuntFinding>,
}

/// What the caller sees while a hunt runs.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// Seconds since the start.
    pub elapsed: f64,
    /// The budget in seconds.
    pub budget: f64,
    /// `exhaustive` or `swarm`: the lane about to run.
    pub lane: &'static str,
    /// The configuration about to run.
    pub config: &'a Config,
    /// Configurations tried so far.
    pub configs_tried: u64,
    /// Signatures of the distinct findings so far.
    pub signatures: &'a [String],
}

/// A finding being collected.
struct Candidate {
    sig: Signature,
    kind: FindingKind,
    property: Option<usize>,
    agent: Option<u16>,
    cfg: Config,
    steps: Vec<Step>,
    found_by: &'static str,
    raw_depth: Option<u32>,
    found_in: Vec<String>,
    configs: u32,
    confirmed: bool,
    variants: BTreeSet<String>,
}

/// Is every element of `a` in `b`?
fn subset(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x))
}

impl Candidate {
    fn rank(&self) -> (u32, u32, u8) {
        (
            space::size(&self.cfg),
            self.steps.len() as u32,
            !self.confirmed as u8,
        )
    }
}

/// One violation met in a configuration, before merging.
struct Met {
    kind: FindingKind,
    property: Option<usize>,
    agent: Option<u16>,
    steps: Vec<Step>,
}

/// Runs a hunt with the designs as they are.
pub fn run(opts: &HuntOptions, progress: &mut dyn FnMut(&Progress) -> Flow) -> Result<HuntReport, String> {
    match design(&opts.design)?.family {
        FamilyKind::Rewrite => run_with::<Rewrite>(&Designs, opts, progress),
        FamilyKind::Lazy618 => run_with::<Lazy618>(&Designs, opts, progress),
        FamilyKind::PerSwitch63 => run_with::<PerSwitch63>(&Designs, opts, progress),
    }
}

/// Runs a hunt whose models come from `kernel`.
pub fn run_with<F: Family>(
    kernel: &dyn Kernel<F>,
    opts: &HuntOptions,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<HuntReport, String> {
    let d = design(&opts.design)?;
    let start = Instant::now();
    let deadline = start + opts.budget;
    let ladder = space::ladder(d.name, d.family, opts.ladder);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut h = Hunt {
        kernel,
        opts,
        cands: Vec::new(),
        signatures: Vec::new(),
    };
    let mut r = HuntReport {
        format_version: FORMAT_VERSION,
        design: d.name.to_string(),
        budget_s: opts.budget.as_secs_f64(),
        seed: opts.seed,
        seconds: 0.0,
        stop: "budget",
        configs_tried: 0,
        exhaustive_complete: 0,
        exhaustive_capped: 0,
        dominated: 0,
        ladder_size: ladder.len() as u64,
        ladder_done: 0,
        largest_complete: None,
        swarm_configs: 0,
        swarm_walks: 0,
        swarm_steps: 0,
        swarm_stalls_undecided: 0,
        exhaustive_states: 0,
        findings: Vec::new(),
    };
    // Round 0: the whole ladder with a small cap (most configurations fit; the others are
    // covered to the depth the cap allows, which holds most shallow bugs). Round 1: the ones round
    // 0 capped, with the full cap, minus those dominating one that round 1 capped too (those go to
    // the swarm). Round 1 gets a third of the exhaustive work.
    let small_cap = (opts.max_states / 10).max(1000);
    let mut round1: std::collections::VecDeque<Config> = Default::default();
    let mut capped: Vec<Config> = Vec::new();
    let mut beyond: std::collections::VecDeque<Config> = Default::default();
    let (mut work0, mut work1, mut work_s) = (0u64, 0u64, 0u64);
    let mut next = 0usize;
    let mut largest = 0u32;
    while Instant::now() < deadline {
        if opts.max_configs.is_some_and(|m| r.configs_tried >= m) {
            r.stop = "max_configs";
            break;
        }
        let round0_left = next < ladder.len();
        let exhaustive = (round0_left || !round1.is_empty()) && work0 + work1 <= work_s;
        if exhaustive {
            let use1 = !round1.is_empty() && (!round0_left || 2 * work1 < work0);
            let (cfg, cap) = if use1 {
                let cfg = round1.pop_front().expect("not empty");
                if capped.iter().any(|c| space::dominates(&cfg, c)) {
                    r.dominated += 1;
                    beyond.push_back(cfg);
                    continue;
                }
                (cfg, opts.max_states)
            } else {
                next += 1;
                r.ladder_done += 1;
                (ladder[next - 1].clone(), small_cap)
            };
            let p = Progress {
                elapsed: start.elapsed().as_secs_f64(),
                budget: opts.budget.as_secs_f64(),
                lane: "exhaustive",
                config: &cfg,
                configs_tried: r.configs_tried,
                signatures: &h.signatures,
            };
            if progress(&p) == Flow::Stop {
                r.stop = "stopped";
                break;
            }
            if !use1 {
                r.configs_tried += 1;
            }
            let (report, met) = h.exhaustive(&cfg, cap, None)?;
            if use1 {
                work1 += report.transitions + 1;
            } else {
                work0 += report.transitions + 1;
            }
            r.exhaustive_states += report.unique_states;
            if report.complete {
                r.exhaustive_complete += 1;
                if space::size(&cfg) >= largest {
                    largest = space::size(&cfg);
                    r.largest_complete = Some(space::short_name(&cfg));
                }
            } else if use1 {
                r.exhaustive_capped += 1;
                capped.push(cfg.clone());
                beyond.push_back(cfg.clone());
            } else {
                round1.push_back(cfg.clone());
            }
            for m in met {
                h.merge(&cfg, m, "exhaustive", None, true, deadline);
            }
            if report.cut == Some(mmcid_engine::Cut::Interrupted) {
                r.stop = "stopped";
                break;
            }
        } else {
            let cfg = if !beyond.is_empty() && rng.random_bool(0.5) {
                beyond.pop_front().expect("not empty")
            } else {
                space::random(d.name, d.family, opts.swarm, &mut rng)
            };
            let p = Progress {
                elapsed: start.elapsed().as_secs_f64(),
                budget: opts.budget.as_secs_f64(),
                lane: "swarm",
                config: &cfg,
                configs_tried: r.configs_tried,
                signatures: &h.signatures,
            };
            if progress(&p) == Flow::Stop {
                r.stop = "stopped";
                break;
            }
            r.configs_tried += 1;
            r.swarm_configs += 1;
            let seed = rng.random::<u64>();
            let sr = h.swarm(&cfg, seed, deadline)?;
            work_s += sr.steps + sr.stall_states + 1;
            r.swarm_walks += sr.walks;
            r.swarm_steps += sr.steps;
            r.swarm_stalls_undecided += sr.stalls_undecided;
        }
    }
    // Configurations still capped after both rounds (or waiting for round 1).
    r.exhaustive_capped += round1.len() as u64;
    r.seconds = start.elapsed().as_secs_f64();
    r.findings = h.finish()?;
    Ok(r)
}

struct Hunt<'a, F: Family> {
    kernel: &'a dyn Kernel<F>,
    opts: &'a HuntOptions,
    cands: Vec<Candidate>,
    signatures: Vec<String>,
}

impl<F: Family> Hunt<'_, F> {
    /// Was the hunt asked to stop ([`HuntOptions::cancel`])?
    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(mmcid_engine::Cancel::is_cancelled)
    }

    /// A breadth-first check of `cfg` with a state cap (and a depth bound), as `mmcid check
    /// --liveness stalls` runs it.
    fn exhaustive(
        &self,
        cfg: &Config,
        max_states: u64,
        max_depth: Option<u32>,
    ) -> Result<(Report<Step>, Vec<Met>), String> {
        // Stalls are decided on the fly (no live-lock graph), so CPU symmetry where it is sound.
        let model = self.kernel.model(cfg)?.with_cpu_symmetry(true);
        let eopts = Options {
            symmetry: true,
            stall_search: Some(self.opts.stall_limit),
            max_states: Some(max_states),
            max_depth,
            cancel: self.opts.cancel.clone(),
            memory_limit: self.opts.memory_limit,
            ..Options::default()
        };
        let report = engine::check(&model, &eopts, &mut engine::NoObserver).map_err(|e| e.to_string())?;
        let met = report
            .findings
            .iter()
            .filter(|f| matches!(f.kind, FindingKind::Invariant | FindingKind::Stall))
            .map(|f| Met {
                kind: f.kind,
                property: f.property,
                agent: f.agent,
                steps: f.trace.actions.clone(),
            })
            .collect();
        Ok((report, met))
    }

    /// One swarm round on `cfg`: walks, and each new (target, site) shrunk and merged.
    fn swarm(&mut self, cfg: &Config, seed: u64, deadline: Instant) -> Result<engine::SwarmReport, String> {
        let model = self.kernel.model(cfg)?;
        let sopts = SwarmOptions {
            seed,
            max_steps: self.opts.swarm_round,
            depth: (20, 150),
            stall_limit: Some(self.opts.swarm_stall_limit),
            symmetry: true,
            deadline: Some(deadline),
            ..SwarmOptions::default()
        };
        let mut hits = Vec::new();
        let mut keys = BTreeSet::new();
        let view = no_budget_left;
        let report = engine::swarm(&model, &sopts, &|s, a| class(s, a), Some(&view), &mut |hit| {
            if hits.len() < MAX_SHRINKS_PER_ROUND
                && let Ok(states) = engine::trace_states(&model, &hit.trace)
            {
                let key = (
                    hit.property,
                    hit.agent.is_some(),
                    site(&model, &states, &hit.trace.actions, hit.agent),
                );
                if keys.insert(key) {
                    hits.push(hit);
                }
            }
            if self.cancelled() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        });
        let mut oracle = StallOracle::new(&model, self.opts.swarm_stall_limit, true).view(&view);
        for hit in hits {
            if Instant::now() >= deadline || self.cancelled() {
                break;
            }
            let raw = hit.trace.actions.len() as u32;
            let Some(small) = engine::shrink(&model, &hit.trace, hit.target(), &mut oracle) else {
                continue;
            };
            let m = Met {
                kind: hit.kind,
                property: hit.property,
                agent: hit.agent,
                steps: small.actions,
            };
            self.merge(cfg, m, "swarm", Some(raw), false, deadline);
        }
        Ok(report)
    }

    /// Adds a violation met in `cfg` to the findings: a new signature, or a smaller configuration
    /// or shorter trace for a known one. A swarm trace first has its configuration trimmed to the
    /// operations it uses and is checked breadth first there.
    fn merge(
        &mut self,
        cfg: &Config,
        m: Met,
        lane: &'static str,
        raw: Option<u32>,
        confirmed: bool,
        deadline: Instant,
    ) {
        let Ok(model) = self.kernel.model(cfg) else { return };
        let sig = signature(&model, &m);
        let name = space::short_name(cfg);
        let same_site = |c: &Candidate| c.sig.property == sig.property && c.sig.site == sig.site;
        // A finding whose operations include a known one's (same property and site) is that one,
        // reached with more operations than it needs: merged into it.
        let known = self
            .cands
            .iter()
            .position(|c| same_site(c) && subset(&c.sig.needs, &sig.needs));
        if let Some(i) = known {
            let c = &mut self.cands[i];
            if !c.found_in.contains(&name) {
                c.configs += 1;
                c.found_in.push(name.clone());
            }
            if c.sig.needs != sig.needs {
                c.variants.insert(sig.needs.join("+"));
                return;
            }
        }
        let mut cand = Candidate {
            sig: sig.clone(),
            kind: m.kind,
            property: m.property,
            agent: m.agent,
            cfg: cfg.clone(),
            steps: m.steps,
            found_by: lane,
            raw_depth: raw,
            found_in: vec![name],
            configs: 1,
            confirmed,
            variants: BTreeSet::new(),
        };
        if !confirmed {
            self.trim(&mut cand);
        }
        if let Some(i) = known
            && cand.rank() >= self.cands[i].rank()
        {
            return;
        }
        if !cand.confirmed && Instant::now() < deadline {
            self.confirm(&mut cand);
        }
        if let Some(i) = known {
            let old = &self.cands[i];
            cand.found_by = old.found_by;
            cand.raw_depth = old.raw_depth;
            cand.found_in = old.found_in.clone();
            cand.configs = old.configs;
            cand.variants = old.variants.clone();
            self.cands[i] = cand;
            return;
        }
        // New: it absorbs the known findings that need more operations than it does.
        let mut at = self.cands.len();
        let mut i = 0;
        while i < self.cands.len() {
            let c = &self.cands[i];
            if same_site(c) && subset(&sig.needs, &c.sig.needs) {
                let c = self.cands.remove(i);
                at = at.min(i);
                cand.variants.insert(c.sig.needs.join("+"));
                cand.variants.extend(c.variants);
                for n in c.found_in {
                    if !cand.found_in.contains(&n) {
                        cand.found_in.push(n);
                        cand.configs += 1;
                    }
                }
            } else {
                i += 1;
            }
        }
        self.cands.insert(at.min(self.cands.len()), cand);
        self.signatures = self.cands.iter().map(|c| c.sig.to_string()).collect();
    }

    /// Makes a swarm candidate's configuration as small as its trace allows: budgets trimmed to
    /// what the trace uses, then one knob at a time lowered (a CPU, a thread, an allowed CPU, an
    /// operation) as long as the trace, replayed there by labels and shrunk again, still reaches a
    /// violation with the same signature.
    fn trim(&self, c: &mut Candidate) {
        let target = target_of(c.property, c.agent);
        let mut tries = 0;
        loop {
            let mut smaller = Vec::new();
            if let Some(t) = self.used_budgets(c) {
                smaller.push(t);
            }
            smaller.extend(space::lower(&c.cfg));
            let better = smaller.into_iter().find_map(|cfg| {
                tries += 1;
                let m = self.kernel.model(&cfg).ok()?;
                let view = no_budget_left;
                let mut oracle = StallOracle::new(&m, self.opts.swarm_stall_limit, true).view(&view);
                let taken = reaches(&m, 0, &c.steps, target, Some(&mut oracle))?;
                let small = engine::shrink(&m, &trace_of(&taken), target, &mut oracle)?;
                let met = Met {
                    kind: c.kind,
                    property: c.property,
                    agent: c.agent,
                    steps: small.actions,
                };
                (signature(&m, &met) == c.sig).then_some((cfg, met.steps))
            });
            match better {
                Some((cfg, steps)) if tries < 200 => {
                    c.cfg = cfg;
                    c.steps = steps;
                }
                _ => return,
            }
        }
    }

    /// The candidate's configuration with each budget lowered to what its trace uses (None if that
    /// changes nothing).
    fn used_budgets(&self, c: &Candidate) -> Option<Config> {
        let model = self.kernel.model(&c.cfg).ok()?;
        let last = *engine::trace_states(&model, &trace_of(&c.steps)).ok()?.last()?;
        let used = |total: u8, left: u8| total - left;
        let b = &c.cfg.budgets;
        let l = &last.left;
        let mut small = c.cfg.clone();
        small.budgets = crate::Budgets {
            forks: used(b.forks, l.forks),
            vforks: used(b.vforks, l.vforks),
            fork_fails: used(b.fork_fails, l.fork_fails),
            exits: used(b.exits, l.exits),
            execs: used(b.execs, l.execs),
            exec_fails: used(b.exec_fails, l.exec_fails),
            exec_checks: used(b.exec_checks, l.exec_checks),
            affinity: used(b.affinity, l.affinity),
            compactions: used(b.compactions, l.compactions),
        };
        (small != c.cfg).then_some(small)
    }

    /// Checks the candidate's configuration breadth first to its depth: if that meets the same
    /// signature, its (shortest) trace replaces the swarm's and `mmcid check` reproduces it.
    fn confirm(&self, c: &mut Candidate) {
        let depth = c.steps.len() as u32;
        let Ok((_, met)) = self.exhaustive(&c.cfg, self.opts.max_states, Some(depth)) else {
            return;
        };
        let Ok(model) = self.kernel.model(&c.cfg) else {
            return;
        };
        if let Some(m) = met
            .into_iter()
            .filter(|m| m.steps.len() <= c.steps.len())
            .find(|m| signature(&model, m) == c.sig)
        {
            c.steps = m.steps;
            c.agent = m.agent;
            c.confirmed = true;
        }
    }

    /// The findings, rendered.
    fn finish(self) -> Result<Vec<HuntFinding>, String> {
        let mut out = Vec::new();
        for c in self.cands {
            let model = self.kernel.model(&c.cfg)?;
            let v = violation(&model, &c).ok_or_else(|| format!("finding {} does not replay", c.sig))?;
            let depth = c.steps.len() as u32;
            let comment = format!(
                "{} {}: {}\nfound by: mmcid hunt --design {} (signature: {})\ncheck: {}",
                v.kind,
                v.property,
                v.what(),
                c.cfg.design,
                c.sig,
                check_command(&c.cfg, depth)
            );
            let scenario =
                crate::scenario::write(&c.cfg, &model.params, model.initial_state(), &c.steps, &comment);
            out.push(HuntFinding {
                signature: c.sig.to_string(),
                cause: c.sig,
                config_name: space::short_name(&c.cfg),
                command: check_command(&c.cfg, depth),
                config: c.cfg,
                check_confirmed: c.confirmed,
                found_by: c.found_by,
                raw_depth: c.raw_depth,
                configs: c.configs,
                found_in: c.found_in.into_iter().take(8).collect(),
                variants: c.variants.into_iter().collect(),
                violation: v,
                scenario,
            });
        }
        Ok(out)
    }
}

/// The swarm decides a stall with no operation budget left: whether anything *within what the
/// trace used* releases the spinning CPU. That is the stall `mmcid check` reports in the
/// configuration trimmed to those operations (its budgets are spent at that point too), which is
/// where the hunt reproduces it; an unused budget left over in a random configuration would let a
/// thread that had no part in the trace exit or fork at the right moment and hide the stall.
fn no_budget_left<F: Family>(s: &State<F>) -> State<F> {
    let mut s = *s;
    s.left = crate::Budgets::default();
    s
}

/// Hits shrunk per swarm round (the first of each property and site).
const MAX_SHRINKS_PER_ROUND: usize = 6;

fn trace_of(steps: &[Step]) -> Trace<Step> {
    Trace {
        init: 0,
        actions: steps.to_vec(),
        cycle_start: None,
    }
}

fn target_of(property: Option<usize>, agent: Option<u16>) -> Target {
    match (property, agent) {
        (Some(p), _) => Target::Property(p),
        (None, Some(a)) => Target::Stall(a),
        (None, None) => Target::Stall(0),
    }
}

/// The kernel function at the violating step of `steps` (states: the states it visits): for a
/// stall of `agent`, the step where its last spin began; otherwise the last step.
fn site<F: Family>(
    model: &KernelModel<F>,
    states: &[State<F>],
    steps: &[Step],
    agent: Option<u16>,
) -> String {
    let at = match agent {
        Some(a) => {
            let mut spinning = Vec::new();
            (0..steps.len()).rev().find(|&i| {
                spinning.clear();
                model.spinning(&states[i], &mut spinning);
                !spinning.contains(&a)
            })
        }
        None => steps.len().checked_sub(1),
    };
    match at {
        Some(i) => trace::name(&model.params, &states[i], steps[i]).function,
        None => "init".to_string(),
    }
}

/// The signature of a violation met in `model`'s configuration.
fn signature<F: Family>(model: &KernelModel<F>, m: &Met) -> Signature {
    signature_of(model, m.property, m.agent, &m.steps)
}

/// The root-cause signature (see the module doc) of the violation that `steps` reach from
/// `model`'s initial state: of `property` if given, else a stall of CPU `agent`.
pub fn signature_of<F: Family>(
    model: &KernelModel<F>,
    property: Option<usize>,
    agent: Option<u16>,
    steps: &[Step],
) -> Signature {
    let m = Met {
        kind: if property.is_some() {
            FindingKind::Invariant
        } else {
            FindingKind::Stall
        },
        property,
        agent,
        steps: steps.to_vec(),
    };
    let m = &m;
    let states = engine::trace_states(model, &trace_of(&m.steps)).unwrap_or_default();
    let property = match m.property {
        Some(p) => Property::from_index(p).map_or("?", Property::id).to_string(),
        None => "stall".to_string(),
    };
    if states.len() != m.steps.len() + 1 {
        return Signature {
            property,
            site: "?".into(),
            needs: vec![],
        };
    }
    let needs: BTreeSet<String> = m
        .steps
        .iter()
        .zip(&states)
        .map(|(st, s)| trace::name(&model.params, s, *st).function)
        .filter(|f| OPERATIONS.contains(&f.as_str()))
        .collect();
    Signature {
        property,
        site: site(model, &states, &m.steps, m.agent.filter(|_| m.property.is_none())),
        needs: needs.into_iter().collect(),
    }
}

/// The swarm's action classes: each kind of step, and each operation start, is a class whose
/// weight a walk draws (so some walks rarely migrate, some rarely preempt, some fork eagerly).
fn class<F: Family>(_s: &State<F>, a: &Step) -> u8 {
    match *a {
        Step::Switch { next: None, .. } => 0,
        Step::Switch { .. } => 1,
        Step::SchedinRetry { .. } => 2,
        Step::Migrate { .. } => 3,
        Step::IrqWork { .. } => 4,
        Step::Start { op, .. } => match op {
            StartOp::Fork => 5,
            StartOp::Vfork => 6,
            StartOp::Exit => 7,
            StartOp::Exec => 8,
            StartOp::ExecFail | StartOp::ExecCheck => 9,
            StartOp::Affinity { .. } => 10,
        },
        Step::Next { .. } => 11,
        Step::Fail { .. } => 12,
        Step::Wake { .. } => 13,
        Step::Retry { .. } => 14,
    }
}

/// The checker's rendering of one violation (trace in kernel terms, state, bit owners, what went
/// wrong), through [`checker::outcome`] on a one-finding report.
fn violation<F: Family>(model: &KernelModel<F>, c: &Candidate) -> Option<Violation> {
    let finding = Finding {
        property: c.property,
        kind: c.kind,
        agent: c.agent,
        depth: c.steps.len() as u32,
        trace: trace_of(&c.steps),
    };
    let report = Report {
        unique_states: 0,
        transitions: 0,
        max_depth: 0,
        seconds: 0.0,
        complete: false,
        cut: None,
        states_left_on_frontier: 0,
        symmetry: true,
        liveness_checked: false,
        stalls_undecided: 0,
        fingerprint_bits: 64,
        collision_probability: 0.0,
        bytes_per_state: 0.0,
        memory: Memory::default(),
        unreached_sometimes: Vec::new(),
        findings: vec![finding],
        peak_rss_bytes: None,
        peak_rss_per_state: None,
        workers: 1,
    };
    let opts = CheckOptions {
        symmetry: true,
        liveness: Liveness::Stalls,
        max_states: None,
        max_depth: None,
        reduction: false,
        ..CheckOptions::default()
    };
    checker::outcome(model, &c.cfg, &opts, &report)
        .violations
        .into_iter()
        .next()
}

/// The `mmcid check` flags that select `cfg` (every budget spelled out).
pub fn check_args(cfg: &Config) -> String {
    let b = &cfg.budgets;
    let mut s = format!(
        "--design {} --cpus {} --threads {}",
        cfg.design, cfg.cpus, cfg.threads
    );
    if let Some(x) = cfg.allowed {
        s.push_str(&format!(" --allowed {x}"));
    }
    for (k, v) in [
        ("forks", b.forks),
        ("vforks", b.vforks),
        ("fork-fails", b.fork_fails),
        ("exits", b.exits),
        ("execs", b.execs),
        ("exec-fails", b.exec_fails),
        ("affinity", b.affinity),
    ] {
        s.push_str(&format!(" --{k} {v}"));
    }
    if b.exec_checks > 0 {
        s.push_str(&format!(" --exec-checks {}", b.exec_checks));
    }
    if b.compactions > 0 {
        s.push_str(&format!(" --compactions {}", b.compactions));
    }
    s
}

/// The `mmcid check` command that reproduces a finding of depth `depth` in `cfg`: on-the-fly
/// stalls, depth-bounded (a breadth-first search finds everything up to that depth, shortest
/// first, without exploring the rest).
pub fn check_command(cfg: &Config, depth: u32) -> String {
    format!(
        "mmcid check {} --liveness stalls --max-depth {}",
        check_args(cfg),
        depth.max(1)
    )
}
