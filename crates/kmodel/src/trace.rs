//! Naming steps after the kernel functions they perform, and rendering traces as CPU columns
//! (one column per CPU, time downwards), the way the kernel mails draw interleavings.

use std::fmt::Write as _;

use mmcid_cid::{CpuId, TaskId};
use serde::Serialize;

use crate::family::Family;
use crate::ops::{Params, StartOp, Step, apply};
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

/// What a step changed in the CID state (and the scheduler facts a reader needs), as short lines.
pub fn effects<F: Family>(before: &State<F>, after: &State<F>) -> Vec<String> {
    let mut out = Vec::new();
    F::effects(before, after, &mut out);
    for (i, tb) in after.tasks.iter().enumerate() {
        match before.tasks.get(i) {
            None => out.push(format!("T{i} created (unpublished)")),
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
        out.push("published".to_string());
    }
    out
}

/// A compact one-line CID state.
pub fn state_line<F: Family>(s: &State<F>) -> String {
    F::state_line(s)
}
/// One rendered step of a trace (the JSON form of a trace step).
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
    /// The scenario line that replays it.
    pub line: String,
    /// What changed.
    pub effect: Vec<String>,
    /// The CID state after the step.
    pub state: String,
}

/// A task's scheduler state, for tools (`--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Created, not yet woken (`wake_up_new_task` not run).
    New,
    /// `rq->curr` of its CPU.
    Running,
    /// On its CPU's run queue.
    Runnable,
    /// Waiting (a vfork parent, an idle kworker).
    Sleeping,
    /// Exited.
    Dead,
}

impl From<Sched> for TaskState {
    fn from(s: Sched) -> TaskState {
        match s {
            Sched::New => TaskState::New,
            Sched::Running => TaskState::Running,
            Sched::Runnable => TaskState::Runnable,
            Sched::Sleeping => TaskState::Sleeping,
            Sched::Dead => TaskState::Dead,
        }
    }
}

/// One CPU at one point, for tools.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CpuSnapshot {
    /// The CPU.
    pub cpu: CpuId,
    /// `rq->curr` (`None`: idle).
    pub curr: Option<TaskId>,
    /// The tasks on its run queue.
    pub runqueue: Vec<TaskId>,
}

/// One task at one point, for tools.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct TaskSnapshot {
    /// The task (`T<n>`).
    pub task: TaskId,
    /// Its scheduler state.
    pub state: TaskState,
    /// The CPU it runs or waits on.
    pub cpu: CpuId,
    /// Its mm, if any.
    pub mm: Option<MmId>,
    /// Its CID in the kernel's notation (`3|ONCPU`, `UNSET|TRANSIT`; 6.3 and 6.18: `3`, `UNSET`).
    pub cid: String,
    /// It is in user space (where rseq shows user space its CID).
    pub in_user_space: bool,
    /// It is the kworker that runs the mm's deferred work.
    pub kworker: bool,
}

/// Who runs where and which CIDs the tasks hold, at one point of a trace: the typed part of
/// the state report, for tools.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Snapshot {
    /// Every CPU.
    pub cpus: Vec<CpuSnapshot>,
    /// Every task.
    pub tasks: Vec<TaskSnapshot>,
}

/// The [`Snapshot`] of `s`.
pub fn snapshot<F: Family>(s: &State<F>) -> Snapshot {
    Snapshot {
        cpus: (0..s.np())
            .map(|c| CpuSnapshot {
                cpu: c,
                curr: s.curr(c),
                runqueue: s.runqueue(c).collect(),
            })
            .collect(),
        tasks: s
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| TaskSnapshot {
                task: i as TaskId,
                state: t.sched.into(),
                cpu: t.cpu,
                mm: t.mm,
                cid: F::task_cid(&t),
                in_user_space: s.in_user(i as TaskId),
                kworker: t.kworker,
            })
            .collect(),
    }
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
            state: state_line(&next),
        });
        s = next;
    }
    out
}

/// Renders described steps as CPU columns. `cycle_start`: index of the first step of a live lock's
/// cycle (a `--- cycle ---` rule is drawn before it and `back to step k` after the last).
pub fn render_columns<F: Family>(
    np: u8,
    init: &State<F>,
    steps: &[TraceStep],
    cycle_start: Option<usize>,
    with_state: bool,
) -> String {
    const W: usize = 30;
    let mut out = String::new();
    let _ = write!(out, "step ");
    for c in 0..np {
        let _ = write!(out, "{:<W$}", cn(c));
    }
    out.push('\n');
    let _ = write!(out, "{:>4} ", 0);
    for c in 0..np {
        let cell = match init.curr(c) {
            Some(t) => format!("{} cid {}", tn(t), F::task_cid(&init.task(t))),
            None => "idle".to_string(),
        };
        let _ = write!(out, "{:<W$}", cell);
    }
    out.push('\n');
    if with_state {
        let _ = writeln!(out, "     {}", state_line(init));
    }
    for (i, st) in steps.iter().enumerate() {
        if Some(i) == cycle_start {
            let _ = writeln!(out, "     --- cycle ---");
        }
        let pad = " ".repeat(W * st.cpu as usize);
        let head = match (st.task, &st.arg) {
            (Some(t), Some(a)) => format!("T{t} {} {a}", st.function),
            (Some(t), None) => format!("T{t} {}", st.function),
            (None, Some(a)) => format!("{} {a}", st.function),
            (None, None) => st.function.clone(),
        };
        let _ = writeln!(out, "{:>4} {pad}{head}", st.step);
        for e in &st.effect {
            let _ = writeln!(out, "     {pad}  {e}");
        }
        if with_state {
            let _ = writeln!(out, "     {}", st.state);
        }
    }
    if let Some(k) = cycle_start {
        let _ = writeln!(out, "     back to step {k} (up to renaming of tasks)");
    }
    out
}

/// A multi-line description of the CID state at one point: the mm, each CPU and each task.
pub fn state_report<F: Family>(s: &State<F>) -> String {
    F::state_report(s)
}

/// Who owns each set bit (for explaining I4 and stalls): `bit 2: T3 (plain)`.
pub fn bit_owners<F: Family>(s: &State<F>, m: MmId) -> Vec<String> {
    F::bit_owners(s, m)
}

/// The CID a task shows.
pub fn task_cid<F: Family>(s: &State<F>, t: TaskId) -> String {
    F::task_cid(&s.task(t))
}

/// The kernel operation a task is in, in kernel words (state reports).
pub fn op_words(op: &Op) -> String {
    let fork_at = |at: ForkAt| match at {
        ForkAt::Copy => "next copy_process",
        ForkAt::Publish => "next publication",
        ForkAt::PostFork => "next sched_post_fork",
        ForkAt::Wake => "next wake_up_new_task",
        ForkAt::Failed | ForkAt::Cleanup => "failed, in bad_fork_cleanup",
    };
    match *op {
        Op::User => "user space".to_string(),
        Op::Fork { child, vfork, at } => {
            let what = if vfork { "vfork" } else { "clone" };
            format!("{what} of T{child}, {}", fork_at(at))
        }
        Op::Exit { at } => match at {
            ExitAt::Cid => "do_exit, next sched_mm_cid_exit".to_string(),
            ExitAt::MmRelease => "do_exit, next exit_mm".to_string(),
            ExitAt::Final => "do_exit, next the final schedule".to_string(),
        },
        Op::Exec { at, kind, in_exec } => {
            let what = match kind {
                ExecKind::Load => "execve",
                ExecKind::Fail => "execve (will fail)",
                ExecKind::Check => "execveat(AT_EXECVE_CHECK)",
            };
            let at = match at {
                ExecAt::Before => "next sched_mm_cid_before_execve",
                ExecAt::Outcome => "next exec_binprm",
                ExecAt::DeThread => "in de_thread, next exec_mmap",
                ExecAt::After => "next sched_mm_cid_after_execve",
                ExecAt::Return => "in sched_mm_cid_after_execve",
            };
            let fs = if in_exec { ", fs->in_exec set" } else { "" };
            format!("{what}, {at}{fs}")
        }
        Op::VforkWait { child } => format!("vfork, waiting for T{child}"),
        Op::Work { mm } => format!("the work of mm{mm}"),
        Op::KworkerIdle => "idle kworker".to_string(),
    }
}

/// The scheduler state in words (state reports).
pub fn sched_words(s: Sched) -> &'static str {
    match s {
        Sched::New => "new (not yet woken)",
        Sched::Running => "running",
        Sched::Runnable => "runnable",
        Sched::Sleeping => "sleeping",
        Sched::Dead => "dead",
    }
}

/// The scheduler state as the compact state line writes it.
pub fn sched_short(s: Sched) -> &'static str {
    match s {
        Sched::New => "new",
        Sched::Running => "run",
        Sched::Runnable => "rq",
        Sched::Sleeping => "sleep",
        Sched::Dead => "dead",
    }
}

/// What changed in a task's scheduler state and mm (shared by both families' effect lists).
/// `moves`: also report a CPU change of a task that stays in the same state (a migration, which
/// the 6.18 design reacts to).
fn sched_effects<F: Family>(i: usize, ta: &Task<F>, tb: &Task<F>, moves: bool, out: &mut Vec<String>) {
    if ta.sched != tb.sched && !matches!(tb.sched, Sched::Running) {
        let what = match tb.sched {
            Sched::Runnable => "runnable",
            Sched::Sleeping => "sleeps",
            Sched::Dead => "dead",
            _ => "new",
        };
        out.push(format!("T{i} {what} on CPU{}", tb.cpu));
    } else if moves && ta.cpu != tb.cpu {
        out.push(format!("T{i} now on CPU{}", tb.cpu));
    }
    if let (true, Some(m)) = (ta.mm != tb.mm, tb.mm) {
        out.push(format!("T{i} mm -> mm{m}"));
    }
}

/// [`render_columns`] for a configuration whose family is known only at run time (the initial
/// state is rebuilt from `cfg`).
pub fn render_columns_for(
    cfg: &crate::config::Config,
    steps: &[TraceStep],
    cycle_start: Option<usize>,
    with_state: bool,
) -> Result<String, String> {
    struct Render<'a> {
        steps: &'a [TraceStep],
        cycle_start: Option<usize>,
        with_state: bool,
    }
    impl crate::family::ModelVisitor for Render<'_> {
        type Out = String;
        fn visit<F: Family>(self, m: crate::model::KernelModel<F>) -> String {
            render_columns(
                m.np(),
                m.initial_state(),
                self.steps,
                self.cycle_start,
                self.with_state,
            )
        }
    }
    crate::family::with_model(
        cfg,
        Render {
            steps,
            cycle_start,
            with_state,
        },
    )
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
