//! The kernel's atomic steps: what can happen next ([`enabled`]) and what it does ([`apply`]).
//!
//! Guards live in [`enabled`], effects in [`apply`]; checker, replay and random walks share both,
//! so they cannot disagree. Each step is one critical section of the kernel, taken under exactly
//! the locks the spec names (section 10): a step that needs a lock is enabled only while nobody
//! holds it across steps. One module per kernel operation holds its steps:
//! [`switch`] (context switch, preemption, migration), [`fork`], [`exit`], [`exec`],
//! [`affinity`]. The CID code's own multi-step operations (fix-up walks, spinning forks, 6.18's
//! compaction) are the family's ([`crate::family::Family`]), which these steps call at the
//! kernel's call sites.
//!
//! Where the cuts are, and why:
//! - a context switch (`schedout(prev)` + `schedin(next)`) is one step under the CPU's rq lock,
//!   unless `get_cid` spins: then the CPU stays in the switch, and each further lap is a step;
//! - fork is `copy` (dup_task_struct … copy_mm), `publish` (or a failure), `post_fork`, `wake`:
//!   the points where the child becomes visible, registered and runnable;
//! - each CID lock section (`sched_mm_cid_fork`, `sched_mm_cid_exit`, the work function) is one
//!   step; each visit of a fix-up walk is one step (it takes one rq lock); `complete_transit` is
//!   one step;
//! - `sched_exec` is not a step of its own: a task may be preempted at any preemptible point and a
//!   preempted task may migrate, which covers every migration `sched_exec` can make.

pub mod affinity;
pub mod exec;
pub mod exit;
pub mod fork;
pub mod silent;
pub mod switch;

use mmcid_cid::{CpuId, Switches, TaskId};
use serde::{Deserialize, Serialize};

use crate::family::Family;
use crate::state::*;

/// One atomic step, named after who takes it. The kernel function it performs is given by
/// [`crate::trace::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    /// `__schedule()` on `cpu`: `rq->curr` becomes `next` (`None`: idle or a task outside the
    /// model), then `switch_mm_cid`: `schedout(prev)`, `schedin(next)`.
    Switch {
        /// The CPU.
        cpu: CpuId,
        /// The task switched to.
        next: Option<TaskId>,
    },
    /// Another lap of the `get_cid` loop inside `cpu`'s schedin (or the next piece of 6.18's
    /// `mm_cid_get`).
    SchedinRetry {
        /// The spinning CPU.
        cpu: CpuId,
    },
    /// Load balancing moves a runnable task to `to` (both rq locks).
    Migrate {
        /// The task.
        task: TaskId,
        /// The destination CPU.
        to: CpuId,
    },
    /// The hard irq_work of an mm runs on `cpu` and schedules the work.
    IrqWork {
        /// The CPU it was queued on.
        cpu: CpuId,
    },
    /// A task in user space starts an operation.
    Start {
        /// The task.
        task: TaskId,
        /// Which operation.
        op: StartOp,
    },
    /// The next step of the task's current operation (the one its program point names).
    Next {
        /// The task.
        task: TaskId,
    },
    /// The failure branch where the operation has one (fork after `copy_mm`; 6.18's compaction
    /// skipping a CPU).
    Fail {
        /// The task.
        task: TaskId,
    },
    /// `wake_up_new_task`: the forker wakes its child on `cpu` (`select_task_rq`'s choice).
    Wake {
        /// The forker.
        task: TaskId,
        /// The CPU the child is queued on.
        cpu: CpuId,
    },
    /// Another lap of a `get_cid` loop inside the task's fork.
    Retry {
        /// The spinning task.
        task: TaskId,
    },
}

impl Step {
    /// The task whose program point the step advances, if it is a task's step.
    pub fn task(&self) -> Option<TaskId> {
        match *self {
            Step::Start { task, .. }
            | Step::Next { task }
            | Step::Fail { task }
            | Step::Wake { task, .. }
            | Step::Retry { task } => Some(task),
            _ => None,
        }
    }
}

/// Operations a task in user space may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartOp {
    /// `pthread_create`.
    Fork,
    /// `vfork`.
    Vfork,
    /// `exit`.
    Exit,
    /// `execve` of a binary that will load (`exec_binprm` succeeds).
    Exec,
    /// `execve` that will fail after `before_execve` (ENOEXEC, LSM denial).
    ExecFail,
    /// `execveat(..., AT_EXECVE_CHECK)`: the exec window without executing anything.
    ExecCheck,
    /// `sched_setaffinity(0, old | {cpu})` on itself: one step under its rq lock and `mm.lock`.
    Affinity {
        /// The CPU added.
        cpu: CpuId,
    },
}

/// Model parameters that do not change along a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The design's switches (read by the 7.0 family only).
    pub sw: Switches,
    /// Take silent steps inside the transition that reaches them ([`silent`]).
    pub reduction: bool,
    /// Symmetry reduction also renames CPUs ([`crate::symmetry::cpu_canonical`]); set only where the
    /// family and the configuration are CPU-symmetric
    /// ([`crate::KernelModel::with_cpu_symmetry`]).
    pub cpu_symmetry: bool,
}

impl Params {
    /// The same parameters with reduction off: one kernel step per transition (scenarios, trace
    /// descriptions).
    pub fn unreduced(&self) -> Params {
        Params {
            reduction: false,
            ..self.clone()
        }
    }
}

/// Appends every step enabled in `s`, in a fixed order (CPUs, then tasks, by index).
pub fn enabled<F: Family>(p: &Params, s: &State<F>, out: &mut Vec<Step>) {
    let np = s.np();
    for cpu in 0..np {
        if F::rq_locked(&s.cpus[cpu as usize]) {
            // In the middle of a switch (a spin lap) or a 6.18 migration: nothing else.
            F::busy_cpu_steps(s, cpu, out);
            continue;
        }
        switch::cpu_steps(s, cpu, out);
        F::cpu_steps(p, s, cpu, out);
    }
    // Each task is unpacked once here and handed down (this runs for every explored state).
    for (i, t) in s.tasks.iter().enumerate() {
        let task = i as TaskId;
        switch::migrations(s, task, &t, out);
        // `State::on_cpu_settled`, on the task at hand.
        let cpu = &s.cpus[t.cpu as usize];
        if t.sched != Sched::Running || F::in_switch(cpu) || F::cpu_blocks_tasks(cpu) {
            continue;
        }
        task_steps(p, s, task, &t, out);
    }
}

/// The steps of a running task `t` (task `task` of `s`) whose switch-in is complete.
fn task_steps<F: Family>(p: &Params, s: &State<F>, task: TaskId, t: &Task<F>, out: &mut Vec<Step>) {
    if t.cid_op.is_some() {
        return F::cid_op_steps(p, s, task, out);
    }
    match t.op {
        Op::User => {
            if t.killed {
                out.push(Step::Start {
                    task,
                    op: StartOp::Exit,
                });
                return;
            }
            let l = &s.left;
            let fork = fork::may_start(s, task);
            let exec = exec::may_start(s, task);
            for (left, may, op) in [
                (l.forks, fork, StartOp::Fork),
                (l.vforks, true, StartOp::Vfork),
                (l.exits, true, StartOp::Exit),
                (l.execs, exec, StartOp::Exec),
                (l.exec_fails, exec, StartOp::ExecFail),
                (l.exec_checks, exec, StartOp::ExecCheck),
            ] {
                if left > 0 && may {
                    out.push(Step::Start { task, op });
                }
            }
            affinity::steps(p, s, task, out);
            F::user_steps(p, s, task, out);
        }
        Op::Fork { at, .. } => fork::steps(s, task, at, out),
        Op::Exit { at } => exit::steps(s, task, at, out),
        Op::Exec { at, .. } => exec::steps(s, task, at, out),
        Op::VforkWait { .. } | Op::KworkerIdle => switch::schedule_away(s, task, out),
        Op::Work { .. } => out.push(Step::Next { task }),
    }
}

/// Takes `step` in `s` (which must be enabled) and returns the successor.
pub fn apply<F: Family>(p: &Params, s: &State<F>, step: Step) -> State<F> {
    let mut s = *s;
    apply_in_place(p, &mut s, step);
    s
}

/// Takes `step` in `s` (which must be enabled), in place; with reduction on, also the silent
/// steps it leads to on its CPU ([`silent`]).
pub fn apply_in_place<F: Family>(p: &Params, s: &mut State<F>, step: Step) {
    if p.reduction {
        let cpu = crate::trace::cpu_of(s, step);
        apply_step(p, s, step);
        silent::run_silent(p, s, cpu, None);
    } else {
        apply_step(p, s, step);
    }
}

/// Takes the one kernel step `step` (enabled in `s`), in place.
pub fn apply_step<F: Family>(p: &Params, s: &mut State<F>, step: Step) {
    match step {
        Step::Switch { cpu, next } => switch::context_switch(p, s, cpu, next),
        Step::Migrate { task, to } => switch::migrate(p, s, task, to),
        Step::Start { task, op } => start(p, s, task, op),
        Step::Wake { task, cpu } => fork::wake(s, task, cpu),
        Step::SchedinRetry { .. } | Step::IrqWork { .. } | Step::Retry { .. } => F::apply_own(p, s, step),
        Step::Next { task } | Step::Fail { task } if owned_by_family(s, task) => F::apply_own(p, s, step),
        Step::Next { task } => next(p, s, task),
        Step::Fail { task } => fork::fail(s, task),
    }
}

/// Is the task's next step the family's (it is inside a CID operation, in user space with only
/// a family step to take, or its CPU's continuation is busy)?
fn owned_by_family<F: Family>(s: &State<F>, task: TaskId) -> bool {
    let t = s.task(task);
    t.cid_op.is_some() || t.op == Op::User || F::rq_locked(&s.cpus[t.cpu as usize])
}

/// A task in user space starts an operation (charging its budget).
fn start<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, op: StartOp) {
    match op {
        StartOp::Fork => fork::start(s, task, false),
        StartOp::Vfork => fork::start(s, task, true),
        StartOp::Exit => exit::start(s, task),
        StartOp::Exec => exec::start(s, task, ExecKind::Load),
        StartOp::ExecFail => exec::start(s, task, ExecKind::Fail),
        StartOp::ExecCheck => exec::start(s, task, ExecKind::Check),
        StartOp::Affinity { cpu } => affinity::start(p, s, task, cpu),
    }
}

/// The next step of the task's kernel operation.
fn next<F: Family>(p: &Params, s: &mut State<F>, task: TaskId) {
    match s.task(task).op {
        Op::Fork { child, vfork, at } => fork::next(p, s, task, child, vfork, at),
        Op::Exit { at } => exit::next(p, s, task, at),
        Op::Exec { at, kind, .. } => exec::next(p, s, task, at, kind),
        Op::Work { mm } => F::work_start(p, s, task, mm),
        Op::User | Op::VforkWait { .. } | Op::KworkerIdle => unreachable!("no next step"),
    }
}

/// A CID operation returned (its locks released). The operation's phase was advanced when the
/// CID operation started, except for the three that end here: a failed fork's cleanup frees the
/// child; `sched_mm_cid_after_execve` returns and the task leaves execve (`free_bprm` clears
/// `fs->in_exec` and releases `cred_guard_mutex` on the failure and check paths); the work
/// function's kworker goes idle.
pub fn sub_op_done<F: Family>(s: &mut State<F>, task: TaskId) {
    match s.task(task).op {
        Op::Fork {
            child,
            at: ForkAt::Cleanup,
            ..
        } => {
            let mut c = s.task_mut(child);
            c.sched = Sched::Dead;
            c.mm = None;
            drop(c);
            s.task_mut(task).op = Op::User;
        }
        Op::Exec {
            at: ExecAt::Return, ..
        } => s.task_mut(task).op = Op::User,
        Op::Work { .. } => s.task_mut(task).op = Op::KworkerIdle,
        _ => {}
    }
}
