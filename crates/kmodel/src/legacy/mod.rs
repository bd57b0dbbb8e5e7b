//! The pre-rewrite designs (6.3 and 6.14–6.18, designs.md E) inside the same kernel model, as
//! two families: [`crate::family::PerSwitch63`] ([`per_switch63`]) and
//! [`crate::family::Lazy618`] ([`lazy618`]).
//!
//! The CID code itself is `mmcid_cid::legacy`; these modules only wire it to the kernel's events:
//! - fork: registration (`active = 1`) in `copy_mm` (the `copy_process` step); no CID before the
//!   first switch-in; no cleanup on a failed fork (E.2.2). 6.18 raises `mm_users` in `copy_mm` and
//!   drops it in `bad_fork_cleanup_mm`, `exit_mm` and, for the old mm, `exec_mmap`.
//! - context switch: 6.3 `switch_mm_cid` (one step, with the same-mm handover); 6.18
//!   `switch_out` then `switch_in`, whose `mm_cid_get` may stop at a cut or a busy-wait: the CPU
//!   then stays in the switch (rq lock held) and each further piece is a `SchedinRetry` step of
//!   that CPU.
//! - exit: `sched_mm_cid_exit_signals` is the first step of `do_exit` (before PF_EXITING); execve:
//!   `before_execve` and `after_execve` are one step each (6.18: under the local rq lock, and
//!   `after_execve`'s `mm_cid_get` may spin like a switch-in; 6.3: IRQs off, and `exec_mmap` runs
//!   `mm_init_cid` on the new mm again).
//! - migration (6.18): the `Migrate` step does `set_task_cpu` + the first step of
//!   `sched_mm_cid_migrate_to`; the steal, the unset and the placement are further steps of the
//!   destination CPU, which holds its rq lock across them (it does nothing else meanwhile).
//! - compaction (6.18): `task_work mm_cid_work` may run at a return to user space of a
//!   non-exiting user task (budget `compactions`): its first loop skips CPUs (time is abstracted
//!   into the choice) and remote-clears one, in three steps (mark, check `curr` + cmpxchg to
//!   UNSET, `clear_bit`; the last two with IRQs off, so not preemptible in between).
//! - affinity: 6.18 `mm_update_cpus_allowed`; 6.3 nothing.
//!
//! Time is abstracted: every slot stamp is 0 (nothing reads it). The kernel's `cid_lock` and
//! `use_cid_lock` of 6.18 are global; here each mm has its own (cross-mm contention after an
//! execve is not modelled).

pub mod lazy618;
pub mod per_switch63;

use mmcid_cid::TaskId;

use crate::family::Family;
use crate::state::*;

/// A CID operation a design without multi-step CID operations never enters (6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum NoCidOp {}

/// The running, switched-in active tasks of mm `m`.
pub fn running<F: Family>(s: &State<F>, m: MmId) -> impl Iterator<Item = (TaskId, Task<F>)> + '_ {
    s.tasks_of(m)
        .filter(move |(i, t)| F::active(&t.cid) && s.on_cpu_settled(*i))
}
