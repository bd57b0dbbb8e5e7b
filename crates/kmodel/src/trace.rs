//! Naming steps after the kernel functions they perform and describing a trace step by step: its
//! typed effects and the [`Snapshot`] after each step (`crate::snapshot`). The CLI lays traces out
//! as CPU columns and draws state lines and reports from the snapshots
//! (`crates/cli/src/render/{text,state}.rs`).

use mmcid_cid::{CpuId, TaskId};
use serde::Serialize;

use crate::facts::{BitOwners, Effect};
use crate::family::Family;
use crate::ops::{Params, StartOp, Step, apply};
pub use crate::snapshot::{
    CpuSnapshot, MmCidSnapshot, MmSnapshot, Slot618Snapshot, Snapshot, TaskSnapshot, TaskState, snapshot,
};
use crate::state::*;

/// A step as words: who acts, the kernel function, its argument. This is also the scenario syntax:
/// `<actor> <function> [<arg>]`, e.g. `CPU1 schedule T3`, `T0 sched_mm_cid_fork T4`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepName {
    /// `CPU<n>` or `T<n>`.
    pub actor: String,
    /// The kernel function (or event) the step performs.
    pub function: String,
    /// Its argument, if any (`T3`, `CPU2`, `idle`, `+CPU1`).
    pub arg: Option<String>,
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.actor, self.function)?;
        if let Some(a) = &self.arg {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// `T<n>`.
pub fn tn(t: TaskId) -> String {
    format!("T{t}")
}
/// `CPU<n>`.
pub fn cn(c: CpuId) -> String {
    format!("CPU{c}")
}

/// Declares [`KernelFn`] and [`FUNCTIONS`] from one list, so that a name cannot be in one and
/// missing from the other.
macro_rules! kernel_functions {
    ($($(#[$m:meta])* $v:ident = $name:literal,)*) => {
        /// The kernel function a step performs: what a trace and a scenario line name the step
        /// by. Each step names its own ([`name`], and the families' [`Family::name`]); the string
        /// is the kernel's identifier.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum KernelFn {
            $($(#[$m])* #[doc = concat!("`", $name, "`")] $v,)*
        }

        impl KernelFn {
            /// Every kernel function a step can perform.
            pub const ALL: &[KernelFn] = &[$(KernelFn::$v),*];

            /// The kernel's name for it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(KernelFn::$v => $name,)*
                }
            }
        }

        /// Every kernel function name a step can carry ([`KernelFn::name`]), for the scenario
        /// parser: a line naming anything else is an unknown function, not a step that is not
        /// enabled.
        pub const FUNCTIONS: &[&str] = &[$($name),*];
    };
}

kernel_functions! {
    // the kernel (crate::ops)
    Schedule = "schedule",
    Migrate = "migrate",
    Clone = "clone",
    Vfork = "vfork",
    Exit = "exit",
    Execve = "execve",
    ExecveFail = "execve_fail",
    ExecveatCheck = "execveat_check",
    SchedSetaffinity = "sched_setaffinity",
    ForkFail = "fork_fail",
    WakeUpNewTask = "wake_up_new_task",
    CopyProcess = "copy_process",
    Publish = "publish",
    SchedPostFork = "sched_post_fork",
    BadForkCleanup = "bad_fork_cleanup",
    DoExit = "do_exit",
    ExitMmRelease = "exit_mm_release",
    BprmExecve = "bprm_execve",
    DeThread = "de_thread",
    ExecBinprmFails = "exec_binprm_fails",
    ExecCheckReturns = "exec_check_returns",
    ExecMmap = "exec_mmap",
    SchedMmCidAfterExecve = "sched_mm_cid_after_execve",
    ProcessOneWork = "process_one_work",
    // 7.0 family
    GetCidRetry = "get_cid_retry",
    FromTaskTransitLoad = "from_task_transit_load",
    MmCidIrqWork = "mm_cid_irq_work",
    SchedMmCidFork = "sched_mm_cid_fork",
    SchedMmCidForkLocked = "sched_mm_cid_fork_locked",
    MmCidSchedin = "mm_cid_schedin",
    SchedMmCidForkReturn = "sched_mm_cid_fork_return",
    GetCid = "get_cid",
    SchedMmCidBeforeExecve = "sched_mm_cid_before_execve",
    SchedMmCidExit = "sched_mm_cid_exit",
    IrqWorkSync = "irq_work_sync",
    MmCidWorkFn = "mm_cid_work_fn",
    FixupOne = "fixup_one",
    FixupTasksToCpus = "fixup_tasks_to_cpus",
    FixupCpusToTasks = "fixup_cpus_to_tasks",
    CompleteTransit = "complete_transit",
    // 6.3 and 6.18
    SchedMmCidExitSignals = "sched_mm_cid_exit_signals",
    MmCidGet = "mm_cid_get",
    MmCidSteal = "mm_cid_steal",
    MmCidStealUnset = "mm_cid_steal_unset",
    MmCidMigratePlace = "mm_cid_migrate_place",
    TaskWork = "task_work",
    SchedMmCidRemoteClear = "sched_mm_cid_remote_clear",
    RemoteClearUnset = "remote_clear_unset",
    MmCidPut = "__mm_cid_put",
    ClearOldSkip = "clear_old_skip",
}

impl std::fmt::Display for KernelFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The name of `step` taken in `s`.
pub fn name<F: Family>(p: &Params, s: &State<F>, step: Step) -> StepName {
    if let Some((actor, function, arg)) = F::name(p, s, step) {
        return StepName {
            actor,
            function: function.name().to_string(),
            arg,
        };
    }
    let (actor, function, arg): (String, KernelFn, Option<String>) = match step {
        Step::Switch { cpu, next } => (
            cn(cpu),
            KernelFn::Schedule,
            Some(next.map_or_else(|| "idle".to_string(), tn)),
        ),
        Step::SchedinRetry { cpu } => (cn(cpu), KernelFn::GetCidRetry, None),
        Step::Migrate { task, to } => (cn(to), KernelFn::Migrate, Some(tn(task))),
        Step::IrqWork { cpu } => (cn(cpu), KernelFn::MmCidIrqWork, None),
        Step::Start { task, op } => {
            let (f, a) = match op {
                StartOp::Fork => (KernelFn::Clone, None),
                StartOp::Vfork => (KernelFn::Vfork, None),
                StartOp::Exit => (KernelFn::Exit, None),
                StartOp::Exec => (KernelFn::Execve, None),
                StartOp::ExecFail => (KernelFn::ExecveFail, None),
                StartOp::ExecCheck => (KernelFn::ExecveatCheck, None),
                StartOp::Affinity { cpu } => (KernelFn::SchedSetaffinity, Some(format!("+{}", cn(cpu)))),
            };
            (tn(task), f, a)
        }
        Step::Fail { task } => (tn(task), KernelFn::ForkFail, None),
        Step::Wake { task, cpu } => (tn(task), KernelFn::WakeUpNewTask, Some(cn(cpu))),
        Step::Retry { task } => (tn(task), KernelFn::GetCidRetry, None),
        Step::Next { task } => {
            let t = s.task(task);
            let (f, a) = match t.op {
                Op::Fork { child, at, .. } => match at {
                    ForkAt::Copy => (KernelFn::CopyProcess, Some(tn(child))),
                    ForkAt::Publish => (KernelFn::Publish, Some(tn(child))),
                    ForkAt::PostFork => (KernelFn::SchedPostFork, Some(tn(child))),
                    ForkAt::Failed | ForkAt::Cleanup => (KernelFn::BadForkCleanup, Some(tn(child))),
                    ForkAt::Wake => (KernelFn::WakeUpNewTask, Some(tn(child))),
                },
                Op::Exit { at: ExitAt::Cid } => (KernelFn::DoExit, None),
                Op::Exit { .. } => (KernelFn::ExitMmRelease, None),
                Op::Exec { at, kind, .. } => match (at, kind) {
                    (ExecAt::Before, _) => (KernelFn::BprmExecve, None),
                    (ExecAt::Outcome, ExecKind::Load) => (KernelFn::DeThread, None),
                    (ExecAt::Outcome, ExecKind::Fail) => (KernelFn::ExecBinprmFails, None),
                    (ExecAt::Outcome, ExecKind::Check) => (KernelFn::ExecCheckReturns, None),
                    (ExecAt::DeThread, _) => (KernelFn::ExecMmap, None),
                    (ExecAt::After | ExecAt::Return, _) => (KernelFn::SchedMmCidAfterExecve, None),
                },
                Op::Work { .. } => (KernelFn::ProcessOneWork, None),
                Op::User | Op::VforkWait { .. } | Op::KworkerIdle => {
                    unreachable!("no kernel step at {:?}", t.op)
                }
            };
            (tn(task), f, a)
        }
    };
    StepName {
        actor,
        function: function.name().to_string(),
        arg,
    }
}

/// The CPU a step runs on (its column).
pub fn cpu_of<F: Family>(s: &State<F>, step: Step) -> CpuId {
    match step {
        Step::Switch { cpu, .. } | Step::SchedinRetry { cpu } | Step::IrqWork { cpu } => cpu,
        Step::Migrate { to, .. } => to,
        Step::Start { task, .. }
        | Step::Next { task }
        | Step::Fail { task }
        | Step::Wake { task, .. }
        | Step::Retry { task } => s.task(task).cpu,
    }
}

/// What a step changed in the CID state (and the scheduler facts a reader needs).
pub fn effects<F: Family>(before: &State<F>, after: &State<F>) -> Vec<Effect> {
    let mut out = Vec::new();
    F::effects(before, after, &mut out);
    for (i, tb) in after.tasks.iter().enumerate() {
        let i = i as TaskId;
        match before.tasks.get(i as usize) {
            None => out.push(Effect::TaskCreated { task: i }),
            Some(ta) => {
                F::task_effects(i, &ta, &tb, &mut out);
                sched_effects(i, &ta, &tb, F::REPORTS_MOVES, &mut out);
            }
        }
    }
    // Publication changes a thread list or the process list (a vfork's copy step only creates
    // the child's empty group).
    let lists = |s: &State<F>| (s.thread_lists(), s.process_list);
    if lists(before) != lists(after) {
        out.push(Effect::Published);
    }
    out
}

/// [`effects`] as the short lines a trace shows.
pub fn effect_lines<F: Family>(before: &State<F>, after: &State<F>) -> Vec<String> {
    let multi_mm = after.mms.len() > 1;
    effects(before, after).iter().map(|e| e.words(multi_mm)).collect()
}

/// [`bit_owners`] of mm `m` as the state report's lines.
pub fn bit_owner_lines<F: Family>(s: &State<F>, m: MmId) -> Vec<String> {
    bit_owners(s, m).iter().map(|b| b.words(F::KIND)).collect()
}

/// One step of a trace, as typed facts (the JSON form of a trace step).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TraceStep {
    /// Step number (1-based).
    pub step: usize,
    /// The CPU it ran on.
    pub cpu: CpuId,
    /// The acting task, if a task acts.
    pub task: Option<TaskId>,
    /// The kernel function.
    #[serde(rename = "fn")]
    pub function: String,
    /// Its argument.
    pub arg: Option<String>,
    /// The scenario line that replays it (input syntax: `<actor> <function> [<arg>]`).
    pub line: String,
    /// What changed.
    pub effect: Vec<Effect>,
    /// Who runs where, which CIDs the tasks hold and the mms' CID state after the step.
    pub snapshot: Snapshot,
}

/// The kernel steps the engine's transitions `actions` take from `init` (with reduction on, a
/// transition may take several), and the index of each transition's first kernel step.
pub fn expand<F: Family>(p: &Params, init: &State<F>, actions: &[Step]) -> (Vec<Step>, Vec<usize>) {
    let mut s = *init;
    let mut out = Vec::with_capacity(actions.len());
    let mut starts = Vec::with_capacity(actions.len() + 1);
    for &a in actions {
        starts.push(out.len());
        crate::ops::silent::apply_recording(p, &mut s, a, &mut out);
    }
    starts.push(out.len());
    (out, starts)
}

/// Replays the kernel steps `steps` from `init` (one at a time: `p` without reduction) and
/// describes each.
pub fn describe<F: Family>(p: &Params, init: &State<F>, steps: &[Step]) -> Vec<TraceStep> {
    let mut s = *init;
    let mut out = Vec::new();
    for (i, &step) in steps.iter().enumerate() {
        let n = name(p, &s, step);
        let cpu = cpu_of(&s, step);
        let next = apply(p, &s, step);
        let task = n.actor.strip_prefix('T').and_then(|x| x.parse().ok());
        out.push(TraceStep {
            step: i + 1,
            cpu,
            task,
            function: n.function.clone(),
            arg: n.arg.clone(),
            line: n.to_string(),
            effect: effects(&s, &next),
            snapshot: snapshot(&next),
        });
        s = next;
    }
    out
}

/// Who owns each set bit of mm `m` (for explaining I4 and stalls).
pub fn bit_owners<F: Family>(s: &State<F>, m: MmId) -> Vec<BitOwners> {
    F::bit_owners(s, m)
}

/// What changed in a task's scheduler state and mm (shared by both families' effect lists).
/// `moves`: also report a CPU change of a task that stays in the same state (a migration, which
/// the 6.18 design reacts to).
fn sched_effects<F: Family>(i: TaskId, ta: &Task<F>, tb: &Task<F>, moves: bool, out: &mut Vec<Effect>) {
    if ta.sched != tb.sched && !matches!(tb.sched, Sched::Running) {
        out.push(Effect::Sched {
            task: i,
            state: tb.sched.into(),
            cpu: tb.cpu,
        });
    } else if moves && ta.cpu != tb.cpu {
        out.push(Effect::Moved { task: i, cpu: tb.cpu });
    }
    if let (true, Some(mm)) = (ta.mm != tb.mm, tb.mm) {
        out.push(Effect::MmSwitched { task: i, mm });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Budgets, Config};
    use crate::family::{Lazy618, PerSwitch63, Rewrite};
    use crate::model::KernelModel;
    use mmcid_engine::Model;

    /// The kernel functions the reachable steps of `design` name (up to 30,000 states); each name
    /// must also read back as a scenario line's function.
    fn names<F: Family>(
        design: &str,
        cpus: u8,
        allowed: Option<u8>,
        budgets: Budgets,
    ) -> std::collections::BTreeSet<String> {
        let mut cfg = Config::new(design, cpus, 2, budgets);
        cfg.allowed = allowed;
        let model = KernelModel::<F>::new(cfg).unwrap();
        let mut todo = vec![*model.initial_state()];
        let mut seen = std::collections::HashSet::new();
        let mut actions = Vec::new();
        let mut named = std::collections::BTreeSet::new();
        while let Some(s) = todo.pop() {
            if seen.len() > 30_000 || !seen.insert(s) {
                continue;
            }
            actions.clear();
            model.actions(&s, &mut actions);
            for &a in &actions {
                let n = name(&model.params, &s, a);
                assert!(
                    FUNCTIONS.contains(&n.function.as_str()),
                    "{design}: {n} is not a function the scenario parser accepts"
                );
                named.insert(n.function);
                todo.push(model.next_state(&s, &a));
            }
        }
        named
    }

    /// Every reachable step of every family has a name, and the scenario parser accepts it.
    #[test]
    fn every_reachable_step_is_named() {
        let mut used = std::collections::BTreeSet::new();
        let all = Budgets {
            forks: 1,
            vforks: 1,
            fork_fails: 1,
            exits: 1,
            exec_fails: 1,
            ..Budgets::default()
        };
        used.extend(names::<Rewrite>("7.0", 2, None, all));
        used.extend(names::<Rewrite>(
            "7.0+fixes",
            2,
            None,
            Budgets {
                exec_checks: 1,
                ..all
            },
        ));
        used.extend(names::<Rewrite>("6.19-rc7", 2, None, all));
        used.extend(names::<Rewrite>(
            "7.0",
            3,
            Some(1),
            Budgets {
                forks: 1,
                affinity: 1,
                exits: 1,
                ..Budgets::default()
            },
        ));
        used.extend(names::<Lazy618>(
            "6.18",
            2,
            None,
            Budgets {
                compactions: 1,
                ..all
            },
        ));
        used.extend(names::<PerSwitch63>("6.3", 2, None, Budgets { execs: 1, ..all }));
        // Every name is a `KernelFn` by type; what can still go wrong is a reachable step that
        // `name` does not know (an `unreachable!`), and a name the parser would refuse.
        assert!(!used.is_empty());
    }
}
