//! The primitive helpers of spec section 3: allocation (`get_cid`, the stall point), convergence,
//! and the drop / unset / transit helpers.

use crate::Cid;
use crate::mm::{MmCidOf, TaskCid};
use crate::storage::{Num, Storage};
use crate::switches::Switches;

/// Result of an allocation attempt: a CID, or the caller is now spinning in `get_cid`'s loop.
///
/// `get_cid` never gives up, never sleeps and never returns an error (spec 3, 5). The model makes
/// the loop visible: a caller that gets [`Alloc::Spin`] stays where it is, holding whatever locks it
/// holds, and retries with [`get_cid_retry`] as its next step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Alloc {
    /// A CID was taken (its bit is now set).
    Got(Cid),
    /// No bit free below `np`: spinning in `cpu_relax()`.
    Spin,
}

/// `mm_get_cid(mm)`, first lap (spec 3): the lowest free bit below `max_cids`, else (fallback) the
/// lowest free bit below `np`.
///
/// The kernel runs `cpu_relax()` between the first attempt and the fallback. The model takes both
/// attempts in one step: any bit freed between them is below `np` and would be found by either
/// order, so only the transient "spinning" state between the two disappears.
pub fn get_cid<S: Storage>(mm: &mut MmCidOf<S>) -> Alloc {
    match mm.try_get(mm.max_cids.n()).or_else(|| mm.try_get(mm.np.n())) {
        Some(c) => Alloc::Got(c),
        None => Alloc::Spin,
    }
}

/// Another lap of `mm_get_cid`'s spin loop: `cpu_relax(); c = try_get(mm, np)`.
pub fn get_cid_retry<S: Storage>(mm: &mut MmCidOf<S>) -> Alloc {
    match mm.try_get(mm.np.n()) {
        Some(c) => Alloc::Got(c),
        None => Alloc::Spin,
    }
}

/// `mm_cid_converge(mm, orig, max)` (spec 3): pull a CID at or above `max` into `[0, max)` if a
/// lower bit is free. One attempt, never spins. `orig` has no TRANSIT; ONCPU is kept.
pub fn converge<S: Storage>(mm: &mut MmCidOf<S>, orig: Cid, max: u32) -> Cid {
    let c = orig.strip_cpu();
    if c.index() < max {
        return orig;
    }
    let Some(n) = mm.try_get(max) else {
        return orig; // keep the high CID for now
    };
    mm.drop_cid(c);
    if orig.on_cpu() { n.add_cpu() } else { n }
}

/// `mm_unset_cid_on_task(t)` (spec 3): `t` gives up its CID; the bit is dropped only if `t` owned
/// it (a plain value). A borrowed ONCPU value stays with its CPU.
pub fn unset_on_task<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid) {
    let c = t.cid;
    t.cid = Cid::UNSET;
    if c.on_task() {
        mm.drop_cid(c);
    }
}

/// `mm_drop_cid_on_cpu(mm, pcp)` (spec 3): the CPU gives up its CID. The slot keeps the plain
/// number as a hint.
///
/// Switch S5: since 1e83ccd5921a it acts only if the slot really holds ONCPU; 6.19 (C) strips and
/// drops whatever the slot holds.
pub fn drop_on_cpu<S: Storage>(mm: &mut MmCidOf<S>, cpu: S::Cpu, sw: &Switches) {
    let slot = mm.slot(cpu);
    if sw.drop_on_cpu_guarded && !slot.on_cpu() {
        return;
    }
    let c = slot.strip_cpu();
    mm.set_slot(cpu, c);
    mm.drop_cid(c);
}

/// `mm_cid_transit_to_task(t, pcp)` (spec 3): a CPU-owned CID that `t` borrows becomes `t`'s
/// temporary CID, mirrored in the slot. Tests the *task's* CID for ONCPU, not the slot's.
pub fn transit_to_task<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid, cpu: S::Cpu) {
    if t.cid.on_cpu() {
        t.cid = t.cid.strip_cpu().add_transit();
        mm.set_slot(cpu, t.cid);
    }
}

/// `mm_cid_transit_to_cpu(t, pcp)` (spec 3): `t`'s own CID becomes temporary, mirrored in its
/// CPU's slot.
///
/// Switch S8: 6.19-rc7 (D.2) has no TRANSIT in this direction and hands the CID to the CPU for good
/// (`transfer_to_cpu`: `t.cid |= ONCPU; slot = t.cid`).
pub fn transit_to_cpu<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid, cpu: S::Cpu, sw: &Switches) {
    if t.cid.on_task() {
        t.cid = if sw.transit_to_cpu {
            t.cid.add_transit()
        } else {
            t.cid.add_cpu()
        };
        mm.set_slot(cpu, t.cid);
    }
}

/// `mm_cid_set_task_cid`: store a task's CID (the kernel also flags rseq "ids changed" when the
/// value changes; the model's user-visible value is always derived from `t.cid`).
pub fn set_task_cid(t: &mut TaskCid, c: Cid) {
    t.cid = c;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::MmCid;

    fn mm(np: u8) -> MmCid {
        let mut m = MmCid::new(np, (1u16 << np).wrapping_sub(1) as u8);
        m.users = 1;
        m.recompute_max_cids();
        m
    }

    #[test]
    fn get_cid_takes_lowest_below_max_then_falls_back_then_spins() {
        let mut m = mm(2);
        m.max_cids = 1;
        assert_eq!(get_cid(&mut m), Alloc::Got(Cid::new(0)));
        assert_eq!(get_cid(&mut m), Alloc::Got(Cid::new(1))); // fallback below np
        assert_eq!(get_cid(&mut m), Alloc::Spin);
        assert_eq!(get_cid_retry(&mut m), Alloc::Spin);
        m.drop_cid(Cid::new(1));
        assert_eq!(get_cid_retry(&mut m), Alloc::Got(Cid::new(1)));
    }

    #[test]
    fn converge_pulls_down_only_when_a_lower_bit_is_free() {
        let mut m = mm(4);
        for _ in 0..3 {
            m.try_get(4);
        }
        // 0,1,2 taken; 2|ONCPU above max 2 stays while 0 and 1 are busy
        assert_eq!(converge(&mut m, Cid::new(2).add_cpu(), 2), Cid::new(2).add_cpu());
        m.drop_cid(Cid::new(1));
        assert_eq!(converge(&mut m, Cid::new(2).add_cpu(), 2), Cid::new(1).add_cpu());
        assert!(!m.bitmap.is_set(2) && m.bitmap.is_set(1));
        assert_eq!(converge(&mut m, Cid::new(0), 2), Cid::new(0));
    }

    #[test]
    fn unset_on_task_drops_only_owned_cids() {
        let mut m = mm(2);
        let c = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, c.add_cpu());
        unset_on_task(&mut m, &mut t);
        assert!(
            t.cid.is_unset() && m.bitmap.is_set(0),
            "borrowed ONCPU stays with the CPU"
        );
        let mut t = TaskCid::with_cid(true, c);
        unset_on_task(&mut m, &mut t);
        assert!(!m.bitmap.is_set(0));
    }

    #[test]
    fn drop_on_cpu_guard_is_switch_s5() {
        let sw = Switches::V7_0;
        let mut m = mm(2);
        let c = m.try_get(2).unwrap();
        m.set_slot(1, c); // plain hint: owns nothing
        drop_on_cpu(&mut m, 1, &sw);
        assert!(m.bitmap.is_set(0), "7.0 leaves a plain hint alone");
        let c6_19 = Switches {
            drop_on_cpu_guarded: false,
            ..sw
        };
        drop_on_cpu(&mut m, 1, &c6_19);
        assert!(!m.bitmap.is_set(0), "6.19 drops whatever the slot names");
        let c0 = m.try_get(2).unwrap();
        m.set_slot(0, c0.add_cpu());
        drop_on_cpu(&mut m, 0, &sw);
        assert_eq!(m.slot(0), Cid::new(0));
        assert!(!m.bitmap.is_set(0));
    }

    #[test]
    fn transit_helpers_move_ownership_in_the_named_direction() {
        let sw = Switches::V7_0;
        let mut m = mm(2);
        let mut t = TaskCid::with_cid(true, Cid::new(1).add_cpu());
        transit_to_task(&mut m, &mut t, 0);
        assert_eq!(t.cid, Cid::new(1).add_transit());
        assert_eq!(m.slot(0), t.cid);
        let mut u = TaskCid::with_cid(true, Cid::new(0));
        transit_to_cpu(&mut m, &mut u, 1, &sw);
        assert_eq!(
            (u.cid, m.slot(1)),
            (Cid::new(0).add_transit(), Cid::new(0).add_transit())
        );
        let mut v = TaskCid::with_cid(true, Cid::new(0));
        let d = Switches {
            transit_to_cpu: false,
            ..sw
        };
        transit_to_cpu(&mut m, &mut v, 1, &d);
        assert_eq!(v.cid, Cid::new(0).add_cpu(), "6.19-rc7 transfers for good");
        // transit_to_task tests the task's CID, not the slot's
        let mut w = TaskCid::with_cid(true, Cid::UNSET);
        m.set_slot(0, Cid::new(1).add_cpu());
        transit_to_task(&mut m, &mut w, 0);
        assert_eq!(m.slot(0), Cid::new(1).add_cpu());
    }
}
