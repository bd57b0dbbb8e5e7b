//! mmcid-oracle: [stateright] as an independent second opinion on our engine.
//!
//! # What it is for
//!
//! Our checker ([`mmcid_engine::check`]) is hand-written: its fingerprints, its seen-set, its
//! level-by-level frontier and its parent pointers are all ours, and a bug in any of them would
//! quietly drop states (a verification that "passes" because it looked at too little). This crate
//! runs the *same* model under stateright 0.31, a widely used model checker with an unrelated
//! implementation (its own stable hasher, a concurrent `DashMap` of fingerprints, its own job
//! queue), so that the two can be compared:
//!
//! - **State counts.** [`stateright_bfs`] explores every reachable state with stateright's
//!   breadth-first search. With symmetry and liveness off, our engine must report exactly the
//!   same number of unique states, and its `transitions + init states` must equal stateright's
//!   count of generated states. The tests in `tests/` check this on a few small kernel
//!   configurations.
//! - **Property findings.** Every engine property becomes a stateright property (`Always` →
//!   [`stateright::Property::always`], `Sometimes` → [`stateright::Property::sometimes`]), so
//!   both engines must agree on *which* properties fire. (Not on witness lengths: see below.)
//! - **Stepping through states by hand.** [`serve_explorer`] starts stateright's web Explorer on
//!   a loopback address: pick an initial state, see every enabled step with its kernel name and
//!   effects, follow one, and see which properties hold.
//!
//! The adapter, [`StaterightAdapter`], is generic over any [`mmcid_engine::Model`]; the only
//! model-specific part is how actions and steps are shown ([`Presentation`]), implemented here
//! for the kernel model ([`KernelModel`]).
//!
//! # Limits
//!
//! - **No cycles for `eventually`.** Stateright judges `eventually` properties only at terminal
//!   states and does not tell a cycle from a DAG join, so a live lock (an infinite fair loop) is
//!   invisible to it. The oracle therefore maps only `Always` and `Sometimes` properties and has
//!   nothing to say about our engine's stalls and live locks.
//! - **No symmetry under BFS.** Stateright's symmetry reduction is only used by its DFS; its BFS
//!   explores every concrete state. Compare against our engine with `symmetry: false`. The
//!   oracle is only practical for configurations of up to a few million states.
//! - **Witnesses are not shortest.** Stateright 0.31's BFS records an `Always` or `Sometimes`
//!   discovery for *every* state that fires it, each overwriting the last (only `eventually`
//!   discoveries are kept once made); it normally stops as soon as every property has one, but
//!   the oracle must explore everything ([`EXPAND_ALL`]), so the witness kept is the *last*
//!   firing state reached, typically one of the deepest. For 6.19.1 (2 CPUs, 2 threads, 1 fork)
//!   our engine's shortest I8v counterexample has 3 steps, stateright's 19. With more than one
//!   thread the order (and so the witness) also varies from run to run. State counts are
//!   unaffected. Use our engine for short traces; the oracle's witnesses are still real paths
//!   (stateright rebuilds them by replaying action indices on the model).
//! - **Cost.** Every property is a separate `fn` pointer in stateright, so [`Model::check`] runs
//!   once per property per state (about 16× for the kernel model), and stateright stores a
//!   fingerprint *and* the parent's fingerprint per state in a concurrent map. It is an oracle,
//!   not a replacement.
//! - **Fingerprints.** Both engines merge states by 64-bit hashes; a collision in either would
//!   show up as a difference of one state, which is vanishingly unlikely at these sizes.
//!
//! [`Model::check`]: mmcid_engine::Model::check

use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{TcpListener, ToSocketAddrs};
use std::time::Instant;

use mmcid_engine::{Model as EngineModel, PropertyKind};
use mmcid_kmodel::ops::{StartOp, Step};
use mmcid_kmodel::state::State;
use mmcid_kmodel::{Family, KernelModel};
use stateright::{Checker, HasDiscoveries, Model as SrModel, Property};

/// Most properties an engine model may have for the adapter (stateright takes `fn` pointers,
/// one monomorphised function per property index; see [`StaterightAdapter::new`]).
pub const MAX_PROPERTIES: usize = 32;

/// Name of the extra `Always` property the adapter adds, which holds in every state.
///
/// Stateright's BFS stops expanding a state as soon as nothing is left to learn from it (every
/// `Always` property is violated there and every `Sometimes` property witnessed), and stops the
/// whole run once every property has a discovery. Our engine expands every reachable state, so to
/// count the same states the adapter adds this property: it is never discovered, so stateright
/// always expands and never stops early. It shows up in the Explorer's property list.
pub const EXPAND_ALL: &str = "oracle: expand every state";

/// How a model's actions and steps are shown in stateright's Explorer.
///
/// The defaults print `Debug` forms; [`KernelModel`] names steps after the kernel functions they
/// perform. Any other engine model opts in with an empty `impl Presentation for MyModel {}`.
pub trait Presentation: EngineModel {
    /// A short label for an action (the Explorer's list of enabled steps).
    fn format_action(&self, action: &Self::Action) -> String {
        format!("{action:?}")
    }
    /// What taking `action` in `state` does (the Explorer's "outcome" column).
    fn format_step(&self, state: &Self::State, action: &Self::Action) -> String {
        format!("{:#?}", self.next_state(state, action))
    }
}

/// Any [`mmcid_engine::Model`] seen as a [`stateright::Model`].
///
/// `init_states`, `actions` and `next_state` delegate (stateright's `next_state` never returns
/// `None`: every enabled step changes the state or at least is taken). Properties: every engine
/// property `i` becomes a stateright property of the same name whose condition is "index `i` is
/// not pushed by [`mmcid_engine::Model::check`]" (`Always`) or "index `i` is pushed"
/// (`Sometimes`), followed by [`EXPAND_ALL`].
#[derive(Clone, Debug)]
pub struct StaterightAdapter<M: EngineModel> {
    /// The engine model being explored.
    pub model: M,
    /// How the Explorer shows a step's outcome, if not by [`Presentation::format_step`] (the CLI
    /// passes its own renderer, [`serve_explorer_with`]).
    pub step_text: Option<StepText<M>>,
}

/// A function that says what taking an action in a state does (the Explorer's "outcome").
pub type StepText<M> = fn(&M, &<M as EngineModel>::State, &<M as EngineModel>::Action) -> String;

/// The kernel model of family `F` under stateright.
pub type Oracle<F> = StaterightAdapter<KernelModel<F>>;

impl<M: EngineModel> StaterightAdapter<M>
where
    M::State: 'static,
{
    /// Wraps `model`. Panics if it has more than [`MAX_PROPERTIES`] properties.
    pub fn new(model: M) -> Self {
        let n = model.properties().len();
        assert!(
            n <= MAX_PROPERTIES,
            "the oracle maps at most {MAX_PROPERTIES} properties, the model has {n}"
        );
        StaterightAdapter {
            model,
            step_text: None,
        }
    }

    /// True if `check` pushes property index `i` in `state`.
    ///
    /// Stateright asks each property's condition of a state in turn (a dozen calls per state
    /// here), while `check` answers all of them at once: the answer for the last state asked is
    /// kept per thread and reused while the same state is asked again (compared in full, so a
    /// reuse is never wrong). Without it stateright ran the whole `check` once per property, and
    /// `mmcid bench`'s ratio credited our engine with that waste.
    fn fires(&self, state: &M::State, i: usize) -> bool {
        thread_local! {
            static LAST: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
        }
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if let Some((s, mask)) = last.as_ref().and_then(|b| b.downcast_ref::<(M::State, u64)>())
                && s == state
            {
                return mask & 1 << i != 0;
            }
            let mut out = Vec::new();
            self.model.check(state, &mut out);
            let mask = out.iter().fold(0u64, |m, &p| m | 1 << p);
            match last.as_mut().and_then(|b| b.downcast_mut::<(M::State, u64)>()) {
                Some(entry) => *entry = (state.clone(), mask),
                None => *last = Some(Box::new((state.clone(), mask))),
            }
            mask & 1 << i != 0
        })
    }
}

fn not_fired<M: EngineModel<State: 'static>, const I: usize>(a: &StaterightAdapter<M>, s: &M::State) -> bool {
    !a.fires(s, I)
}

fn fired<M: EngineModel<State: 'static>, const I: usize>(a: &StaterightAdapter<M>, s: &M::State) -> bool {
    a.fires(s, I)
}

fn always_true<M: EngineModel>(_: &StaterightAdapter<M>, _: &M::State) -> bool {
    true
}

/// A stateright property condition: a plain `fn`, so it cannot capture the index.
type Condition<M> = fn(&StaterightAdapter<M>, &<M as EngineModel>::State) -> bool;

macro_rules! condition_table {
    ($f:ident, $i:expr, $($n:literal)*) => {
        match $i {
            $($n => $f::<M, $n> as Condition<M>,)*
            _ => unreachable!("property index checked against MAX_PROPERTIES"),
        }
    };
}

/// The condition of property index `i`: `fired` for Sometimes, `not_fired` for Always.
fn condition<M: EngineModel<State: 'static>>(i: usize, kind: PropertyKind) -> Condition<M> {
    match kind {
        PropertyKind::Always => condition_table!(not_fired, i,
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31),
        PropertyKind::Sometimes => condition_table!(fired, i,
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31),
    }
}

impl<M> SrModel for StaterightAdapter<M>
where
    M: Presentation,
    M::State: 'static,
{
    type State = M::State;
    type Action = M::Action;

    fn init_states(&self) -> Vec<M::State> {
        self.model.init_states()
    }

    fn actions(&self, state: &M::State, actions: &mut Vec<M::Action>) {
        self.model.actions(state, actions)
    }

    fn next_state(&self, last_state: &M::State, action: M::Action) -> Option<M::State> {
        Some(self.model.next_state(last_state, &action))
    }

    fn format_action(&self, action: &M::Action) -> String {
        self.model.format_action(action)
    }

    fn format_step(&self, last_state: &M::State, action: M::Action) -> Option<String> {
        Some(match self.step_text {
            Some(f) => f(&self.model, last_state, &action),
            None => self.model.format_step(last_state, &action),
        })
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut out: Vec<Property<Self>> = self
            .model
            .properties()
            .iter()
            .enumerate()
            .map(|(i, p)| match p.kind {
                PropertyKind::Always => Property::always(p.name, condition::<M>(i, p.kind)),
                PropertyKind::Sometimes => Property::sometimes(p.name, condition::<M>(i, p.kind)),
            })
            .collect();
        out.push(Property::always(EXPAND_ALL, always_true::<M>));
        out
    }
}

/// The outcome of one stateright run ([`stateright_bfs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct OracleRun {
    /// Distinct states (stateright's `unique_state_count`): compare with the engine's
    /// `Report::unique_states` under `symmetry: false`.
    pub unique_states: u64,
    /// States generated, repeats included (stateright's `state_count`): the initial states plus
    /// one per explored edge, i.e. the engine's `Report::transitions` + initial states.
    pub states: u64,
    /// Wall-clock seconds of the search (from spawning the checker to joining it).
    pub seconds: f64,
    /// Deepest BFS level explored, counting the initial states as depth 1 (stateright's
    /// convention; the engine's `Report::max_depth` counts them as 0).
    pub max_depth: u64,
    /// Every property with a discovery, in the engine model's property order: its name and the
    /// number of actions of stateright's witness path (a counterexample for `Always`, an example
    /// for `Sometimes`). Not the shortest path: stateright keeps the last firing state it
    /// reached (see the crate doc's limits).
    pub discoveries: Vec<(&'static str, usize)>,
}

/// Explores every state of `model` reachable from its initial states with stateright's
/// breadth-first checker on `threads` threads, and reports its counts and discoveries.
///
/// No symmetry (stateright's BFS has none), no depth or state bound, and the run never stops
/// early on a discovery (see [`EXPAND_ALL`]). Blocks until the search is complete. Panics if the
/// model panics (stateright re-raises a checker thread's panic on join).
pub fn stateright_bfs<M>(model: M, threads: usize) -> OracleRun
where
    M: Presentation + Send + 'static,
    M::State: 'static,
    M::Action: 'static,
{
    let order: Vec<&'static str> = model.properties().iter().map(|p| p.name).collect();
    let start = Instant::now();
    let checker = StaterightAdapter::new(model)
        .checker()
        .threads(threads.max(1))
        .finish_when(HasDiscoveries::AllOf(BTreeSet::from([EXPAND_ALL])))
        .spawn_bfs()
        .join();
    let seconds = start.elapsed().as_secs_f64();
    let found: HashMap<&'static str, usize> = checker
        .discoveries()
        .into_iter()
        .map(|(name, path)| (name, path.into_actions().len()))
        .collect();
    OracleRun {
        unique_states: checker.unique_state_count() as u64,
        states: checker.state_count() as u64,
        seconds,
        max_depth: checker.max_depth() as u64,
        discoveries: order
            .into_iter()
            .filter_map(|name| found.get(name).map(|&len| (name, len)))
            .collect(),
    }
}

/// Serves stateright's web Explorer for `model` on `addr` (e.g. `"127.0.0.1:3000"`).
///
/// **Blocks forever** while serving: it returns only if `addr` is refused, which is when it does
/// not resolve, resolves to a non-loopback address (the Explorer has no authentication, so it is
/// never exposed beyond this machine; `0.0.0.0` is refused), names port 0, or cannot be bound
/// (for instance because the port is taken).
///
/// The Explorer checks states on demand as they are browsed; its property list includes
/// [`EXPAND_ALL`].
pub fn serve_explorer<M>(model: M, addr: &str) -> Result<Infallible, String>
where
    M: Presentation + Send + 'static,
    M::State: 'static,
    M::Action: 'static,
{
    serve_explorer_with(model, addr, None)
}

/// [`serve_explorer`], with the step outcomes said by `step_text` rather than by
/// [`Presentation::format_step`] (`None`: by it).
pub fn serve_explorer_with<M>(
    model: M,
    addr: &str,
    step_text: Option<StepText<M>>,
) -> Result<Infallible, String>
where
    M: Presentation + Send + 'static,
    M::State: 'static,
    M::Action: 'static,
{
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{addr:?} resolves to no address"));
    }
    if let Some(a) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing to serve the Explorer on {a}: only loopback addresses (127.0.0.1, ::1) are allowed"
        ));
    }
    if addrs.iter().any(|a| a.port() == 0) {
        return Err(format!(
            "{addr:?}: give a port (port 0 would pick one nobody is told)"
        ));
    }
    // stateright panics if it cannot bind; find out first and say why.
    drop(TcpListener::bind(&addrs[..]).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
    let mut adapter = StaterightAdapter::new(model);
    adapter.step_text = step_text;
    let _checker = adapter.checker().serve(&addrs[..]);
    Err("the Explorer's web server stopped".to_string())
}

/// Kernel steps, named from the step alone (the Explorer's action list; the step's kernel
/// function, which may depend on the state, is in the outcome).
fn kernel_action(step: &Step) -> String {
    let t = |t: u8| format!("T{t}");
    match *step {
        Step::Switch { cpu, next } => {
            format!("CPU{cpu} schedule {}", next.map_or_else(|| "idle".into(), t))
        }
        Step::SchedinRetry { cpu } => format!("CPU{cpu} get_cid_retry"),
        Step::Migrate { task, to } => format!("CPU{to} migrate {}", t(task)),
        Step::IrqWork { cpu } => format!("CPU{cpu} mm_cid_irq_work"),
        Step::Start { task, op } => {
            let op = match op {
                StartOp::Fork => "clone".to_string(),
                StartOp::Vfork => "vfork".to_string(),
                StartOp::Exit => "exit".to_string(),
                StartOp::Exec => "execve".to_string(),
                StartOp::ExecFail => "execve_fail".to_string(),
                StartOp::ExecCheck => "execveat_check".to_string(),
                StartOp::Affinity { cpu } => format!("sched_setaffinity +CPU{cpu}"),
            };
            format!("{} {op}", t(task))
        }
        Step::Next { task } => format!("{} next", t(task)),
        Step::Fail { task } => format!("{} fork_fail", t(task)),
        Step::Wake { task, cpu } => format!("{} wake_up_new_task CPU{cpu}", t(task)),
        Step::Retry { task } => format!("{} get_cid_retry", t(task)),
    }
}

impl<F: Family> Presentation for KernelModel<F> {
    fn format_action(&self, action: &Step) -> String {
        kernel_action(action)
    }

    /// The step's kernel name and what it changed (`mmcid explore` adds the CID state after it,
    /// as the CLI renders it).
    fn format_step(&self, state: &State<F>, action: &Step) -> String {
        use mmcid_kmodel::trace;
        let next = self.next_state(state, action);
        let mut out = trace::name(&self.params, state, *action).to_string();
        out.push('\n');
        for e in trace::effect_lines(state, &next) {
            let _ = writeln!(out, "  {e}");
        }
        out
    }
}
