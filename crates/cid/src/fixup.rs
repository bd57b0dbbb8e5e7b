//! The fix-up walks that follow a mode flip (spec 4.7, 4.8; designs.md B.5).
//!
//! The kernel runs each walk as a loop under `mm.mutex`, taking one rq lock per visited task or
//! CPU. The model cuts it into one atomic step per visit, so each function here is the body of one
//! iteration; the caller (the kernel model) owns the cursor and calls [`crate::complete_transit`]
//! at the end. Postconditions, checked by the model right after completion:
//! - tasks→CPUs: no task of the mm owns a plain CID any more;
//! - CPUs→tasks: no CID of the mm is owned by a CPU any more.

use crate::helpers::{drop_on_cpu, transit_to_cpu, transit_to_task, unset_on_task};
use crate::mm::{MmCidOf, TaskCid};
use crate::storage::Storage;
use crate::switches::Switches;

/// One iteration of `mm_cid_fixup_tasks_to_cpus` (7.0, spec 4.7): visit user `t` under its rq
/// lock. `running_on` is `Some(task_cpu(t))` if `rq(t).curr == t`.
///
/// A running task's plain CID becomes TRANSIT, mirrored into its CPU's slot (it converts at its
/// next schedout); a plain CID of a task that is not running is dropped now. ONCPU, TRANSIT and
/// UNSET CIDs are left alone: the task already rescheduled in the new mode, or has nothing yet.
///
/// # Locks
/// `mutex` held; takes and releases `t`'s `pi_lock` and rq lock.
pub fn fixup_tasks_to_cpus_visit<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    running_on: Option<S::Cpu>,
    sw: &Switches,
) {
    if !t.cid.on_task() {
        return;
    }
    match running_on {
        Some(cpu) => transit_to_cpu(mm, t, cpu, sw),
        None => unset_on_task(mm, t),
    }
}

/// `mm_cid_fixup_one` of the budgeted walk (designs.md B.5, switch S4): skips a task that is not
/// active, and reports whether the task counted against the walk's budget.
pub fn fixup_one<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    running_on: Option<S::Cpu>,
    sw: &Switches,
) -> bool {
    if sw.fixup_one_tests_active && !t.active {
        return false;
    }
    fixup_tasks_to_cpus_visit(mm, t, running_on, sw);
    true
}

/// One iteration of `mm_cid_fixup_cpus_to_tasks` (spec 4.8): visit `cpu` under its rq lock.
/// `curr` is that CPU's current task if it is an active user of this mm (`curr.mm == mm &&
/// curr.active`), else `None`.
///
/// Switch U1 (de3ab9bd3133): a running user whose CID is UNSET is left alone.
///
/// # Locks
/// `mutex` held; takes and releases `cpu`'s rq lock.
pub fn fixup_cpus_to_tasks_visit<S: Storage>(
    mm: &mut MmCidOf<S>,
    cpu: S::Cpu,
    curr: Option<&mut TaskCid>,
    sw: &Switches,
) {
    let slot = mm.slot(cpu);
    match curr {
        Some(curr) if slot.on_cpu() => {
            // The running task keeps the CPU's CID, temporarily.
            transit_to_task(mm, curr, cpu)
        }
        None if slot.on_cpu() => {
            // Nobody of this mm runs here: free it.
            drop_on_cpu(mm, cpu, sw)
        }
        // de3ab9bd3133 (U1): "Set the transition bit only on a genuine task-owned CID". 7.0
        // marks a running task's UNSET too, whose schedout then clears bit 0x80000000.
        Some(curr) if sw.fixup_skips_unset && curr.cid.is_unset() => {}
        // A running user without a CPU-owned slot: make sure its CID is temporary too.
        Some(curr) if !curr.cid.in_transit() => {
            curr.cid = curr.cid.add_transit();
            mm.set_slot(cpu, curr.cid);
        }
        Some(_) | None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cid;
    use crate::mm::MmCid;

    const SW: Switches = Switches::V7_0;

    #[test]
    fn tasks_to_cpus_transits_running_and_drops_sleeping_plain_cids() {
        let mut mm = MmCid::new(2, 3);
        let a = mm.try_get(2).unwrap();
        let b = mm.try_get(2).unwrap();
        let mut run = TaskCid::with_cid(true, a);
        let mut sleep = TaskCid::with_cid(true, b);
        fixup_tasks_to_cpus_visit(&mut mm, &mut run, Some(1), &SW);
        fixup_tasks_to_cpus_visit(&mut mm, &mut sleep, None, &SW);
        assert_eq!((run.cid, mm.slot(1)), (a.add_transit(), a.add_transit()));
        assert!(sleep.cid.is_unset() && !mm.bitmap.is_set(b.index()));
        let mut borrowed = TaskCid::with_cid(true, a.add_cpu());
        fixup_tasks_to_cpus_visit(&mut mm, &mut borrowed, None, &SW);
        assert_eq!(borrowed.cid, a.add_cpu(), "non-plain CIDs are left alone");
    }

    #[test]
    fn fixup_one_skips_inactive_tasks_only_when_s4_is_on() {
        let mut mm = MmCid::new(2, 3);
        let mut t = TaskCid::with_cid(false, Cid::UNSET);
        let b = Switches {
            fixup_one_tests_active: true,
            ..SW
        };
        assert!(!fixup_one(&mut mm, &mut t, None, &b));
        assert!(fixup_one(&mut mm, &mut t, None, &SW));
    }

    #[test]
    fn cpus_to_tasks_hands_cpu_cids_to_running_users_or_frees_them() {
        let mut mm = MmCid::new(2, 3);
        let a = mm.try_get(2).unwrap();
        let b = mm.try_get(2).unwrap();
        mm.set_slot(0, a.add_cpu());
        mm.set_slot(1, b.add_cpu());
        let mut curr = TaskCid::with_cid(true, a.add_cpu());
        fixup_cpus_to_tasks_visit(&mut mm, 0, Some(&mut curr), &SW);
        fixup_cpus_to_tasks_visit(&mut mm, 1, None, &SW);
        assert_eq!((curr.cid, mm.slot(0)), (a.add_transit(), a.add_transit()));
        assert_eq!(mm.slot(1), b);
        assert_eq!(mm.bitmap.weight(), 1);
    }
}
