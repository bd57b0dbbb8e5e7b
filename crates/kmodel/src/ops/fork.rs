//! `clone()`: `kernel_clone` → `copy_process` → `wake_up_new_task`.
//!
//! The steps, and why the model cuts there (`docs/kernel-reading.md` section 5.2 has the 7.0
//! lines of kernel/fork.c):
//! 1. `clone` / `vfork` (start): the forker enters the kernel, up to and including `copy_fs`
//!    (kernel/fork.c:1593–1612, called at 2214); the child's slot is reserved. A pthread clone
//!    (`CLONE_FS`) cannot start while its thread group's `fs->in_exec` is set ([`may_start`]):
//!    `copy_fs` returns `EAGAIN` before any CID effect (7.0 registers in `sched_post_fork`, the
//!    older designs in `copy_mm`, both later). A vfork child gets its own copy of `fs` and is
//!    never refused. What `copy_process` does before `copy_fs` (`dup_task_struct` …
//!    `copy_files`) is invisible to everybody, so taking `copy_fs` first changes nothing.
//! 2. `copy_process` (dup_task_struct … copy_mm): the child exists and shares the mm, but is in
//!    no list: the fix-up walks cannot see it. Designs up to 6.19.1 register it as a CID user
//!    here (designs.md S1), which is the seed's bug.
//! 3. `publish`: under the tasklist lock the child joins its thread list (a vfork child's new
//!    group joins the process list). A fatal signal pending (a concurrent `de_thread`), or a
//!    failure point before it (budget `fork_fails`), fails the fork instead.
//! 4. `sched_post_fork`: 7.0 registers the child here, after it became visible.
//! 5. `wake_up_new_task`: the child is queued on a CPU of its mask (the choice is the step's).
//!
//! A failed fork runs `bad_fork_cleanup_mm` (designs.md S2: `exit_cid(child)` where the design
//! registered in `copy_mm`) and frees the child, which never runs.

use mmcid_cid::{CpuId, TaskId};

use crate::family::Family;
use crate::ops::{Params, Step, sub_op_done};
use crate::state::*;

/// May `task` (in user space) start a pthread clone now? Not while its thread group's
/// `fs->in_exec` is set: `copy_fs` would fail with `EAGAIN` (kernel/fork.c:1597–1600), and a clone
/// that fails there has no CID effect. vfork (no `CLONE_FS`) is not asked.
pub fn may_start<F: Family>(s: &State<F>, task: TaskId) -> bool {
    !s.in_exec(s.task(task).group)
}

/// The steps of a forker at phase `at`.
pub fn steps<F: Family>(s: &State<F>, task: TaskId, at: ForkAt, out: &mut Vec<Step>) {
    let t = s.task(task);
    match at {
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
                unreachable!("waking outside fork")
            };
            let aff = s.task(child).affinity;
            for cpu in 0..s.np() {
                if aff & (1 << cpu) != 0 && !s.rq_locked(cpu) {
                    out.push(Step::Wake { task, cpu });
                }
            }
        }
    }
}

/// `clone` / `vfork`: charge the budget, reserve the child's slot (the task itself is created by
/// the copy step).
pub fn start<F: Family>(s: &mut State<F>, task: TaskId, vfork: bool) {
    if vfork {
        s.left.vforks -= 1;
    } else {
        s.left.forks -= 1;
    }
    let child = s.tasks.len() as TaskId;
    let t = s.task(task);
    s.tasks.push(Task {
        group: t.group,
        sched: Sched::New,
        cpu: t.cpu,
        affinity: t.affinity,
        ..Task::default()
    });
    s.task_mut(task).op = Op::Fork {
        child,
        vfork,
        at: ForkAt::Copy,
    };
}

/// The next step of a fork.
pub fn next<F: Family>(p: &Params, s: &mut State<F>, task: TaskId, child: TaskId, vfork: bool, at: ForkAt) {
    let t = s.task(task);
    let set = |s: &mut State<F>, at| s.task_mut(task).op = Op::Fork { child, vfork, at };
    match at {
        ForkAt::Copy => {
            // dup_task_struct … copy_signal … copy_mm: the child exists, shares the mm.
            let group = if vfork {
                s.group_count() as GroupId
            } else {
                t.group
            };
            let mut c = s.task_mut(child);
            c.mm = t.mm;
            c.group = group;
            if vfork {
                c.vfork_parent = Some(task);
            }
            drop(c);
            set(s, ForkAt::Publish);
            F::fork_copy(p, s, task, child);
        }
        ForkAt::Publish => {
            // Under the tasklist lock: attach to the thread list, or a new group to the
            // process list. No failure is possible after this point.
            let g = s.task(child).group;
            s.task_mut(child).thread_pos = s.threads(g).len() as u8 + 1;
            if vfork {
                s.process_list.push(g);
            }
            set(s, ForkAt::PostFork);
        }
        ForkAt::PostFork => {
            set(s, ForkAt::Wake);
            F::post_fork(p, s, task, child);
        }
        ForkAt::Failed => {
            // bad_fork_cleanup_mm: (S2) exit_cid(child) in the forker's context; then the
            // child is freed, never published, never run.
            set(s, ForkAt::Cleanup);
            if !F::fork_failed(p, s, task, child) {
                sub_op_done(s, task);
            }
        }
        ForkAt::Wake | ForkAt::Cleanup => unreachable!("not a next step"),
    }
}

/// The failure branch at publication: a failure point after `copy_mm` (budget `fork_fails`), or a
/// fatal signal found under the tasklist lock (free).
pub fn fail<F: Family>(s: &mut State<F>, task: TaskId) {
    let t = s.task(task);
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

/// `wake_up_new_task`: the child is queued on `cpu`; a vfork parent then waits for it.
pub fn wake<F: Family>(s: &mut State<F>, task: TaskId, cpu: CpuId) {
    let Op::Fork { child, vfork, .. } = s.task(task).op else {
        unreachable!("waking outside fork")
    };
    let mut c = s.task_mut(child);
    c.sched = Sched::Runnable;
    c.cpu = cpu;
    drop(c);
    s.task_mut(task).op = if vfork { Op::VforkWait { child } } else { Op::User };
}
