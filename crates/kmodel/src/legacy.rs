//! The pre-rewrite designs (6.3 and 6.14–6.18, designs.md E) inside the same kernel model.
//!
//! The step functions of [`crate::step`] call these hooks at their decision points (a small
//! `match` on [`Family`]); the 7.0 family never reaches them. The CID code itself is
//! `mmcid_cid::legacy`; this module only wires it to the kernel's events:
//! - fork: registration (`active = 1`) in `copy_mm` (the `copy_process` step); no CID before the
//!   first switch-in; no cleanup on a failed fork (E.2.2). 6.18 raises `mm_users` in `copy_mm` and
//!   drops it in `bad_fork_cleanup_mm`, `exit_mm` and, for the old mm, `exec_mmap`.
//! - context switch: 6.3 `switch_mm_cid` (one step, with the same-mm handover); 6.18
//!   `switch_out` then `switch_in`, whose `mm_cid_get` may stop at a cut or a busy-wait: the CPU
//!   then stays in the switch ([`Cpu::legacy_spin`], rq lock held) and each further piece is a
//!   `SchedinRetry` step of that CPU.
//! - exit: `sched_mm_cid_exit_signals` is the first step of `do_exit` (before PF_EXITING); execve:
//!   `before_execve` and `after_execve` are one step each (6.18: under the local rq lock, and
//!   `after_execve`'s `mm_cid_get` may spin like a switch-in; 6.3: IRQs off, and `exec_mmap` runs
//!   `mm_init_cid` on the new mm again).
//! - migration (6.18): the `Migrate` step does `set_task_cpu` + the first step of
//!   `sched_mm_cid_migrate_to`; the steal, the unset and the placement are further steps of the
//!   destination CPU ([`Cpu::migrating`]), which holds its rq lock across them (it does nothing
//!   else meanwhile).
//! - compaction (6.18): `task_work mm_cid_work` may run at a return to user space of a
//!   non-exiting user task (budget `compactions`): its first loop skips CPUs (time is abstracted
//!   into the choice) and remote-clears one, in three steps (mark, check `curr` + cmpxchg to
//!   UNSET, `clear_bit`; the last two with IRQs off, so not preemptible in between).
//! - affinity: 6.18 `mm_update_cpus_allowed`; 6.3 nothing.
//!
//! Time is abstracted: every slot stamp is 0 (nothing reads it). The kernel's `cid_lock` and
//! `use_cid_lock` of 6.18 are global; here each mm has its own (cross-mm contention after an
//! execve is not modelled).

use mmcid_cid::legacy::LegacyCid;
use mmcid_cid::legacy::v6_3::{self, Mm63, SwitchMms, Task63};
use mmcid_cid::legacy::v6_18::{self, LegacyAlloc, Migrate, Mm618, RemoteClear, Task618};
use mmcid_cid::{CpuId, CpuMask, TaskId};

use crate::config::Family;
use crate::state::*;

/// The abstract clock passed to every 6.18 stamp.
const NOW: u8 = 0;

/// Is `rq(cpu).curr` an active CID user of mm `m` (`curr->mm_cid_active && curr->mm == mm`)?
pub fn curr_is_active_user(s: &State, m: MmId, cpu: CpuId) -> bool {
    s.curr(cpu).is_some_and(|t| {
        let t = s.task(t);
        t.mm == Some(m) && t.legacy.active()
    })
}

/// `mm_init` → `mm_init_cid` for a new mm of a task with affinity `mask`.
pub fn new_mm(family: Family, np: u8, mask: CpuMask) -> LegacyMm {
    match family {
        Family::Rewrite => LegacyMm::None,
        Family::PerSwitch63 => LegacyMm::V63(Mm63::new(np)),
        Family::Lazy618 => LegacyMm::V618(Mm618::new(np, mask)),
    }
}

fn t63(s: &State, t: TaskId) -> Task63 {
    match s.task(t).legacy {
        LegacyTask::V63(x) => x,
        _ => panic!("T{t} is not a 6.3 task"),
    }
}

fn m63(s: &State, m: MmId) -> Mm63 {
    match s.mms[m as usize].legacy {
        LegacyMm::V63(x) => x,
        _ => panic!("mm{m} is not a 6.3 mm"),
    }
}

/// Mm `m`'s and task `t`'s 6.18 states together.
fn both618(s: &mut State, m: MmId, t: TaskId) -> (&mut Mm618, &mut Task618) {
    (s.mms[m as usize].legacy.v618(), s.tasks[t as usize].legacy.v618())
}

/// 6.18: the mm of a task, as a 6.18 state.
fn mm618(s: &mut State, m: MmId) -> &mut Mm618 {
    s.mms[m as usize].legacy.v618()
}

/// 6.3: an mm's and a task's CID state, borrowed together.
fn both63(s: &mut State, m: MmId, t: TaskId) -> (&mut Mm63, &mut Task63) {
    (s.mms[m as usize].legacy.v63(), s.tasks[t as usize].legacy.v63())
}

/// `mmput`: 6.18 tracks `mm_users` (its allocator bounds CIDs by it); 6.3 does not.
fn mmput(family: Family, s: &mut State, m: MmId) {
    if family == Family::Lazy618 {
        mm618(s, m).mm_users -= 1;
    }
}

/// `switch_mm_cid(prev, next)` on `cpu`: the scheduler state (`rq->curr = next`) is already
/// updated by the caller.
pub fn switch(family: Family, s: &mut State, cpu: CpuId, prev: Option<TaskId>, next: Option<TaskId>) {
    match family {
        Family::Rewrite => unreachable!("7.0 family switches in step.rs"),
        Family::PerSwitch63 => {
            let pm = prev.and_then(|t| s.task(t).mm);
            let nm = next.and_then(|t| s.task(t).mm);
            let mut pt = prev.map_or_else(Task63::default, |t| t63(s, t));
            let mut nt = next.map_or_else(Task63::default, |t| t63(s, t));
            match (pm, nm) {
                (Some(a), Some(b)) if a == b => {
                    let mut mm = m63(s, a);
                    v6_3::switch(SwitchMms::Same(&mut mm), &mut pt, &mut nt);
                    s.mms[a as usize].legacy = LegacyMm::V63(mm);
                }
                _ => {
                    let mut ma = pm.map(|m| m63(s, m));
                    let mut mb = nm.map(|m| m63(s, m));
                    v6_3::switch(
                        SwitchMms::Distinct {
                            prev: ma.as_mut(),
                            next: mb.as_mut(),
                        },
                        &mut pt,
                        &mut nt,
                    );
                    if let (Some(m), Some(x)) = (pm, ma) {
                        s.mms[m as usize].legacy = LegacyMm::V63(x);
                    }
                    if let (Some(m), Some(x)) = (nm, mb) {
                        s.mms[m as usize].legacy = LegacyMm::V63(x);
                    }
                }
            }
            if let Some(t) = prev {
                s.task_mut(t).legacy = LegacyTask::V63(pt);
            }
            if let Some(t) = next {
                s.task_mut(t).legacy = LegacyTask::V63(nt);
            }
        }
        Family::Lazy618 => {
            if let Some(p) = prev {
                if let Some(m) = s.task(p).mm {
                    let (mm, t) = both618(s, m, p);
                    v6_18::switch_out(mm, cpu, t, NOW);
                }
            }
            if let Some(n) = next {
                if let Some(m) = s.task(n).mm {
                    let (mm, t) = both618(s, m, n);
                    if let Some(LegacyAlloc::Spin(k)) = v6_18::switch_in(mm, cpu, t, NOW) {
                        s.cpus[cpu as usize].legacy_spin = Some(k);
                    }
                }
            }
        }
    }
}

/// 6.18: the next piece of `cpu`'s `mm_cid_get` (`get_retry` with the CPU's continuation).
pub fn get_retry(s: &mut State, cpu: CpuId) {
    let k = s.cpus[cpu as usize]
        .legacy_spin
        .take()
        .expect("not in mm_cid_get");
    let t = s.curr(cpu).expect("mm_cid_get without curr");
    let m = s.task(t).mm.expect("mm_cid_get for a task without mm");
    let (mm, task) = both618(s, m, t);
    if let LegacyAlloc::Spin(k) = v6_18::get_retry(mm, cpu, task, k, NOW) {
        s.cpus[cpu as usize].legacy_spin = Some(k);
    }
}

/// 6.18 load balancing: `set_task_cpu(task, to)`, then `activate_task` with MIGRATED →
/// `sched_mm_cid_migrate_to` (first step; the rest are the destination CPU's next steps).
pub fn migrate(s: &mut State, task: TaskId, to: CpuId) {
    let from = s.task(task).cpu;
    s.task_mut(task).cpu = to;
    let Some(m) = s.task(task).mm else {
        return;
    };
    let busy = curr_is_active_user(s, m, from);
    let (mm, t) = both618(s, m, task);
    v6_18::set_task_cpu(t, from, to);
    match v6_18::migrate_to(mm, to, t, busy) {
        Migrate::Done(_) => {}
        r => s.cpus[to as usize].migrating = Some((task, r)),
    }
}

/// 6.18: the next step of the migration `cpu` (the destination) is in.
pub fn migrate_next(s: &mut State, cpu: CpuId) {
    let (task, st) = s.cpus[cpu as usize].migrating.take().expect("no migration");
    let m = s.task(task).mm.expect("migrating a task without mm");
    let r = match st {
        Migrate::Fetched(mc) => v6_18::migrate_steal(mm618(s, m), mc),
        Migrate::Stolen(mc) => {
            let busy = curr_is_active_user(s, m, mc.src);
            let (mm, t) = both618(s, m, task);
            v6_18::migrate_unset(mm, t, mc, busy)
        }
        Migrate::InFlight(mc) => v6_18::migrate_place(mm618(s, m), cpu, mc, NOW),
        Migrate::Done(_) => unreachable!("a finished migration is not stored"),
    };
    if !matches!(r, Migrate::Done(_)) {
        s.cpus[cpu as usize].migrating = Some((task, r));
    }
}

/// `copy_mm` → `sched_mm_cid_fork(child)`: `active = 1` (6.18: also `mm_users++` for CLONE_VM).
pub fn fork_copy(family: Family, s: &mut State, child: TaskId) {
    let m = s.task(child).mm.expect("child without mm");
    match family {
        Family::Rewrite => unreachable!(),
        Family::PerSwitch63 => v6_3::fork(s.tasks[child as usize].legacy.v63()),
        Family::Lazy618 => {
            let (mm, t) = both618(s, m, child);
            v6_18::fork(t);
            mm.mm_users += 1;
        }
    }
}

/// A failed fork's `bad_fork_cleanup_mm`: no CID cleanup (E.2.2); 6.18: `mmput` of the child's
/// reference.
pub fn fork_failed(family: Family, s: &mut State, child: TaskId) {
    if let Some(m) = s.task(child).mm {
        mmput(family, s, m);
    }
}

/// `sched_mm_cid_exit_signals(t)` (or `sched_mm_cid_before_execve(t)`: the same code), one step.
pub fn exit_signals(family: Family, s: &mut State, task: TaskId) {
    let Some(m) = s.task(task).mm else {
        return;
    };
    let cpu = s.task(task).cpu;
    match family {
        Family::Rewrite => unreachable!(),
        Family::PerSwitch63 => {
            let (mm, t) = both63(s, m, task);
            v6_3::exit_signals(mm, t);
        }
        Family::Lazy618 => {
            let (mm, t) = both618(s, m, task);
            v6_18::exit_signals(mm, cpu, t);
        }
    }
}

/// `exit_mm` (6.18: `mm_users--`; the CID code does nothing else there).
pub fn exit_mm(family: Family, s: &mut State, task: TaskId) {
    if let Some(m) = s.task(task).mm {
        mmput(family, s, m);
    }
}

/// `exec_mmap`: `task` switched from `old` to the fresh mm `new` (6.18: `mmput(old)`; 6.3:
/// `mm_init_cid(new)` again).
pub fn exec_mmap(family: Family, s: &mut State, old: Option<MmId>, new: MmId) {
    match family {
        Family::Rewrite => unreachable!(),
        Family::PerSwitch63 => v6_3::mm_init_cid(s.mms[new as usize].legacy.v63()),
        Family::Lazy618 => {
            if let Some(o) = old {
                mmput(family, s, o);
            }
        }
    }
}

/// `sched_mm_cid_after_execve(t)`, one step (6.18: its `mm_cid_get` may stop at a cut or spin).
pub fn after_execve(family: Family, s: &mut State, task: TaskId) {
    let Some(m) = s.task(task).mm else {
        return;
    };
    let cpu = s.task(task).cpu;
    match family {
        Family::Rewrite => unreachable!(),
        Family::PerSwitch63 => {
            let (mm, t) = both63(s, m, task);
            v6_3::after_execve(mm, t);
        }
        Family::Lazy618 => {
            let (mm, t) = both618(s, m, task);
            if let LegacyAlloc::Spin(k) = v6_18::after_execve(mm, cpu, t, NOW) {
                s.cpus[cpu as usize].legacy_spin = Some(k);
            }
        }
    }
}

/// `__do_set_cpus_allowed` → 6.18 `mm_update_cpus_allowed` (6.3: nothing).
pub fn affinity(family: Family, s: &mut State, m: MmId, mask: CpuMask) {
    if family == Family::Lazy618 {
        v6_18::update_cpus_allowed(mm618(s, m), mask);
    }
}

// ---------------------------------------------------------------------------------------------
// The compaction scan (6.18).

/// May the first loop remote-clear `cpu` for mm `m` now (its `curr` is not an active user, its
/// slot holds a valid CID; time is abstracted)?
pub fn clear_candidate(s: &State, m: MmId, cpu: CpuId) -> bool {
    match &s.mms[m as usize].legacy {
        LegacyMm::V618(mm) => v6_18::clear_old_candidate(mm, cpu, curr_is_active_user(s, m, cpu)),
        _ => false,
    }
}

/// The first CPU at or after `from` that is a candidate now (skipping the others is always a
/// possible choice of the abstracted clock).
fn next_candidate(s: &State, m: MmId, from: CpuId) -> Option<CpuId> {
    (from..s.np()).find(|&c| clear_candidate(s, m, c))
}

/// Can `task` (in user space) run `mm_cid_work` with something to do?
pub fn can_compact(s: &State, task: TaskId) -> bool {
    let t = s.task(task);
    s.left.compactions > 0 && t.legacy.active() && t.mm.is_some_and(|m| next_candidate(s, m, 0).is_some())
}

/// `task_work mm_cid_work` starts (the tick queued it; it runs on this return to user space).
pub fn compaction_start(s: &mut State, task: TaskId) {
    s.left.compactions -= 1;
    let m = s.task(task).mm.expect("user task");
    s.task_mut(task).op = match next_candidate(s, m, 0) {
        Some(cpu) => Op::CidWork {
            at: WorkAt::Scan { cpu },
        },
        None => Op::User,
    };
}

/// The scan's next step (`Next`): clear the CPU it considers, or finish a clear.
pub fn compaction_next(s: &mut State, task: TaskId) {
    let m = s.task(task).mm.expect("user task");
    let Op::CidWork { at } = s.task(task).op else {
        unreachable!("not in mm_cid_work")
    };
    let next = match at {
        WorkAt::Scan { cpu } => match v6_18::remote_clear_mark(mm618(s, m), cpu) {
            Some(cid) => Op::CidWork {
                at: WorkAt::Marked { cpu, cid },
            },
            None => Op::User,
        },
        WorkAt::Marked { cpu, cid } => {
            let busy = curr_is_active_user(s, m, cpu);
            match v6_18::remote_clear_unset(mm618(s, m), cpu, cid, busy) {
                RemoteClear::Unset(cid) => Op::CidWork {
                    at: WorkAt::Unset { cpu, cid },
                },
                _ => Op::User,
            }
        }
        WorkAt::Unset { cid, .. } => {
            v6_18::remote_clear_drop(mm618(s, m), cid);
            Op::User
        }
    };
    s.task_mut(task).op = next;
}

/// The scan skips the CPU it considers (`Fail`): its slot was used within 100 ms.
pub fn compaction_skip(s: &mut State, task: TaskId) {
    let m = s.task(task).mm.expect("user task");
    let Op::CidWork {
        at: WorkAt::Scan { cpu },
    } = s.task(task).op
    else {
        unreachable!("not scanning")
    };
    s.task_mut(task).op = match next_candidate(s, m, cpu + 1) {
        Some(cpu) => Op::CidWork {
            at: WorkAt::Scan { cpu },
        },
        None => Op::User,
    };
}

/// CIDs of mm `m` taken out of a slot whose bit is not cleared or placed yet: a remote clear
/// between its cmpxchg to UNSET and its `clear_bit`, a migration between its unset and its
/// placement.
pub fn in_flight(s: &State, m: MmId) -> Vec<LegacyCid> {
    let mut out = Vec::new();
    for t in s.tasks.iter() {
        if let (
            Some(tm),
            Op::CidWork {
                at: WorkAt::Unset { cid, .. },
            },
        ) = (t.mm, t.op)
        {
            if tm == m {
                out.push(cid);
            }
        }
    }
    for c in s.cpus.iter() {
        if let Some((t, Migrate::InFlight(mc))) = c.migrating {
            if s.task(t).mm == Some(m) {
                out.push(mc.cid);
            }
        }
    }
    out
}
