//! `execve()`: `bprm_execve` → `exec_binprm` → `begin_new_exec`.
//!
//! The steps, and why the model cuts there (`docs/kernel-reading.md` section 1 has the kernel
//! lines):
//! 1. `execve` / `execve_fail` (start): whether `exec_binprm` will succeed is chosen here.
//! 2. `bprm_execve`: `sched_mm_cid_before_execve(current)` (= the CID exit on the old mm).
//! 3. The outcome: on failure (`exec_binprm_fails`), straight to `after_execve` on the old mm;
//!    on success `begin_new_exec` → `de_thread` sends the other threads a fatal signal.
//! 4. `exec_mmap`: once the other threads are dead, switch to a fresh mm; a vfork parent is
//!    released (`exec_mm_release`).
//! 5. `sched_mm_cid_after_execve(current)` on the new or the old mm.

use mmcid_cid::TaskId;

use crate::family::Family;
use crate::ops::exit::vfork_release;
use crate::ops::{Params, Step};
use crate::state::*;

/// The steps of a task in execve at phase `at`.
pub fn steps<F: Family>(s: &State<F>, task: TaskId, at: ExecAt, out: &mut Vec<Step>) {
    let t = s.task(task);
    match at {
        ExecAt::Before | ExecAt::Outcome | ExecAt::After => out.push(Step::Next { task }),
        ExecAt::DeThread => {
            let others_dead = s.groups[t.group as usize]
                .threads
                .iter()
                .all(|&o| o == task || s.task(o).sched == Sched::Dead);
            let parent_ok = t.vfork_parent.is_none_or(|v| !s.rq_locked(s.task(v).cpu));
            if others_dead && parent_ok {
                out.push(Step::Next { task });
            }
        }
    }
}

/// `execve`: charge the budget; `ok` says whether `exec_binprm` will succeed.
pub fn start<F: Family>(s: &mut State<F>, task: TaskId, ok: bool) {
    if ok {
        s.left.execs -= 1;
    } else {
        s.left.exec_fails -= 1;
    }
    s.task_mut(task).op = Op::Exec {
        at: ExecAt::Before,
        ok,
    };
}

/// The next step of an execve.
pub fn next<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, at: ExecAt, ok: bool) {
    let set = |s: &mut State<F>, at| s.task_mut(task).op = Op::Exec { at, ok };
    match at {
        ExecAt::Before => {
            set(s, ExecAt::Outcome);
            F::before_execve(p, s, task);
        }
        // exec_binprm fails: straight to sched_mm_cid_after_execve on the old mm.
        ExecAt::Outcome if !ok => set(s, ExecAt::After),
        ExecAt::Outcome => {
            // exec_binprm succeeds: begin_new_exec → de_thread kills the other threads.
            let g = s.task(task).group;
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
            set(s, ExecAt::DeThread);
        }
        ExecAt::DeThread => {
            // exec_mmap: switch to a fresh mm (mm_init_cid with current's affinity).
            let t = *s.task(task);
            s.mms.push(Mm::new(s.np(), t.affinity));
            let new = (s.mms.len() - 1) as MmId;
            s.task_mut(task).mm = Some(new);
            F::exec_mmap(p, s, task, t.mm, new);
            vfork_release(s, task);
            set(s, ExecAt::After);
        }
        ExecAt::After => {
            // sched_mm_cid_after_execve: fork_cid(current), then rseq_force_update.
            s.task_mut(task).op = Op::User;
            F::after_execve(p, s, task);
        }
    }
}
