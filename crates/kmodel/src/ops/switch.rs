//! `__schedule()` and load balancing: context switches, preemption, migration.
//!
//! A context switch is one step under the CPU's rq lock: `rq->curr = next`, then
//! `switch_mm_cid(prev, next)` (the family's [`Family::switch`]). If the CID code cannot finish
//! (7.0's `get_cid` finds no free CID, 6.18's `mm_cid_get` waits), the CPU stays inside the
//! switch holding its rq lock, and each further piece is a `SchedinRetry` step of that CPU.
//!
//! Preemption is a switch at any point where the running task is preemptible; a task that is
//! about to block or die switches away by its own step ([`schedule_away`]). Migration moves a
//! runnable task between two CPUs whose rq locks are free (`sched_exec` is covered by it).

use mmcid_cid::{CpuId, TaskId};

use crate::family::Family;
use crate::ops::{Params, Step};
use crate::state::*;

/// A running task may be preempted unless IRQs are off (its CID operation keeps them off) or it
/// is about to block or die (its own step performs that switch).
pub fn preemptible<F: Family>(s: &State<F>, t: TaskId) -> bool {
    let task = s.task(t);
    !task.cid_op.is_some_and(|op| F::irqs_off(&op))
        && !matches!(
            task.op,
            Op::Exit { at: ExitAt::Final } | Op::VforkWait { .. } | Op::KworkerIdle
        )
}

/// The switches `cpu` may make now (its rq lock is free): to idle, or to a task of its run
/// queue, if its current task is preemptible.
pub fn cpu_steps<F: Family>(s: &State<F>, cpu: CpuId, out: &mut Vec<Step>) {
    let curr = s.curr(cpu);
    if curr.is_none_or(|t| preemptible(s, t)) {
        if curr.is_some() {
            out.push(Step::Switch { cpu, next: None });
        }
        for t in s.runqueue(cpu) {
            out.push(Step::Switch { cpu, next: Some(t) });
        }
    }
}

/// A running task about to sleep or die calls `schedule()` itself: its CPU switches to idle or to
/// a task of its run queue.
pub fn schedule_away<F: Family>(s: &State<F>, task: TaskId, out: &mut Vec<Step>) {
    let cpu = s.task(task).cpu;
    for next in std::iter::once(None).chain(s.runqueue(cpu).map(Some)) {
        out.push(Step::Switch { cpu, next });
    }
}

/// The migrations of a runnable task (`t`, task `task` of `s`): to every other allowed CPU, both
/// rq locks free.
pub fn migrations<F: Family>(s: &State<F>, task: TaskId, t: &Task<F>, out: &mut Vec<Step>) {
    if t.sched == Sched::Runnable && !s.rq_locked(t.cpu) {
        for to in 0..s.np() {
            if to != t.cpu && t.affinity & (1 << to) != 0 && !s.rq_locked(to) {
                out.push(Step::Migrate { task, to });
            }
        }
    }
}

/// `__schedule()` + `context_switch()` on `cpu`.
pub fn context_switch<F: Family>(p: &Params, s: &mut State<F>, cpu: CpuId, next: Option<TaskId>) {
    let prev = s.curr(cpu);
    if let Some(prev) = prev {
        let mut pt = s.task_mut(prev);
        pt.sched = match pt.op {
            Op::Exit { at: ExitAt::Final } => Sched::Dead,
            Op::VforkWait { .. } | Op::KworkerIdle => Sched::Sleeping,
            _ => Sched::Runnable,
        };
    }
    if let Some(n) = next {
        s.task_mut(n).sched = Sched::Running;
    }
    F::switch(p, s, cpu, prev, next);
}

/// Load balancing: `set_task_cpu(task, to)`, then whatever the family does on arrival.
pub fn migrate<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, to: CpuId) {
    let from = s.task(task).cpu;
    s.task_mut(task).cpu = to;
    F::migrated(p, s, task, from, to);
}
