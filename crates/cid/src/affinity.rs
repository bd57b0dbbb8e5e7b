//! Affinity growth and the deferred switch back to per-task (spec 4.9).

use std::borrow::Borrow;

use crate::mm::{MmCidOf, WarnSite, update_max_cids};
use crate::storage::{CpuSet, Num, Storage};
use crate::switches::Switches;

/// `mm_update_cpus_allowed(mm, newmask)` (spec 4.9): widen the mm's allowed-CPU union. Returns
/// true if the irq_work must be queued (the mm is per-CPU, the new threshold is above `users`, and
/// no deferred switch is queued yet). Never flips the mode itself.
///
/// In 7.0 the queueing never happens (finding F3, `docs/findings/03-affinity-switchback-dead.md`):
/// the threshold is computed from `min(nr_cpus_allowed, users) <= users`. Switch F3
/// (`fix-affinity-switchback`) computes it from the widened set alone.
///
/// # Locks
/// Caller holds `p.pi_lock` and `p`'s rq lock, IRQs off; takes `mm.lock`.
pub fn update_cpus_allowed<S: Storage>(
    mm: &mut MmCidOf<S>,
    newmask: impl Borrow<S::Mask>,
    sw: &Switches,
) -> bool {
    if mm.users.n() == 0 {
        return false;
    }
    mm.cpus_allowed.union_with(newmask.borrow());
    let w = mm.cpus_allowed.weight();
    if w == mm.nr_cpus_allowed.n() {
        return false;
    }
    mm.nr_cpus_allowed = S::Count::of(w);
    mm.recompute_max_cids();
    if !mm.mode.percpu() {
        return false; // per-task (or CPU→task in progress): nothing else to do
    }
    mm.pcpu_thrs = if sw.fix_affinity_thrs {
        // fix-affinity-switchback (docs/kernel-reading.md section 10):
        // mc->pcpu_thrs = mm_cid_calc_pcpu_thrs(mc->nr_cpus_allowed);
        // i.e. opt_cids = nr_cpus_allowed, not min(nr_cpus_allowed, users).
        S::Count::of(crate::mode::calc_thrs(w, w, mm.np_()))
    } else {
        mm.calc_thrs() // "threshold for the wider set", but bounded by users
    };
    if mm.users >= mm.pcpu_thrs || mm.update_deferred {
        return false;
    }
    mm.update_deferred = true;
    true
}

/// What the deferred work does after re-evaluating under `mm.lock`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum Work {
    /// Nothing to do (last user gone, switch already consumed, or no mode change).
    Done,
    /// The mm flipped to per-task: run `fixup_cpus_to_tasks` with `mutex` held.
    FixupCpusToTasks,
}

/// `mm_cid_work_fn` up to its fix-up (spec 4.9): re-evaluate the mode under `mutex` and `lock`.
///
/// # Locks
/// Takes `mutex`, then `lock`; on [`Work::FixupCpusToTasks`] only `mutex` stays held.
pub fn work_locked<S: Storage>(mm: &mut MmCidOf<S>, sw: &Switches) -> Work {
    if mm.users.n() == 0 || !mm.update_deferred || !update_max_cids(mm, sw) {
        return Work::Done;
    }
    if mm.mode.percpu() {
        mm.faults.warn.get_or_insert(WarnSite::WorkSwitchedToPerCpu);
        return Work::Done;
    }
    Work::FixupCpusToTasks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use crate::mm::MmCid;

    #[test]
    fn growing_affinity_in_percpu_mode_defers_the_switch_back() {
        // np = 4, one allowed CPU, 2 users: per-CPU (max_cids 1, pcpu_thrs 1).
        let mut mm = MmCid::new(4, 0b0001);
        mm.users = 2;
        mm.mode = Mode::PER_CPU;
        mm.pcpu_thrs = 1;
        mm.recompute_max_cids();
        assert_eq!(mm.max_cids, 1);
        // widening to 4 CPUs: pcpu_thrs becomes max(min(2-0, 2), 1) = 2 > users? no: users 2 >= 2
        assert!(!update_cpus_allowed(&mut mm, 0b1111, &Switches::V7_0));
        assert_eq!((mm.nr_cpus_allowed, mm.max_cids, mm.pcpu_thrs), (4, 2, 2));
        assert!(
            !update_cpus_allowed(&mut mm, 0b1111, &Switches::V7_0),
            "no change, no work"
        );
    }

    /// A finding, not a wish: with the spec's formulas `pcpu_thrs = calc_thrs <= opt_cids =
    /// min(nr_cpus_allowed, users) <= users`, so the test `users >= pcpu_thrs` right after the
    /// recomputation always returns and the irq_work is never queued. This checks it over every
    /// reachable combination for np <= 8.
    #[test]
    fn affinity_growth_never_queues_the_deferred_switch() {
        for np in 1..=8u8 {
            let full = ((1u16 << np) - 1) as u8;
            for users in 1..=16u8 {
                for old in 1..=full {
                    for new in 1..=full {
                        let mut mm = MmCid::new(np, old);
                        mm.users = users;
                        mm.mode = Mode::PER_CPU;
                        mm.pcpu_thrs = mm.calc_thrs();
                        mm.recompute_max_cids();
                        assert!(
                            !update_cpus_allowed(&mut mm, new, &Switches::V7_0),
                            "np {np} users {users}"
                        );
                        assert!(mm.pcpu_thrs <= users);
                    }
                }
            }
        }
    }

    /// With F3's fix the widened set alone decides: one user of a per-CPU mm that grows from one
    /// allowed CPU to four (np 8) has threshold min(4 - 1, 4) = 3 > 1 and queues the switch back.
    #[test]
    fn with_the_affinity_fix_growth_queues_the_deferred_switch_back() {
        let fix = Switches {
            fix_affinity_thrs: true,
            ..Switches::V7_0
        };
        let mut mm = MmCid::new(8, 0b0001);
        mm.users = 1;
        mm.mode = Mode::PER_CPU;
        mm.pcpu_thrs = 1;
        let mut v70 = mm;
        assert!(!update_cpus_allowed(&mut v70, 0b1111, &Switches::V7_0));
        assert_eq!(v70.pcpu_thrs, 1);
        assert!(update_cpus_allowed(&mut mm, 0b1111, &fix));
        assert_eq!((mm.pcpu_thrs, mm.update_deferred), (3, true));
        assert!(!update_cpus_allowed(&mut mm, 0b1_1111, &fix), "queued once");
    }

    #[test]
    fn deferred_work_consumes_the_flag_and_switches_back_below_threshold() {
        let mut mm = MmCid::new(8, 0xff);
        mm.users = 1;
        mm.mode = Mode::PER_CPU;
        mm.pcpu_thrs = 2;
        mm.update_deferred = true;
        assert_eq!(work_locked(&mut mm, &Switches::V7_0), Work::FixupCpusToTasks);
        assert_eq!(mm.mode, Mode::TO_TASK);
        assert!(!mm.update_deferred);
        assert_eq!(work_locked(&mut mm, &Switches::V7_0), Work::Done);
    }
}
