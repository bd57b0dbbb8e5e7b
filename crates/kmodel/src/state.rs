//! The state of the modelled kernel: CPUs, tasks, mms, thread groups and the process list.
//!
//! The kernel part is the same for every design; the CID part of each task, mm and CPU is the
//! [`Family`]'s. Derived facts are computed, not stored: which task is `rq->curr` of a CPU (the
//! task that is `Running` there), what is on a run queue (the `Runnable` tasks of that CPU), and
//! who holds each lock (read off the program points).

use mmcid_cid::{CpuId, CpuMask, MAX_CPUS, TaskId};
use serde::{Deserialize, Serialize};

use crate::family::Family;
use crate::fixed::Fixed;
use crate::mms::{MmMut, Mms};
use crate::tasks::{TaskMut, Tasks};

/// The state's capacities are the configuration's limits ([`crate::config`] checks them).
pub use crate::config::{MAX_GROUPS, MAX_MMS, MAX_TASKS};

/// Index of an mm in [`State::mms`].
pub type MmId = u8;
/// A thread group: a task's `group` (its thread list is [`State::threads`]).
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

/// The kernel operation a task is in (its program point at the operation level). The CID code's
/// own multi-step operations are the family's ([`Task::cid_op`]).
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
    /// `execve()` / `execveat()`: from `prepare_bprm_creds` (which takes the thread group's
    /// `cred_guard_mutex`) to the return to user space.
    Exec {
        /// Where in `bprm_execve`.
        at: ExecAt,
        /// How it ends (chosen when the operation starts).
        kind: ExecKind,
        /// `check_unsafe_exec` set `fs->in_exec` for this exec (no `CLONE_FS` clone of the thread
        /// group was between `copy_fs` and its publication): `CLONE_FS` clones of the group fail
        /// with `EAGAIN` until it is cleared ([`State::in_exec`]).
        in_exec: bool,
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

/// How an execve ends, chosen when it starts (`docs/kernel-reading.md` section 1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExecKind {
    /// `exec_binprm` loads the binary: `de_thread`, `exec_mmap`, then `after_execve` on the new mm.
    Load,
    /// `exec_binprm` (or the LSM) fails before the point of no return (ENOEXEC, a missing
    /// interpreter, a denial): `after_execve` on the old mm, back to user space with the error.
    Fail,
    /// `execveat(fd, "", argv, envp, AT_EXECVE_CHECK)`: `bprm_execve` stops after
    /// `security_bprm_creds_for_exec` (`bprm->is_check`) and returns 0 through the same `out:`
    /// path: `after_execve` on the old mm, back to user space. No failure needed.
    Check,
}

impl ExecKind {
    /// Does `after_execve` run on the old mm (every outcome but a successful load)?
    pub fn stays_on_old_mm(self) -> bool {
        self != ExecKind::Load
    }
}

/// Phases of execve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExecAt {
    /// Next: `sched_mm_cid_before_execve` (= `exit_cid` on the old mm).
    Before,
    /// Next: the outcome (`exec_binprm` succeeds, fails, or `AT_EXECVE_CHECK` stops).
    Outcome,
    /// Succeeded so far; next: `de_thread` waits until the other threads are dead, then
    /// `exec_mmap` switches to a new mm.
    DeThread,
    /// Next: `sched_mm_cid_after_execve` (`fork_cid(current)`), on the new or the old mm.
    After,
    /// Inside `sched_mm_cid_after_execve`'s CID operation; when it returns, `free_bprm` (failure,
    /// check) clears `fs->in_exec` and releases `cred_guard_mutex`, and the task is back in user
    /// space.
    Return,
}

/// A task: the kernel's view of it, plus the family's CID state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Task<F: Family> {
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
    /// The kernel operation it is in.
    pub op: Op,
    /// The family's multi-step CID operation inside it, if any.
    pub cid_op: Option<F::CidOp>,
    /// A fatal signal is pending (sent by `de_thread`): its next operation is exit.
    pub killed: bool,
    /// For a vfork child: the parent waiting for it.
    pub vfork_parent: Option<TaskId>,
    /// Its place on its thread group's thread list (`signal->thread_head`): 0 while unpublished,
    /// else 1 for the first thread published into the group, 2 for the next, … The thread lists
    /// and who is published are derived from it ([`State::threads`], [`State::published`]).
    pub thread_pos: u8,
    /// The family's CID state of the task.
    pub cid: F::TaskCid,
}

impl<F: Family> Default for Task<F> {
    fn default() -> Self {
        Task {
            kworker: false,
            mm: None,
            group: 0,
            sched: Sched::Dead,
            cpu: 0,
            affinity: 0,
            op: Op::User,
            cid_op: None,
            killed: false,
            vfork_parent: None,
            thread_pos: 0,
            cid: F::TaskCid::default(),
        }
    }
}

/// An mm: the family's CID state plus the deferred-work machinery around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Mm<F: Family> {
    /// The family's CID state of the mm.
    pub cid: F::MmCid,
    /// `mm.irq_work` is queued, on this CPU (7.0 family).
    pub irq_work: Option<CpuId>,
    /// `mm.work` is queued on the workqueue (7.0 family).
    pub work_pending: bool,
}

impl<F: Family> Mm<F> {
    /// A fresh mm (`mm_init` → `mm_init_cid`) of a task with affinity `mask`.
    pub fn new(np: u8, mask: CpuMask) -> Self {
        Mm {
            cid: F::new_mm(np, mask),
            irq_work: None,
            work_pending: false,
        }
    }
}

impl<F: Family> Default for Mm<F> {
    fn default() -> Self {
        Mm::new(1, 1)
    }
}

/// Remaining operation budgets (see [`crate::Budgets`]).
pub type Remaining = crate::config::Budgets;

/// The whole modelled kernel. `Copy`: no heap allocation anywhere in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct State<F: Family> {
    /// The CPUs (`np` of them): what each is in the middle of. `rq->curr` and the run queues are
    /// derived from the tasks.
    pub cpus: Fixed<F::CpuCid, MAX_CPUS>,
    /// All tasks ever created (dead ones stay: they are not reaped), packed ([`crate::tasks`]).
    pub tasks: Tasks<F>,
    /// All mms ever created, in the family's stored form ([`crate::mms`]).
    pub mms: Mms<F>,
    /// The global process list (`init_task.tasks`): published thread groups, in publication
    /// order. Stored, not derived: which group was published first is not visible in the tasks
    /// (a per-task global publication number would tell apart states the lists do not). The
    /// thread lists themselves are derived ([`State::threads`]).
    pub process_list: Fixed<GroupId, MAX_GROUPS>,
    /// Operations left to start.
    #[serde(with = "budgets_as_tuple")]
    pub left: Remaining,
}

/// The budgets inside a state are written as a plain tuple of counts: the configuration's own
/// serde form leaves out zero `compactions` and `exec_checks` (for JSON), which a binary encoding
/// cannot.
mod budgets_as_tuple {
    use super::Remaining;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(b: &Remaining, s: S) -> Result<S::Ok, S::Error> {
        (
            b.forks,
            b.vforks,
            b.fork_fails,
            b.exits,
            b.execs,
            b.exec_fails,
            b.exec_checks,
            b.affinity,
            b.compactions,
        )
            .serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Remaining, D::Error> {
        let (forks, vforks, fork_fails, exits, execs, exec_fails, exec_checks, affinity, compactions) =
            <(u8, u8, u8, u8, u8, u8, u8, u8, u8)>::deserialize(d)?;
        Ok(Remaining {
            forks,
            vforks,
            fork_fails,
            exits,
            execs,
            exec_fails,
            exec_checks,
            affinity,
            compactions,
        })
    }
}

impl<F: Family> State<F> {
    /// Number of CPUs.
    pub fn np(&self) -> u8 {
        self.cpus.len() as u8
    }
    /// `rq->curr` of `cpu` (`None`: idle, or a task outside the model).
    pub fn curr(&self, cpu: CpuId) -> Option<TaskId> {
        (0..self.tasks.len())
            .find(|&i| self.tasks.sched_cpu(i) == (Sched::Running, cpu))
            .map(|i| i as TaskId)
    }
    /// The runnable tasks queued on `cpu`, in task order.
    pub fn runqueue(&self, cpu: CpuId) -> impl Iterator<Item = TaskId> + '_ {
        (0..self.tasks.len())
            .filter(move |&i| self.tasks.sched_cpu(i) == (Sched::Runnable, cpu))
            .map(|i| i as TaskId)
    }
    /// Task `t` (a copy, unpacked).
    #[inline(always)]
    pub fn task(&self, t: TaskId) -> Task<F> {
        self.tasks.at(t as usize)
    }
    /// Task `t` for writing: changes are stored when the returned guard is dropped.
    #[inline(always)]
    pub fn task_mut(&mut self, t: TaskId) -> TaskMut<'_, F> {
        TaskMut::new(&mut self.tasks, t as usize)
    }
    /// The CID state of mm `m`.
    #[inline(always)]
    pub fn mm(&self, m: MmId) -> F::MmCid {
        self.mms.at(m as usize).cid
    }
    /// Mm `m` for writing: changes are stored when the returned guard is dropped.
    #[inline(always)]
    pub fn mm_mut(&mut self, m: MmId) -> MmMut<'_, F> {
        MmMut::new(&mut self.mms, m as usize)
    }

    /// Is the task's context switch complete (it runs, and its CPU is not still inside the
    /// switch, e.g. spinning in `get_cid`)?
    pub fn on_cpu_settled(&self, t: TaskId) -> bool {
        let task = self.task(t);
        task.sched == Sched::Running && !F::in_switch(&self.cpus[task.cpu as usize])
    }

    /// Is `cpu`'s rq lock held across steps (by a schedin spinning there, or a 6.18 migration
    /// to it in progress)?
    pub fn rq_locked(&self, cpu: CpuId) -> bool {
        F::rq_locked(&self.cpus[cpu as usize])
    }

    /// Are IRQs off on `cpu` across steps (its rq lock is held across steps, or its current task
    /// is inside a CID operation that keeps them off)?
    pub fn irqs_off(&self, cpu: CpuId) -> bool {
        self.rq_locked(cpu)
            || self
                .curr(cpu)
                .is_some_and(|t| self.task(t).cid_op.is_some_and(|op| F::irqs_off(&op)))
    }

    /// The mm a task's CID operation works on: the kworker's work mm, else the task's own mm
    /// (for a fork, the child shares it; for exec, `current.mm` at that point).
    pub fn op_mm(&self, t: impl std::borrow::Borrow<Task<F>>) -> Option<MmId> {
        let t = t.borrow();
        match t.op {
            Op::Work { mm } => Some(mm),
            _ => t.mm,
        }
    }

    /// Is `t` published (in a thread list of a group on the process list)? A thread is put on
    /// its group's list, and a new group on the process list, in the same step (`copy_process`
    /// under the tasklist lock), so being on a thread list is enough.
    pub fn published(&self, t: TaskId) -> bool {
        self.task(t).thread_pos != 0
    }

    /// The thread list of group `g` (`for_each_thread`): its published threads in publication
    /// order, leader first. Threads are only ever added at the tail (`list_add_tail_rcu` in
    /// `copy_process`): the model reaps no task (dead ones stay listed) and does not model
    /// `de_thread`'s leader exchange, so positions never change once given.
    pub fn threads(&self, g: GroupId) -> Fixed<TaskId, MAX_TASKS> {
        let mut slots = [0 as TaskId; MAX_TASKS];
        let mut n = 0;
        for (i, t) in self.tasks.iter().enumerate() {
            if t.group == g && t.thread_pos != 0 {
                slots[t.thread_pos as usize - 1] = i as TaskId;
                n += 1;
            }
        }
        Fixed::from_slice(&slots[..n])
    }

    /// Number of thread groups created so far (group ids are handed out in order, each to the
    /// vfork child it is created for, which keeps it even if the fork fails).
    pub fn group_count(&self) -> usize {
        self.tasks.iter().map(|t| t.group as usize + 1).max().unwrap_or(0)
    }

    /// The non-empty thread lists, by group id.
    pub fn thread_lists(&self) -> Vec<Fixed<TaskId, MAX_TASKS>> {
        (0..self.group_count())
            .map(|g| self.threads(g as GroupId))
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Is the task in user space with nothing in progress (the point where I2 applies and new
    /// operations start)?
    pub fn in_user(&self, t: TaskId) -> bool {
        let task = self.task(t);
        task.op == Op::User && task.cid_op.is_none()
    }

    /// The task of thread group `g` inside an execve, if any. It holds the group's
    /// `signal->cred_guard_mutex` (taken in `prepare_bprm_creds`, released in `setup_new_exec` or
    /// `free_bprm`), so no other thread of the group can start one.
    pub fn exec_of_group(&self, g: GroupId) -> Option<TaskId> {
        self.tasks
            .iter()
            .position(|t| t.group == g && matches!(t.op, Op::Exec { .. }))
            .map(|i| i as TaskId)
    }

    /// `fs->in_exec` of thread group `g` (the model's `fs_struct` is the group's: pthread clones
    /// share it, vfork children get a copy): set by `check_unsafe_exec` at the exec's start if no
    /// `CLONE_FS` clone was in flight, cleared by `begin_new_exec` once `de_thread` succeeded
    /// (here: at `exec_mmap`) or by `free_bprm` after `after_execve` on the failure and
    /// `AT_EXECVE_CHECK` paths (here: when the task is back in user space).
    pub fn in_exec(&self, g: GroupId) -> bool {
        self.tasks.iter().any(|t| {
            t.group == g
                && matches!(t.op, Op::Exec { at, kind, in_exec: true }
                    if !(kind == ExecKind::Load && at >= ExecAt::After))
        })
    }

    /// Is a `CLONE_FS` clone (a pthread `fork`) by a thread of group `g` between `copy_fs` and its
    /// publication, or failed and not yet past `bad_fork_cleanup_fs`? Its child then counts in
    /// `fs->users` but not among the threads `check_unsafe_exec` counts, so an exec starting now
    /// does not set `in_exec`.
    pub fn clone_fs_in_flight(&self, g: GroupId) -> bool {
        self.tasks.iter().any(|t| {
            t.group == g
                && matches!(
                    t.op,
                    Op::Fork {
                        vfork: false,
                        at: ForkAt::Copy | ForkAt::Publish | ForkAt::Failed | ForkAt::Cleanup,
                        ..
                    }
                )
        })
    }

    /// Runs `f` on mm `m`'s and task `t`'s CID states (the task is unpacked for the call and
    /// stored again after it).
    #[inline(always)]
    pub fn with_mm_task<R>(
        &mut self,
        m: MmId,
        t: TaskId,
        f: impl FnOnce(&mut F::MmCid, &mut F::TaskCid) -> R,
    ) -> R {
        let mut mm = MmMut::new(&mut self.mms, m as usize);
        let mut task = TaskMut::new(&mut self.tasks, t as usize);
        f(&mut mm.cid, &mut task.cid)
    }

    /// Runs `f` on mm `m`'s CID state and the CID states of tasks `a` and `b` (`a != b`).
    pub fn with_mm_two<R>(
        &mut self,
        m: MmId,
        a: TaskId,
        b: TaskId,
        f: impl FnOnce(&mut F::MmCid, &mut F::TaskCid, &mut F::TaskCid) -> R,
    ) -> R {
        assert_ne!(a, b);
        let (mut ta, mut tb) = (self.task(a), self.task(b));
        let r = f(&mut self.mm_mut(m).cid, &mut ta.cid, &mut tb.cid);
        self.tasks.set(a as usize, ta);
        self.tasks.set(b as usize, tb);
        r
    }

    /// The tasks of mm `m` (`t.mm == Some(m)`), with their ids.
    pub fn tasks_of(&self, m: MmId) -> impl Iterator<Item = (TaskId, Task<F>)> + '_ {
        // Filters on the stored mm bits, unpacking only the tasks that pass.
        self.tasks
            .stored()
            .iter()
            .enumerate()
            .filter(move |(_, t)| t.mm() == Some(m))
            .map(|(i, t)| (i as TaskId, t.load()))
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::family::{Lazy618, Rewrite};

    /// Issue 9's target for the 7.0 family's in-memory state (a state is copied for every
    /// successor). Also printed by `mmcid bench`.
    #[test]
    fn a_7_0_state_is_at_most_256_bytes() {
        let sizes = format!(
            "State<Rewrite> {} B (stored task {}, stored mm {}, CPU {}; unpacked Task {}, Mm {}, MmCid {}); State<Lazy618> {} B",
            std::mem::size_of::<State<Rewrite>>(),
            std::mem::size_of::<crate::tasks::StoredTask<Rewrite>>(),
            std::mem::size_of::<crate::rewrite::store::MmStore>(),
            std::mem::size_of::<crate::rewrite::RwCpu>(),
            std::mem::size_of::<Task<Rewrite>>(),
            std::mem::size_of::<Mm<Rewrite>>(),
            std::mem::size_of::<mmcid_cid::MmCid>(),
            std::mem::size_of::<State<Lazy618>>(),
        );
        println!("{sizes}");
        assert!(std::mem::size_of::<State<Rewrite>>() <= 256, "{sizes}");
    }
}
