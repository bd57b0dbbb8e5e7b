//! The fix-up walks, one visit per step: the kernel's `mm_cid_fixup_tasks_to_cpus` (7.0: over
//! `mm.user_list`; ≤ 6.19.1: the budgeted two-pass walk over the thread and process lists) and
//! `mm_cid_fixup_cpus_to_tasks`, then `mm_cid_complete_transit`.
//!
//! Why one visit per step: each visit takes the rq lock of the task's (or the CPU's) CPU, so a
//! CPU spinning in schedin with that lock held blocks the walk exactly there, which is how the
//! 2026 stalls arise. The walk's cursor lives in the walker's [`CidOp`]; the visit itself is
//! `mmcid_cid::fixup_tasks_to_cpus_visit` / `fixup_one` / `fixup_cpus_to_tasks_visit`.

use mmcid_cid::{self as cid, CpuId, Mode, TaskId, TaskWalk};

use crate::family::Rewrite;
use crate::ops::Params;
use crate::rewrite::cid_op::{AfterCpusToTasks, CidOp, continue_with};
use crate::state::*;

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

/// The rq lock the walker's next visit takes (`None`: its next step takes no rq lock).
pub fn lock(p: &Params, s: &State<Rewrite>, walker: TaskId) -> Option<CpuId> {
    match next_visit(p, s, walker) {
        Visit::Task(t) => Some(s.task(t).cpu),
        Visit::Cpu(c) => Some(c),
        Visit::Complete => None,
    }
}

/// The element the walk of `walker` visits next.
pub fn next_visit(p: &Params, s: &State<Rewrite>, walker: TaskId) -> Visit {
    next_visit_cursor(p, s, walker).0
}

/// As [`next_visit`], also returning the walk's program point after that visit.
fn next_visit_cursor(p: &Params, s: &State<Rewrite>, walker: TaskId) -> (Visit, Option<CidOp>) {
    let w = s.task(walker);
    let m = s.op_mm(w).expect("walker without mm");
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
    _p: &Params,
    s: &State<Rewrite>,
    walker: TaskId,
    m: MmId,
    pass: u8,
    mut i: u8,
    mut j: u8,
    budget: u8,
) -> (Visit, Option<CidOp>) {
    let w = s.task(walker);
    if pass == 1 {
        let threads = s.threads(w.group);
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
        while (i as usize) < s.process_list.len() {
            let g = s.process_list[i as usize];
            let threads = s.threads(g);
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

/// The program point that starts `fixup_tasks_to_cpus` for this design (S3).
pub fn start_tasks_to_cpus(p: &Params, s: &State<Rewrite>, m: MmId) -> CidOp {
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
pub fn step(p: &Params, s: &mut State<Rewrite>, walker: TaskId, m: MmId) {
    let sw = &p.sw;
    let op = s.task(walker).cid_op.expect("walking");
    if let CidOp::TasksToCpusBudgeted { pass: 3, .. } = op {
        return complete(p, s, walker, m, Mode::PER_CPU);
    }
    let (visit, cursor) = next_visit_cursor(p, s, walker);
    match visit {
        Visit::Task(t) => {
            let tt = s.task(t);
            let running_on = (tt.sched == Sched::Running).then_some(tt.cpu);
            let mut next_op = cursor;
            if let Some(CidOp::TasksToCpusBudgeted { pass, i, j, budget }) = cursor {
                let counted = s.with_mm_task(m, t, |mm, task| cid::fixup_one(mm, task, running_on, sw));
                let budget = if counted { budget.saturating_sub(1) } else { budget };
                let early =
                    pass == 2 && budget == 0 && counted && sw.task_walk != TaskWalk::Budgeted1NoEarlyReturn;
                next_op = Some(CidOp::TasksToCpusBudgeted {
                    pass: if early { 3 } else { pass },
                    i,
                    j,
                    budget,
                });
            } else {
                s.with_mm_task(m, t, |mm, task| {
                    cid::fixup_tasks_to_cpus_visit(mm, task, running_on, sw)
                });
            }
            s.task_mut(walker).cid_op = next_op;
        }
        Visit::Cpu(c) => {
            let curr = s
                .curr(c)
                .filter(|&t| s.task(t).mm == Some(m) && s.task(t).cid.active);
            match curr {
                Some(t) => s.with_mm_task(m, t, |mm, task| {
                    cid::fixup_cpus_to_tasks_visit(mm, c, Some(task), sw)
                }),
                None => cid::fixup_cpus_to_tasks_visit(&mut s.mm_mut(m).cid, c, None, sw),
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
fn complete(p: &Params, s: &mut State<Rewrite>, walker: TaskId, m: MmId, mode: Mode) {
    let op = s.task(walker).cid_op.expect("walking");
    cid::complete_transit(&mut s.mm_mut(m).cid, mode, &p.sw);
    let next = match op {
        CidOp::CpusToTasks {
            then: AfterCpusToTasks::ForkGetCid(child),
            ..
        } => Some(CidOp::ForkGetCid { t: child }),
        CidOp::CpusToTasks {
            then: AfterCpusToTasks::ForkLocked(child),
            ..
        } => Some(CidOp::ForkLocked { t: child }),
        // The end of sched_mm_cid_fork's tasks->CPUs walk.
        CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } => {
            crate::rewrite::cid_op::fork_cid_done(p, s, walker, false)
        }
        _ => None,
    };
    // Without a next step the initiator releases mutex and continues its operation.
    continue_with(s, walker, next);
}
