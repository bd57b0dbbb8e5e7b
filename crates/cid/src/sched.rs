//! The context-switch half of the design (spec 4.6): `schedout(prev)` then `schedin(next)`, both
//! under the local rq lock with IRQs off. `schedin` may spin in `get_cid`; its continuation is a
//! value ([`SchedinSpin`]) so the caller can keep the CPU visibly spinning.

use crate::helpers::{Alloc, converge, drop_on_cpu, get_cid, get_cid_retry, set_task_cid, unset_on_task};
use crate::mm::{MmCidOf, TaskCid};
use crate::storage::{Num, Storage};
use crate::switches::Switches;
use crate::{Cid, Mode};

/// `mm_cid_schedout(prev)` (spec 4.6): a TRANSIT CID is kept for its final owner if the transition
/// has completed and the value is in range, and dropped otherwise. Steady CIDs are not touched.
///
/// Switch S9: 6.19-rc7 (D.5) always drops a TRANSIT CID.
///
/// # Locks
/// The local rq lock (held by the scheduler), IRQs off.
pub fn schedout<S: Storage>(mm: &mut MmCidOf<S>, prev: &mut TaskCid, cpu: S::Cpu, sw: &Switches) {
    if !prev.cid.in_transit() {
        return; // steady state: touch nothing
    }
    let m = mm.mode;
    let c = prev.cid.strip_transit();
    if sw.schedout_keeps && !m.in_transit() && c.index() < mm.max_cids.n() {
        // Transition completed: keep the CID for its final owner.
        let c = if m.percpu() { c.add_cpu() } else { c };
        mm.set_slot(cpu, c);
        prev.cid = c;
    } else {
        // Still transitioning, or out of range: give it back.
        mm.drop_cid(c);
        prev.cid = Cid::UNSET;
    }
}

/// Where a spinning `schedin` resumes once `get_cid` returns.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub enum SchedinSpin {
    /// In `mm_cid_from_task`'s slow path, with the mode read at schedin start.
    FromTask {
        /// `READ_ONCE(mm.mode)` at schedin start.
        m: Mode,
    },
    /// In `mm_cid_from_cpu`'s slow path, with the mode read at schedin start.
    FromCpu {
        /// `READ_ONCE(mm.mode)` at schedin start.
        m: Mode,
    },
    /// 6.19-rc7 only (S7 off, D.4): `from_task`'s slow path has its CID `tc` and its next
    /// instruction is the second, independent mode load, `READ_ONCE(mm.transit)`. Not a spin: the
    /// model makes the load a step of its own so that other CPUs may act between the two loads.
    TransitLoad {
        /// The CID chosen so far.
        tc: Cid,
    },
}

impl SchedinSpin {
    /// True for a lap of `get_cid`'s loop; false for [`SchedinSpin::TransitLoad`].
    pub fn spins(self) -> bool {
        !matches!(self, SchedinSpin::TransitLoad { .. })
    }
}

/// Result of a `schedin` step.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Schedin {
    /// `next` has its CID; the switch is complete.
    Done,
    /// Not finished: `get_cid` found no free bit and the CPU spins with its rq lock held and IRQs
    /// off, or (6.19-rc7) the second mode load is the next step ([`SchedinSpin::spins`] tells).
    Spin(SchedinSpin),
}

/// `mm_cid_schedin(next)` (spec 4.6): give `next` a CID for this CPU according to the mode.
///
/// # Locks
/// The local rq lock, IRQs off.
pub fn schedin<S: Storage>(mm: &mut MmCidOf<S>, next: &mut TaskCid, cpu: S::Cpu, sw: &Switches) -> Schedin {
    if !next.active {
        return Schedin::Done;
    }
    let cpu_cid = mm.slot(cpu);
    let m = mm.mode;
    if !m.percpu() {
        from_task(mm, next, cpu, cpu_cid, m, sw)
    } else {
        from_cpu(mm, next, cpu, cpu_cid, m, sw)
    }
}

/// One more lap of the `get_cid` loop a `schedin` is spinning in; on success the slow path finishes.
pub fn schedin_retry<S: Storage>(
    mm: &mut MmCidOf<S>,
    next: &mut TaskCid,
    cpu: S::Cpu,
    spin: SchedinSpin,
    sw: &Switches,
) -> Schedin {
    if let SchedinSpin::TransitLoad { tc } = spin {
        finish_with_transit_load(mm, next, cpu, tc);
        return Schedin::Done;
    }
    let Alloc::Got(c) = get_cid_retry(mm) else {
        return Schedin::Spin(spin);
    };
    match spin {
        SchedinSpin::FromTask { m } => return from_task_finish(mm, next, cpu, c, m, sw),
        SchedinSpin::FromCpu { m } => from_cpu_finish(mm, next, cpu, c.add_cpu(), m, sw),
        SchedinSpin::TransitLoad { .. } => unreachable!(),
    }
    Schedin::Done
}

/// `mm_cid_from_task` (spec 4.6): per-task ownership, also used during the CPU→task transition.
fn from_task<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    cpu_cid: Cid,
    m: Mode,
    sw: &Switches,
) -> Schedin {
    let max = mm.max_cids.n();
    let mut tc = t.cid;
    if Cid::from_raw(tc.raw() | cpu_cid.raw()).on_task() {
        // Both plain: fast path. Keep tc, mirror it into the slot as a hint.
        if tc.index() < max {
            mm.set_slot(cpu, tc);
            return Schedin::Done;
        }
        tc = converge(mm, tc, max);
        mm.set_slot(cpu, tc);
        set_task_cid(t, tc);
        return Schedin::Done;
    }
    if cpu_cid.on_cpu() {
        // This CPU still owns a CID, left from per-CPU mode.
        if tc.on_task() {
            drop_on_cpu(mm, cpu, sw); // t has its own: free the CPU's
        } else {
            tc = cpu_cid.strip_cpu(); // t has none: take the CPU's
        }
    }
    if !tc.on_task() {
        // Still nothing: allocate. May spin.
        match get_cid(mm) {
            Alloc::Got(c) => tc = c,
            Alloc::Spin => return Schedin::Spin(SchedinSpin::FromTask { m }),
        }
    }
    from_task_finish(mm, t, cpu, tc, m, sw)
}

fn from_task_finish<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    tc: Cid,
    m: Mode,
    sw: &Switches,
) -> Schedin {
    if !sw.one_word_mode {
        // 6.19-rc7 (S7 off, D.4): the transit word is loaded here, after any spin, as a second
        // load independent of the percpu load that chose from_task: a step of its own.
        return Schedin::Spin(SchedinSpin::TransitLoad { tc });
    }
    // During the transition the CID is temporary.
    let tc = Cid::from_raw(tc.raw() | m.transit_bits());
    mm.set_slot(cpu, tc);
    set_task_cid(t, tc);
    Schedin::Done
}

/// 6.19-rc7's `tc |= READ_ONCE(mm.transit)`, then the slot and the task's CID.
fn finish_with_transit_load<S: Storage>(mm: &mut MmCidOf<S>, t: &mut TaskCid, cpu: S::Cpu, tc: Cid) {
    let tc = Cid::from_raw(tc.raw() | mm.mode.transit_bits());
    mm.set_slot(cpu, tc);
    set_task_cid(t, tc);
}

/// `mm_cid_from_cpu` (spec 4.6): per-CPU ownership, also used during the task→CPU transition.
fn from_cpu<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    cpu_cid: Cid,
    m: Mode,
    sw: &Switches,
) -> Schedin {
    let max = mm.max_cids.n();
    let tc = t.cid;
    let mut cpu_cid = cpu_cid;
    if Cid::from_raw(cpu_cid.raw() & tc.raw()).on_cpu() {
        // Both ONCPU: fast path, t merely borrows the CPU's CID.
        if cpu_cid.strip_cpu().index() < max {
            set_task_cid(t, cpu_cid);
            return Schedin::Done;
        }
        cpu_cid = converge(mm, cpu_cid, max); // keeps ONCPU
        mm.set_slot(cpu, cpu_cid);
        set_task_cid(t, cpu_cid);
        return Schedin::Done;
    }
    if tc.on_task() {
        // t still owns a plain CID (not yet fixed up).
        if cpu_cid.on_cpu() {
            unset_on_task(mm, t); // CPU already has one: free t's
        } else {
            cpu_cid = tc.add_cpu(); // CPU adopts t's CID
        }
    }
    if !cpu_cid.on_cpu() {
        match get_cid(mm) {
            Alloc::Got(c) => cpu_cid = c.add_cpu(),
            Alloc::Spin => return Schedin::Spin(SchedinSpin::FromCpu { m }),
        }
    }
    from_cpu_finish(mm, t, cpu, cpu_cid, m, sw);
    Schedin::Done
}

fn from_cpu_finish<S: Storage>(
    mm: &mut MmCidOf<S>,
    t: &mut TaskCid,
    cpu: S::Cpu,
    cpu_cid: Cid,
    m: Mode,
    sw: &Switches,
) {
    // Temporary during the transition (S8: 6.19-rc7 has no TRANSIT in this direction).
    let cpu_cid = if sw.transit_to_cpu && m.in_transit() {
        cpu_cid.strip_cpu().add_transit()
    } else {
        cpu_cid
    };
    mm.set_slot(cpu, cpu_cid);
    set_task_cid(t, cpu_cid);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::MmCid;

    const SW: Switches = Switches::V7_0;

    fn mm(np: u8, users: u8, mode: Mode) -> MmCid {
        let mut m = MmCid::new(np, ((1u16 << np) - 1) as u8);
        m.users = users;
        m.recompute_max_cids();
        m.mode = mode;
        m
    }

    #[test]
    fn from_task_fast_path_keeps_plain_cid_and_mirrors_slot() {
        let mut m = mm(2, 2, Mode::PER_TASK);
        let c = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, c);
        assert_eq!(schedin(&mut m, &mut t, 1, &SW), Schedin::Done);
        assert_eq!((t.cid, m.slot(1)), (c, c));
    }

    #[test]
    fn from_task_takes_the_cpus_cid_with_transit_during_cpu_to_task() {
        let mut m = mm(2, 2, Mode::TO_TASK);
        let c = m.try_get(2).unwrap();
        m.set_slot(0, c.add_cpu());
        let mut t = TaskCid::with_cid(true, Cid::UNSET);
        assert_eq!(schedin(&mut m, &mut t, 0, &SW), Schedin::Done);
        assert_eq!(t.cid, c.add_transit());
        assert_eq!(m.slot(0), c.add_transit());
        assert_eq!(m.bitmap.weight(), 1);
    }

    #[test]
    fn from_task_frees_the_cpus_cid_when_the_task_has_its_own() {
        let mut m = mm(2, 2, Mode::TO_TASK);
        let a = m.try_get(2).unwrap();
        let b = m.try_get(2).unwrap();
        m.set_slot(1, b.add_cpu());
        let mut t = TaskCid::with_cid(true, a);
        schedin(&mut m, &mut t, 1, &SW);
        assert_eq!(t.cid, a.add_transit());
        assert!(!m.bitmap.is_set(b.index()));
    }

    #[test]
    fn from_cpu_adopts_the_tasks_plain_cid_and_spins_when_full() {
        let mut m = mm(2, 3, Mode::PER_CPU);
        let a = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, a);
        schedin(&mut m, &mut t, 0, &SW);
        assert_eq!((t.cid, m.slot(0)), (a.add_cpu(), a.add_cpu()));
        // the other bit is taken by somebody else: CPU1 has nothing and must spin
        let b = m.try_get(2).unwrap();
        let mut u = TaskCid::with_cid(true, Cid::UNSET);
        let r = schedin(&mut m, &mut u, 1, &SW);
        assert_eq!(r, Schedin::Spin(SchedinSpin::FromCpu { m: Mode::PER_CPU }));
        m.drop_cid(b);
        let r = schedin_retry(&mut m, &mut u, 1, SchedinSpin::FromCpu { m: Mode::PER_CPU }, &SW);
        assert_eq!(r, Schedin::Done);
        assert_eq!((u.cid, m.slot(1)), (b.add_cpu(), b.add_cpu()));
    }

    #[test]
    fn from_cpu_marks_transit_during_task_to_cpu() {
        let mut m = mm(2, 3, Mode::TO_CPU);
        let mut t = TaskCid::with_cid(true, Cid::UNSET);
        schedin(&mut m, &mut t, 1, &SW);
        assert_eq!(t.cid, Cid::new(0).add_transit());
        assert_eq!(m.slot(1), t.cid);
    }

    #[test]
    fn schedout_keeps_in_range_transit_cid_once_stable_and_drops_otherwise() {
        let mut m = mm(2, 3, Mode::PER_CPU);
        let c = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, c.add_transit());
        schedout(&mut m, &mut t, 0, &SW);
        assert_eq!((t.cid, m.slot(0)), (c.add_cpu(), c.add_cpu()));
        let mut m = mm(2, 3, Mode::TO_CPU);
        let c = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, c.add_transit());
        schedout(&mut m, &mut t, 0, &SW);
        assert!(t.cid.is_unset() && !m.bitmap.is_set(c.index()));
        // 6.19-rc7 (S9 off) always drops
        let mut m = mm(2, 3, Mode::PER_CPU);
        let c = m.try_get(2).unwrap();
        let mut t = TaskCid::with_cid(true, c.add_transit());
        schedout(
            &mut m,
            &mut t,
            0,
            &Switches {
                schedout_keeps: false,
                ..SW
            },
        );
        assert!(t.cid.is_unset());
    }

    #[test]
    fn v6_19_rc7_loads_transit_in_a_step_of_its_own() {
        let d = Switches {
            one_word_mode: false,
            ..SW
        };
        let mut m = mm(2, 2, Mode::PER_TASK);
        let mut t = TaskCid::with_cid(true, Cid::UNSET);
        let r = schedin(&mut m, &mut t, 0, &d);
        let Schedin::Spin(cont) = r else { panic!("{r:?}") };
        assert_eq!(cont, SchedinSpin::TransitLoad { tc: Cid::new(0) });
        assert!(!cont.spins(), "the second load is not a spin");
        assert!(t.cid.is_unset(), "nothing is stored before the load");
        // Another CPU switches the mm to per-task between the two loads: the late load sees it.
        m.mode = Mode::TO_TASK;
        assert_eq!(schedin_retry(&mut m, &mut t, 0, cont, &d), Schedin::Done);
        assert_eq!(t.cid, Cid::new(0).add_transit());
        assert_eq!(m.slot(0), t.cid);
    }
}
