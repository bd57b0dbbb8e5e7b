//! The state of the modelled kernel: CPUs, tasks, mms, thread groups and the process list.
//!
//! Derived facts are computed, not stored: which task is `rq->curr` of a CPU (the task that is
//! `Running` there), what is on a run queue (the `Runnable` tasks of that CPU), and who holds
//! each lock (read off the program points: see [`State::mutex_owner`] and friends).

use mmcid_cid::legacy::LegacyCid;
use mmcid_cid::legacy::v6_3::{Mm63, Task63};
use mmcid_cid::legacy::v6_18::{GetCont, Migrate, Mm618, Task618};
use mmcid_cid::{CpuId, CpuMask, MmCid, SchedinSpin, TaskCid, TaskId};
use serde::{Deserialize, Serialize};

use crate::fixed::Fixed;

/// Most tasks a state can hold (initial threads, forked children and the kworker).
pub const MAX_TASKS: usize = 14;
/// Most mms a state can hold (the process's, plus one per successful execve).
pub const MAX_MMS: usize = 3;
/// Most thread groups a state can hold (the process's, plus one per vfork).
pub const MAX_GROUPS: usize = 8;

/// Index of an mm in [`State::mms`].
pub type MmId = u8;
/// Index of a thread group in [`State::groups`].
pub type GroupId = u8;

/// Scheduler state of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Sched {
    /// Created by fork, not yet woken (`wake_up_new_task` not done): on no run queue.
    New,
    /// `rq->curr` of its CPU.
    Running,
    /// On its CPU's run queue, not running.
    Runnable,
    /// Sleeping (vfork parent waiting for its child, idle kworker).
    Sleeping,
    /// Exited (final schedule done) or a failed fork's child. Stays in the lists (not reaped).
    Dead,
}

/// The kernel operation a task is in (its program point at the operation level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// In user space: may start an operation.
    User,
    /// `clone()` of `child` (`vfork`: CLONE_VM|CLONE_VFORK, new thread group; else CLONE_THREAD).
    Fork {
        /// The new task.
        child: TaskId,
        /// A vfork child (new thread group sharing the mm).
        vfork: bool,
        /// Where in `copy_process` / `kernel_clone`.
        at: ForkAt,
    },
    /// `do_exit()`.
    Exit {
        /// Where in `do_exit`.
        at: ExitAt,
    },
    /// `execve()`.
    Exec {
        /// Where in `bprm_execve`.
        at: ExecAt,
        /// Whether `exec_binprm` will succeed (chosen when the operation starts).
        ok: bool,
    },
    /// A vfork parent waiting for its child to exec or exit (`wait_for_vfork_done`).
    VforkWait {
        /// The child.
        child: TaskId,
    },
    /// The kworker running the deferred mode-switch work of `mm` (`mm_cid_work_fn`).
    Work {
        /// The mm whose work runs.
        mm: MmId,
    },
    /// The kworker with nothing to do.
    KworkerIdle,
    /// 6.18: the compaction scan `mm_cid_work`, run as task_work on a return to user space.
    CidWork {
        /// Where in the scan.
        at: WorkAt,
    },
}

/// Program points of the 6.18 compaction scan (designs.md E.2.6, E.2.7), which remote-clears at
/// most one CPU's CID per run (the second loop, "clear high", is not modelled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkAt {
    /// The first loop ("clear old") considers `cpu` next: clear it (its slot was unused for
    /// 100 ms) or skip it.
    Scan {
        /// The CPU considered.
        cpu: CpuId,
    },
    /// `sched_mm_cid_remote_clear`: the slot of `cpu` was marked `cid|LAZY`; next: check
    /// `rq(cpu).curr`, cmpxchg to UNSET.
    Marked {
        /// The CPU.
        cpu: CpuId,
        /// The CID marked.
        cid: LegacyCid,
    },
    /// The slot is UNSET, the bit still set and owned by this scan (IRQs off); next:
    /// `__mm_cid_put`.
    Unset {
        /// The CPU.
        cpu: CpuId,
        /// The CID in flight.
        cid: LegacyCid,
    },
}

/// Phases of fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ForkAt {
    /// Next: `dup_task_struct` … `copy_mm` (the child exists, unpublished).
    Copy,
    /// Next: a failure point (`copy_namespaces` … cgroup admission), or publication.
    Publish,
    /// Next: `sched_post_fork`.
    PostFork,
    /// Next: `wake_up_new_task` (choose a CPU).
    Wake,
    /// The fork failed; next: the cleanup (S2) and `free_task`.
    Failed,
    /// In the cleanup's `exit_cid(child)` (S2); the child is freed when it returns.
    Cleanup,
}

/// Phases of exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExitAt {
    /// Next: `sched_mm_cid_exit`.
    Cid,
    /// Next: `exit_mm` → `exit_mm_release` (completes a vfork parent's wait).
    MmRelease,
    /// Next: the final `schedule()` (a context switch with a dead prev).
    Final,
}

/// Phases of execve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExecAt {
    /// Next: `sched_mm_cid_before_execve` (= `exit_cid` on the old mm).
    Before,
    /// Next: the outcome (`exec_binprm` succeeds, or fails with ENOEXEC/LSM denial).
    Outcome,
    /// Succeeded so far; next: `de_thread` waits until the other threads are dead, then
    /// `exec_mmap` switches to a new mm.
    DeThread,
    /// Next: `sched_mm_cid_after_execve` (`fork_cid(current)`), on the new or the old mm.
    After,
}

/// The CID sub-operation a task is in (the multi-step parts of `sched_mm_cid_fork`,
/// `sched_mm_cid_exit` and the work function). `None` in [`Task::cid_op`] means none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CidOp {
    /// Next: `sched_mm_cid_fork(t)`: take `mutex` and `lock` and run the locked section.
    Fork {
        /// The task being registered (the child, or `current` after execve).
        t: TaskId,
    },
    /// Spinning in `get_cid` inside `sched_mm_cid_fork`'s locked section (IRQs off, `mutex` and
    /// `lock` held).
    ForkSpinLocked {
        /// The task being registered.
        t: TaskId,
        /// First-user path (also sets the local slot).
        first_user: bool,
    },
    /// Next: the child's `get_cid` after a CPU→task fix-up (only `mutex` held; may spin).
    ForkGetCid {
        /// The task being registered.
        t: TaskId,
    },
    /// Spinning in that `get_cid` (only `mutex` held, preemptible).
    ForkSpinMutex {
        /// The task being registered.
        t: TaskId,
    },
    /// Next: `sched_mm_cid_exit(t)` (before_execve, exit, or a failed fork's cleanup).
    Exit {
        /// The task being de-registered.
        t: TaskId,
    },
    /// Last user gone: next `irq_work_sync` + `cancel_work_sync` (no lock held).
    LastUserSync,
    /// Next: the work function's locked section.
    Work,
    /// In `fixup_tasks_to_cpus` (7.0): next visit `user_list[next]` (skipping `current`), or
    /// `complete_transit` when past the end. `mutex` held.
    TasksToCpus {
        /// Cursor into `user_list`.
        next: u8,
    },
    /// In the budgeted `fixup_tasks_to_cpus` (≤ 6.19.1, designs.md B.5). `mutex` held.
    TasksToCpusBudgeted {
        /// 1: current's thread group; 2: the process list; 3: done, complete next.
        pass: u8,
        /// Pass 1: position in current's thread list; pass 2: position in the process list.
        i: u8,
        /// Pass 2: position in that group's thread list.
        j: u8,
        /// Remaining budget.
        budget: u8,
    },
    /// In `fixup_cpus_to_tasks`: next visit CPU `cpu`, or complete when `cpu == np`. `mutex` held.
    CpusToTasks {
        /// Next CPU.
        cpu: u8,
        /// What the initiator does afterwards.
        then: AfterCpusToTasks,
    },
}

/// What follows a CPU→task fix-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AfterCpusToTasks {
    /// Release `mutex`.
    Unlock,
    /// `fork_cid`: give the child its CID (`mutex` only).
    ForkGetCid(TaskId),
}

/// A task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task {
    /// A kernel worker (no mm; runs the deferred work) rather than a user task.
    pub kworker: bool,
    /// The mm it uses (`None` for the kworker).
    pub mm: Option<MmId>,
    /// Its thread group.
    pub group: GroupId,
    /// Scheduler state.
    pub sched: Sched,
    /// `task_cpu()`: the CPU it runs on or is queued on.
    pub cpu: CpuId,
    /// `cpus_mask`.
    pub affinity: CpuMask,
    /// CID state (`active`, `cid`).
    pub cid: TaskCid,
    /// The kernel operation it is in.
    pub op: Op,
    /// The CID sub-operation inside it, if any.
    pub cid_op: Option<CidOp>,
    /// A fatal signal is pending (sent by `de_thread`): its next operation is exit.
    pub killed: bool,
    /// For a vfork child: the parent waiting for it.
    pub vfork_parent: Option<TaskId>,
    /// The CID state of a pre-rewrite design (`LegacyTask::None` for the 7.0 family, which uses
    /// [`Task::cid`]).
    pub legacy: LegacyTask,
}

/// A task's CID state in a pre-rewrite design.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegacyTask {
    /// A 7.0-family design.
    #[default]
    None,
    /// 6.3.
    V63(Task63),
    /// 6.14–6.18.
    V618(Task618),
}

impl LegacyTask {
    /// The state `dup_task_struct` + `init_sched_mm_cid` leave for `family`.
    pub fn new(family: crate::config::Family) -> LegacyTask {
        match family {
            crate::config::Family::Rewrite => LegacyTask::None,
            crate::config::Family::PerSwitch63 => LegacyTask::V63(Task63::default()),
            crate::config::Family::Lazy618 => LegacyTask::V618(Task618::default()),
        }
    }
    /// The 6.3 state (panics for another design).
    pub fn v63(&mut self) -> &mut Task63 {
        match self {
            LegacyTask::V63(t) => t,
            _ => panic!("not a 6.3 task"),
        }
    }
    /// The 6.18 state (panics for another design).
    pub fn v618(&mut self) -> &mut Task618 {
        match self {
            LegacyTask::V618(t) => t,
            _ => panic!("not a 6.18 task"),
        }
    }
    /// `t.mm_cid` (None for the 7.0 family).
    pub fn mm_cid(&self) -> Option<LegacyCid> {
        match self {
            LegacyTask::None => None,
            LegacyTask::V63(t) => Some(t.mm_cid),
            LegacyTask::V618(t) => Some(t.mm_cid),
        }
    }
    /// `t.mm_cid_active`.
    pub fn active(&self) -> bool {
        match self {
            LegacyTask::None => false,
            LegacyTask::V63(t) => t.active,
            LegacyTask::V618(t) => t.active,
        }
    }
}

/// An mm's CID state in a pre-rewrite design.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LegacyMm {
    /// A 7.0-family design (the state is [`Mm::cid`]).
    #[default]
    None,
    /// 6.3.
    V63(Mm63),
    /// 6.14–6.18.
    V618(Mm618),
}

impl LegacyMm {
    /// The 6.3 state (panics for another design).
    pub fn v63(&mut self) -> &mut Mm63 {
        match self {
            LegacyMm::V63(m) => m,
            _ => panic!("not a 6.3 mm"),
        }
    }
    /// The 6.18 state (panics for another design).
    pub fn v618(&mut self) -> &mut Mm618 {
        match self {
            LegacyMm::V618(m) => m,
            _ => panic!("not a 6.18 mm"),
        }
    }
}

impl Default for Task {
    fn default() -> Task {
        Task {
            kworker: false,
            mm: None,
            group: 0,
            sched: Sched::Dead,
            cpu: 0,
            affinity: 0,
            cid: TaskCid::default(),
            op: Op::User,
            cid_op: None,
            killed: false,
            vfork_parent: None,
            legacy: LegacyTask::None,
        }
    }
}

/// A CPU. Its `rq->curr` and run queue are derived from the tasks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cpu {
    /// Spinning in `get_cid` inside the schedin of its current task, rq lock held, IRQs off.
    pub spin: Option<SchedinSpin>,
    /// 6.18: inside `mm_cid_get` for its current task (a switch-in or `after_execve`), rq lock
    /// held, IRQs off, at this continuation (a busy-wait or a mere cut, see `GetCont::waits`).
    pub legacy_spin: Option<GetCont>,
    /// 6.18: in `activate_task` of a migrated task (its dst rq lock held) between the steps of
    /// `sched_mm_cid_migrate_to`: the task and the migration's next step. The CPU does nothing else
    /// until it completes.
    pub migrating: Option<(TaskId, Migrate)>,
}

/// An mm: its CID state plus the deferred-work machinery around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mm {
    /// The CID state (7.0 family; a pre-rewrite design leaves it at its initial value).
    pub cid: MmCid,
    /// The CID state of a pre-rewrite design.
    pub legacy: LegacyMm,
    /// `mm.irq_work` is queued, on this CPU.
    pub irq_work: Option<CpuId>,
    /// `mm.work` is queued on the workqueue.
    pub work_pending: bool,
}

impl Default for Mm {
    fn default() -> Mm {
        Mm {
            cid: MmCid::new(1, 1),
            legacy: LegacyMm::None,
            irq_work: None,
            work_pending: false,
        }
    }
}

/// A thread group: its thread list, leader first, then in publication order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Group {
    /// Published threads.
    pub threads: Fixed<TaskId, MAX_TASKS>,
}

/// Remaining operation budgets (see [`crate::Budgets`]).
pub type Remaining = crate::config::Budgets;

/// The whole modelled kernel. `Copy`: no heap allocation anywhere in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The CPUs (`np` of them).
    pub cpus: Fixed<Cpu, { mmcid_cid::MAX_CPUS }>,
    /// All tasks ever created (dead ones stay: they are not reaped).
    pub tasks: Fixed<Task, MAX_TASKS>,
    /// All mms ever created.
    pub mms: Fixed<Mm, MAX_MMS>,
    /// Thread groups.
    pub groups: Fixed<Group, MAX_GROUPS>,
    /// The global process list: published groups, in publication order.
    pub process_list: Fixed<GroupId, MAX_GROUPS>,
    /// Operations left to start.
    pub left: Remaining,
}

impl State {
    /// Number of CPUs.
    pub fn np(&self) -> u8 {
        self.cpus.len() as u8
    }
    /// `rq->curr` of `cpu` (`None`: idle, or a task outside the model).
    pub fn curr(&self, cpu: CpuId) -> Option<TaskId> {
        self.tasks
            .iter()
            .position(|t| t.sched == Sched::Running && t.cpu == cpu)
            .map(|i| i as TaskId)
    }
    /// The runnable tasks queued on `cpu`, in task order.
    pub fn runqueue(&self, cpu: CpuId) -> impl Iterator<Item = TaskId> + '_ {
        self.tasks
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.sched == Sched::Runnable && t.cpu == cpu)
            .map(|(i, _)| i as TaskId)
    }
    /// Task `t`.
    pub fn task(&self, t: TaskId) -> &Task {
        &self.tasks[t as usize]
    }
    /// Task `t`, mutably.
    pub fn task_mut(&mut self, t: TaskId) -> &mut Task {
        &mut self.tasks[t as usize]
    }
    /// The CID state of mm `m`.
    pub fn mm(&self, m: MmId) -> &MmCid {
        &self.mms[m as usize].cid
    }

    /// Is the task's context switch complete (it runs, and its CPU is not spinning in its schedin,
    /// or in 6.18's `mm_cid_get`)?
    pub fn on_cpu_settled(&self, t: TaskId) -> bool {
        let task = self.task(t);
        let c = &self.cpus[task.cpu as usize];
        task.sched == Sched::Running && c.spin.is_none() && c.legacy_spin.is_none()
    }

    /// The task holding `mm.mutex` of `m`, read off the program points.
    pub fn mutex_owner(&self, m: MmId) -> Option<TaskId> {
        self.tasks
            .iter()
            .position(|t| t.cid_op.is_some_and(holds_mutex) && self.op_mm(t) == Some(m))
            .map(|i| i as TaskId)
    }

    /// The CPU holding `mm.lock` of `m` (only a fork spinning in its locked section holds it across
    /// steps).
    pub fn lock_owner(&self, m: MmId) -> Option<CpuId> {
        self.tasks
            .iter()
            .find(|t| matches!(t.cid_op, Some(CidOp::ForkSpinLocked { .. })) && self.op_mm(t) == Some(m))
            .map(|t| t.cpu)
    }

    /// Is `cpu`'s rq lock held across steps? (By a schedin spinning on that CPU, or, in 6.18, by
    /// a migration to it in progress.)
    pub fn rq_locked(&self, cpu: CpuId) -> bool {
        let c = &self.cpus[cpu as usize];
        c.spin.is_some() || c.legacy_spin.is_some() || c.migrating.is_some()
    }

    /// Are IRQs off on `cpu` across steps (a schedin spin, a fork spinning under `mm.lock`, or a
    /// 6.18 remote clear between its cmpxchg and its `clear_bit`)?
    pub fn irqs_off(&self, cpu: CpuId) -> bool {
        self.rq_locked(cpu)
            || self.curr(cpu).is_some_and(|t| {
                let t = self.task(t);
                matches!(t.cid_op, Some(CidOp::ForkSpinLocked { .. }))
                    || matches!(
                        t.op,
                        Op::CidWork {
                            at: WorkAt::Unset { .. }
                        }
                    )
            })
    }

    /// The mm a task's CID sub-operation works on: the kworker's work mm, else the task's own mm
    /// (for a fork, the child shares it; for exec, `current.mm` at that point).
    pub fn op_mm(&self, t: &Task) -> Option<MmId> {
        match t.op {
            Op::Work { mm } => Some(mm),
            _ => t.mm,
        }
    }

    /// Is a fix-up walk of `m` in progress (its initiator between the flip and `complete_transit`)?
    pub fn walking(&self, m: MmId) -> bool {
        self.tasks.iter().any(|t| {
            self.op_mm(t) == Some(m)
                && matches!(
                    t.cid_op,
                    Some(
                        CidOp::TasksToCpus { .. }
                            | CidOp::TasksToCpusBudgeted { .. }
                            | CidOp::CpusToTasks { .. }
                    )
                )
        })
    }

    /// Is the task spinning in a `get_cid` loop (its own, inside fork)?
    pub fn task_spinning(&self, t: TaskId) -> bool {
        matches!(
            self.task(t).cid_op,
            Some(CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. })
        )
    }

    /// Is `t` published (in a thread list of a group on the process list)?
    pub fn published(&self, t: TaskId) -> bool {
        let g = self.task(t).group;
        self.process_list.contains(&g) && self.groups[g as usize].threads.contains(&t)
    }
}

/// Does a task at this CID program point hold `mm.mutex`?
pub fn holds_mutex(op: CidOp) -> bool {
    !matches!(
        op,
        CidOp::Fork { .. } | CidOp::Exit { .. } | CidOp::Work | CidOp::LastUserSync
    )
}
