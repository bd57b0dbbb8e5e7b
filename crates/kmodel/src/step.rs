//! The kernel's atomic steps: what can happen next ([`enabled`]) and what it does ([`apply`]).
//!
//! Guards live in [`enabled`], effects in [`apply`]; checker, replay and simulator share both, so
//! they cannot disagree. Each step is one critical section of the kernel, taken under exactly the
//! locks the spec names (section 10): a step that needs a lock is enabled only while nobody holds
//! it across steps. Locks are held across steps only by spinners and walkers:
//! - a CPU spinning in schedin's `get_cid` holds its rq lock (IRQs off);
//! - a fork spinning in its locked section holds `mm.mutex` and `mm.lock` (IRQs off);
//! - a fix-up walker, and a fork spinning after a CPU→task fix-up, hold `mm.mutex`.
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

use mmcid_cid::{
    self as cid, Alloc, CpuId, ExitCid, ForkCid, Mode, Registration, Schedin, Switches, TaskId, TaskWalk,
    Work,
};
use serde::{Deserialize, Serialize};

use crate::config::Family;
use crate::legacy;
use crate::state::*;

/// One atomic step, named after who takes it. The kernel function it performs is given by
/// [`crate::trace::describe`].
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
    /// Another lap of the `get_cid` loop inside `cpu`'s schedin.
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
    /// The failure branch where the operation has one (fork after `copy_mm`, exec's outcome).
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
    /// `sched_setaffinity(0, old | {cpu})` on itself: one step under its rq lock and `mm.lock`.
    Affinity {
        /// The CPU added.
        cpu: CpuId,
    },
}

/// Model parameters that do not change along a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The design's switches (the 7.0 family).
    pub sw: Switches,
    /// Which CID code runs.
    pub family: Family,
}

/// Appends every step enabled in `s`, in a fixed order (CPUs, then tasks, by index).
pub fn enabled(p: &Params, s: &State, out: &mut Vec<Step>) {
    let np = s.np();
    for cpu in 0..np {
        let c = &s.cpus[cpu as usize];
        if c.spin.is_some() || c.legacy_spin.is_some() {
            out.push(Step::SchedinRetry { cpu });
            continue;
        }
        if let Some((task, _)) = c.migrating {
            // 6.18: the CPU is inside activate_task of a migrated task (dst rq lock held).
            out.push(Step::Next { task });
            continue;
        }
        let curr = s.curr(cpu);
        if curr.is_none_or(|t| preemptible(s, t)) {
            if curr.is_some() {
                out.push(Step::Switch { cpu, next: None });
            }
            for t in s.runqueue(cpu) {
                out.push(Step::Switch { cpu, next: Some(t) });
            }
        }
        for (m, mm) in s.mms.iter().enumerate() {
            let _ = m;
            if mm.irq_work == Some(cpu) && !s.irqs_off(cpu) {
                out.push(Step::IrqWork { cpu });
            }
        }
    }
    for (i, t) in s.tasks.iter().enumerate() {
        let task = i as TaskId;
        if t.sched == Sched::Runnable && !s.rq_locked(t.cpu) {
            for to in 0..np {
                if to != t.cpu && t.affinity & (1 << to) != 0 && !s.rq_locked(to) {
                    out.push(Step::Migrate { task, to });
                }
            }
        }
        if !s.on_cpu_settled(task) || s.cpus[t.cpu as usize].migrating.is_some() {
            continue;
        }
        task_steps(p, s, task, out);
    }
}

/// A running task may be preempted unless IRQs are off (a fork spinning under `mm.lock`) or it is
/// about to block or die (its own step performs that switch).
fn preemptible(s: &State, t: TaskId) -> bool {
    let task = s.task(t);
    !matches!(task.cid_op, Some(CidOp::ForkSpinLocked { .. }))
        && !matches!(
            task.op,
            Op::Exit { at: ExitAt::Final }
                | Op::VforkWait { .. }
                | Op::KworkerIdle
                | Op::CidWork {
                    at: WorkAt::Unset { .. }
                }
        )
}

/// The steps of a running task whose switch-in is complete.
fn task_steps(p: &Params, s: &State, task: TaskId, out: &mut Vec<Step>) {
    let t = s.task(task);
    if let Some(op) = t.cid_op {
        let m = s.op_mm(t).expect("CID op without mm");
        let ok = match op {
            CidOp::Fork { .. } | CidOp::Exit { .. } | CidOp::Work => {
                s.mutex_owner(m).is_none() && s.lock_owner(m).is_none()
            }
            CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => {
                out.push(Step::Retry { task });
                return;
            }
            CidOp::ForkGetCid { .. } => true,
            CidOp::LastUserSync => {
                let mm = &s.mms[m as usize];
                mm.irq_work.is_none() && !kworker_running_work(s, m)
            }
            CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. } => {
                walk_lock(p, s, task).is_none_or(|cpu| !s.rq_locked(cpu))
            }
        };
        if ok {
            out.push(Step::Next { task });
        }
        return;
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
            for (left, op) in [
                (l.forks, StartOp::Fork),
                (l.vforks, StartOp::Vfork),
                (l.exits, StartOp::Exit),
                (l.execs, StartOp::Exec),
                (l.exec_fails, StartOp::ExecFail),
            ] {
                if left > 0 {
                    out.push(Step::Start { task, op });
                }
            }
            if l.affinity > 0 && t.mm.is_some_and(|m| s.lock_owner(m).is_none()) {
                for cpu in 0..s.np() {
                    if t.affinity & (1 << cpu) == 0 {
                        out.push(Step::Start {
                            task,
                            op: StartOp::Affinity { cpu },
                        });
                    }
                }
            }
            if p.family == Family::Lazy618 && legacy::can_compact(s, task) {
                // task_work mm_cid_work on this return to user space.
                out.push(Step::Next { task });
            }
        }
        Op::CidWork { at } => {
            if let WorkAt::Scan { cpu } = at {
                if legacy::clear_candidate(s, t.mm.unwrap(), cpu) {
                    out.push(Step::Next { task });
                }
                out.push(Step::Fail { task });
            } else {
                out.push(Step::Next { task });
            }
        }
        Op::Fork { at, .. } => match at {
            ForkAt::Copy | ForkAt::PostFork | ForkAt::Failed => out.push(Step::Next { task }),
            ForkAt::Publish => {
                // Under the tasklist lock a pending fatal signal (de_thread of a concurrent
                // execve) fails the fork; otherwise it may fail earlier (budget) or publish.
                if !t.killed {
                    out.push(Step::Next { task });
                }
                if t.killed || s.left.fork_fails > 0 {
                    out.push(Step::Fail { task });
                }
            }
            ForkAt::Cleanup => {}
            ForkAt::Wake => {
                let Op::Fork { child, .. } = t.op else {
                    unreachable!()
                };
                let aff = s.task(child).affinity;
                for cpu in 0..s.np() {
                    if aff & (1 << cpu) != 0 && !s.rq_locked(cpu) {
                        out.push(Step::Wake { task, cpu });
                    }
                }
            }
        },
        Op::Exit { at } => match at {
            ExitAt::Cid | ExitAt::MmRelease => {
                if at == ExitAt::MmRelease && t.vfork_parent.is_some_and(|v| s.rq_locked(s.task(v).cpu)) {
                    return;
                }
                out.push(Step::Next { task })
            }
            ExitAt::Final => {
                for next in std::iter::once(None).chain(s.runqueue(t.cpu).map(Some)) {
                    out.push(Step::Switch { cpu: t.cpu, next });
                }
            }
        },
        Op::Exec { at, .. } => match at {
            ExecAt::Before | ExecAt::After => out.push(Step::Next { task }),
            ExecAt::Outcome => out.push(Step::Next { task }),
            ExecAt::DeThread => {
                let g = t.group;
                let others_dead = s.groups[g as usize]
                    .threads
                    .iter()
                    .all(|&o| o == task || s.task(o).sched == Sched::Dead);
                let parent_ok = t.vfork_parent.is_none_or(|v| !s.rq_locked(s.task(v).cpu));
                if others_dead && parent_ok {
                    out.push(Step::Next { task });
                }
            }
        },
        Op::VforkWait { .. } | Op::KworkerIdle => {
            // About to sleep: the CPU switches away (the task's own schedule()).
            for next in std::iter::once(None).chain(s.runqueue(t.cpu).map(Some)) {
                out.push(Step::Switch { cpu: t.cpu, next });
            }
        }
        Op::Work { .. } => out.push(Step::Next { task }),
    }
}

fn kworker_running_work(s: &State, m: MmId) -> bool {
    s.tasks
        .iter()
        .any(|t| t.kworker && t.op == Op::Work { mm: m } && t.cid_op.is_some())
}

/// The rq lock the walker's next visit takes (`None`: its next step takes no rq lock).
fn walk_lock(p: &Params, s: &State, walker: TaskId) -> Option<CpuId> {
    match next_visit(p, s, walker) {
        Visit::Task(t) => Some(s.task(t).cpu),
        Visit::Cpu(c) => Some(c),
        Visit::Complete => None,
    }
}

/// The next element a walk visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    /// A task (tasks→CPUs walk).
    Task(TaskId),
    /// A CPU (CPUs→tasks walk).
    Cpu(CpuId),
    /// Nothing left: `complete_transit`.
    Complete,
}

/// The element the walk of `walker` visits next, with the cursor positions that lead there.
pub fn next_visit(p: &Params, s: &State, walker: TaskId) -> Visit {
    next_visit_cursor(p, s, walker).0
}

/// As [`next_visit`], also returning the walk's program point after that visit.
fn next_visit_cursor(p: &Params, s: &State, walker: TaskId) -> (Visit, Option<CidOp>) {
    let w = s.task(walker);
    let m = s.op_mm(w).unwrap();
    match w.cid_op {
        Some(CidOp::TasksToCpus { next }) => {
            let list = s.mm(m).user_list;
            let users = list.as_slice();
            let mut i = next as usize;
            while i < users.len() && users[i] == walker {
                i += 1; // current already transferred
            }
            if i < users.len() {
                (
                    Visit::Task(users[i]),
                    Some(CidOp::TasksToCpus { next: i as u8 + 1 }),
                )
            } else {
                (Visit::Complete, None)
            }
        }
        Some(CidOp::TasksToCpusBudgeted { pass, i, j, budget }) => {
            budgeted_next(p, s, walker, m, pass, i, j, budget)
        }
        Some(CidOp::CpusToTasks { cpu, then }) => {
            if cpu < s.np() {
                (Visit::Cpu(cpu), Some(CidOp::CpusToTasks { cpu: cpu + 1, then }))
            } else {
                (Visit::Complete, None)
            }
        }
        _ => (Visit::Complete, None),
    }
}

/// The budgeted two-pass walk of ≤ 6.19.1 (designs.md B.5): pass 1 over the other threads of
/// current's group (cyclic, starting after current), pass 2 over every thread of every process
/// with this mm. Elements that need no lock to be skipped (current, other mms) are skipped within
/// the step that visits the next real element.
#[allow(clippy::too_many_arguments)]
fn budgeted_next(
    p: &Params,
    s: &State,
    walker: TaskId,
    m: MmId,
    pass: u8,
    mut i: u8,
    mut j: u8,
    budget: u8,
) -> (Visit, Option<CidOp>) {
    let w = s.task(walker);
    if pass == 1 {
        let threads = &s.groups[w.group as usize].threads;
        let me = threads.iter().position(|&x| x == walker).unwrap_or(0);
        let n = threads.len();
        // i counts positions after current: 1..n-1 (cyclic)
        while (i as usize) < n {
            let t = threads[(me + i as usize) % n];
            if t != walker {
                return (
                    Visit::Task(t),
                    Some(CidOp::TasksToCpusBudgeted {
                        pass: 1,
                        i: i + 1,
                        j: 0,
                        budget,
                    }),
                );
            }
            i += 1;
        }
        if budget == 0 {
            return (Visit::Complete, None);
        }
        i = 0;
        j = 0;
    }
    if pass <= 2 {
        let _ = p;
        while (i as usize) < s.process_list.len() {
            let g = s.process_list[i as usize];
            let threads = &s.groups[g as usize].threads;
            while (j as usize) < threads.len() {
                let t = threads[j as usize];
                if t != walker && s.task(t).mm == Some(m) {
                    return (
                        Visit::Task(t),
                        Some(CidOp::TasksToCpusBudgeted {
                            pass: 2,
                            i,
                            j: j + 1,
                            budget,
                        }),
                    );
                }
                j += 1;
            }
            i += 1;
            j = 0;
        }
    }
    (Visit::Complete, None)
}

/// Takes `step` in `s` (which must be enabled) and returns the successor.
pub fn apply(p: &Params, s: &State, step: Step) -> State {
    let mut s = *s;
    let sw = &p.sw;
    match step {
        Step::Switch { cpu, next } => context_switch(p, &mut s, cpu, next),
        Step::SchedinRetry { cpu } if s.cpus[cpu as usize].legacy_spin.is_some() => {
            legacy::get_retry(&mut s, cpu)
        }
        Step::SchedinRetry { cpu } => {
            let spin = s.cpus[cpu as usize].spin.take().expect("not spinning");
            let t = s.curr(cpu).expect("spinning without curr");
            let m = s.task(t).mm.unwrap();
            let (mm, task) = mm_and_task(&mut s, m, t);
            if let Schedin::Spin(sp) = cid::schedin_retry(mm, task, cpu, spin, sw) {
                s.cpus[cpu as usize].spin = Some(sp);
            }
        }
        Step::Migrate { task, to } => match p.family {
            Family::Lazy618 => legacy::migrate(&mut s, task, to),
            _ => s.task_mut(task).cpu = to,
        },
        Step::IrqWork { cpu } => {
            // mm_cid_irq_work: schedule_work(&mm->work); the kworker is woken on this CPU.
            for m in 0..s.mms.len() {
                if s.mms[m].irq_work == Some(cpu) {
                    s.mms[m].irq_work = None;
                    s.mms[m].work_pending = true;
                }
            }
            if let Some(k) = s.tasks.iter().position(|t| t.kworker) {
                let k = &mut s.tasks[k];
                if k.sched == Sched::Sleeping {
                    k.sched = Sched::Runnable;
                    k.cpu = cpu;
                    k.op = Op::KworkerIdle;
                }
                if k.op == Op::KworkerIdle {
                    if let Some(m) = s.mms.iter().position(|mm| mm.work_pending) {
                        k.op = Op::Work { mm: m as MmId };
                    }
                }
            }
        }
        Step::Start { task, op } => start(p, &mut s, task, op),
        Step::Next { task } => next(p, &mut s, task),
        Step::Fail { task } if matches!(s.task(task).op, Op::CidWork { .. }) => {
            legacy::compaction_skip(&mut s, task)
        }
        Step::Fail { task } => fail(&mut s, task),
        Step::Wake { task, cpu } => {
            let Op::Fork { child, vfork, .. } = s.task(task).op else {
                unreachable!()
            };
            let c = s.task_mut(child);
            c.sched = Sched::Runnable;
            c.cpu = cpu;
            s.task_mut(task).op = if vfork { Op::VforkWait { child } } else { Op::User };
        }
        Step::Retry { task } => {
            let t = s.task(task);
            let m = s.op_mm(t).unwrap();
            let cpu = t.cpu;
            match t.cid_op {
                Some(CidOp::ForkSpinLocked { t: child, first_user }) => {
                    let (mm, c) = mm_and_task(&mut s, m, child);
                    if cid::fork_cid_retry(mm, c, cpu, first_user) {
                        s.task_mut(task).cid_op = None;
                        sub_op_done(&mut s, task);
                    }
                }
                Some(CidOp::ForkSpinMutex { t: child }) => {
                    let (mm, c) = mm_and_task(&mut s, m, child);
                    if cid::fork_cid_retry(mm, c, cpu, false) {
                        s.task_mut(task).cid_op = None;
                        sub_op_done(&mut s, task);
                    }
                }
                _ => unreachable!("retry without spin"),
            }
        }
    }
    s
}

/// Splits the borrow: mm `m`'s CID state and task `t`'s CID state.
fn mm_and_task(s: &mut State, m: MmId, t: TaskId) -> (&mut cid::MmCid, &mut cid::TaskCid) {
    (&mut s.mms[m as usize].cid, &mut s.tasks[t as usize].cid)
}

/// Task `a`'s and task `b`'s CID states together with mm `m`'s (`a != b`).
fn mm_and_two(
    s: &mut State,
    m: MmId,
    a: TaskId,
    b: TaskId,
) -> (&mut cid::MmCid, &mut cid::TaskCid, &mut cid::TaskCid) {
    assert_ne!(a, b);
    let (lo, hi) = (a.min(b) as usize, a.max(b) as usize);
    let (x, y) = s.tasks.split_at_mut(hi);
    let (tl, th) = (&mut x[lo].cid, &mut y[0].cid);
    let (ta, tb) = if a < b { (tl, th) } else { (th, tl) };
    (&mut s.mms[m as usize].cid, ta, tb)
}

/// `__schedule()` + `context_switch()` on `cpu`.
fn context_switch(p: &Params, s: &mut State, cpu: CpuId, next: Option<TaskId>) {
    if p.family != Family::Rewrite {
        let prev = s.curr(cpu);
        if let Some(prev) = prev {
            let pt = s.task_mut(prev);
            pt.sched = match pt.op {
                Op::Exit { at: ExitAt::Final } => Sched::Dead,
                Op::VforkWait { .. } | Op::KworkerIdle => Sched::Sleeping,
                _ => Sched::Runnable,
            };
        }
        if let Some(n) = next {
            s.task_mut(n).sched = Sched::Running;
        }
        return legacy::switch(p.family, s, cpu, prev, next);
    }
    if let Some(prev) = s.curr(cpu) {
        let pt = s.task_mut(prev);
        pt.sched = match pt.op {
            Op::Exit { at: ExitAt::Final } => Sched::Dead,
            Op::VforkWait { .. } | Op::KworkerIdle => Sched::Sleeping,
            _ => Sched::Runnable,
        };
        // schedout(prev)
        if let Some(m) = s.task(prev).mm {
            let (mm, t) = mm_and_task(s, m, prev);
            cid::schedout(mm, t, cpu, &p.sw);
        }
    }
    if let Some(n) = next {
        s.task_mut(n).sched = Sched::Running;
        if let Some(m) = s.task(n).mm {
            let (mm, t) = mm_and_task(s, m, n);
            if let Schedin::Spin(sp) = cid::schedin(mm, t, cpu, &p.sw) {
                s.cpus[cpu as usize].spin = Some(sp);
            }
        }
    }
}

/// A task in user space starts an operation (charging its budget).
fn start(p: &Params, s: &mut State, task: TaskId, op: StartOp) {
    let killed = s.task(task).killed;
    match op {
        StartOp::Fork | StartOp::Vfork => {
            let vfork = op == StartOp::Vfork;
            if vfork {
                s.left.vforks -= 1;
            } else {
                s.left.forks -= 1;
            }
            let child = s.tasks.len() as TaskId;
            // The child's slot is reserved now; the task itself is created by the copy step.
            let t = *s.task(task);
            s.tasks.push(Task {
                kworker: false,
                mm: None,
                group: t.group,
                sched: Sched::New,
                cpu: t.cpu,
                affinity: t.affinity,
                cid: cid::TaskCid::default(),
                op: Op::User,
                cid_op: None,
                killed: false,
                vfork_parent: None,
                legacy: LegacyTask::new(p.family),
            });
            s.task_mut(task).op = Op::Fork {
                child,
                vfork,
                at: ForkAt::Copy,
            };
        }
        StartOp::Exit => {
            if !killed {
                s.left.exits -= 1;
            }
            s.task_mut(task).op = Op::Exit { at: ExitAt::Cid };
        }
        StartOp::Exec => {
            s.left.execs -= 1;
            s.task_mut(task).op = Op::Exec {
                at: ExecAt::Before,
                ok: true,
            };
        }
        StartOp::ExecFail => {
            s.left.exec_fails -= 1;
            s.task_mut(task).op = Op::Exec {
                at: ExecAt::Before,
                ok: false,
            };
        }
        StartOp::Affinity { cpu } => {
            s.left.affinity -= 1;
            let t = s.task_mut(task);
            t.affinity |= 1 << cpu;
            let (aff, this_cpu, m) = (t.affinity, t.cpu, t.mm);
            if p.family != Family::Rewrite {
                if let Some(m) = m {
                    legacy::affinity(p.family, s, m, aff);
                }
                return;
            }
            if let Some(m) = m {
                if cid::update_cpus_allowed(&mut s.mms[m as usize].cid, aff)
                    && s.mms[m as usize].irq_work.is_none()
                {
                    s.mms[m as usize].irq_work = Some(this_cpu);
                }
            }
        }
    }
}

/// The failure branch of fork: a failure point after `copy_mm` (budget `fork_fails`), or a fatal
/// signal found under the tasklist lock (free).
fn fail(s: &mut State, task: TaskId) {
    let t = *s.task(task);
    let Op::Fork {
        child,
        vfork,
        at: ForkAt::Publish,
    } = t.op
    else {
        unreachable!("no failure branch here")
    };
    if !t.killed {
        s.left.fork_fails -= 1;
    }
    s.task_mut(task).op = Op::Fork {
        child,
        vfork,
        at: ForkAt::Failed,
    };
}

/// The next step of the task's operation.
fn next(p: &Params, s: &mut State, task: TaskId) {
    if s.task(task).cid_op.is_some() {
        return cid_step(p, s, task);
    }
    let t = *s.task(task);
    if s.cpus[t.cpu as usize].migrating.is_some_and(|(m, _)| m == task) {
        return legacy::migrate_next(s, t.cpu);
    }
    if p.family != Family::Rewrite {
        match t.op {
            Op::User => return legacy::compaction_start(s, task),
            Op::CidWork { .. } => return legacy::compaction_next(s, task),
            _ => {}
        }
    }
    let lg = p.family != Family::Rewrite;
    match t.op {
        Op::Fork { child, vfork, at } => match at {
            ForkAt::Copy => {
                // dup_task_struct … copy_signal … copy_mm: the child exists, shares the mm.
                let group = if vfork {
                    s.groups.push(Group::default());
                    (s.groups.len() - 1) as GroupId
                } else {
                    t.group
                };
                let c = s.task_mut(child);
                c.mm = t.mm;
                c.group = group;
                if vfork {
                    c.vfork_parent = Some(task);
                }
                s.task_mut(task).op = Op::Fork {
                    child,
                    vfork,
                    at: ForkAt::Publish,
                };
                if lg {
                    legacy::fork_copy(p.family, s, child);
                } else if p.sw.registration == Registration::CopyMm {
                    s.task_mut(task).cid_op = Some(CidOp::Fork { t: child });
                }
            }
            ForkAt::Publish => {
                // Under the tasklist lock: attach to the thread list, or a new group to the
                // process list. No failure is possible after this point.
                let g = s.task(child).group;
                s.groups[g as usize].threads.push(child);
                if vfork {
                    s.process_list.push(g);
                }
                s.task_mut(task).op = Op::Fork {
                    child,
                    vfork,
                    at: ForkAt::PostFork,
                };
            }
            ForkAt::PostFork => {
                s.task_mut(task).op = Op::Fork {
                    child,
                    vfork,
                    at: ForkAt::Wake,
                };
                if !lg && p.sw.registration == Registration::PostFork {
                    s.task_mut(task).cid_op = Some(CidOp::Fork { t: child });
                }
            }
            ForkAt::Failed => {
                // bad_fork_cleanup_mm: (S2) exit_cid(child) in the forker's context; then the
                // child is freed, never published, never run.
                s.task_mut(task).op = Op::Fork {
                    child,
                    vfork,
                    at: ForkAt::Cleanup,
                };
                if lg {
                    legacy::fork_failed(p.family, s, child);
                    sub_op_done(s, task);
                } else if p.sw.failed_fork_exit_cid {
                    s.task_mut(task).cid_op = Some(CidOp::Exit { t: child });
                } else {
                    sub_op_done(s, task);
                }
            }
            ForkAt::Wake | ForkAt::Cleanup => unreachable!("not a next step"),
        },
        Op::Exit { at } => match at {
            ExitAt::Cid => {
                s.task_mut(task).op = Op::Exit {
                    at: ExitAt::MmRelease,
                };
                if lg {
                    // sched_mm_cid_exit_signals, before PF_EXITING.
                    legacy::exit_signals(p.family, s, task);
                } else if t.mm.is_some() {
                    s.task_mut(task).cid_op = Some(CidOp::Exit { t: task });
                }
            }
            ExitAt::MmRelease => {
                if lg {
                    legacy::exit_mm(p.family, s, task);
                }
                vfork_release(s, task);
                s.task_mut(task).op = Op::Exit { at: ExitAt::Final };
            }
            ExitAt::Final => unreachable!("the final schedule is a switch"),
        },
        Op::Exec { at, ok } => match at {
            ExecAt::Before => {
                s.task_mut(task).op = Op::Exec {
                    at: ExecAt::Outcome,
                    ok,
                };
                if lg {
                    // sched_mm_cid_before_execve: the exit_signals code on the old mm.
                    legacy::exit_signals(p.family, s, task);
                } else {
                    s.task_mut(task).cid_op = Some(CidOp::Exit { t: task });
                }
            }
            ExecAt::Outcome if !ok => {
                // exec_binprm fails: straight to sched_mm_cid_after_execve on the old mm.
                s.task_mut(task).op = Op::Exec {
                    at: ExecAt::After,
                    ok,
                };
            }
            ExecAt::Outcome => {
                // exec_binprm succeeds: begin_new_exec → de_thread kills the other threads.
                let g = t.group;
                for o in s.groups[g as usize].threads {
                    if o != task && s.task(o).sched != Sched::Dead {
                        let ot = s.task_mut(o);
                        ot.killed = true;
                        if ot.sched == Sched::Sleeping {
                            ot.sched = Sched::Runnable; // the vfork wait is killable
                            ot.op = Op::User;
                        }
                    }
                }
                s.task_mut(task).op = Op::Exec {
                    at: ExecAt::DeThread,
                    ok,
                };
            }
            ExecAt::DeThread => {
                // exec_mmap: switch to a fresh mm (mm_init_cid with current's affinity).
                let np = s.np();
                s.mms.push(Mm {
                    cid: cid::MmCid::new(np, t.affinity),
                    legacy: legacy::new_mm(p.family, np, t.affinity),
                    irq_work: None,
                    work_pending: false,
                });
                let new = (s.mms.len() - 1) as MmId;
                s.task_mut(task).mm = Some(new);
                if lg {
                    legacy::exec_mmap(p.family, s, t.mm, new);
                }
                vfork_release(s, task);
                s.task_mut(task).op = Op::Exec {
                    at: ExecAt::After,
                    ok,
                };
            }
            ExecAt::After => {
                // sched_mm_cid_after_execve: fork_cid(current), then rseq_force_update.
                s.task_mut(task).op = Op::User;
                if lg {
                    legacy::after_execve(p.family, s, task);
                } else {
                    s.task_mut(task).cid_op = Some(CidOp::Fork { t: task });
                }
            }
        },
        Op::Work { .. } => {
            s.task_mut(task).cid_op = Some(CidOp::Work);
        }
        Op::User | Op::VforkWait { .. } | Op::KworkerIdle | Op::CidWork { .. } => {
            unreachable!("no next step")
        }
    }
}

/// `mm_release` → `complete_vfork_done`: wake the vfork parent (takes its rq lock).
fn vfork_release(s: &mut State, child: TaskId) {
    let Some(parent) = s.task(child).vfork_parent else {
        return;
    };
    s.task_mut(child).vfork_parent = None;
    let pt = s.task_mut(parent);
    if matches!(pt.op, Op::VforkWait { .. }) {
        pt.op = Op::User;
        if pt.sched == Sched::Sleeping {
            pt.sched = Sched::Runnable;
        }
    }
}

/// One step of the task's CID sub-operation.
fn cid_step(p: &Params, s: &mut State, task: TaskId) {
    let sw = &p.sw;
    let t = *s.task(task);
    let m = s.op_mm(&t).unwrap();
    let cpu = t.cpu;
    let op = t.cid_op.unwrap();
    match op {
        CidOp::Fork { t: child } => {
            let r = if child == task {
                let (mm, c) = mm_and_task(s, m, task);
                cid::fork_cid_locked(mm, c, task, None, cpu, sw)
            } else {
                let (mm, c, cur) = mm_and_two(s, m, child, task);
                cid::fork_cid_locked(mm, c, child, Some(cur), cpu, sw)
            };
            s.task_mut(task).cid_op = match r {
                ForkCid::Done => None,
                ForkCid::SpinLocked { first_user } => Some(CidOp::ForkSpinLocked { t: child, first_user }),
                ForkCid::FixupTasksToCpus => Some(start_tasks_to_cpus(p, s, m)),
                ForkCid::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::ForkGetCid(child),
                }),
            };
            if s.task(task).cid_op.is_none() {
                sub_op_done(s, task);
            }
        }
        CidOp::ForkGetCid { t: child } => {
            let (mm, c) = mm_and_task(s, m, child);
            s.task_mut(task).cid_op = match cid::fork_cid_after_fixup(mm, c) {
                Alloc::Got(_) => None,
                Alloc::Spin => Some(CidOp::ForkSpinMutex { t: child }),
            };
            if s.task(task).cid_op.is_none() {
                sub_op_done(s, task);
            }
        }
        CidOp::Exit { t: who } => {
            let r = if who == task {
                let (mm, c) = mm_and_task(s, m, task);
                cid::exit_cid_locked(mm, c, task, None, true, cpu, sw)
            } else {
                let uses = s.task(task).mm == Some(m);
                let (mm, c, cur) = mm_and_two(s, m, who, task);
                cid::exit_cid_locked(mm, c, who, Some(cur), uses, cpu, sw)
            };
            s.task_mut(task).cid_op = match r {
                ExitCid::NotUser | ExitCid::Done => None,
                ExitCid::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::Unlock,
                }),
                ExitCid::LastUser => Some(CidOp::LastUserSync),
            };
            if s.task(task).cid_op.is_none() {
                sub_op_done(s, task);
            }
        }
        CidOp::LastUserSync => {
            // irq_work_sync(); cancel_work_sync(): nothing can requeue, users == 0.
            s.mms[m as usize].work_pending = false;
            s.task_mut(task).cid_op = None;
            sub_op_done(s, task);
        }
        CidOp::Work => {
            let r = if s.mms[m as usize].work_pending {
                s.mms[m as usize].work_pending = false;
                cid::work_locked(&mut s.mms[m as usize].cid, sw)
            } else {
                Work::Done
            };
            s.task_mut(task).cid_op = match r {
                Work::Done => None,
                Work::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::Unlock,
                }),
            };
            if s.task(task).cid_op.is_none() {
                sub_op_done(s, task);
            }
        }
        CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => unreachable!("spins retry"),
        CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. } => {
            walk_step(p, s, task, m)
        }
    }
}

/// The program point that starts `fixup_tasks_to_cpus` for this design (S3).
fn start_tasks_to_cpus(p: &Params, s: &State, m: MmId) -> CidOp {
    let users = s.mm(m).users;
    match p.sw.task_walk {
        TaskWalk::UserList => CidOp::TasksToCpus { next: 0 },
        // "users - 2": current has transferred; the incoming child is counted but not visible.
        // budget 0: no walk at all.
        TaskWalk::Budgeted2 => {
            let budget = users.saturating_sub(2);
            CidOp::TasksToCpusBudgeted {
                pass: if budget == 0 { 3 } else { 1 },
                i: 1,
                j: 0,
                budget,
            }
        }
        TaskWalk::Budgeted1 | TaskWalk::Budgeted1NoEarlyReturn => CidOp::TasksToCpusBudgeted {
            pass: 1,
            i: 1,
            j: 0,
            budget: users.saturating_sub(1),
        },
    }
}

/// One step of a fix-up walk: a visit (one rq lock) or `complete_transit`.
fn walk_step(p: &Params, s: &mut State, walker: TaskId, m: MmId) {
    let sw = &p.sw;
    let op = s.task(walker).cid_op.unwrap();
    if let CidOp::TasksToCpusBudgeted { pass: 3, .. } = op {
        return complete(p, s, walker, m, Mode::PER_CPU);
    }
    let (visit, cursor) = next_visit_cursor(p, s, walker);
    match visit {
        Visit::Task(t) => {
            let tt = s.task(t);
            let running_on = (tt.sched == Sched::Running).then_some(tt.cpu);
            let mut next_op = cursor;
            let (mm, task) = mm_and_task(s, m, t);
            if let Some(CidOp::TasksToCpusBudgeted { pass, i, j, budget }) = cursor {
                let counted = cid::fixup_one(mm, task, running_on, sw);
                let budget = if counted { budget.saturating_sub(1) } else { budget };
                let early =
                    pass == 2 && budget == 0 && counted && sw.task_walk != TaskWalk::Budgeted1NoEarlyReturn;
                next_op = Some(if early {
                    CidOp::TasksToCpusBudgeted {
                        pass: 3,
                        i,
                        j,
                        budget,
                    }
                } else {
                    CidOp::TasksToCpusBudgeted { pass, i, j, budget }
                });
            } else {
                cid::fixup_tasks_to_cpus_visit(mm, task, running_on, sw);
            }
            s.task_mut(walker).cid_op = next_op;
        }
        Visit::Cpu(c) => {
            let curr = s
                .curr(c)
                .filter(|&t| s.task(t).mm == Some(m) && s.task(t).cid.active);
            let mm = &mut s.mms[m as usize].cid;
            match curr {
                Some(t) => cid::fixup_cpus_to_tasks_visit(mm, c, Some(&mut s.tasks[t as usize].cid), sw),
                None => cid::fixup_cpus_to_tasks_visit(mm, c, None, sw),
            }
            s.task_mut(walker).cid_op = cursor;
        }
        Visit::Complete => {
            let mode = if matches!(op, CidOp::CpusToTasks { .. }) {
                Mode::PER_TASK
            } else {
                Mode::PER_CPU
            };
            complete(p, s, walker, m, mode)
        }
    }
}

/// `mm_cid_complete_transit`, then whatever the initiator does next.
fn complete(p: &Params, s: &mut State, walker: TaskId, m: MmId, mode: Mode) {
    let op = s.task(walker).cid_op.unwrap();
    cid::complete_transit(&mut s.mms[m as usize].cid, mode, &p.sw);
    s.task_mut(walker).cid_op = match op {
        CidOp::CpusToTasks {
            then: AfterCpusToTasks::ForkGetCid(child),
            ..
        } => Some(CidOp::ForkGetCid { t: child }),
        _ => None,
    };
    if s.task(walker).cid_op.is_none() {
        // The initiator releases mutex and continues its operation.
        sub_op_done(s, walker);
    }
}

/// A CID sub-operation returned (its locks released). The operation's phase was advanced when the
/// sub-operation started, except for the two that end here: a failed fork's cleanup frees the
/// child; the work function's kworker goes idle.
fn sub_op_done(s: &mut State, task: TaskId) {
    match s.task(task).op {
        Op::Fork {
            child,
            at: ForkAt::Cleanup,
            ..
        } => {
            let c = s.task_mut(child);
            c.sched = Sched::Dead;
            c.mm = None;
            s.task_mut(task).op = Op::User;
        }
        Op::Work { .. } => s.task_mut(task).op = Op::KworkerIdle,
        _ => {}
    }
}

/// Is the mm's CID state where the kernel would leave it between operations (no walk, no spin)?
pub fn quiescent(s: &State, m: MmId) -> bool {
    !s.walking(m) && s.mutex_owner(m).is_none()
}
