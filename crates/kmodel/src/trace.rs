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

/// Every kernel function name a step can carry ([`name`]), for the scenario parser: a line naming
/// anything else is an unknown function, not a step that is not enabled.
/// `tests::every_name_is_listed` keeps the list complete.
pub const FUNCTIONS: &[&str] = &[
    // the kernel (crate::ops)
    "schedule",
    "migrate",
    "clone",
    "vfork",
    "exit",
    "execve",
    "execve_fail",
    "execveat_check",
    "sched_setaffinity",
    "fork_fail",
    "wake_up_new_task",
    "copy_process",
    "publish",
    "sched_post_fork",
    "bad_fork_cleanup",
    "do_exit",
    "exit_mm_release",
    "bprm_execve",
    "de_thread",
    "exec_binprm_fails",
    "exec_check_returns",
    "exec_mmap",
    "sched_mm_cid_after_execve",
    "process_one_work",
    // 7.0 family
    "get_cid_retry",
    "from_task_transit_load",
    "mm_cid_irq_work",
    "sched_mm_cid_fork",
    "sched_mm_cid_fork_locked",
    "mm_cid_schedin",
    "sched_mm_cid_fork_return",
    "get_cid",
    "sched_mm_cid_before_execve",
    "sched_mm_cid_exit",
    "irq_work_sync",
    "mm_cid_work_fn",
    "fixup_one",
    "fixup_tasks_to_cpus",
    "fixup_cpus_to_tasks",
    "complete_transit",
    // 6.3 and 6.18
    "sched_mm_cid_exit_signals",
    "mm_cid_get",
    "mm_cid_steal",
    "mm_cid_steal_unset",
    "mm_cid_migrate_place",
    "task_work",
    "sched_mm_cid_remote_clear",
    "remote_clear_unset",
    "__mm_cid_put",
    "clear_old_skip",
];

/// The name of `step` taken in `s`.
pub fn name<F: Family>(p: &Params, s: &State<F>, step: Step) -> StepName {
    if let Some((actor, function, arg)) = F::name(p, s, step) {
        return StepName {
            actor,
            function: function.to_string(),
            arg,
        };
    }
    let (actor, function, arg): (String, &str, Option<String>) = match step {
        Step::Switch { cpu, next } => (
            cn(cpu),
            "schedule",
            Some(next.map_or_else(|| "idle".to_string(), tn)),
        ),
        Step::SchedinRetry { cpu } => (cn(cpu), "get_cid_retry", None),
        Step::Migrate { task, to } => (cn(to), "migrate", Some(tn(task))),
        Step::IrqWork { cpu } => (cn(cpu), "mm_cid_irq_work", None),
        Step::Start { task, op } => {
            let (f, a) = match op {
                StartOp::Fork => ("clone", None),
                StartOp::Vfork => ("vfork", None),
                StartOp::Exit => ("exit", None),
                StartOp::Exec => ("execve", None),
                StartOp::ExecFail => ("execve_fail", None),
                StartOp::ExecCheck => ("execveat_check", None),
                StartOp::Affinity { cpu } => ("sched_setaffinity", Some(format!("+{}", cn(cpu)))),
            };
            (tn(task), f, a)
        }
        Step::Fail { task } => (tn(task), "fork_fail", None),
        Step::Wake { task, cpu } => (tn(task), "wake_up_new_task", Some(cn(cpu))),
        Step::Retry { task } => (tn(task), "get_cid_retry", None),
        Step::Next { task } => {
            let t = s.task(task);
            let (f, a) = match t.op {
                Op::Fork { child, at, .. } => match at {
                    ForkAt::Copy => ("copy_process", Some(tn(child))),
                    ForkAt::Publish => ("publish", Some(tn(child))),
                    ForkAt::PostFork => ("sched_post_fork", Some(tn(child))),
                    ForkAt::Failed | ForkAt::Cleanup => ("bad_fork_cleanup", Some(tn(child))),
                    ForkAt::Wake => ("wake_up_new_task", Some(tn(child))),
                },
                Op::Exit { at: ExitAt::Cid } => ("do_exit", None),
                Op::Exit { .. } => ("exit_mm_release", None),
                Op::Exec { at, kind, .. } => match (at, kind) {
                    (ExecAt::Before, _) => ("bprm_execve", None),
                    (ExecAt::Outcome, ExecKind::Load) => ("de_thread", None),
                    (ExecAt::Outcome, ExecKind::Fail) => ("exec_binprm_fails", None),
                    (ExecAt::Outcome, ExecKind::Check) => ("exec_check_returns", None),
                    (ExecAt::DeThread, _) => ("exec_mmap", None),
                    (ExecAt::After | ExecAt::Return, _) => ("sched_mm_cid_after_execve", None),
                },
                Op::Work { .. } => ("process_one_work", None),
                Op::User | Op::VforkWait { .. } | Op::KworkerIdle => {
                    unreachable!("no kernel step at {:?}", t.op)
                }
            };
            (tn(task), f, a)
        }
    };
    StepName {
        actor,
        function: function.to_string(),
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

    fn names<F: Family>(design: &str, cpus: u8, allowed: Option<u8>, budgets: Budgets) {
        let mut cfg = Config::new(design, cpus, 2, budgets);
        cfg.allowed = allowed;
        let model = KernelModel::<F>::new(cfg).unwrap();
        let mut todo = vec![*model.initial_state()];
        let mut seen = std::collections::HashSet::new();
        let mut actions = Vec::new();
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
                    "{design}: {n} is not in FUNCTIONS"
                );
                todo.push(model.next_state(&s, &a));
            }
        }
    }

    #[test]
    fn every_name_is_listed() {
        let all = Budgets {
            forks: 1,
            vforks: 1,
            fork_fails: 1,
            exits: 1,
            exec_fails: 1,
            ..Budgets::default()
        };
        names::<Rewrite>("7.0", 2, None, all);
        names::<Rewrite>(
            "7.0+fixes",
            2,
            None,
            Budgets {
                exec_checks: 1,
                ..all
            },
        );
        names::<Rewrite>("6.19-rc7", 2, None, all);
        names::<Rewrite>(
            "7.0",
            3,
            Some(1),
            Budgets {
                forks: 1,
                affinity: 1,
                exits: 1,
                ..Budgets::default()
            },
        );
        names::<Lazy618>(
            "6.18",
            2,
            None,
            Budgets {
                compactions: 1,
                ..all
            },
        );
        names::<PerSwitch63>("6.3", 2, None, Budgets { execs: 1, ..all });
    }
}
