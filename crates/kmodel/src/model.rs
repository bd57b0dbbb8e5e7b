//! The kernel model as an [`mmcid_engine::Model`]: what the checker explores.

use mmcid_engine::{Agent, Model, PropertyInfo};

use crate::config::Config;
use crate::family::Family;
use crate::invariants;
use crate::ops::{self, Params, Step};
use crate::state::State;
use crate::symmetry;

/// A configuration turned into an explorable model of family `F`.
///
/// Agents (for fairness and spin detection) are the CPUs: a step is taken by the CPU it runs on
/// (a task's steps by the CPU the task runs on; a migration by the destination CPU, whose load
/// balancer pulls). A CPU spins while its schedin spins in `get_cid`, or while the task it runs
/// spins in `get_cid` inside fork (6.18: while its `mm_cid_get` busy-waits). Since symmetry
/// renames tasks and, unless [`KernelModel::with_cpu_symmetry`] is granted, never CPUs, stalls
/// and live locks can be searched on the reduced graph ([`Model::symmetry_preserves_agents`]). Weak fairness is per CPU: a CPU that stays able to do
/// something other than spin eventually does something (not necessarily a particular task's
/// step).
#[derive(Clone, Debug)]
pub struct KernelModel<F: Family> {
    /// The configuration.
    pub config: Config,
    /// The design's parameters.
    pub params: Params,
    init: State<F>,
    /// Set once symmetry reduction renamed a state or forgot a dead value in it (its
    /// representative differs from it). If it
    /// never does, `--no-symmetry` explores the same states.
    renamed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<F: Family> KernelModel<F> {
    /// Builds the model; the error says which configuration value is off, or that the design is
    /// not of family `F`.
    pub fn new(config: Config) -> Result<KernelModel<F>, String> {
        let (params, init) = crate::init::initial::<F>(&config)?;
        Ok(KernelModel {
            config,
            params,
            init,
            renamed: Default::default(),
        })
    }
    /// A model of `config` that starts from `state` (which must be reachable, or at least well
    /// formed, for that configuration).
    pub fn from_state(config: Config, state: State<F>) -> Result<KernelModel<F>, String> {
        let params = crate::init::params::<F>(&config)?;
        Ok(KernelModel {
            config,
            params,
            init: state,
            renamed: Default::default(),
        })
    }
    /// The same model with CPU symmetry ([`crate::symmetry::cpu_canonical`]: symmetry reduction also
    /// renames CPUs) asked for `on`, granted only where it is sound: a family whose code treats
    /// every CPU alike ([`Family::CPU_SYMMETRIC`]: 6.18; not the 7.0 family, whose
    /// CPU->task walk visits CPUs in order) and a configuration that does too (every CPU allowed
    /// at the start, no `sched_setaffinity`, no 6.18 compaction scan). Off by default.
    ///
    /// It renames agents (CPUs), so the model then no longer says
    /// [`Model::symmetry_preserves_agents`]: the engine refuses it together with the whole-graph
    /// live-lock analysis, and decides stalls on the fly from concrete states (a stall of CPU
    /// `a` in a state is a stall of CPU `π(a)` in its renamed twin, so one per class is found).
    pub fn with_cpu_symmetry(mut self, on: bool) -> KernelModel<F> {
        self.params.cpu_symmetry = on && self.cpu_symmetric();
        self
    }
    /// Would [`KernelModel::with_cpu_symmetry`] grant CPU symmetry for this family and
    /// configuration?
    pub fn cpu_symmetric(&self) -> bool {
        let c = &self.config;
        F::CPU_SYMMETRIC
            && c.allowed.is_none_or(|a| a >= c.cpus)
            && c.budgets.affinity == 0
            && c.budgets.compactions == 0
    }
    /// The same model with reduction (silent steps taken inside the transition that reaches them,
    /// [`crate::ops::silent`]) on or off. Off by default.
    pub fn with_reduction(mut self, on: bool) -> KernelModel<F> {
        self.params.reduction = on;
        self
    }
    /// The initial state.
    pub fn initial_state(&self) -> &State<F> {
        &self.init
    }
    fn note_renamed(&self) {
        if !self.symmetry_renamed() {
            self.renamed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    /// Has symmetry reduction renamed any state (or forgotten a dead value) so far (see
    /// [`KernelModel::representative`])?
    pub fn symmetry_renamed(&self) -> bool {
        self.renamed.load(std::sync::atomic::Ordering::Relaxed)
    }
    /// Number of CPUs.
    pub fn np(&self) -> u8 {
        self.config.cpus
    }
}

impl<F: Family> Model for KernelModel<F> {
    type State = State<F>;
    type Action = Step;

    fn init_states(&self) -> Vec<State<F>> {
        vec![self.init]
    }
    fn actions(&self, state: &State<F>, out: &mut Vec<Step>) {
        ops::enabled(&self.params, state, out)
    }
    fn next_state(&self, state: &State<F>, action: &Step) -> State<F> {
        ops::apply(&self.params, state, *action)
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        invariants::property_infos()
    }
    fn check(&self, state: &State<F>, out: &mut Vec<usize>) {
        F::check(&self.params, state, out)
    }
    fn representative(&self, state: &State<F>) -> State<F> {
        match symmetry::canonical(&self.params, state) {
            None => *state,
            Some(r) => {
                self.note_renamed();
                r
            }
        }
    }
    fn agents(&self) -> usize {
        self.np() as usize
    }
    fn agent(&self, state: &State<F>, action: &Step) -> Agent {
        crate::trace::cpu_of(state, *action) as Agent
    }
    fn symmetry_preserves_agents(&self) -> bool {
        !self.params.cpu_symmetry
    }
    fn is_retry(&self, state: &State<F>, action: &Step) -> bool {
        F::is_retry(state, action)
    }
    fn spinning(&self, state: &State<F>, out: &mut Vec<Agent>) {
        F::spinning(state, out)
    }
    fn agent_name(&self, agent: Agent) -> String {
        format!("CPU{agent}")
    }
    fn codec(&self) -> bool {
        true
    }
    fn encode(&self, state: &State<F>, out: &mut Vec<u8>) {
        crate::encode::encode(state, out)
    }
    fn decode(&self, bytes: &[u8]) -> State<F> {
        crate::encode::decode(bytes)
    }
    fn encode_canonical(&self, state: &State<F>, out: &mut Vec<u8>) {
        match symmetry::canonical(&self.params, state) {
            None => crate::encode::encode(state, out),
            Some(r) => {
                self.note_renamed();
                crate::encode::encode(&r, out)
            }
        }
    }
    fn encode_representative(&self, state: &State<F>, out: &mut Vec<u8>) -> bool {
        match symmetry::canonical(&self.params, state) {
            None => {
                crate::encode::encode(state, out);
                false
            }
            Some(r) => {
                self.note_renamed();
                crate::encode::encode(&r, out);
                true
            }
        }
    }
    fn encode_pair(&self, state: &State<F>, out: &mut Vec<u8>, canonical: &mut Vec<u8>) -> bool {
        crate::encode::encode(state, out);
        match symmetry::canonical(&self.params, state) {
            None => false,
            Some(r) => {
                self.note_renamed();
                crate::encode::encode(&r, canonical);
                true
            }
        }
    }
}
