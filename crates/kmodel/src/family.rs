//! Design families as types: which CID code runs inside the kernel model.
//!
//! The kernel around the CID code ([`crate::ops`]: context switch, fork, exit, execve, affinity,
//! migration) is the same for every design. What differs is the CID state a task, an mm and a
//! CPU carry, and what the CID code does at each of the kernel's decision points. A [`Family`]
//! supplies both: its state types (so a 7.0-family [`State`] carries no 6.18 fields and a 6.18
//! state no 7.0 mm) and its hooks, which the kernel steps call at the points where the kernel
//! calls into the CID code (`switch_mm_cid`, `sched_mm_cid_fork`, `sched_mm_cid_exit`, …).
//!
//! Three families:
//! - [`Rewrite`] (`crate::rewrite`): the 7.0 design and its predecessors back to 6.19-rc7,
//!   selected at run time by their [`mmcid_cid::Switches`] (a design is data, one process checks
//!   them all);
//! - [`Lazy618`] (`crate::legacy::lazy618`): 6.14–6.18, lazy per-CPU CIDs with compaction;
//! - [`PerSwitch63`] (`crate::legacy::per_switch63`): 6.3, a CID per switched-in task.
//!
//! The family is chosen once, at the top ([`with_model`]), from the configuration's design; below
//! that point every function is generic over `F: Family` and no code tests a family at run time.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::encode::Pack;
use crate::facts::{BitOwners, Effect};

use mmcid_cid::{CpuId, CpuMask, MAX_CPUS, TaskId};

use crate::config::{Config, FamilyKind};
use crate::model::KernelModel;
use crate::ops::{Params, Step};
use crate::state::{MmId, State, Task};

/// What a design family adds to the kernel model: its CID state and its hooks.
///
/// Hooks take the whole [`State`] because the CID code reads kernel facts (`rq->curr`, a task's
/// mm); each is named after the kernel function or event it stands for. Unless a hook says
/// otherwise, the kernel part of the step (scheduler states, program points, lists) is already
/// done when it is called.
pub trait Family:
    Copy + Clone + Debug + Default + PartialEq + Eq + Hash + PartialOrd + Ord + Send + Sync + 'static
{
    /// The run-time tag of this family.
    const KIND: FamilyKind;
    /// Does the family queue deferred work that a kworker runs (7.0: the switch back to per-task
    /// after an affinity change)? Then a configuration with affinity changes gets a kworker.
    const DEFERRED_WORK: bool = false;
    /// Which of its hooks at the kernel's call sites touch only the calling task (and an
    /// unpublished child), so that the kernel step around them is silent for the reduction
    /// ([`crate::ops::silent`]).
    const SILENT_HOOKS: crate::ops::silent::SilentHooks;

    /// A task's CID state (`struct sched_mm_cid` in 7.0; `t->mm_cid` and friends before).
    /// `Default` is what `dup_task_struct` leaves.
    type TaskCid: Copy
        + Clone
        + Debug
        + Default
        + PartialEq
        + Eq
        + Hash
        + PartialOrd
        + Ord
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + Pack;
    /// A multi-step CID operation a task can be inside (a fix-up walk, a spinning fork, 6.18's
    /// compaction scan). `None` in [`Task::cid_op`] means none.
    type CidOp: Copy
        + Clone
        + Debug
        + PartialEq
        + Eq
        + Hash
        + PartialOrd
        + Ord
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + Pack;
    /// How a stored task keeps its [`Family::TaskCid`] and [`Family::CidOp`] ([`crate::tasks`]):
    /// packed where the family's state allows (7.0: 4 bytes), else the pair itself.
    type TaskStore: Copy + Clone + Debug + Default + PartialEq + Eq + Hash + Send + Sync + Pack;
    /// Packs a task's CID state and CID operation.
    fn store_task(cid: &Self::TaskCid, op: Option<&Self::CidOp>) -> Self::TaskStore;
    /// Unpacks what [`Family::store_task`] packed.
    fn load_task(s: &Self::TaskStore) -> (Self::TaskCid, Option<Self::CidOp>);
    /// How a state stores an mm ([`crate::mms`]): packed where the family's state allows (7.0:
    /// 26 bytes), else the [`crate::state::Mm`] itself.
    type MmStore: Copy + Clone + Debug + Default + PartialEq + Eq + Hash + Send + Sync + Pack;
    /// Packs an mm.
    fn store_mm(mm: &crate::state::Mm<Self>) -> Self::MmStore;
    /// Unpacks what [`Family::store_mm`] packed.
    fn load_mm(s: &Self::MmStore) -> crate::state::Mm<Self>;
    /// An mm's CID state.
    type MmCid: Copy
        + Clone
        + Debug
        + PartialEq
        + Eq
        + Hash
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + Pack;
    /// What a CPU is in the middle of across steps (a schedin spinning in `get_cid`, a 6.18
    /// migration), holding its rq lock. `Default`: nothing.
    type CpuCid: Copy
        + Clone
        + Debug
        + Default
        + PartialEq
        + Eq
        + Hash
        + Send
        + Sync
        + Serialize
        + DeserializeOwned
        + Pack;

    // ----------------------------------------------------------------------------------------
    // State.

    /// `mm_init_cid` for a new mm of a task with affinity `mask`.
    fn new_mm(np: u8, mask: CpuMask) -> Self::MmCid;
    /// Is the task an active CID user (`t->mm_cid.active`)?
    fn active(t: &Self::TaskCid) -> bool;
    /// Does `cpu` hold its rq lock across steps (a spinning schedin, a 6.18 `mm_cid_get` or
    /// migration in progress)? Nothing else may take that lock meanwhile.
    fn rq_locked(cpu: &Self::CpuCid) -> bool;
    /// Is `cpu` still inside the context switch of its current task (so the task has not
    /// returned to what it was doing)?
    fn in_switch(cpu: &Self::CpuCid) -> bool;
    /// The task's own steps wait for this CPU's continuation (a 6.18 migration to it runs in
    /// `activate_task` with its rq lock held, and the CPU does nothing else meanwhile).
    fn cpu_blocks_tasks(cpu: &Self::CpuCid) -> bool {
        Self::rq_locked(cpu)
    }
    /// Does the task's CID operation keep IRQs off across steps (a fork spinning under
    /// `mm.lock`, a 6.18 remote clear between its cmpxchg and its `clear_bit`)? Such a task can be
    /// neither preempted nor interrupted.
    fn irqs_off(op: &Self::CidOp) -> bool;
    /// May a task in user space call `sched_setaffinity` now (its locks are free)?
    fn affinity_allowed(p: &Params, s: &State<Self>, task: TaskId) -> bool;

    // ----------------------------------------------------------------------------------------
    // Steps the family adds.

    /// Appends the steps of `cpu` that only this family has (7.0: its irq_work), after the
    /// kernel's own (`cpu` is not in a switch).
    fn cpu_steps(p: &Params, s: &State<Self>, cpu: CpuId, out: &mut Vec<Step>);
    /// Appends the steps of a running task inside a CID operation (`t.cid_op` is `Some`).
    fn cid_op_steps(p: &Params, s: &State<Self>, task: TaskId, out: &mut Vec<Step>);
    /// Appends extra steps of a task in user space (6.18: the compaction task_work).
    fn user_steps(p: &Params, s: &State<Self>, task: TaskId, out: &mut Vec<Step>);
    /// Appends the step of a CPU whose [`Family::CpuCid`] is busy (a spin lap, the next piece of
    /// a migration). Called instead of every other step of that CPU.
    fn busy_cpu_steps(s: &State<Self>, cpu: CpuId, out: &mut Vec<Step>);

    /// Takes a step that belongs to the family: `SchedinRetry`, `IrqWork`, `Retry`, and `Next` /
    /// `Fail` of a task inside a CID operation, in user space (6.18 compaction), or on a CPU whose
    /// continuation is busy.
    fn apply_own(p: &Params, s: &mut State<Self>, step: Step);

    // ----------------------------------------------------------------------------------------
    // Hooks at the kernel's calls into the CID code.

    /// `switch_mm_cid(prev, next)` inside `__schedule` on `cpu` (`rq->curr` already `next`).
    fn switch(p: &Params, s: &mut State<Self>, cpu: CpuId, prev: Option<TaskId>, next: Option<TaskId>);
    /// Load balancing moved the runnable `task` from `from` to `to` (`set_task_cpu` done).
    fn migrated(p: &Params, s: &mut State<Self>, task: TaskId, from: CpuId, to: CpuId);
    /// `copy_mm` of fork: the child shares the forker's mm (the child is not visible yet).
    fn fork_copy(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId);
    /// `sched_post_fork` (the child is visible).
    fn post_fork(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId);
    /// `bad_fork_cleanup_mm` of a failed fork, run by the forker `task`. Returns whether a CID
    /// operation started (it then ends in [`crate::ops::sub_op_done`]); otherwise the child is
    /// freed at once.
    fn fork_failed(p: &Params, s: &mut State<Self>, task: TaskId, child: TaskId) -> bool;
    /// The CID step at the start of `do_exit` (7.0: `sched_mm_cid_exit`; before: the
    /// `exit_signals` hook).
    fn exit_start(p: &Params, s: &mut State<Self>, task: TaskId);
    /// `exit_mm` (before `exit_mm_release` wakes a vfork parent).
    fn exit_mm(p: &Params, s: &mut State<Self>, task: TaskId);
    /// `sched_mm_cid_before_execve(current)`.
    fn before_execve(p: &Params, s: &mut State<Self>, task: TaskId);
    /// `exec_mmap`: `task` switched from `old` to the fresh mm `new`.
    fn exec_mmap(p: &Params, s: &mut State<Self>, task: TaskId, old: Option<MmId>, new: MmId);
    /// `sched_mm_cid_after_execve(current)` (the task is at `ExecAt::Return`; it leaves execve when
    /// the CID operation this starts returns, or at once if none is started).
    fn after_execve(p: &Params, s: &mut State<Self>, task: TaskId);
    /// `sched_setaffinity` widened the caller's `cpus_mask` (already stored).
    fn affinity(p: &Params, s: &mut State<Self>, task: TaskId);
    /// The kworker starts `process_one_work` for the work of `mm`.
    fn work_start(p: &Params, s: &mut State<Self>, task: TaskId, mm: MmId);

    // ----------------------------------------------------------------------------------------
    // For the engine and the checks.

    /// Is `step` another lap of a spin (not progress, for fairness)?
    fn is_retry(s: &State<Self>, step: &Step) -> bool;
    /// Appends the CPUs that spin in `s`.
    fn spinning(s: &State<Self>, out: &mut Vec<u16>);
    /// Appends the indices of the [`crate::invariants::Property`]s that fire in `s`.
    fn check(p: &Params, s: &State<Self>, out: &mut Vec<usize>);
    /// Renames every task id the family's state holds (symmetry reduction).
    fn rename(s: &mut State<Self>, r: &dyn Fn(TaskId) -> TaskId);
    /// The task's CID state and CID operation packed into one number, without the names of other
    /// tasks, injectively (symmetry reduction sorts tasks by it).
    fn task_key(cid: &Self::TaskCid, op: Option<&Self::CidOp>) -> u64;
    /// Sets every *dead* value of `s` (one that no step reads before writing it again) to one
    /// fixed value, so that states that differ only there get one representative (symmetry
    /// reduction, [`crate::symmetry::canonical`], forgets before it sorts). Only for values that
    /// no property, no spinning test and no agent reads: then "equal up to dead values" is a
    /// bisimulation that keeps every verdict, stalls and live locks included (agents are not
    /// renamed). The default: nothing is dead.
    #[inline(always)]
    fn forget_dead(_p: &Params, _s: &mut State<Self>) {}
    /// Would [`Family::forget_dead`] change `s`? (Asked of every successor, so cheap and without
    /// copying the state.)
    #[inline(always)]
    fn has_dead(_p: &Params, _s: &State<Self>) -> bool {
        false
    }
    /// Does the family's code treat every CPU alike, so that renaming the CPUs of a state
    /// consistently gives a state that behaves the same up to that renaming (CPU symmetry,
    /// [`crate::symmetry::cpu_canonical`])? Only where no step visits CPUs in index order: the 7.0
    /// family's CPU->task fix-up walk (`mm_cid_fixup_cpus_to_tasks`) does, so it is `false`
    /// there. A configuration must be symmetric too ([`crate::KernelModel::with_cpu_symmetry`]
    /// checks: every CPU allowed, no affinity change, no 6.18 compaction scan, which visits CPUs
    /// in order). Default: false.
    const CPU_SYMMETRIC: bool = false;
    /// Renames every CPU the family's own state names outside its tasks (per-CPU slots, lock
    /// holders, migrations in flight), `map[old] = new`, after the kernel part (the CPUs' own
    /// states, tasks' CPUs and affinities) was permuted. Only called when
    /// [`Family::CPU_SYMMETRIC`].
    fn rename_cpus(_s: &mut State<Self>, _map: &[CpuId; MAX_CPUS]) {
        unreachable!("{:?} does not declare CPU symmetry", Self::KIND)
    }
    /// Renames every CPU a task's family part names (a remembered CPU, a CPU operation's
    /// target), `map[old] = new`. Only called when [`Family::CPU_SYMMETRIC`].
    fn rename_task_cpus(_cid: &mut Self::TaskCid, _op: &mut Option<Self::CidOp>, _map: &[CpuId; MAX_CPUS]) {
        unreachable!("{:?} does not declare CPU symmetry", Self::KIND)
    }
    /// [`Family::rename_task_cpus`] on the stored form.
    #[inline(always)]
    fn rename_task_store_cpus(s: &Self::TaskStore, map: &[CpuId; MAX_CPUS]) -> Self::TaskStore {
        let (mut cid, mut op) = Self::load_task(s);
        Self::rename_task_cpus(&mut cid, &mut op, map);
        Self::store_task(&cid, op.as_ref())
    }
    /// What the family's state holds about `cpu`, without naming CPUs or tasks (its slot in
    /// each mm, what it is in the middle of, whether it holds a lock), as a number: CPU symmetry
    /// orders CPUs by it (CPUs that tie are arranged every way). Only called when
    /// [`Family::CPU_SYMMETRIC`].
    fn cpu_key(_s: &State<Self>, _cpu: CpuId) -> u64 {
        unreachable!("{:?} does not declare CPU symmetry", Self::KIND)
    }
    /// Renames task ids inside a CID operation (symmetry reduction).
    fn rename_op(op: Self::CidOp, r: &dyn Fn(TaskId) -> TaskId) -> Self::CidOp;
    /// [`Family::task_key`] of a stored task's part, read off the stored form (symmetry
    /// reduction computes it for every task of every successor; packed families override this
    /// to skip unpacking).
    #[inline(always)]
    fn task_key_stored(s: &Self::TaskStore) -> u64 {
        let (cid, op) = Self::load_task(s);
        Self::task_key(&cid, op.as_ref())
    }
    /// A stored task's part with the task ids in its CID operation renamed through `map`
    /// ([`Family::rename_op`] on the stored form; packed families override this to rename
    /// the bits in place).
    #[inline(always)]
    fn rename_task_store(s: &Self::TaskStore, map: &[TaskId; crate::state::MAX_TASKS]) -> Self::TaskStore {
        let (cid, op) = Self::load_task(s);
        let op = op.map(|o| Self::rename_op(o, &|t| map[t as usize]));
        Self::store_task(&cid, op.as_ref())
    }

    // ----------------------------------------------------------------------------------------
    // Typed descriptions (traces, reports; the CLI renders them).

    /// The kernel function a family step performs: `(actor, function, argument)`, or `None`
    /// when the kernel names it ([`crate::trace::name`]).
    fn name(
        p: &Params,
        s: &State<Self>,
        step: Step,
    ) -> Option<(String, crate::trace::KernelFn, Option<String>)>;
    /// What a step changed in the CPUs' and mms' CID state.
    fn effects(before: &State<Self>, after: &State<Self>, out: &mut Vec<Effect>);
    /// What a step changed in task `i`'s CID state (its scheduler facts are added by the caller).
    fn task_effects(i: TaskId, before: &Task<Self>, after: &Task<Self>, out: &mut Vec<Effect>);
    /// Does a trace report a task's move to another CPU while its scheduler state stays the same
    /// (a migration, which 6.18 reacts to)?
    const REPORTS_MOVES: bool = false;
    /// The task's CID as the family's raw kernel word.
    fn task_cid_raw(t: &Self::TaskCid) -> u32;
    /// Fills the family's part of a task's snapshot ([`crate::snapshot::TaskSnapshot`]): the CID
    /// operation it is inside; 6.18: `last_mm_cid` and `migrate_from_cpu`.
    fn snapshot_task(t: &Task<Self>, out: &mut crate::snapshot::TaskSnapshot);
    /// Fills the family's part of a CPU's snapshot ([`crate::snapshot::CpuSnapshot`]): the
    /// schedin, `mm_cid_get` or migration it is in the middle of.
    fn snapshot_cpu(s: &State<Self>, cpu: CpuId, out: &mut crate::snapshot::CpuSnapshot);
    /// An mm's CID state, typed, for tools.
    fn mm_snapshot(mm: &Self::MmCid) -> crate::snapshot::MmCidSnapshot;
    /// Who owns each set bit of mm `m`.
    fn bit_owners(s: &State<Self>, m: MmId) -> Vec<BitOwners>;
    /// What is wrong in `s`, as facts (`property`: the property id, `stall`, `livelock`;
    /// `agent`: the spinning CPU of a stall or live lock).
    fn explain(property: &str, agent: Option<u16>, s: &State<Self>) -> Vec<crate::facts::Fact>;
}

/// The 7.0 design and its predecessors back to 6.19-rc7 (the switches of designs.md S1–S9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rewrite;

/// 6.14–6.18: lazy per-CPU CIDs, remote clear and steal, the compaction scan (designs.md E.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lazy618;

/// 6.3: a CID per switched-in task from a per-mm bitmap under `cid_lock` (designs.md E.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PerSwitch63;

/// Something to do with the kernel model of a configuration, whatever its family: the one place
/// where a family is chosen at run time ([`with_model`]).
pub trait ModelVisitor {
    /// What the visit returns.
    type Out;
    /// Runs with the model of the configuration.
    fn visit<F: Family>(self, model: KernelModel<F>) -> Self::Out;
}

/// Builds the model of `cfg` for its design's family and hands it to `v`. The error says which
/// configuration value is off.
pub fn with_model<V: ModelVisitor>(cfg: &Config, v: V) -> Result<V::Out, String> {
    let design = cfg.validate()?;
    Ok(match design.family {
        FamilyKind::Rewrite => v.visit(KernelModel::<Rewrite>::new(cfg.clone())?),
        FamilyKind::Lazy618 => v.visit(KernelModel::<Lazy618>::new(cfg.clone())?),
        FamilyKind::PerSwitch63 => v.visit(KernelModel::<PerSwitch63>::new(cfg.clone())?),
    })
}
