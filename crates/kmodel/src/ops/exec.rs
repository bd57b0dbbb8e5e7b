//! `execve()` / `execveat()`: `do_execveat_common` → `bprm_execve` → `exec_binprm` →
//! `begin_new_exec`. `docs/kernel-reading.md` sections 1–4 quote the kernel lines (7.0,
//! fs/exec.c); each rule below names the function it comes from.
//!
//! The steps, and why the model cuts there:
//! 1. `execve` / `execve_fail` / `execveat_check` (start): `prepare_bprm_creds` takes the thread
//!    group's `signal->cred_guard_mutex`, then `check_unsafe_exec` decides `fs->in_exec`.
//!    Everything `do_execveat_common` does before (`alloc_bprm`, `copy_strings`) has no CID effect,
//!    and its failures return before the window; how the exec ends is chosen here
//!    ([`ExecKind`]).
//! 2. `bprm_execve`: `sched_mm_cid_before_execve(current)` (= the CID exit on the old mm).
//! 3. The outcome: a failure before the point of no return (`exec_binprm_fails`) or
//!    `AT_EXECVE_CHECK` (`exec_check_returns`: `if (retval || bprm->is_check) goto out;`) go
//!    straight to `after_execve` on the old mm; a binary that loads reaches `begin_new_exec`,
//!    whose `de_thread` sends the other threads a fatal signal.
//! 4. `exec_mmap`: once `de_thread` has its answer, switch to a fresh mm; a vfork parent is
//!    released (`exec_mm_release`).
//! 5. `sched_mm_cid_after_execve(current)` on the new or the old mm; when its CID operation
//!    returns, the task is back in user space (phase [`ExecAt::Return`]).
//!
//! Rules (each a guard or an effect below):
//! - **One exec per thread group** (`prepare_bprm_creds`, fs/exec.c:1350: `cred_guard_mutex` is
//!   the group's, held until `setup_new_exec` on success or `free_bprm` on failure): an exec
//!   start is not enabled while another thread of the group is inside one ([`may_start`]). The
//!   blocked thread would sleep in `mutex_lock_interruptible` before any CID effect; not starting
//!   yet is the same. A vfork child is its own thread group, so its exec may overlap its parent
//!   group's.
//! - **`fs->in_exec`** (`check_unsafe_exec`, fs/exec.c:1486–1527): set at the start unless a
//!   `CLONE_FS` clone of the group is between `copy_fs` and its publication (then `fs->users >
//!   n_fs`: `LSM_UNSAFE_SHARE` instead); cleared by `begin_new_exec` right after `de_thread`
//!   succeeded (fs/exec.c:1119, here at `exec_mmap`) or by `free_bprm` (fs/exec.c:1381) after
//!   `after_execve` returned, on the failure and check paths. While set, a pthread clone of the
//!   group fails in `copy_fs` with `EAGAIN` before any CID effect: its start is not enabled
//!   ([`crate::ops::fork::may_start`]). Vfork children copy `fs` and are not affected.
//! - **`AT_EXECVE_CHECK`** (`alloc_bprm` sets `bprm->is_check`, fs/exec.c:1455; `bprm_execve`
//!   1744–1746): `before_execve`, then `after_execve` on the old mm, return 0 to user space.
//! - **`de_thread` waits for release, not death** (fs/exec.c:927–934: `notify_count` drops in
//!   `__exit_signal` from `release_task` in `exit_notify`): `exec_mmap` is enabled once every
//!   other thread of the group is dead or past `exit_notify` (at its final `schedule()`).
//! - **Migration inside the window** (`sched_exec`, kernel/sched/core.c:5411): the exec'ing task
//!   stays preemptible and migratable from `before_execve` to `after_execve`; nothing here forbids
//!   it.
//!
//! Not modelled: failures after the point of no return (`de_thread` killed, `exec_mmap`'s
//! killable locks): `after_execve` re-registers and the task dies without returning to user
//! space (`force_fatal_sig`, fs/exec.c:1768).

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
            // de_thread: every other thread of the group released (exit_notify done).
            let others_released = s.threads(t.group).iter().all(|&o| {
                let ot = s.task(o);
                o == task || ot.sched == Sched::Dead || ot.op == Op::Exit { at: ExitAt::Final }
            });
            let parent_ok = t.vfork_parent.is_none_or(|v| !s.rq_locked(s.task(v).cpu));
            if others_released && parent_ok {
                out.push(Step::Next { task });
            }
        }
        // Inside after_execve's CID operation: the family's steps.
        ExecAt::Return => {}
    }
}

/// May `task` (in user space) start an execve now? Not while another thread of its group holds
/// `cred_guard_mutex` (`prepare_bprm_creds`).
pub fn may_start<F: Family>(s: &State<F>, task: TaskId) -> bool {
    s.exec_of_group(s.task(task).group).is_none()
}

/// `execve` (`prepare_bprm_creds` + `check_unsafe_exec`): charge the budget, decide
/// `fs->in_exec`.
pub fn start<F: Family>(s: &mut State<F>, task: TaskId, kind: ExecKind) {
    match kind {
        ExecKind::Load => s.left.execs -= 1,
        ExecKind::Fail => s.left.exec_fails -= 1,
        ExecKind::Check => s.left.exec_checks -= 1,
    }
    let in_exec = !s.clone_fs_in_flight(s.task(task).group);
    s.task_mut(task).op = Op::Exec {
        at: ExecAt::Before,
        kind,
        in_exec,
    };
}

/// The next step of an execve.
pub fn next<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, at: ExecAt, kind: ExecKind) {
    let set = |s: &mut State<F>, at| {
        if let Op::Exec { at: a, .. } = &mut s.task_mut(task).op {
            *a = at;
        }
    };
    match at {
        ExecAt::Before => {
            set(s, ExecAt::Outcome);
            F::before_execve(p, s, task);
        }
        // exec_binprm fails, or AT_EXECVE_CHECK: straight to after_execve on the old mm.
        ExecAt::Outcome if kind.stays_on_old_mm() => set(s, ExecAt::After),
        ExecAt::Outcome => {
            // exec_binprm succeeds: begin_new_exec → de_thread kills the other threads.
            let g = s.task(task).group;
            for o in s.threads(g) {
                if o != task && s.task(o).sched != Sched::Dead {
                    let mut ot = s.task_mut(o);
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
            // de_thread succeeded (fs->in_exec = 0); exec_mmap: switch to a fresh mm
            // (mm_init_cid with current's affinity).
            let t = s.task(task);
            s.mms.push(Mm::new(s.np(), t.affinity));
            let new = (s.mms.len() - 1) as MmId;
            s.task_mut(task).mm = Some(new);
            F::exec_mmap(p, s, task, t.mm, new);
            vfork_release(s, task);
            set(s, ExecAt::After);
        }
        ExecAt::After => {
            // sched_mm_cid_after_execve: fork_cid(current), then rseq_force_update. A family
            // that does its CID work right here returns to user space at once; otherwise the
            // task leaves execve when its CID operation returns (ops::sub_op_done).
            set(s, ExecAt::Return);
            F::after_execve(p, s, task);
            if s.task(task).cid_op.is_none() {
                s.task_mut(task).op = Op::User;
            }
        }
        ExecAt::Return => unreachable!("the family's CID operation runs here"),
    }
}
