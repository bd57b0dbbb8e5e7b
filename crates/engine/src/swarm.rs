//! Swarm search beyond exhaustion: many cheap randomised random walks, each with its own seed and
//! its own *search order*, and a shrinker that cuts a violating action sequence down to a minimal
//! one.
//!
//! # Why walks, and why a swarm
//!
//! When a configuration is too large to exhaust, breadth-first search only covers its shallow
//! levels. SPIN's *swarm verification* (Holzmann, Joshi, Groce, "Swarm Verification Techniques",
//! IEEE TSE 2011) replaces one big search by many small ones that differ in seed, search order and
//! depth bound, each cheap in memory; *swarm testing* (Groce et al., ISSTA 2012) adds that each
//! member should also *omit or starve some features* at random, because a bug that needs one CPU
//! to be preempted forever is rarely produced by a uniformly random scheduler. Here each walk draws:
//!
//! - a seed (from the run's seed and the walk number: a run is reproducible);
//! - a weight per agent (`1`, `4` or `16`), so some agents run much more often than others;
//! - a weight per *action class* (given by the caller's classifier, e.g. "context switch",
//!   "migration", "start a fork"): `1/32` (nearly omitted), `1` or `8`;
//! - a depth bound in [`SwarmOptions::depth`].
//!
//! A walk holds one state and its action list: memory is constant per walk.
//!
//! # What a walk reports
//!
//! Every `Always` property the walk's states fire (the first time in that walk), with the prefix
//! that reached it, and every **stall**: a state where an agent spins and no continuation ever
//! releases it. Stalls are decided exactly as the breadth-first search's on-the-fly detection does,
//! by [`crate::stall::decide`] (a bounded breadth-first sub-search of the continuations), so a stall
//! found here means the same as one found by [`crate::check`] with
//! [`crate::Options::stall_search`]. Two cheap steps come first, neither of which can turn a
//! release into a stall: a cache of decided states (by fingerprint), and a few short random probes
//! from the spinning state, any of which that reaches a state where the agent does not spin proves
//! a release. A sub-search that exceeds its limit is counted as undecided, never reported.
//!
//! # Shrinking
//!
//! [`shrink`] is delta debugging (Zeller and Hildebrandt's ddmin, complements only) over the
//! action sequence. A candidate is *replayed by equality of labels on the concrete model*: from the
//! initial state each action is taken if an equal action is enabled, and skipped otherwise (so
//! removing the start of an operation silently removes its later steps too); the candidate passes if
//! the replay reaches a state firing the same property (or where the same agent is stalled), and the
//! prefix up to that first state becomes the new sequence. The result is 1-minimal: removing any one
//! of its actions no longer reaches the target. It is never longer than its input.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fingerprint::fingerprint;
use crate::model::{Agent, Model, PropertyKind};
use crate::report::{FindingKind, Trace};

/// How to run a swarm.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmOptions {
    /// The run's seed; walk `i` uses a seed derived from it and `i`.
    pub seed: u64,
    /// Work budget: steps taken by walks plus states explored by stall sub-searches and probes.
    pub max_steps: u64,
    /// Stop after this many walks (None: only the other budgets stop the run).
    pub max_walks: Option<u64>,
    /// Each walk's depth bound is drawn uniformly from this inclusive range.
    pub depth: (u32, u32),
    /// Limit of each stall sub-search ([`crate::stall::decide`]); None: stalls are not searched.
    pub stall_limit: Option<u64>,
    /// Fingerprint states by [`Model::representative`] in stall sub-searches (as the BFS does with
    /// symmetry). Only used if the model declares [`Model::symmetry_preserves_agents`].
    pub symmetry: bool,
    /// Wall-clock deadline.
    pub deadline: Option<Instant>,
}

impl Default for SwarmOptions {
    fn default() -> Self {
        SwarmOptions {
            seed: 0,
            max_steps: 1_000_000,
            max_walks: None,
            depth: (20, 120),
            stall_limit: Some(200_000),
            symmetry: true,
            deadline: None,
        }
    }
}

/// One violation met by a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit<A> {
    /// [`FindingKind::Invariant`] or [`FindingKind::Stall`].
    pub kind: FindingKind,
    /// The property (invariants).
    pub property: Option<usize>,
    /// The stalled agent (stalls).
    pub agent: Option<Agent>,
    /// The walk's prefix up to the first state firing it.
    pub trace: Trace<A>,
    /// The walk that met it.
    pub walk: u64,
}

impl<A> Hit<A> {
    /// What the hit is about, as a shrinking target.
    pub fn target(&self) -> Target {
        match (self.property, self.agent) {
            (Some(p), _) => Target::Property(p),
            (None, Some(a)) => Target::Stall(a),
            (None, None) => unreachable!("a hit is an invariant or a stall"),
        }
    }
}

/// Whether the swarm goes on after a hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep walking.
    Continue,
    /// Stop the whole swarm.
    Stop,
}

/// What a swarm did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SwarmReport {
    /// Walks started.
    pub walks: u64,
    /// Steps taken by walks.
    pub steps: u64,
    /// Stall sub-searches run ([`crate::stall::decide`] calls; cache hits and released probes
    /// excluded).
    pub stall_searches: u64,
    /// States those sub-searches and the probes explored.
    pub stall_states: u64,
    /// Spinning states whose sub-search reached its limit (left undecided).
    pub stalls_undecided: u64,
    /// Hits passed to the callback.
    pub hits: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// True if the callback stopped the run.
    pub stopped: bool,
}

/// What a shrunk sequence must still reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A state firing this (`Always`) property.
    Property(usize),
    /// A state where this agent is stalled.
    Stall(Agent),
}

/// Maps a spinning state to the state whose continuations decide the stall (see [`StallOracle::view`]).
pub type View<'a, S> = &'a dyn Fn(&S) -> S;

/// Decides stalls with [`crate::stall::decide`], remembering answers by state fingerprint and
/// trying a few random escape probes before a sub-search.
pub struct StallOracle<'a, S> {
    view: Option<View<'a, S>>,
    limit: u64,
    symmetry: bool,
    cache: HashMap<(u64, Agent), Option<bool>>,
    /// Sub-searches run.
    pub searches: u64,
    /// States explored by sub-searches and probes.
    pub states: u64,
    /// Sub-searches that reached the limit.
    pub undecided: u64,
}

/// Probes before a sub-search, and their length.
const PROBES: usize = 6;
const PROBE_LEN: usize = 48;
/// Entries kept in the stall cache before it is cleared.
const CACHE_MAX: usize = 1 << 20;

impl<'a, S: Clone + std::hash::Hash> StallOracle<'a, S> {
    /// An oracle whose sub-searches explore at most `limit` states.
    pub fn new<M: Model<State = S>>(model: &M, limit: u64, symmetry: bool) -> Self {
        StallOracle {
            view: None,
            limit,
            symmetry: symmetry && model.symmetry_preserves_agents(),
            cache: HashMap::new(),
            searches: 0,
            states: 0,
            undecided: 0,
        }
    }

    /// Decide stalls on `view(state)` instead of `state`: for example the state with no operation
    /// budget left, so that a stall is one "unless something outside the trace comes to the rescue"
    /// (the model's notion of bounds decides whether that is meant). The view must keep the
    /// spinning agents spinning.
    pub fn view(mut self, view: View<'a, S>) -> Self {
        self.view = Some(view);
        self
    }

    /// Is `agent`, spinning in `state`, stalled there? `None`: undecided (limit reached).
    pub fn stalled<M: Model<State = S>>(&mut self, model: &M, state: &S, agent: Agent) -> Option<bool> {
        let viewed;
        let state = match self.view {
            Some(v) => {
                viewed = v(state);
                &viewed
            }
            None => state,
        };
        let fp = if self.symmetry {
            fingerprint(&model.representative(state))
        } else {
            fingerprint(state)
        };
        if let Some(&v) = self.cache.get(&(fp, agent)) {
            return v;
        }
        let v = self.decide_uncached(model, state, agent, fp);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert((fp, agent), v);
        v
    }

    fn decide_uncached<M: Model>(
        &mut self,
        model: &M,
        state: &M::State,
        agent: Agent,
        fp: u64,
    ) -> Option<bool> {
        // Random probes: reaching a state where the agent does not spin proves a release.
        let mut rng = ChaCha8Rng::seed_from_u64(fp ^ agent as u64);
        let mut actions = Vec::new();
        let mut spinning = Vec::new();
        for _ in 0..PROBES {
            let mut s = state.clone();
            for _ in 0..PROBE_LEN {
                actions.clear();
                model.actions(&s, &mut actions);
                if actions.is_empty() {
                    break;
                }
                let a = &actions[rng.random_range(0..actions.len())];
                s = model.next_state(&s, a);
                self.states += 1;
                spinning.clear();
                model.spinning(&s, &mut spinning);
                if !spinning.contains(&agent) {
                    return Some(false);
                }
            }
        }
        self.searches += 1;
        let counting = Counting {
            model,
            steps: AtomicU64::new(0),
        };
        let fp = crate::fingerprint::Fingerprinter::new(&counting, self.symmetry, 64);
        let d = crate::stall::decide(&counting, state, &[agent], &fp, self.limit, None);
        self.states += counting.steps.load(Ordering::Relaxed);
        if d.undecided {
            self.undecided += 1;
            None
        } else {
            Some(d.stalled.contains(&agent))
        }
    }
}

/// A model that counts the successors computed (the work of a stall sub-search).
struct Counting<'a, M> {
    model: &'a M,
    steps: AtomicU64,
}

impl<M: Model> Model for Counting<'_, M> {
    type State = M::State;
    type Action = M::Action;
    fn init_states(&self) -> Vec<M::State> {
        self.model.init_states()
    }
    fn actions(&self, s: &M::State, out: &mut Vec<M::Action>) {
        self.model.actions(s, out)
    }
    fn next_state(&self, s: &M::State, a: &M::Action) -> M::State {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.model.next_state(s, a)
    }
    fn properties(&self) -> Vec<crate::PropertyInfo> {
        self.model.properties()
    }
    fn check(&self, s: &M::State, out: &mut Vec<usize>) {
        self.model.check(s, out)
    }
    fn representative(&self, s: &M::State) -> M::State {
        self.model.representative(s)
    }
    fn agents(&self) -> usize {
        self.model.agents()
    }
    fn agent(&self, s: &M::State, a: &M::Action) -> Agent {
        self.model.agent(s, a)
    }
    fn is_retry(&self, s: &M::State, a: &M::Action) -> bool {
        self.model.is_retry(s, a)
    }
    fn spinning(&self, s: &M::State, out: &mut Vec<Agent>) {
        self.model.spinning(s, out)
    }
    fn symmetry_preserves_agents(&self) -> bool {
        self.model.symmetry_preserves_agents()
    }
    fn codec(&self) -> bool {
        self.model.codec()
    }
    fn encode(&self, s: &M::State, out: &mut Vec<u8>) {
        self.model.encode(s, out)
    }
    fn decode(&self, bytes: &[u8]) -> M::State {
        self.model.decode(bytes)
    }
    fn encode_canonical(&self, s: &M::State, out: &mut Vec<u8>) {
        self.model.encode_canonical(s, out)
    }
}

/// A classifier of actions for the swarm's per-walk class weights: a small class number (`< 32`).
pub type Classify<'a, M> = &'a dyn Fn(&<M as Model>::State, &<M as Model>::Action) -> u8;

/// Number of action classes a classifier may use.
pub const CLASSES: usize = 32;

/// Runs random walks on `model` until a budget in `opts` is spent or `on_hit` says stop.
///
/// `classify` sorts actions into classes whose weights each walk draws (swarm testing's feature
/// omission, see the module doc); `|_, _| 0` makes every action one class.
///
/// `stall_view`, if given, is the [`StallOracle::view`] of its stall decisions.
pub fn swarm<M: Model>(
    model: &M,
    opts: &SwarmOptions,
    classify: Classify<'_, M>,
    stall_view: Option<View<'_, M::State>>,
    on_hit: &mut dyn FnMut(Hit<M::Action>) -> Flow,
) -> SwarmReport {
    let start = Instant::now();
    let props = model.properties();
    let inits = model.init_states();
    let agents = model.agents().max(1);
    let mut report = SwarmReport::default();
    let mut oracle = opts.stall_limit.map(|l| {
        let o = StallOracle::new(model, l, opts.symmetry);
        match stall_view {
            Some(v) => o.view(v),
            None => o,
        }
    });
    let mut actions: Vec<M::Action> = Vec::new();
    let mut weights: Vec<f64> = Vec::new();
    let mut fired = Vec::new();
    let mut spinning = Vec::new();
    let (lo, hi) = (opts.depth.0.min(opts.depth.1), opts.depth.0.max(opts.depth.1));
    'walks: for walk in 0u64.. {
        let work = report.steps + oracle.as_ref().map_or(0, |o| o.states);
        if work >= opts.max_steps
            || opts.max_walks.is_some_and(|m| walk >= m)
            || opts.deadline.is_some_and(|d| Instant::now() >= d)
            || inits.is_empty()
        {
            break;
        }
        report.walks += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ walk.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let agent_w: Vec<f64> = (0..agents)
            .map(|_| [1.0, 4.0, 16.0][rng.random_range(0..3)])
            .collect();
        let class_w: Vec<f64> = (0..CLASSES)
            .map(|_| [1.0 / 32.0, 1.0, 8.0][rng.random_range(0..3)])
            .collect();
        let bound = rng.random_range(lo..=hi);
        let init = rng.random_range(0..inits.len());
        let mut state = inits[init].clone();
        let mut path: Vec<M::Action> = Vec::new();
        let mut seen_props = vec![false; props.len()];
        let mut stalled_agents: Vec<Agent> = Vec::new();
        for depth in 0..=bound {
            // Properties fired here for the first time in this walk.
            fired.clear();
            model.check(&state, &mut fired);
            for &p in &fired {
                if p < props.len() && props[p].kind == PropertyKind::Always && !seen_props[p] {
                    seen_props[p] = true;
                    report.hits += 1;
                    let hit = Hit {
                        kind: FindingKind::Invariant,
                        property: Some(p),
                        agent: None,
                        trace: Trace {
                            init,
                            actions: path.clone(),
                            cycle_start: None,
                        },
                        walk,
                    };
                    if on_hit(hit) == Flow::Stop {
                        report.stopped = true;
                        break 'walks;
                    }
                }
            }
            if let Some(o) = oracle.as_mut() {
                spinning.clear();
                model.spinning(&state, &mut spinning);
                let mut stop_walk = false;
                for &a in &spinning {
                    if stalled_agents.contains(&a) {
                        continue;
                    }
                    if o.stalled(model, &state, a) == Some(true) {
                        stalled_agents.push(a);
                        stop_walk = true;
                        report.hits += 1;
                        let hit = Hit {
                            kind: FindingKind::Stall,
                            property: None,
                            agent: Some(a),
                            trace: Trace {
                                init,
                                actions: path.clone(),
                                cycle_start: None,
                            },
                            walk,
                        };
                        if on_hit(hit) == Flow::Stop {
                            report.stopped = true;
                            break 'walks;
                        }
                    }
                }
                if stop_walk {
                    // Stuck for good: the rest of this walk would only circle around the stall.
                    break;
                }
            }
            if depth == bound {
                break;
            }
            actions.clear();
            model.actions(&state, &mut actions);
            if actions.is_empty() {
                break;
            }
            weights.clear();
            weights.extend(actions.iter().map(|a| {
                let ag = (model.agent(&state, a) as usize).min(agents - 1);
                let c = (classify(&state, a) as usize).min(CLASSES - 1);
                agent_w[ag] * class_w[c]
            }));
            let total: f64 = weights.iter().sum();
            let mut x = rng.random::<f64>() * total;
            let mut k = actions.len() - 1;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    k = i;
                    break;
                }
                x -= w;
            }
            state = model.next_state(&state, &actions[k]);
            path.push(actions[k].clone());
            report.steps += 1;
        }
    }
    if let Some(o) = &oracle {
        report.stall_searches = o.searches;
        report.stall_states = o.states;
        report.stalls_undecided = o.undecided;
    }
    report.seconds = start.elapsed().as_secs_f64();
    report
}

/// Replays `actions` from `init_states()[init]` by equality of labels, skipping actions that are
/// not enabled where they come, and returns the actions actually taken up to (and including) the
/// first state that reaches `target`; `None` if no state does. `oracle` decides stalls (required
/// for [`Target::Stall`]; without it a stall target is never reached).
pub fn reaches<M: Model>(
    model: &M,
    init: usize,
    actions: &[M::Action],
    target: Target,
    oracle: Option<&mut StallOracle<'_, M::State>>,
) -> Option<Vec<M::Action>> {
    let mut oracle = oracle;
    let mut state = model.init_states().into_iter().nth(init)?;
    let mut taken = Vec::new();
    let mut enabled = Vec::new();
    let mut scratch = Vec::new();
    let mut hit = |s: &M::State, oracle: &mut Option<&mut StallOracle<'_, M::State>>| -> bool {
        scratch.clear();
        match target {
            Target::Property(p) => {
                model.check(s, &mut scratch);
                scratch.contains(&p)
            }
            Target::Stall(a) => {
                let mut spinning = Vec::new();
                model.spinning(s, &mut spinning);
                spinning.contains(&a)
                    && oracle
                        .as_mut()
                        .is_some_and(|o| o.stalled(model, s, a) == Some(true))
            }
        }
    };
    if hit(&state, &mut oracle) {
        return Some(taken);
    }
    for a in actions {
        enabled.clear();
        model.actions(&state, &mut enabled);
        if !enabled.contains(a) {
            continue;
        }
        state = model.next_state(&state, a);
        taken.push(a.clone());
        if hit(&state, &mut oracle) {
            return Some(taken);
        }
    }
    None
}

/// Delta-debugs `trace` to a 1-minimal action sequence that still reaches `target` (see the module
/// doc). Returns `None` if `trace` itself does not reach it. The result is never longer than the
/// input.
pub fn shrink<M: Model>(
    model: &M,
    trace: &Trace<M::Action>,
    target: Target,
    oracle: &mut StallOracle<'_, M::State>,
) -> Option<Trace<M::Action>> {
    let init = trace.init;
    let mut cur = reaches(model, init, &trace.actions, target, Some(oracle))?;
    let mut n = 2usize;
    while cur.len() >= 2 {
        let len = cur.len();
        let chunk = len.div_ceil(n);
        let reduced = (0..n).find_map(|i| {
            let (from, to) = (i * chunk, ((i + 1) * chunk).min(len));
            if from >= to {
                return None;
            }
            let candidate: Vec<M::Action> = cur[..from].iter().chain(&cur[to..]).cloned().collect();
            reaches(model, init, &candidate, target, Some(&mut *oracle)).filter(|taken| taken.len() < len)
        });
        if let Some(taken) = reduced {
            cur = taken;
            n = (n - 1).max(2);
            continue;
        }
        if n >= len {
            break;
        }
        n = (2 * n).min(len);
    }
    Some(Trace {
        init,
        actions: cur,
        cycle_start: None,
    })
}
