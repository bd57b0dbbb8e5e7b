//! The typed state at one point of a trace ([`Snapshot`]): who runs where, which CIDs the tasks
//! hold, where each task and CPU is in the kernel, and each mm's CID state. It is the `--json`
//! form of a state and everything the text renderers (`crates/cli/src/render/`) draw a state
//! line or a state report from; the small types say themselves in kernel words ([`Display`]).
//!
//! The program points are views of the model's own state types (`crate::state::Op`, the
//! families' CID operations and CPU continuations, `mmcid_cid::legacy::v6_18`'s `GetCont` and
//! `Migrate`) with a JSON shape of their own, so that tools read named fields rather than the
//! serde form of internal types.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;

use mmcid_cid::legacy::LegacyCid;
use mmcid_cid::legacy::v6_18::{
    GetCont, GetContOf, Migrate, MigrateCont, MigrateOf, MigrateOutcome, SlowStage,
};
use mmcid_cid::{Cid, CpuId, Mode, SchedinSpin, TaskId};
use schemars::JsonSchema;
use serde::Serialize;

use crate::family::Family;
use crate::state::*;

/// A task's scheduler state, for tools (`--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Created, not yet woken (`wake_up_new_task` not run).
    New,
    /// `rq->curr` of its CPU.
    Running,
    /// On its CPU's run queue.
    Runnable,
    /// Waiting (a vfork parent, an idle kworker).
    Sleeping,
    /// Exited.
    Dead,
}

impl From<Sched> for TaskState {
    fn from(s: Sched) -> TaskState {
        match s {
            Sched::New => TaskState::New,
            Sched::Running => TaskState::Running,
            Sched::Runnable => TaskState::Runnable,
            Sched::Sleeping => TaskState::Sleeping,
            Sched::Dead => TaskState::Dead,
        }
    }
}

/// One CPU at one point, for tools.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CpuSnapshot {
    /// The CPU.
    pub cpu: CpuId,
    /// `rq->curr` (`None`: idle).
    pub curr: Option<TaskId>,
    /// The tasks on its run queue.
    pub runqueue: Vec<TaskId>,
    /// It holds its rq lock across steps (7.0 family: spinning in `get_cid`; 6.18: inside
    /// `mm_cid_get` or a migration).
    pub rq_locked: bool,
    /// 7.0 family: the schedin of `curr` this CPU is in the middle of (spinning in `get_cid`, or
    /// between `mm_cid_from_task`'s two mode loads); `null` otherwise and in other families.
    pub schedin: Option<SchedinPoint>,
    /// 6.18: the `mm_cid_get` of `curr` this CPU is inside (a switch-in or `after_execve`, rq
    /// lock held, IRQs off); `null` otherwise and in other families.
    pub mm_cid_get: Option<MmCidGet>,
    /// 6.18: the `sched_mm_cid_migrate_to` this CPU (the destination) is inside, rq lock held;
    /// `null` otherwise and in other families.
    pub migrating: Option<Migration>,
}

/// One task at one point, for tools.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskSnapshot {
    /// The task (`T<n>`).
    pub task: TaskId,
    /// Its scheduler state.
    pub state: TaskState,
    /// The CPU it runs or waits on.
    pub cpu: CpuId,
    /// Its mm, if any.
    pub mm: Option<MmId>,
    /// Its CID as the raw kernel word of its family (7.0 family: `mm_cid.cid`, bit 31 UNSET,
    /// bit 30 ONCPU, bit 29 TRANSIT; 6.3 and 6.18: `mm_cid`, all ones for UNSET, bit 31 LAZY).
    pub cid: u32,
    /// It is an active CID user (`mm_cid.active`).
    pub active: bool,
    /// It is visible: in its thread list and the task list (a fix-up walk sees it).
    pub visible: bool,
    /// It is in user space (where rseq shows user space its CID).
    pub in_user_space: bool,
    /// It is the kworker that runs the mm's deferred work.
    pub kworker: bool,
    /// Where it is in the kernel: the operation and the point inside it.
    pub at: ProgramPoint,
    /// The multi-step CID operation it is inside, if any (7.0 family: `sched_mm_cid_fork`,
    /// `sched_mm_cid_exit`, a fix-up walk, the work function; 6.18: the compaction scan).
    pub cid_op: Option<CidOperation>,
    /// 6.18: `t->last_mm_cid` (raw word); `null` in other families.
    pub last_mm_cid: Option<LegacyCid>,
    /// 6.18: `t->migrate_from_cpu` (`null` for -1, and in other families).
    pub migrate_from_cpu: Option<CpuId>,
}

/// A 6.18 per-CPU slot (`struct mm_cid`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Slot618Snapshot {
    /// `cid` (raw word).
    pub cid: LegacyCid,
    /// `recent_cid` (raw word).
    pub recent_cid: LegacyCid,
}

/// The CID state of one mm, by design family (tagged with the [`crate::config::FamilyKind`]).
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(tag = "family")]
pub enum MmCidSnapshot {
    /// 7.0 and its predecessors back to 6.19-rc7 (`struct mm_mm_cid`).
    Rewrite {
        /// `mode` (raw word: 0 per task, ONCPU per CPU, with TRANSIT during a transition).
        mode: mmcid_cid::Mode,
        /// `users`.
        users: u32,
        /// `max_cids`.
        max_cids: u32,
        /// `pcpu_thrs`.
        pcpu_thrs: u32,
        /// The set bits of `bitmap`.
        bitmap: Vec<u32>,
        /// The bitmap's size in bits.
        bitmap_bits: u32,
        /// Each CPU's `pcpu` slot (raw words).
        slots: Vec<mmcid_cid::Cid>,
        /// `user_list`, in list order.
        user_list: Vec<TaskId>,
        /// Faults recorded (bad drops, WARNs).
        faults: mmcid_cid::DropFaults,
    },
    /// 6.14–6.18.
    Lazy618 {
        /// The set bits of `cidmask`.
        cidmask: Vec<u32>,
        /// The bitmap's size in bits.
        bitmap_bits: u32,
        /// `max_nr_cid`.
        max_nr_cid: u32,
        /// `mm_users`.
        mm_users: u32,
        /// `nr_cpus_allowed`.
        nr_cpus_allowed: u32,
        /// `mm_cpus_allowed(mm)`: the CPUs of the union of every affinity seen.
        cpus_allowed: Vec<CpuId>,
        /// `use_cid_lock`.
        use_cid_lock: bool,
        /// The CPU holding `cid_lock`, if any.
        cid_lock: Option<CpuId>,
        /// Each CPU's slot.
        slots: Vec<Slot618Snapshot>,
        /// Faults recorded.
        faults: mmcid_cid::legacy::LegacyFaults,
    },
    /// 6.3.
    PerSwitch63 {
        /// The set bits of `cidmask`.
        cidmask: Vec<u32>,
        /// The bitmap's size in bits.
        bitmap_bits: u32,
        /// Faults recorded.
        faults: mmcid_cid::legacy::LegacyFaults,
    },
}

/// One mm at one point, for tools.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MmSnapshot {
    /// The mm.
    pub mm: MmId,
    /// Its CID state.
    pub cid: MmCidSnapshot,
    /// 7.0 family: `mm.irq_work` is queued, on this CPU.
    pub irq_work: Option<CpuId>,
    /// 7.0 family: `mm.work` is queued on the workqueue.
    pub work_pending: bool,
}

/// Who runs where, which CIDs the tasks hold and each mm's CID state, at one point of a trace:
/// the typed state, for tools.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Snapshot {
    /// The design family, which says how to read the raw CID words.
    pub family: crate::config::FamilyKind,
    /// Every CPU.
    pub cpus: Vec<CpuSnapshot>,
    /// Every task.
    pub tasks: Vec<TaskSnapshot>,
    /// Every mm.
    pub mms: Vec<MmSnapshot>,
}

/// The [`Snapshot`] of `s`.
pub fn snapshot<F: Family>(s: &State<F>) -> Snapshot {
    Snapshot {
        family: F::KIND,
        cpus: (0..s.np())
            .map(|c| {
                let mut snap = CpuSnapshot {
                    cpu: c,
                    curr: s.curr(c),
                    runqueue: s.runqueue(c).collect(),
                    rq_locked: s.rq_locked(c),
                    schedin: None,
                    mm_cid_get: None,
                    migrating: None,
                };
                F::snapshot_cpu(s, c, &mut snap);
                snap
            })
            .collect(),
        tasks: (0..s.tasks.len() as TaskId)
            .map(|i| {
                let t = s.task(i);
                let mut snap = TaskSnapshot {
                    task: i,
                    state: t.sched.into(),
                    cpu: t.cpu,
                    mm: t.mm,
                    cid: F::task_cid_raw(&t.cid),
                    active: F::active(&t.cid),
                    visible: s.published(i),
                    in_user_space: s.in_user(i),
                    kworker: t.kworker,
                    at: t.op.into(),
                    cid_op: None,
                    last_mm_cid: None,
                    migrate_from_cpu: None,
                };
                F::snapshot_task(&t, &mut snap);
                snap
            })
            .collect(),
        mms: (0..s.mms.len() as MmId)
            .map(|m| {
                let mm = s.mms.get(m as usize).expect("an mm of the state");
                MmSnapshot {
                    mm: m,
                    cid: F::mm_snapshot(&mm.cid),
                    irq_work: mm.irq_work,
                    work_pending: mm.work_pending,
                }
            })
            .collect(),
    }
}

/// Where a task is in the kernel: the operation it is in and the point inside it (a view of
/// `crate::state::Op`). Its [`Display`](fmt::Display) is the kernel location a state report
/// writes after "in": `do_exit, next sched_mm_cid_exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProgramPoint {
    /// In user space (it may start an operation).
    UserSpace,
    /// In `clone()` (or `vfork()`) of `child`.
    Clone {
        /// The new task.
        child: TaskId,
        /// `vfork()`: CLONE_VM|CLONE_VFORK, a new thread group sharing the mm.
        vfork: bool,
        /// Where in `copy_process` / `kernel_clone`.
        at: ForkPoint,
    },
    /// In `do_exit()`.
    Exit {
        /// Where in `do_exit`.
        at: ExitPoint,
    },
    /// In `execve()` / `execveat()` (from `prepare_bprm_creds` to the return to user space).
    Execve {
        /// How it ends (chosen when it starts).
        outcome: ExecOutcome,
        /// Where in `bprm_execve`.
        at: ExecPoint,
        /// `check_unsafe_exec` set `fs->in_exec` for this exec.
        in_exec: bool,
    },
    /// A vfork parent in `wait_for_vfork_done`.
    VforkWait {
        /// The child it waits for.
        child: TaskId,
    },
    /// The kworker running the deferred work of `mm` (`mm_cid_work_fn`).
    Work {
        /// The mm whose work runs.
        mm: MmId,
    },
    /// The kworker with nothing to do.
    KworkerIdle,
}

/// Where a `clone()` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForkPoint {
    /// Next: `dup_task_struct` … `copy_mm` (`copy_process`).
    BeforeCopyProcess,
    /// Next: a failure point or the publication in the thread and task lists.
    BeforePublication,
    /// Next: `sched_post_fork`.
    BeforeSchedPostFork,
    /// Next: `wake_up_new_task`.
    BeforeWakeUpNewTask,
    /// The fork failed; next: `bad_fork_cleanup`.
    Failed,
    /// Inside `bad_fork_cleanup`'s CID cleanup of the child.
    InBadForkCleanup,
}

/// Where a `do_exit()` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitPoint {
    /// Next: `sched_mm_cid_exit` (6.3 and 6.18: `sched_mm_cid_exit_signals`).
    BeforeSchedMmCidExit,
    /// Next: `exit_mm` → `exit_mm_release`.
    BeforeExitMm,
    /// Next: the final `schedule()`.
    BeforeFinalSchedule,
}

/// How an execve ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecOutcome {
    /// `exec_binprm` loads the binary: `de_thread`, `exec_mmap`, a new mm.
    Load,
    /// `exec_binprm` fails before the point of no return: back on the old mm.
    Fail,
    /// `execveat(..., AT_EXECVE_CHECK)`: stops after the checks, back on the old mm.
    Check,
}

/// Where a `bprm_execve` stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecPoint {
    /// Next: `sched_mm_cid_before_execve`.
    BeforeSchedMmCidBeforeExecve,
    /// Next: `exec_binprm` (or the check's return).
    BeforeExecBinprm,
    /// In `de_thread`; next: `exec_mmap`.
    InDeThread,
    /// Next: `sched_mm_cid_after_execve`.
    BeforeSchedMmCidAfterExecve,
    /// Inside `sched_mm_cid_after_execve`'s CID operation.
    InSchedMmCidAfterExecve,
}

impl From<Op> for ProgramPoint {
    fn from(op: Op) -> ProgramPoint {
        match op {
            Op::User => ProgramPoint::UserSpace,
            Op::Fork { child, vfork, at } => ProgramPoint::Clone {
                child,
                vfork,
                at: match at {
                    ForkAt::Copy => ForkPoint::BeforeCopyProcess,
                    ForkAt::Publish => ForkPoint::BeforePublication,
                    ForkAt::PostFork => ForkPoint::BeforeSchedPostFork,
                    ForkAt::Wake => ForkPoint::BeforeWakeUpNewTask,
                    ForkAt::Failed => ForkPoint::Failed,
                    ForkAt::Cleanup => ForkPoint::InBadForkCleanup,
                },
            },
            Op::Exit { at } => ProgramPoint::Exit {
                at: match at {
                    ExitAt::Cid => ExitPoint::BeforeSchedMmCidExit,
                    ExitAt::MmRelease => ExitPoint::BeforeExitMm,
                    ExitAt::Final => ExitPoint::BeforeFinalSchedule,
                },
            },
            Op::Exec { at, kind, in_exec } => ProgramPoint::Execve {
                outcome: match kind {
                    ExecKind::Load => ExecOutcome::Load,
                    ExecKind::Fail => ExecOutcome::Fail,
                    ExecKind::Check => ExecOutcome::Check,
                },
                at: match at {
                    ExecAt::Before => ExecPoint::BeforeSchedMmCidBeforeExecve,
                    ExecAt::Outcome => ExecPoint::BeforeExecBinprm,
                    ExecAt::DeThread => ExecPoint::InDeThread,
                    ExecAt::After => ExecPoint::BeforeSchedMmCidAfterExecve,
                    ExecAt::Return => ExecPoint::InSchedMmCidAfterExecve,
                },
                in_exec,
            },
            Op::VforkWait { child } => ProgramPoint::VforkWait { child },
            Op::Work { mm } => ProgramPoint::Work { mm },
            Op::KworkerIdle => ProgramPoint::KworkerIdle,
        }
    }
}

impl fmt::Display for ProgramPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ProgramPoint::UserSpace => f.write_str("user space"),
            ProgramPoint::Clone { child, vfork, at } => {
                let what = if vfork { "vfork" } else { "clone" };
                let at = match at {
                    ForkPoint::BeforeCopyProcess => "next copy_process",
                    ForkPoint::BeforePublication => "next publication",
                    ForkPoint::BeforeSchedPostFork => "next sched_post_fork",
                    ForkPoint::BeforeWakeUpNewTask => "next wake_up_new_task",
                    ForkPoint::Failed | ForkPoint::InBadForkCleanup => "failed, in bad_fork_cleanup",
                };
                write!(f, "{what} of T{child}, {at}")
            }
            ProgramPoint::Exit { at } => f.write_str(match at {
                ExitPoint::BeforeSchedMmCidExit => "do_exit, next sched_mm_cid_exit",
                ExitPoint::BeforeExitMm => "do_exit, next exit_mm",
                ExitPoint::BeforeFinalSchedule => "do_exit, next the final schedule",
            }),
            ProgramPoint::Execve { outcome, at, in_exec } => {
                let what = match outcome {
                    ExecOutcome::Load => "execve",
                    ExecOutcome::Fail => "execve (will fail)",
                    ExecOutcome::Check => "execveat(AT_EXECVE_CHECK)",
                };
                let at = match at {
                    ExecPoint::BeforeSchedMmCidBeforeExecve => "next sched_mm_cid_before_execve",
                    ExecPoint::BeforeExecBinprm => "next exec_binprm",
                    ExecPoint::InDeThread => "in de_thread, next exec_mmap",
                    ExecPoint::BeforeSchedMmCidAfterExecve => "next sched_mm_cid_after_execve",
                    ExecPoint::InSchedMmCidAfterExecve => "in sched_mm_cid_after_execve",
                };
                let fs = if in_exec { ", fs->in_exec set" } else { "" };
                write!(f, "{what}, {at}{fs}")
            }
            ProgramPoint::VforkWait { child } => write!(f, "vfork, waiting for T{child}"),
            ProgramPoint::Work { mm } => write!(f, "the work of mm{mm}"),
            ProgramPoint::KworkerIdle => f.write_str("idle kworker"),
        }
    }
}

/// A multi-step CID operation a task is inside (a view of the family's own: the 7.0 family's
/// `crate::rewrite::cid_op::CidOp`, 6.18's `crate::legacy::lazy618::WorkAt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CidOperation {
    /// 7.0 family: next `sched_mm_cid_fork(task)` (takes `mutex` and `lock`).
    Fork {
        /// The task being registered (the child, or `current` after execve).
        task: TaskId,
    },
    /// 7.0 family (fix-execve-revive): the revive walk is done; next `sched_mm_cid_fork(task)`'s
    /// locked section (`mutex` held).
    ForkLocked {
        /// The task being registered.
        task: TaskId,
    },
    /// 7.0 family (fix-execve-cid): `sched_mm_cid_fork(current)` after execve ends with a
    /// schedin's CID assignment (`mutex` held).
    ExecAssign {
        /// The assignment has run (and its `get_cid` spun); next: release.
        assigned: bool,
    },
    /// 7.0 family: spinning in `get_cid` inside `sched_mm_cid_fork`'s locked section
    /// (`mm_cid.lock` held, IRQs off).
    ForkSpinLocked {
        /// The task being registered.
        task: TaskId,
        /// The first-user path (also sets the local slot).
        first_user: bool,
    },
    /// 7.0 family: next the child's `get_cid` after a CPU→task fix-up (`mutex` held).
    ForkGetCid {
        /// The task being registered.
        task: TaskId,
    },
    /// 7.0 family: spinning in that `get_cid` (`mutex` held, preemptible).
    ForkSpinMutex {
        /// The task being registered.
        task: TaskId,
    },
    /// 7.0 family: next `sched_mm_cid_exit(task)` (exit, before_execve, a failed fork's cleanup).
    Exit {
        /// The task being de-registered.
        task: TaskId,
    },
    /// 7.0 family: the last user is gone; next `irq_work_sync` + `cancel_work_sync`.
    LastUserSync,
    /// 7.0 family: next the work function's locked section (`mm_cid_work_fn`).
    Work,
    /// 7.0 family: in `mm_cid_fixup_tasks_to_cpus` (`mutex` held).
    FixupTasksToCpus {
        /// Cursor into `user_list`: the next entry to visit.
        next: u32,
    },
    /// 7.0 family, up to 6.19.1: in the budgeted `mm_cid_fixup_tasks_to_cpus` (`mutex` held).
    FixupTasksToCpusBudgeted {
        /// 1: current's thread group; 2: the process list; 3: done, complete next.
        pass: u32,
        /// Pass 1: position in current's thread list; pass 2: in the process list.
        i: u32,
        /// Pass 2: position in that group's thread list.
        j: u32,
        /// Remaining budget.
        budget: u32,
    },
    /// 7.0 family: in `mm_cid_fixup_cpus_to_tasks`, next visiting CPU `cpu` (the walk completes
    /// when `cpu` is the number of CPUs; `mutex` held).
    FixupCpusToTasks {
        /// The next CPU.
        cpu: u32,
        /// What the initiator does afterwards.
        then: AfterFixup,
    },
    /// 6.18: the compaction scan's first loop ("clear old") considers `cpu` next.
    CompactionScan {
        /// The CPU considered.
        cpu: CpuId,
    },
    /// 6.18: `sched_mm_cid_remote_clear` marked `cpu`'s slot `cid|LAZY`; next: check its
    /// `curr`, cmpxchg to UNSET.
    CompactionMarked {
        /// The CPU.
        cpu: CpuId,
        /// The CID marked (raw word).
        cid: LegacyCid,
    },
    /// 6.18: `cpu`'s slot is UNSET and the bit still set (IRQs off); next: `__mm_cid_put`.
    CompactionUnset {
        /// The CPU.
        cpu: CpuId,
        /// The CID in flight (raw word).
        cid: LegacyCid,
    },
}

/// What follows a 7.0-family CPU→task fix-up walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AfterFixup {
    /// Release `mutex`.
    Unlock,
    /// `fork_cid`: give the child its CID (`mutex` only).
    ForkGetCid {
        /// The child.
        task: TaskId,
    },
    /// fix-execve-revive: `fork_cid`'s locked section for this task (`mutex` held).
    ForkLocked {
        /// The task.
        task: TaskId,
    },
}

impl fmt::Display for CidOperation {
    /// The operation in kernel words, as a state report writes it after the task's program point
    /// (7.0 family) or after `mm_cid_work:` (6.18).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CidOperation::Fork { task } => write!(f, "next sched_mm_cid_fork(T{task})"),
            CidOperation::ForkLocked { task } => {
                write!(f, "sched_mm_cid_fork(T{task}) after the revive walk (mutex held)")
            }
            CidOperation::ExecAssign { assigned: false } => {
                f.write_str("next mm_cid_schedin(current) (mutex held)")
            }
            CidOperation::ExecAssign { assigned: true } => {
                f.write_str("after mm_cid_schedin(current) (mutex held)")
            }
            CidOperation::ForkSpinLocked { task, .. } => write!(
                f,
                "sched_mm_cid_fork(T{task}) spinning in get_cid (mm_cid.lock held, IRQs off)"
            ),
            CidOperation::ForkGetCid { task } => {
                write!(f, "sched_mm_cid_fork(T{task}), next get_cid (mutex held)")
            }
            CidOperation::ForkSpinMutex { task } => {
                write!(f, "sched_mm_cid_fork(T{task}) spinning in get_cid (mutex held)")
            }
            CidOperation::Exit { task } => write!(f, "next sched_mm_cid_exit(T{task})"),
            CidOperation::LastUserSync => f.write_str("last user, next irq_work_sync"),
            CidOperation::Work => f.write_str("next mm_cid_work_fn"),
            CidOperation::FixupTasksToCpus { .. } | CidOperation::FixupTasksToCpusBudgeted { .. } => {
                f.write_str("in mm_cid_fixup_tasks_to_cpus (mutex held)")
            }
            CidOperation::FixupCpusToTasks { cpu, .. } => {
                write!(f, "in mm_cid_fixup_cpus_to_tasks, next CPU{cpu} (mutex held)")
            }
            CidOperation::CompactionScan { cpu } => write!(f, "clear old considers CPU{cpu} next"),
            CidOperation::CompactionMarked { cpu, cid } => write!(
                f,
                "CPU{cpu}'s slot marked {cid}, sched_mm_cid_remote_clear checks its curr next"
            ),
            CidOperation::CompactionUnset { cpu, cid } => {
                write!(f, "CPU{cpu}'s slot is UNSET, __mm_cid_put({cid}) next")
            }
        }
    }
}

/// 7.0 family: where a schedin (`mm_cid_schedin`) a CPU is in the middle of stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchedinPoint {
    /// Spinning in `get_cid` inside `mm_cid_from_task`'s slow path, rq lock held, IRQs off.
    GetCidFromTask {
        /// `READ_ONCE(mm.mode)` at schedin start (raw word).
        mode: Mode,
    },
    /// Spinning in `get_cid` inside `mm_cid_from_cpu`'s slow path, rq lock held, IRQs off.
    GetCidFromCpu {
        /// `READ_ONCE(mm.mode)` at schedin start (raw word).
        mode: Mode,
    },
    /// 6.19-rc7: `mm_cid_from_task` chose `cid`; its next instruction is the second mode load,
    /// `READ_ONCE(mm.transit)` (not a spin).
    TransitLoad {
        /// The CID chosen so far (raw word).
        cid: Cid,
    },
}

impl SchedinPoint {
    /// Is it a lap of `get_cid`'s loop (rather than a mere cut)?
    pub fn spins(self) -> bool {
        !matches!(self, SchedinPoint::TransitLoad { .. })
    }
}

impl From<SchedinSpin> for SchedinPoint {
    fn from(s: SchedinSpin) -> SchedinPoint {
        match s {
            SchedinSpin::FromTask { m } => SchedinPoint::GetCidFromTask { mode: m },
            SchedinSpin::FromCpu { m } => SchedinPoint::GetCidFromCpu { mode: m },
            SchedinSpin::TransitLoad { tc } => SchedinPoint::TransitLoad { cid: tc },
        }
    }
}

/// 6.18: the stage of `__mm_cid_get` (the forward-progress wrapper) an allocation is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GetStage {
    /// `use_cid_lock` was 0: the first `try_get`, lock-free.
    Unlocked,
    /// `use_cid_lock` was 1: the first `try_get`, under `cid_lock`.
    LockedFirst,
    /// Under `cid_lock` with `use_cid_lock = 1`: `do { try_get; cpu_relax } while (failed)`.
    Forced,
}

impl From<SlowStage> for GetStage {
    fn from(s: SlowStage) -> GetStage {
        match s {
            SlowStage::Unlocked => GetStage::Unlocked,
            SlowStage::LockedFirst => GetStage::LockedFirst,
            SlowStage::Forced => GetStage::Forced,
        }
    }
}

impl fmt::Display for GetStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetStage::Unlocked => "the lock-free first try_get",
            GetStage::LockedFirst => "the first try_get under cid_lock",
            GetStage::Forced => "the forced try_get loop under cid_lock",
        })
    }
}

/// 6.18: where `mm_cid_get` resumes (a view of `mmcid_cid::legacy::v6_18::GetCont`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GetPoint {
    /// Spinning on `raw_spin_lock(&cid_lock)`; once held, `try_get` in stage `then`.
    Lock {
        /// The stage to run once the lock is held.
        then: GetStage,
    },
    /// Another lap of the forced `try_get` loop, after `cpu_relax` (a cut, not a wait).
    Lap {
        /// Always `forced`.
        stage: GetStage,
    },
    /// In `try_get`'s fallback loop: no clear bit below `nr_cpus_allowed`; `cpu_relax`, rescan.
    Scan {
        /// The stage this `try_get` runs in.
        stage: GetStage,
    },
    /// `try_get`'s fallback found `bit` clear; its `test_and_set_bit` is next (a cut).
    Set {
        /// The stage this `try_get` runs in.
        stage: GetStage,
        /// The bit found clear.
        bit: u32,
    },
}

impl From<GetCont> for GetPoint {
    fn from(k: GetCont) -> GetPoint {
        match k {
            GetContOf::Lock { then } => GetPoint::Lock { then: then.into() },
            GetContOf::Lap { stage } => GetPoint::Lap { stage: stage.into() },
            GetContOf::Scan { stage } => GetPoint::Scan { stage: stage.into() },
            GetContOf::Set { stage, c } => GetPoint::Set {
                stage: stage.into(),
                bit: c.into(),
            },
        }
    }
}

impl fmt::Display for GetPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GetPoint::Lock { then } => write!(f, "waits for cid_lock, then {then}"),
            GetPoint::Lap { .. } => f.write_str("another lap of the forced try_get loop after cpu_relax"),
            GetPoint::Scan { stage } => write!(
                f,
                "no clear bit below nr_cpus_allowed, rescans after cpu_relax ({stage})"
            ),
            GetPoint::Set { stage, bit } => {
                write!(f, "found bit {bit} clear, test_and_set_bit next ({stage})")
            }
        }
    }
}

/// 6.18: a CPU inside `mm_cid_get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MmCidGet {
    /// Where it resumes.
    pub at: GetPoint,
    /// It busy-waits there (a fallback lap with no free bit, or `cid_lock` held by another CPU),
    /// rather than stopping at a mere cut.
    pub busy_wait: bool,
}

/// 6.18: the migration a CPU (the destination) is in the middle of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Migration {
    /// The migrated task.
    pub task: TaskId,
    /// Where `sched_mm_cid_migrate_to` stands.
    pub at: MigratePoint,
}

/// 6.18: where a `sched_mm_cid_migrate_to` stands (a view of
/// `mmcid_cid::legacy::v6_18::Migrate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MigratePoint {
    /// Finished.
    Done {
        /// How it ended.
        outcome: MigrateEnd,
    },
    /// The source slot's CID was fetched; next: the steal (cmpxchg to `cid|LAZY`).
    Fetched {
        /// The source CPU (`t->migrate_from_cpu`).
        src: CpuId,
        /// The CID (raw word).
        cid: LegacyCid,
        /// The destination slot had a `cid` or a `recent_cid` when the migration started.
        dst_set: bool,
    },
    /// The source slot is `cid|LAZY`; next: completing the steal.
    Stolen {
        /// The source CPU.
        src: CpuId,
        /// The CID (raw word).
        cid: LegacyCid,
        /// The destination slot was set.
        dst_set: bool,
    },
    /// The source slot is UNSET and the CID in flight; next: `mm_cid_migrate_place`.
    InFlight {
        /// The source CPU.
        src: CpuId,
        /// The CID (raw word).
        cid: LegacyCid,
        /// The destination slot was set.
        dst_set: bool,
    },
}

/// 6.18: how a migration ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrateEnd {
    /// `migrate_from_cpu == -1`: `last_mm_cid = -1`.
    NoSource,
    /// The destination slot is set and `mm_users >= nr_cpus_allowed`: nothing moves.
    DstKeeps,
    /// No valid CID left in the source slot.
    NothingToMove,
    /// The source CPU runs an active user: `last_mm_cid = -1`.
    SrcBusy,
    /// The cmpxchg to LAZY lost (the source slot changed).
    StealLost,
    /// The source CPU runs an active user after the steal: `last_mm_cid = -1`.
    SrcBusyAfterSteal,
    /// The cmpxchg LAZY → UNSET lost.
    CompleteLost,
    /// Stolen, the destination was set: the bit is cleared.
    Dropped,
    /// Stolen and placed in the destination slot.
    Moved,
}

impl From<MigrateOutcome> for MigrateEnd {
    fn from(o: MigrateOutcome) -> MigrateEnd {
        match o {
            MigrateOutcome::NoSource => MigrateEnd::NoSource,
            MigrateOutcome::DstKeeps => MigrateEnd::DstKeeps,
            MigrateOutcome::NothingToMove => MigrateEnd::NothingToMove,
            MigrateOutcome::SrcBusy => MigrateEnd::SrcBusy,
            MigrateOutcome::StealLost => MigrateEnd::StealLost,
            MigrateOutcome::SrcBusyAfterSteal => MigrateEnd::SrcBusyAfterSteal,
            MigrateOutcome::CompleteLost => MigrateEnd::CompleteLost,
            MigrateOutcome::Dropped => MigrateEnd::Dropped,
            MigrateOutcome::Moved => MigrateEnd::Moved,
        }
    }
}

impl From<Migrate> for MigratePoint {
    fn from(m: Migrate) -> MigratePoint {
        let parts = |c: MigrateCont| (c.src, c.cid, c.dst_set);
        match m {
            MigrateOf::Done(o) => MigratePoint::Done { outcome: o.into() },
            MigrateOf::Fetched(c) => {
                let (src, cid, dst_set) = parts(c);
                MigratePoint::Fetched { src, cid, dst_set }
            }
            MigrateOf::Stolen(c) => {
                let (src, cid, dst_set) = parts(c);
                MigratePoint::Stolen { src, cid, dst_set }
            }
            MigrateOf::InFlight(c) => {
                let (src, cid, dst_set) = parts(c);
                MigratePoint::InFlight { src, cid, dst_set }
            }
        }
    }
}

impl fmt::Display for MigratePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MigratePoint::Done { outcome } => write!(
                f,
                "done: {}",
                match outcome {
                    MigrateEnd::NoSource => "migrate_from_cpu is -1, last_mm_cid = -1",
                    MigrateEnd::DstKeeps => "the destination slot is set and mm_users >= nr_cpus_allowed",
                    MigrateEnd::NothingToMove => "no valid CID left in the source slot",
                    MigrateEnd::SrcBusy => "the source CPU runs an active user, last_mm_cid = -1",
                    MigrateEnd::StealLost => "the cmpxchg to LAZY lost (the source slot changed)",
                    MigrateEnd::SrcBusyAfterSteal => "the source CPU runs an active user after the steal",
                    MigrateEnd::CompleteLost => "the cmpxchg LAZY -> UNSET lost",
                    MigrateEnd::Dropped => "stolen, the destination was set: the bit is cleared",
                    MigrateEnd::Moved => "stolen and placed in the destination slot",
                }
            ),
            MigratePoint::Fetched { src, cid, .. } => {
                write!(f, "fetched CID {cid} of CPU{src}, the steal next")
            }
            MigratePoint::Stolen { src, cid, .. } => write!(
                f,
                "CPU{src}'s slot is {}|LAZY, completing the steal next",
                cid.index()
            ),
            MigratePoint::InFlight { src, cid, .. } => {
                write!(f, "CID {cid} taken from CPU{src}, mm_cid_migrate_place next")
            }
        }
    }
}
