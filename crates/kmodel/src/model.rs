//! The kernel model as an [`mmcid_engine::Model`]: what the checker explores.

use mmcid_engine::{Agent, Model, PropertyInfo};

use crate::config::Config;
use crate::invariants;
use crate::state::{CidOp, State};
use crate::step::{self, Params, Step};
use crate::symmetry;

/// A configuration turned into an explorable model.
///
/// Agents (for fairness and spin detection) are the CPUs: a step is taken by the CPU it runs on
/// (a task's steps by the CPU the task runs on; a migration by the destination CPU, whose load
/// balancer pulls). A CPU spins while its schedin spins in `get_cid`, or while the task it runs
/// spins in `get_cid` inside fork. Since symmetry renames tasks and never CPUs, stalls and live
/// locks can be searched on the reduced graph ([`Model::symmetry_preserves_agents`]). Weak
/// fairness is per CPU: a CPU that stays able to do something other than spin eventually does
/// something (not necessarily a particular task's step). In 6.18 a CPU spins while its
/// `mm_cid_get` busy-waits ([`legacy_waits`]); its other continuations are ordinary steps.
#[derive(Clone, Debug)]
pub struct KernelModel {
    /// The configuration.
    pub config: Config,
    /// The design's parameters.
    pub params: Params,
    init: State,
}

impl KernelModel {
    /// Builds the model; the error says which configuration value is off.
    pub fn new(config: Config) -> Result<KernelModel, String> {
        let (params, init) = crate::init::initial(&config)?;
        Ok(KernelModel { config, params, init })
    }
    /// A model of `config` that starts from `state` (which must be reachable, or at least well
    /// formed, for that configuration).
    pub fn from_state(config: Config, state: State) -> Result<KernelModel, String> {
        let design = config.validate()?;
        Ok(KernelModel {
            config,
            params: Params {
                sw: design.switches,
                family: design.family,
            },
            init: state,
        })
    }
    /// The initial state.
    pub fn initial_state(&self) -> &State {
        &self.init
    }
    /// Number of CPUs.
    pub fn np(&self) -> u8 {
        self.config.cpus
    }
}

impl Model for KernelModel {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        vec![self.init]
    }
    fn actions(&self, state: &State, out: &mut Vec<Step>) {
        step::enabled(&self.params, state, out)
    }
    fn next_state(&self, state: &State, action: &Step) -> State {
        step::apply(&self.params, state, *action)
    }
    fn properties(&self) -> Vec<PropertyInfo> {
        invariants::property_infos()
    }
    fn check(&self, state: &State, out: &mut Vec<usize>) {
        invariants::check(&self.params, state, out)
    }
    fn representative(&self, state: &State) -> State {
        symmetry::representative(state)
    }
    fn agents(&self) -> usize {
        self.np() as usize
    }
    fn agent(&self, state: &State, action: &Step) -> Agent {
        match *action {
            Step::Switch { cpu, .. } | Step::SchedinRetry { cpu } | Step::IrqWork { cpu } => cpu as Agent,
            Step::Migrate { to, .. } => to as Agent,
            Step::Start { task, .. }
            | Step::Next { task }
            | Step::Fail { task }
            | Step::Wake { task, .. }
            | Step::Retry { task } => state.task(task).cpu as Agent,
        }
    }
    fn symmetry_preserves_agents(&self) -> bool {
        true
    }
    fn is_retry(&self, state: &State, action: &Step) -> bool {
        match *action {
            // 6.18: only a busy-wait lap of mm_cid_get is a retry; its cuts make progress.
            Step::SchedinRetry { cpu } if state.cpus[cpu as usize].legacy_spin.is_some() => {
                legacy_waits(state, cpu)
            }
            // 6.19-rc7's second mode load is a step of its own, not a lap of a spin.
            Step::SchedinRetry { cpu } => state.cpus[cpu as usize].spin.is_some_and(|x| x.spins()),
            Step::Retry { .. } => true,
            _ => false,
        }
    }
    fn spinning(&self, state: &State, out: &mut Vec<Agent>) {
        for (c, cpu) in state.cpus.iter().enumerate() {
            if cpu.spin.is_some_and(|x| x.spins()) || legacy_waits(state, c as u8) {
                out.push(c as Agent);
            }
        }
        for (t, task) in state.tasks.iter().enumerate() {
            if state.on_cpu_settled(t as u8)
                && matches!(
                    task.cid_op,
                    Some(CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. })
                )
            {
                out.push(task.cpu as Agent);
            }
        }
    }
    fn agent_name(&self, agent: Agent) -> String {
        format!("CPU{agent}")
    }
}

/// Does `cpu` busy-wait in 6.18's `mm_cid_get` (a fallback lap with no free bit below
/// `nr_cpus_allowed`, or `cid_lock` held by another CPU)? A mere cut is not a wait.
pub fn legacy_waits(state: &State, cpu: u8) -> bool {
    let Some(k) = state.cpus[cpu as usize].legacy_spin else {
        return false;
    };
    let mm = state.curr(cpu).and_then(|t| state.task(t).mm);
    match mm.map(|m| &state.mms[m as usize].legacy) {
        Some(crate::state::LegacyMm::V618(x)) => k.waits(x),
        _ => false,
    }
}
