//! # mmcid-cid: the Linux MM CID algorithm
//!
//! The per-process concurrency-ID ("mm_cid") management of Linux 7.0, as plain data and functions
//! that cannot tell who drives them: the kernel model (`mmcid-kmodel`), a simulator, or a unit
//! test. Nothing here loops, sleeps or takes a lock; the caller holds the locks listed under
//! `# Locks` on each function and owns every multi-step loop. Reference:
//! `shared/spec/kernel-mmcid.md` (sections 1–6, 10); earlier designs: `shared/spec/designs.md`,
//! selected by [`Switches`].
//!
//! ## Serialisation
//! - `mm.mutex` serialises fork, exit and the deferred work, and is held across a whole fix-up
//!   walk. `mm.lock` (raw spinlock, IRQs off) serialises `update_max_cids` against affinity
//!   changes. A CPU's rq lock covers its slot and the context switch.
//! - Nesting: mutex → lock; mutex → rq lock; rq lock → lock. Never lock → rq lock.
//!
//! ## Ownership
//! A CID is owned by a task (a plain value in `t.cid`) or by a CPU (an ONCPU value in that CPU's
//! slot; tasks running there borrow a copy). Which one is the mm's [`Mode`]: per task while the
//! process has few users, per CPU once `users > max_cids`.
//!
//! ## Mode switches
//! A switch is two-phase: [`update_max_cids`] flips the mode with TRANSIT set, and CIDs handed
//! over meanwhile are temporary (TRANSIT); then the initiator walks the tasks
//! ([`fixup_tasks_to_cpus_visit`]) or the CPUs ([`fixup_cpus_to_tasks_visit`]) and completes with
//! [`complete_transit`]. Without the transit phase two tasks scheduled in on one CPU before the
//! walk freed its CID would exhaust the space; a schedin would then spin in `get_cid` with its rq
//! lock held while the walk waits for that rq lock: the 2026 stalls.
//!
//! ## Kernel names and ours
//! | kernel | here |
//! |---|---|
//! | `cid_on_cpu`, `cid_on_task`, `cid_in_transit`, `cid_to_cpu_cid`, `cpu_cid_to_cid`, `cid_to_transit_cid`, `cid_from_transit_cid` | [`Cid::on_cpu`], [`Cid::on_task`], [`Cid::in_transit`], [`Cid::add_cpu`], [`Cid::strip_cpu`], [`Cid::add_transit`], [`Cid::strip_transit`] |
//! | `mm_update_max_cids`, `mm_cid_calc_pcpu_thrs`, `mm_cid_complete_transit` | [`update_max_cids`], [`mode::calc_thrs`], [`complete_transit`] |
//! | `mm_get_cid` (with its spin), `__mm_get_cid` | [`get_cid`] / [`get_cid_retry`], [`MmCid::try_get`] |
//! | `mm_cid_converge`, `mm_drop_cid`, `mm_unset_cid_on_task`, `mm_drop_cid_on_cpu` | [`converge`], [`MmCid::drop_cid`], [`unset_on_task`], [`drop_on_cpu`] |
//! | `mm_cid_transit_to_task`, `mm_cid_transit_to_cpu` | [`transit_to_task`], [`transit_to_cpu`] |
//! | `sched_mm_cid_fork`, `sched_mm_cid_add_user` | [`fork_cid_locked`] + [`fork_cid_retry`] + [`fork_cid_after_fixup`] (+ [`fork_cid_execve_assign`] with F1's fix), [`add_user`] |
//! | `sched_mm_cid_exit`, `sched_mm_cid_remove_user`, `sched_mm_cid_before_execve`, `sched_mm_cid_after_execve` | [`exit_cid_locked`], [`remove_user`]; before/after execve are `exit_cid` / `fork_cid` on `current` |
//! | `mm_cid_schedout`, `mm_cid_schedin`, `mm_cid_from_task`, `mm_cid_from_cpu` | [`schedout`], [`schedin`] (+ [`schedin_retry`]) |
//! | `mm_cid_fixup_tasks_to_cpus` / `mm_cid_do_fixup_tasks_to_cpus`, `mm_cid_fixup_one` (≤6.19.1) | [`fixup_tasks_to_cpus_visit`], [`fixup_one`]; the cursor is the caller's |
//! | `mm_cid_fixup_cpus_to_tasks` | [`fixup_cpus_to_tasks_visit`]; the cursor is the caller's |
//! | `mm_update_cpus_allowed`, `mm_cid_irq_work`, `mm_cid_work_fn` | [`update_cpus_allowed`], (the kernel model), [`work_locked`] |
//! | `mm_init_cid` | [`MmCid::new`] |
//!
//! ## Capacity: one algorithm, two drivers
//! Every state type and function is generic over a [`Storage`] ([`storage`]): the checker's
//! [`Compact`] one (np ≤ 8, ≤ 16 users per mm, `u8` counters and ids, a `u64` bitmap, inline arrays:
//! an [`MmCid`] is 88 bytes and copies and hashes fast) and the simulator's [`Wide`] one (np up to
//! 65,536, `u32` counters and ids for a million tasks, heap bitmaps and slots sized to `np`, a linked
//! user list with O(1) insert and removal, and counters of the shared-memory traffic each function
//! causes). A storage trait rather than const generics, because capacity changes field *types*
//! (`u8` → `u32`, an inline array → a linked list), not only array lengths; see [`storage`].
//!
//! The generic types are named `...Of<S>` ([`MmCidOf`], `legacy::v6_18::Mm618Of`, ...); the
//! names without `Of` ([`MmCid`], [`TaskCid`], [`CidBitmap`], [`UserList`], `Mm63`, `Mm618`,
//! `Task618`, ...) are aliases of the compact instantiation, so `MmCid::new(np, mask)` needs no type
//! annotation and the checker's code is unchanged. Functions are generic and infer the storage from
//! their arguments. Monomorphisation makes the compact code what it was before the split; measured
//! with callgrind on `mmcid check` (instructions, before → after): 7.0 at 3 CPUs 1,570.0 M →
//! 1,568.4 M; 6.18 6,441.9 M → 6,345.5 M; 6.3 5,439.5 M → 5,394.8 M (hand-written, inlinable `Hash`
//! impls for the slot arrays and a bit-scanning [`CidBitmap::iter`] keep it so).
//!
//! ## What this crate does not model
//! Memory ordering: every function is one atomic step under sequential consistency (the 6.19-rc7
//! two-word mode is only approximated; see [`Switches::one_word_mode`]). The rseq "ids changed"
//! flag: the user-visible value is derived from `t.cid` whenever it is read.

#![warn(missing_docs)]

pub mod affinity;
pub mod cid;
pub mod fixup;
pub mod fork_exit;
pub mod helpers;
pub mod legacy;
pub mod mm;
pub mod mode;
pub mod pool;
pub mod sched;
pub mod storage;
pub mod switches;

pub use affinity::{Work, update_cpus_allowed, work_locked};
pub use cid::Cid;
pub use fixup::{fixup_cpus_to_tasks_visit, fixup_one, fixup_tasks_to_cpus_visit};
pub use fork_exit::{
    ExitCid, ForkCid, add_user, exit_cid_locked, fork_cid_after_fixup, fork_cid_execve_assign,
    fork_cid_locked, fork_cid_retry, remove_user,
};
pub use helpers::{
    Alloc, converge, drop_on_cpu, get_cid, get_cid_retry, set_task_cid, transit_to_cpu, transit_to_task,
    unset_on_task,
};
pub use mm::{
    CpuMask, DropFaults, MAX_CPUS, MAX_USERS, MmCid, MmCidOf, TaskCid, UserList, WarnSite, complete_transit,
    update_max_cids,
};
pub use mode::Mode;
pub use pool::CidBitmap;
pub use sched::{Schedin, SchedinSpin, schedin, schedin_retry, schedout};
pub use storage::{Compact, Storage, Wide};
pub use switches::{ExitLocalSlot, Registration, Switches, TaskWalk};

/// A CPU number (`0..np`).
pub type CpuId = u8;
/// A task's index in the kernel model.
pub type TaskId = u8;
