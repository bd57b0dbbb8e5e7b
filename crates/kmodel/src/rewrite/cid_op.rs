//! The 7.0 family's multi-step CID operations: `sched_mm_cid_fork`, `sched_mm_cid_exit`, the
//! deferred work, and the spins inside them. A task inside one has `cid_op = Some(CidOp)`.
//!
//! Lock owners are read off these program points, never stored: a task at any point but the
//! first of an operation holds `mm.mutex` ([`holds_mutex`]); a fork spinning in its locked section
//! also holds `mm.lock` with IRQs off.

use mmcid_cid::{self as cid, Alloc, ExitCid, ForkCid, Schedin, TaskId, Work};
use serde::{Deserialize, Serialize};

use crate::family::Rewrite;
use crate::ops::{Params, Step, sub_op_done};
use crate::rewrite::walk;
use crate::state::*;

/// The CID operation a task is in (the multi-step parts of `sched_mm_cid_fork`,
/// `sched_mm_cid_exit` and the work function).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CidOp {
    /// Next: `sched_mm_cid_fork(t)`: take `mutex` and `lock` and run the locked section.
    Fork {
        /// The task being registered (the child, or `current` after execve).
        t: TaskId,
    },
    /// F2's fix (`fix-execve-revive`): the CPU→task walk that completed the ignored switch back
    /// is done; next: `sched_mm_cid_fork(t)`'s locked section (`mutex` already held).
    ForkLocked {
        /// The task being registered.
        t: TaskId,
    },
    /// F1's fix (`fix-execve-cid`): `sched_mm_cid_fork(current)` after execve ends with a
    /// schedule-in's CID assignment under this CPU's rq lock (`mutex` held). `spun`: the
    /// assignment ran and its `get_cid` spun (the CPU spins in the switch); next: release.
    ExecAssign {
        /// The assignment has run.
        spun: bool,
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
    /// F2's fix: `fork_cid`'s locked section for this task (`mutex` held).
    ForkLocked(TaskId),
}

impl CidOp {
    /// Renames the task ids it names (symmetry reduction).
    pub fn rename(self, r: &dyn Fn(TaskId) -> TaskId) -> CidOp {
        match self {
            CidOp::Fork { t } => CidOp::Fork { t: r(t) },
            CidOp::ForkLocked { t } => CidOp::ForkLocked { t: r(t) },
            CidOp::ForkSpinLocked { t, first_user } => CidOp::ForkSpinLocked { t: r(t), first_user },
            CidOp::ForkGetCid { t } => CidOp::ForkGetCid { t: r(t) },
            CidOp::ForkSpinMutex { t } => CidOp::ForkSpinMutex { t: r(t) },
            CidOp::Exit { t } => CidOp::Exit { t: r(t) },
            CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkGetCid(t),
            } => CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkGetCid(r(t)),
            },
            CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkLocked(t),
            } => CidOp::CpusToTasks {
                cpu,
                then: AfterCpusToTasks::ForkLocked(r(t)),
            },
            c => c,
        }
    }
    /// Is this a fix-up walk (between the flip and `complete_transit`)?
    pub fn is_walk(self) -> bool {
        matches!(
            self,
            CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. }
        )
    }
    /// Is this a spin in `get_cid` inside fork?
    pub fn is_spin(self) -> bool {
        matches!(self, CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. })
    }
}

/// Does a task at this CID program point hold `mm.mutex`?
pub fn holds_mutex(op: CidOp) -> bool {
    !matches!(
        op,
        CidOp::Fork { .. } | CidOp::Exit { .. } | CidOp::Work | CidOp::LastUserSync
    )
}

/// The task holding `mm.mutex` of `m`, read off the program points.
pub fn mutex_owner(s: &State<Rewrite>, m: MmId) -> Option<TaskId> {
    s.tasks
        .iter()
        .position(|t| t.cid_op.is_some_and(holds_mutex) && s.op_mm(t) == Some(m))
        .map(|i| i as TaskId)
}

/// The CPU holding `mm.lock` of `m` (only a fork spinning in its locked section holds it across
/// steps).
pub fn lock_owner(s: &State<Rewrite>, m: MmId) -> Option<mmcid_cid::CpuId> {
    s.tasks
        .iter()
        .find(|t| matches!(t.cid_op, Some(CidOp::ForkSpinLocked { .. })) && s.op_mm(t) == Some(m))
        .map(|t| t.cpu)
}

/// Is a fix-up walk of `m` in progress (its initiator between the flip and `complete_transit`)?
pub fn walking(s: &State<Rewrite>, m: MmId) -> bool {
    s.tasks
        .iter()
        .any(|t| s.op_mm(t) == Some(m) && t.cid_op.is_some_and(CidOp::is_walk))
}

/// Is the task spinning in a `get_cid` loop (its own, inside fork)?
pub fn task_spinning(s: &State<Rewrite>, t: TaskId) -> bool {
    s.task(t).cid_op.is_some_and(CidOp::is_spin)
}

/// Is the mm's CID state where the kernel would leave it between operations (no walk, no spin)?
pub fn quiescent(s: &State<Rewrite>, m: MmId) -> bool {
    !walking(s, m) && mutex_owner(s, m).is_none()
}

/// Is the kworker running the work of `m` (inside its CID operation)?
fn kworker_running_work(s: &State<Rewrite>, m: MmId) -> bool {
    s.tasks
        .iter()
        .any(|t| t.kworker && t.op == Op::Work { mm: m } && t.cid_op.is_some())
}

/// The step of a running task inside a CID operation, if its locks are free.
pub fn steps(p: &Params, s: &State<Rewrite>, task: TaskId, out: &mut Vec<Step>) {
    let t = s.task(task);
    let op = t.cid_op.expect("inside a CID operation");
    let m = s.op_mm(t).expect("CID op without mm");
    let ok = match op {
        CidOp::Fork { .. } | CidOp::Exit { .. } | CidOp::Work => {
            mutex_owner(s, m).is_none() && lock_owner(s, m).is_none()
        }
        CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => {
            out.push(Step::Retry { task });
            return;
        }
        CidOp::ForkGetCid { .. } | CidOp::ExecAssign { .. } => true,
        CidOp::ForkLocked { .. } => lock_owner(s, m).is_none(),
        CidOp::LastUserSync => {
            let mm = s.mms.at(m as usize);
            mm.irq_work.is_none() && !kworker_running_work(s, m)
        }
        CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. } => {
            walk::lock(p, s, task).is_none_or(|cpu| !s.rq_locked(cpu))
        }
    };
    if ok {
        out.push(Step::Next { task });
    }
}

/// One step of the task's CID operation.
pub fn step(p: &Params, s: &mut State<Rewrite>, task: TaskId) {
    let sw = &p.sw;
    let t = s.task(task);
    let m = s.op_mm(t).expect("CID op without mm");
    let cpu = t.cpu;
    match t.cid_op.expect("inside a CID operation") {
        CidOp::Fork { t: child } | CidOp::ForkLocked { t: child } => {
            let first_user = s.mm(m).users == 0;
            let r = if child == task {
                s.with_mm_task(m, task, |mm, c| cid::fork_cid_locked(mm, c, task, None, cpu, sw))
            } else {
                s.with_mm_two(m, child, task, |mm, c, cur| {
                    cid::fork_cid_locked(mm, c, child, Some(cur), cpu, sw)
                })
            };
            let next = match r {
                ForkCid::Done => fork_cid_done(p, s, task, first_user),
                ForkCid::SpinLocked { first_user } => Some(CidOp::ForkSpinLocked { t: child, first_user }),
                ForkCid::FixupTasksToCpus => Some(walk::start_tasks_to_cpus(p, s, m)),
                ForkCid::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::ForkGetCid(child),
                }),
                ForkCid::FixupRevive => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::ForkLocked(child),
                }),
            };
            continue_with(s, task, next);
        }
        CidOp::ForkGetCid { t: child } => {
            let next = match s.with_mm_task(m, child, cid::fork_cid_after_fixup) {
                Alloc::Got(_) => fork_cid_done(p, s, task, false),
                Alloc::Spin => Some(CidOp::ForkSpinMutex { t: child }),
            };
            continue_with(s, task, next);
        }
        CidOp::ExecAssign { spun: false } => {
            match s.with_mm_task(m, task, |mm, c| cid::fork_cid_execve_assign(mm, c, cpu, sw)) {
                Schedin::Done => continue_with(s, task, None),
                Schedin::Spin(sp) => {
                    // mm_cid_schedin spins in get_cid with this CPU's rq lock held: the CPU
                    // stays in it (SchedinRetry laps); the task releases mutex afterwards.
                    s.cpus[cpu as usize].set_spin(Some(sp));
                    continue_with(s, task, Some(CidOp::ExecAssign { spun: true }));
                }
            }
        }
        CidOp::ExecAssign { spun: true } => continue_with(s, task, None),
        CidOp::Exit { t: who } => {
            let r = if who == task {
                s.with_mm_task(m, task, |mm, c| {
                    cid::exit_cid_locked(mm, c, task, None, true, cpu, sw)
                })
            } else {
                let uses = s.task(task).mm == Some(m);
                s.with_mm_two(m, who, task, |mm, c, cur| {
                    cid::exit_cid_locked(mm, c, who, Some(cur), uses, cpu, sw)
                })
            };
            let next = match r {
                ExitCid::NotUser | ExitCid::Done => None,
                ExitCid::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::Unlock,
                }),
                ExitCid::LastUser => Some(CidOp::LastUserSync),
            };
            continue_with(s, task, next);
        }
        CidOp::LastUserSync => {
            // irq_work_sync(); cancel_work_sync(): nothing can requeue, users == 0.
            s.mm_mut(m).work_pending = false;
            continue_with(s, task, None);
        }
        CidOp::Work => {
            let r = if s.mms.at(m as usize).work_pending {
                s.mm_mut(m).work_pending = false;
                cid::work_locked(&mut s.mm_mut(m).cid, sw)
            } else {
                Work::Done
            };
            let next = match r {
                Work::Done => None,
                Work::FixupCpusToTasks => Some(CidOp::CpusToTasks {
                    cpu: 0,
                    then: AfterCpusToTasks::Unlock,
                }),
            };
            continue_with(s, task, next);
        }
        CidOp::ForkSpinLocked { .. } | CidOp::ForkSpinMutex { .. } => unreachable!("spins retry"),
        CidOp::TasksToCpus { .. } | CidOp::TasksToCpusBudgeted { .. } | CidOp::CpusToTasks { .. } => {
            walk::step(p, s, task, m)
        }
    }
}

/// Another lap of a `get_cid` loop inside the task's fork.
pub fn retry(p: &Params, s: &mut State<Rewrite>, task: TaskId) {
    let t = s.task(task);
    let m = s.op_mm(t).expect("CID op without mm");
    let (child, locked_first) = match t.cid_op {
        Some(CidOp::ForkSpinLocked { t, first_user }) => (t, first_user),
        Some(CidOp::ForkSpinMutex { t }) => (t, false),
        _ => unreachable!("retry without spin"),
    };
    if s.with_mm_task(m, child, |mm, c| cid::fork_cid_retry(mm, c, t.cpu, locked_first)) {
        let next = fork_cid_done(p, s, task, locked_first);
        continue_with(s, task, next);
    }
}

/// What follows the end of `sched_mm_cid_fork`: with F1's fix (`fix-execve-cid`), the
/// registration of `current` after execve ends with [`CidOp::ExecAssign`], except on the
/// first-user path. `task` is the one running `sched_mm_cid_fork`; it is inside
/// `sched_mm_cid_after_execve` exactly when it is at [`ExecAt::Return`].
pub fn fork_cid_done(p: &Params, s: &State<Rewrite>, task: TaskId, first_user: bool) -> Option<CidOp> {
    let execve = matches!(
        s.task(task).op,
        Op::Exec {
            at: ExecAt::Return,
            ..
        }
    );
    (p.sw.fix_execve_cid && execve && !first_user).then_some(CidOp::ExecAssign { spun: false })
}

/// The operation goes on at `next`, or returns (`None`: its locks are released).
pub fn continue_with(s: &mut State<Rewrite>, task: TaskId, next: Option<CidOp>) {
    s.task_mut(task).cid_op = next;
    if next.is_none() {
        sub_op_done(s, task);
    }
}

/// A CID word in 8 bits: UNSET, ONCPU and TRANSIT in bits 7–5, the number in bits 4–0. Every CID
/// the checker stores fits: numbers come from an `np`-bit bitmap (np ≤ 8).
#[inline(always)]
fn cid_byte(c: mmcid_cid::Cid) -> u32 {
    let r = c.raw();
    assert!(
        r & 0x1fff_ffe0 == 0,
        "CID word {r:#x} does not fit a stored task (number >= 32)"
    );
    (r >> 24) & 0xe0 | r & 0x1f
}

#[inline(always)]
fn cid_of_byte(b: u32) -> mmcid_cid::Cid {
    mmcid_cid::Cid::from_raw((b & 0xe0) << 24 | b & 0x1f)
}

/// The 7.0 family's part of a stored task ([`crate::tasks`]) in 32 bits: bits 0–7 the CID word
/// (`cid_byte`), bit 8 `active`, bits 9–12 the CID operation's tag (0 = none), bits 13–31 its
/// fields.
#[inline(always)]
pub fn store_task(cid: &mmcid_cid::TaskCid, op: Option<&CidOp>) -> [u8; 4] {
    let t4 = |t: TaskId| {
        debug_assert!(t < 16);
        t as u32
    };
    let f5 = |x: u8| {
        debug_assert!(x < 32);
        x as u32
    };
    let (tag, p): (u32, u32) = match op {
        None => (0, 0),
        Some(&CidOp::Fork { t }) => (1, t4(t)),
        Some(&CidOp::ForkLocked { t }) => (2, t4(t)),
        Some(&CidOp::ExecAssign { spun }) => (3, spun as u32),
        Some(&CidOp::ForkSpinLocked { t, first_user }) => (4, t4(t) | (first_user as u32) << 4),
        Some(&CidOp::ForkGetCid { t }) => (5, t4(t)),
        Some(&CidOp::ForkSpinMutex { t }) => (6, t4(t)),
        Some(&CidOp::Exit { t }) => (7, t4(t)),
        Some(&CidOp::LastUserSync) => (8, 0),
        Some(&CidOp::Work) => (9, 0),
        Some(&CidOp::TasksToCpus { next }) => (10, f5(next)),
        Some(&CidOp::TasksToCpusBudgeted { pass, i, j, budget }) => {
            debug_assert!(pass < 4);
            (11, pass as u32 | f5(i) << 2 | f5(j) << 7 | f5(budget) << 12)
        }
        Some(&CidOp::CpusToTasks { cpu, then }) => {
            debug_assert!(cpu < 16);
            let then = match then {
                AfterCpusToTasks::Unlock => 0,
                AfterCpusToTasks::ForkGetCid(t) => 1 | t4(t) << 2,
                AfterCpusToTasks::ForkLocked(t) => 2 | t4(t) << 2,
            };
            (12, cpu as u32 | then << 4)
        }
    };
    (cid_byte(cid.cid) | (cid.active as u32) << 8 | tag << 9 | p << 13).to_le_bytes()
}

/// Unpacks what [`store_task`] packed.
#[inline(always)]
pub fn load_task(b: &[u8; 4]) -> (mmcid_cid::TaskCid, Option<CidOp>) {
    let w = u32::from_le_bytes(*b);
    let cid = mmcid_cid::TaskCid {
        active: w & 0x100 != 0,
        cid: cid_of_byte(w & 0xff),
    };
    let p = w >> 13;
    let t = (p & 15) as TaskId;
    let f5 = |s: u32| (p >> s & 31) as u8;
    let op = match w >> 9 & 15 {
        0 => None,
        1 => Some(CidOp::Fork { t }),
        2 => Some(CidOp::ForkLocked { t }),
        3 => Some(CidOp::ExecAssign { spun: p & 1 != 0 }),
        4 => Some(CidOp::ForkSpinLocked {
            t,
            first_user: p & 16 != 0,
        }),
        5 => Some(CidOp::ForkGetCid { t }),
        6 => Some(CidOp::ForkSpinMutex { t }),
        7 => Some(CidOp::Exit { t }),
        8 => Some(CidOp::LastUserSync),
        9 => Some(CidOp::Work),
        10 => Some(CidOp::TasksToCpus { next: f5(0) }),
        11 => Some(CidOp::TasksToCpusBudgeted {
            pass: (p & 3) as u8,
            i: f5(2),
            j: f5(7),
            budget: f5(12),
        }),
        _ => Some(CidOp::CpusToTasks {
            cpu: (p & 15) as u8,
            then: match p >> 4 & 3 {
                0 => AfterCpusToTasks::Unlock,
                1 => AfterCpusToTasks::ForkGetCid((p >> 6 & 15) as TaskId),
                _ => AfterCpusToTasks::ForkLocked((p >> 6 & 15) as TaskId),
            },
        }),
    };
    (cid, op)
}

/// [`Family::task_key`](crate::family::Family::task_key) of a task part [`store_task`] packed,
/// read off the bits (symmetry reduction keys every task of every successor).
#[inline(always)]
pub fn task_key_stored(b: &[u8; 4]) -> u64 {
    let w = u32::from_le_bytes(*b);
    let p = (w >> 13) as u64;
    // The key's op number per stored tag (see `task_key`), with its task-free payload.
    let op: u64 = match w >> 9 & 15 {
        0 => 0,
        1 => 1,
        2 => 11,
        3 => 12 | (p & 1) << 4,
        4 => 2 | (p >> 4 & 1) << 4,
        5 => 3,
        6 => 4,
        7 => 5,
        8 => 6,
        9 => 7,
        10 => 8 | (p & 31) << 4,
        11 => 9 | (p & 0x1_ffff) << 4,
        _ => 10 | (p & 0x3f) << 4,
    };
    let b = w & 0xff;
    let raw = ((b & 0xe0) << 24 | b & 0x1f) as u64;
    op << 33 | ((w >> 8 & 1) as u64) << 32 | raw
}

/// A task part [`store_task`] packed, with the task id its CID operation names renamed through
/// `map` in place on the bits (what [`CidOp::rename`] does to the unpacked operation).
#[inline(always)]
pub fn rename_task_store(b: &[u8; 4], map: &[TaskId; crate::state::MAX_TASKS]) -> [u8; 4] {
    let w = u32::from_le_bytes(*b);
    // The bit position of the task id, if the operation names one.
    let at = match w >> 9 & 15 {
        1 | 2 | 4 | 5 | 6 | 7 => 13,
        12 if w >> 17 & 3 != 0 => 19,
        _ => return *b,
    };
    let t = map[(w >> at & 15) as usize] as u32;
    (w & !(15 << at) | t << at).to_le_bytes()
}
