//! Registration and de-registration of CID users (spec 4.2, 4.3, 4.5): `fork_cid`
//! (`sched_mm_cid_fork`), `exit_cid` (`sched_mm_cid_exit`), and their `add_user` / `remove_user`.
//!
//! Each kernel function is split where the kernel model must cut it into atomic steps:
//! - `fork_cid`: [`fork_cid_locked`] is the section under `mutex` + `lock`; it may end spinning
//!   in `get_cid` under `lock` ([`fork_cid_retry`]) or hand over to a fix-up walk run by the caller
//!   step by step, after which [`fork_cid_after_fixup`] allocates the child's CID under `mutex` only.
//! - `exit_cid`: [`exit_cid_locked`] is the `mutex` + `lock` section; a switch back to per-task
//!   continues with the CPU→task walk; the last user continues with the irq_work / work sync.

use crate::helpers::{
    Alloc, drop_on_cpu, get_cid, get_cid_retry, transit_to_cpu, transit_to_task, unset_on_task,
};
use crate::mm::{MmCidOf, TaskCid, WarnSite, update_max_cids};
use crate::sched::{Schedin, schedin};
use crate::storage::{Num, Storage, Users};
use crate::switches::{ExitLocalSlot, Switches};
use crate::{Cid, Mode};

/// `sched_mm_cid_add_user(t, mm)`: register `t` (head of `user_list`), count it, re-evaluate the
/// mode. Returns true if the mode flipped.
///
/// # Locks
/// `mm.lock` (and `mutex`).
pub fn add_user<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid, id: S::Task, sw: &Switches) -> bool {
    t.active = true;
    mm.user_list.add_head(id);
    mm.users = S::Count::of(mm.users.n() + 1);
    update_max_cids(mm, sw)
}

/// `sched_mm_cid_remove_user(t)`: de-register `t`; its TRANSIT is stripped and its CID dropped if it
/// owned it. Returns true if the mode flipped.
///
/// # Locks
/// `mm.lock` (and `mutex`).
pub fn remove_user<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid, id: S::Task, sw: &Switches) -> bool {
    t.active = false;
    t.cid = t.cid.strip_transit();
    unset_on_task(mm, t);
    mm.user_list.del(id);
    mm.users = S::Count::of(mm.users.n() - 1);
    update_max_cids(mm, sw)
}

/// What follows the locked section of `fork_cid`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum ForkCid {
    /// Done: both locks released.
    Done,
    /// Spinning in `get_cid` with `mutex` and `lock` held, IRQs off. `first_user`: on success the
    /// local slot is set too ("required for execve").
    SpinLocked {
        /// The first-user path (also mirrors the CID into the local slot).
        first_user: bool,
    },
    /// The mode flipped to per-CPU: run `fixup_tasks_to_cpus` (mutex held), then done.
    FixupTasksToCpus,
    /// The mode flipped to per-task: run `fixup_cpus_to_tasks` (mutex held), then
    /// [`fork_cid_after_fixup`].
    FixupCpusToTasks,
    /// Switch F2 (`fix-execve-revive`): nothing done yet; the mm has no users but its mode is not
    /// per-task. Run `fixup_cpus_to_tasks` (mutex held), then call [`fork_cid_locked`] again.
    FixupRevive,
}

/// `sched_mm_cid_fork(t)`, the section under `mm.mutex` and `mm.lock` (spec 4.2).
///
/// `t` is the new task; `current` is the forker, or `None` when `t` is `current` itself
/// (`sched_mm_cid_after_execve`). `cpu` is the CPU `current` runs on.
///
/// # Locks
/// Takes `mutex`, then `lock` with IRQs off. On [`ForkCid::Done`] both are released; on
/// [`ForkCid::SpinLocked`] both are held; on a fix-up only `mutex` is held.
pub fn fork_cid_locked<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    id: S::Task,
    current: Option<&mut TaskCid>,
    cpu: S::Cpu,
    sw: &Switches,
) -> ForkCid {
    if t.cid != Cid::UNSET {
        mm.faults.warn.get_or_insert(WarnSite::ForkCidNotUnset);
    }
    // fix-execve-revive (F2; docs/kernel-reading.md section 10): "A failed execve() of a task
    // which dropped out as user before the last user left brings the mm back.
    // sched_mm_cid_exit() ignored the switch back to per task mode for the last user, so CPUs may
    // still own CIDs. Complete that switch first." Under mutex only, before mm.lock:
    //     if (unlikely(!mm->mm_cid.users && READ_ONCE(mm->mm_cid.mode))) {
    //             WARN_ON_ONCE(mm->mm_cid.mode != MM_CID_TRANSIT);
    //             mm_cid_fixup_cpus_to_tasks(mm);
    //     }
    if sw.fix_execve_revive && mm.users.n() == 0 && mm.mode != Mode::PER_TASK {
        if mm.mode != Mode::TO_TASK {
            mm.faults.warn.get_or_insert(WarnSite::ReviveNotTransit);
        }
        return ForkCid::FixupRevive;
    }
    if mm.users.n() == 0 {
        // First user (new process, or after execve): the mode-change result is ignored.
        add_user(mm, t, id, sw);
        return match get_cid(mm) {
            Alloc::Got(c) => {
                t.cid = c;
                mm.set_slot(cpu, c); // "required for execve": current keeps running here
                ForkCid::Done
            }
            Alloc::Spin => ForkCid::SpinLocked { first_user: true },
        };
    }
    if !add_user(mm, t, id, sw) {
        if !mm.mode.percpu() {
            // Per-task (or CPU→task in progress): the child gets its CID now.
            return match get_cid(mm) {
                Alloc::Got(c) => {
                    t.cid = c;
                    ForkCid::Done
                }
                Alloc::Spin => ForkCid::SpinLocked { first_user: false },
            };
        }
        // Per-CPU: the child borrows a CPU CID at its first schedule-in.
        return ForkCid::Done;
    }
    // The mode flipped; hand over current's own CID in the new direction.
    let current = match current {
        Some(c) => c,
        None => {
            // fix-execve-cid (F1, F4; docs/kernel-reading.md section 10): "execve(): @t is
            // current, owns no CID and runs the fixup itself. Hide it from mm_cid_schedin()
            // until the fixup is done, so that being preempted and scheduled in during its own
            // walk cannot make it compete for a CID."  (t->mm_cid.active = 0;) It gets its CID
            // in [`fork_cid_execve_assign`].
            if sw.fix_execve_cid {
                t.active = false;
            }
            t
        }
    };
    if mm.mode.percpu() {
        transit_to_cpu(mm, current, cpu, sw);
        ForkCid::FixupTasksToCpus
    } else {
        transit_to_task(mm, current, cpu);
        ForkCid::FixupCpusToTasks
    }
}

/// Another lap of the `get_cid` spin in [`ForkCid::SpinLocked`]; true when the CID was assigned.
pub fn fork_cid_retry<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    first_user: bool,
) -> bool {
    let Alloc::Got(c) = get_cid_retry(mm) else {
        return false;
    };
    t.cid = c;
    if first_user {
        mm.set_slot(cpu, c);
    }
    true
}

/// The tail of `sched_mm_cid_fork` after a CPU→task fix-up: the child gets its own CID, with only
/// `mutex` held (preemptible). [`Alloc::Spin`] means keep retrying with [`fork_cid_retry`]
/// (`first_user = false`).
pub fn fork_cid_after_fixup<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid) -> Alloc {
    let r = get_cid(mm);
    if let Alloc::Got(c) = r {
        t.cid = c;
    }
    r
}

/// Switch F1 (`fix-execve-cid`): the end of `sched_mm_cid_fork(current)` called from
/// `sched_mm_cid_after_execve`, except on the first-user path (which gives current its CID
/// itself). Current goes back to user space without passing `mm_cid_schedin`, so do what a
/// schedule-in would, with this CPU's rq lock held (and `mm.mutex` still held: no fix-up of
/// another task is in flight and the mode is steady). From the kernel sketch in
/// `docs/kernel-reading.md` section 10:
///
/// ```c
/// assign:
///     if (execve) {
///             guard(preempt)();
///             guard(rq_lock_irq)(this_rq());
///             t->mm_cid.active = 1;
///             mm_cid_schedin(t);
///     }
/// ```
///
/// [`Schedin::Spin`] would be a stall with the rq lock held; the checker shows it does not happen.
///
/// # Locks
/// `mutex` held; takes `cpu`'s rq lock, IRQs off.
pub fn fork_cid_execve_assign<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    sw: &Switches,
) -> Schedin {
    t.active = true;
    schedin(mm, t, cpu, sw)
}

/// What follows the locked section of `exit_cid`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum ExitCid {
    /// `t` was not a CID user: nothing done, no lock taken.
    NotUser,
    /// Done: both locks released.
    Done,
    /// The mm switched back to per-task: run `fixup_cpus_to_tasks` (mutex held), then done.
    FixupCpusToTasks,
    /// `t` was the last user: release the locks, then wait for the irq_work and cancel the work.
    LastUser,
}

/// `sched_mm_cid_exit(t)` up to the end of its `mm.lock` section (spec 4.3); also
/// `sched_mm_cid_before_execve` and the failed-fork cleanup of the older designs (S2).
///
/// `current` is the task running the code, or `None` when `t` is `current`; `current_uses_mm`
/// says whether `current.mm == mm`. `cpu` is the CPU `current` runs on.
///
/// # Locks
/// Takes `mutex`, then `lock` with IRQs off; on [`ExitCid::FixupCpusToTasks`] only `mutex` stays held.
pub fn exit_cid_locked<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    id: S::Task,
    current: Option<&mut TaskCid>,
    current_uses_mm: bool,
    cpu: S::Cpu,
    sw: &Switches,
) -> ExitCid {
    if !t.active {
        return ExitCid::NotUser;
    }
    if mm.users.n() > 1 {
        // Not the last user.
        let mut switched = remove_user(mm, t, id, sw);
        if switched {
            if mm.mode.percpu() {
                // exit can only switch to per-task
                mm.faults.warn.get_or_insert(WarnSite::ExitSwitchedToPerCpu);
                switched = false;
            } else if !current_uses_mm {
                mm.faults.warn.get_or_insert(WarnSite::ExitForeignMm);
                switched = false;
            }
        }
        if !switched {
            return ExitCid::Done;
        }
        // The exiting task will not return to user space: free its CPU's CID now.
        match sw.exit_local_slot {
            ExitLocalSlot::DropOnCpu => drop_on_cpu(mm, cpu, sw),
            ExitLocalSlot::TransitToTask => {
                let cur = match current {
                    Some(c) => c,
                    None => t,
                };
                transit_to_task(mm, cur, cpu);
            }
        }
        return ExitCid::FixupCpusToTasks;
    }
    // Last user: "required across execve()": a borrowed CPU CID becomes t's, then is dropped.
    if current.is_none() {
        transit_to_task(mm, t, cpu);
    }
    remove_user(mm, t, id, sw); // any mode change is ignored: nothing to do
    ExitCid::LastUser
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::MmCid;

    const SW: Switches = Switches::V7_0;

    #[test]
    fn first_user_gets_bit_zero_and_the_local_slot() {
        let mut mm = MmCid::new(4, 0xf);
        let mut t = TaskCid::default();
        assert_eq!(fork_cid_locked(&mut mm, &mut t, 0, None, 2, &SW), ForkCid::Done);
        assert_eq!((t.cid, mm.slot(2), mm.users), (Cid::new(0), Cid::new(0), 1));
        assert_eq!(mm.user_list.as_slice(), &[0]);
    }

    #[test]
    fn fork_past_max_cids_flips_to_percpu_and_transits_the_forker() {
        // np = 2: the third user crosses max_cids = 2
        let mut mm = MmCid::new(2, 0b11);
        let mut t = [TaskCid::default(); 3];
        let [a, b, c] = &mut t;
        fork_cid_locked(&mut mm, a, 0, None, 0, &SW);
        assert_eq!(fork_cid_locked(&mut mm, b, 1, Some(a), 0, &SW), ForkCid::Done);
        assert_eq!(b.cid, Cid::new(1));
        assert_eq!(
            fork_cid_locked(&mut mm, c, 2, Some(a), 0, &SW),
            ForkCid::FixupTasksToCpus
        );
        assert_eq!(mm.mode, Mode::TO_CPU);
        assert_eq!(a.cid, Cid::new(0).add_transit());
        assert_eq!(mm.slot(0), a.cid);
        assert!(c.cid.is_unset() && c.active);
        assert_eq!(mm.pcpu_thrs, 1);
    }

    #[test]
    fn fork_spins_under_the_lock_when_full_and_a_retry_completes_it() {
        // np = 2, both bits taken by somebody else (e.g. leaked): the per-task child must spin.
        let mut mm = MmCid::new(2, 0b11);
        let mut t = [TaskCid::default(); 2];
        let [a, b] = &mut t;
        fork_cid_locked(&mut mm, a, 0, None, 0, &SW);
        mm.try_get(2).unwrap(); // bit 1 held elsewhere
        assert_eq!(
            fork_cid_locked(&mut mm, b, 1, Some(a), 0, &SW),
            ForkCid::SpinLocked { first_user: false }
        );
        assert!(b.cid.is_unset() && b.active);
        assert!(!fork_cid_retry(&mut mm, b, 0, false));
        mm.drop_cid(Cid::new(1));
        assert!(fork_cid_retry(&mut mm, b, 0, false));
        assert_eq!(b.cid, Cid::new(1));
        assert_eq!(mm.slot(0), Cid::new(0), "only the first-user path sets the slot");
    }

    #[test]
    fn after_a_cpu_to_task_fixup_the_child_gets_its_own_cid_with_only_the_mutex() {
        let mut mm = MmCid::new(4, 0xf);
        mm.try_get(4).unwrap();
        let mut child = TaskCid::with_cid(true, Cid::UNSET);
        assert_eq!(fork_cid_after_fixup(&mut mm, &mut child), Alloc::Got(Cid::new(1)));
        assert_eq!(child.cid, Cid::new(1));
        for _ in 0..2 {
            mm.try_get(4).unwrap();
        }
        let mut other = TaskCid::with_cid(true, Cid::UNSET);
        assert_eq!(fork_cid_after_fixup(&mut mm, &mut other), Alloc::Spin);
        assert!(other.cid.is_unset());
    }

    #[test]
    fn exit_of_non_last_user_frees_its_plain_cid() {
        let mut mm = MmCid::new(4, 0xf);
        let mut t = [TaskCid::default(); 2];
        let [a, b] = &mut t;
        fork_cid_locked(&mut mm, a, 0, None, 0, &SW);
        fork_cid_locked(&mut mm, b, 1, Some(a), 0, &SW);
        assert_eq!(exit_cid_locked(&mut mm, b, 1, None, true, 1, &SW), ExitCid::Done);
        assert!(!b.active && b.cid.is_unset());
        assert_eq!((mm.users, mm.bitmap.weight()), (1, 1));
        assert_eq!(
            exit_cid_locked(&mut mm, b, 1, None, true, 1, &SW),
            ExitCid::NotUser
        );
        assert_eq!(
            exit_cid_locked(&mut mm, a, 0, None, true, 0, &SW),
            ExitCid::LastUser
        );
        assert_eq!((mm.users, mm.bitmap.weight()), (0, 0));
    }

    #[test]
    fn exit_below_threshold_switches_back_and_drops_the_local_cpu_cid() {
        // np = 4: 5 users -> per-CPU with pcpu_thrs 2; dropping to 1 user switches back.
        let mut mm = MmCid::new(4, 0xf);
        mm.mode = Mode::PER_CPU;
        mm.users = 2;
        mm.pcpu_thrs = 2;
        mm.user_list.push_front(0);
        mm.user_list.push_front(1);
        let c = mm.try_get(4).unwrap();
        mm.set_slot(1, c.add_cpu());
        let mut t = TaskCid::with_cid(true, c.add_cpu());
        assert_eq!(
            exit_cid_locked(&mut mm, &mut t, 1, None, true, 1, &SW),
            ExitCid::FixupCpusToTasks
        );
        assert_eq!(mm.mode, Mode::TO_TASK);
        assert_eq!(mm.slot(1), c);
        assert_eq!(mm.bitmap.weight(), 0);
    }

    #[test]
    fn with_the_execve_fix_current_is_hidden_during_its_walk_and_then_borrows_a_cpu_cid() {
        // np = 2, per-task with two users (bits 0 and 1); current (id 2) re-registers after a
        // failed execve and makes users 3 > max_cids 2.
        let fix = Switches {
            fix_execve_cid: true,
            ..SW
        };
        for (sw, hidden) in [(SW, false), (fix, true)] {
            let mut mm = MmCid::new(2, 0b11);
            let mut t = [TaskCid::default(); 3];
            let [a, b, cur] = &mut t;
            fork_cid_locked(&mut mm, a, 0, None, 0, &sw);
            fork_cid_locked(&mut mm, b, 1, Some(a), 0, &sw);
            assert_eq!(
                fork_cid_locked(&mut mm, cur, 2, None, 0, &sw),
                ForkCid::FixupTasksToCpus
            );
            assert_eq!(cur.active, !hidden, "{sw:?}");
            assert_eq!(mm.users, 3);
        }
        // After the walk (both plain CIDs fixed up: a running on CPU1 keeps 0|TRANSIT mirrored
        // in slot 1, b's 1 was dropped), current gets CPU0's CID as a schedin would.
        let mut mm = MmCid::new(2, 0b11);
        mm.mode = Mode::PER_CPU;
        mm.users = 3;
        mm.try_get(2).unwrap();
        mm.set_slot(1, Cid::new(0).add_transit());
        let mut cur = TaskCid::with_cid(false, Cid::UNSET);
        assert_eq!(fork_cid_execve_assign(&mut mm, &mut cur, 0, &fix), Schedin::Done);
        assert!(cur.active);
        assert_eq!(
            (cur.cid, mm.slot(0)),
            (Cid::new(1).add_cpu(), Cid::new(1).add_cpu())
        );
    }

    #[test]
    fn with_the_revive_fix_a_user_on_a_dead_per_cpu_mm_first_completes_the_switch_back() {
        let fix = Switches {
            fix_execve_revive: true,
            ..SW
        };
        // The last user left a per-CPU mm: mode TRANSIT (towards per-task), CPU1 still owns 1.
        let mut mm = MmCid::new(2, 0b11);
        mm.mode = Mode::TO_TASK;
        let c = mm.try_get(2).unwrap();
        mm.set_slot(1, c.add_cpu());
        let mut t = TaskCid::default();
        let mut v70 = mm;
        assert_eq!(
            fork_cid_locked(&mut v70, &mut t.clone(), 0, None, 0, &SW),
            ForkCid::Done
        );
        assert_eq!(v70.mode, Mode::TO_TASK, "7.0 leaves the mode in transit");
        assert_eq!(
            fork_cid_locked(&mut mm, &mut t, 0, None, 0, &fix),
            ForkCid::FixupRevive
        );
        assert!(t.cid.is_unset() && !t.active && mm.users == 0, "nothing done yet");
        assert!(mm.faults.warn.is_none());
        mm.mode = Mode::PER_CPU;
        fork_cid_locked(&mut mm, &mut t, 0, None, 0, &fix);
        assert_eq!(mm.faults.warn, Some(WarnSite::ReviveNotTransit));
    }
}
