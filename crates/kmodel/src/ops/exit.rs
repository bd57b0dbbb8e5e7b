//! `do_exit()`.
//!
//! The steps, and why the model cuts there:
//! 1. `exit` (start): the task enters the kernel (a task killed by `de_thread` starts it for free).
//! 2. `do_exit`: the CID exit (7.0: `sched_mm_cid_exit`, under `mm.mutex` and `mm.lock`; before:
//!    the `exit_signals` hook), the first CID code `do_exit` runs.
//! 3. `exit_mm_release`: `exit_mm` drops the mm; `mm_release` → `complete_vfork_done` wakes a
//!    vfork parent (which takes the parent's rq lock).
//! 4. The final `schedule()` (`do_task_dead`): a context switch that leaves the task dead.

use mmcid_cid::TaskId;

use crate::family::Family;
use crate::ops::{Params, Step, switch};
use crate::state::*;

/// The steps of an exiting task at phase `at`.
pub fn steps<F: Family>(s: &State<F>, task: TaskId, at: ExitAt, out: &mut Vec<Step>) {
    let t = s.task(task);
    match at {
        ExitAt::Cid => out.push(Step::Next { task }),
        ExitAt::MmRelease => {
            // Waking the vfork parent takes its rq lock.
            if !t.vfork_parent.is_some_and(|v| s.rq_locked(s.task(v).cpu)) {
                out.push(Step::Next { task })
            }
        }
        ExitAt::Final => switch::schedule_away(s, task, out),
    }
}

/// `exit`: charge the budget (not for a task killed by `de_thread`).
pub fn start<F: Family>(s: &mut State<F>, task: TaskId) {
    if !s.task(task).killed {
        s.left.exits -= 1;
    }
    s.task_mut(task).op = Op::Exit { at: ExitAt::Cid };
}

/// The next step of `do_exit`.
pub fn next<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, at: ExitAt) {
    match at {
        ExitAt::Cid => {
            s.task_mut(task).op = Op::Exit {
                at: ExitAt::MmRelease,
            };
            F::exit_start(p, s, task);
        }
        ExitAt::MmRelease => {
            F::exit_mm(p, s, task);
            vfork_release(s, task);
            s.task_mut(task).op = Op::Exit { at: ExitAt::Final };
        }
        ExitAt::Final => unreachable!("the final schedule is a switch"),
    }
}

/// `mm_release` → `complete_vfork_done`: wake the vfork parent (takes its rq lock).
pub fn vfork_release<F: Family>(s: &mut State<F>, child: TaskId) {
    let Some(parent) = s.task(child).vfork_parent else {
        return;
    };
    s.task_mut(child).vfork_parent = None;
    let mut pt = s.task_mut(parent);
    if matches!(pt.op, Op::VforkWait { .. }) {
        pt.op = Op::User;
        if pt.sched == Sched::Sleeping {
            pt.sched = Sched::Runnable;
        }
    }
}
