//! The 6.3 design (af7f588d8f73 + bbd0b031509b; designs.md E.1, which corrects spec 9.1).
//!
//! One bitmap of `nr_cpu_ids` bits per mm under a per-mm raw spinlock `cid_lock`. A task takes the
//! lowest free bit when it is switched in and gives it back when it is switched out; a switch
//! between two active tasks of the same mm hands the CID over without touching the bitmap. The
//! allocator does not spin: with no free bit it returns −1 and the task runs with `mm_cid == -1`.
//!
//! Every function here is one atomic step: each runs under `cid_lock` and/or with IRQs off on the
//! local CPU, touching only the bitmap and the tasks passed in.

use super::{LegacyCid, LegacyFaults, OwnershipError};
use crate::storage::{Bitmap, Compact, Num, Stats, Storage};

/// The CID state of one mm in 6.3: `cid_lock` and `cidmask` (designs.md E.1).
///
/// # Locks
/// The bitmap is read and written only under the per-mm `cid_lock` (each function that touches it
/// is one critical section; the model takes it as one step).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct Mm63Of<S: Storage> {
    /// `nr_cpu_ids`: the bitmap size and the allocation bound.
    pub np: S::Count,
    /// `mm_cidmask(mm)`: bit `c` set while some switched-in task holds CID `c`.
    pub cidmask: S::Bitmap,
    /// Clears the kernel would not notice, and −1 handed out.
    pub faults: LegacyFaults,
    /// Traffic counters (zero-sized in the checker).
    #[serde(skip)]
    pub stats: S::Stats,
}

/// The checker's compact [`Mm63Of`].
pub type Mm63 = Mm63Of<Compact>;

/// A task's CID state in 6.3 (`t.mm_cid`, `t.mm_cid_active`).
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Task63 {
    /// The CID (UNSET = −1 when none). What user space reads.
    pub mm_cid: LegacyCid,
    /// `mm_cid_active`: the task is a CID user of its mm.
    pub active: bool,
}

impl Task63 {
    /// What user space reads in `rseq::mm_cid` (−1 when the task has no CID).
    pub const fn user_value(&self) -> i32 {
        self.mm_cid.user_value()
    }
}

impl<S: Storage> Mm63Of<S> {
    /// `mm_init` → `mm_init_cid(mm)`: an mm with `np = nr_cpu_ids` bits, all clear.
    pub fn new(np: S::Count) -> Mm63Of<S> {
        let cap = if S::MAX_NP < crate::CidBitmap::CAPACITY {
            crate::CidBitmap::CAPACITY
        } else {
            S::MAX_NP
        };
        assert!((1..=cap).contains(&np.n()), "np must be in 1..={cap}");
        Mm63Of {
            np,
            cidmask: S::Bitmap::with_bits(np.n()),
            faults: LegacyFaults::default(),
            stats: S::Stats::default(),
        }
    }

    /// `mm_cid_get(mm)`: the lowest free bit below `nr_cpu_ids`, or −1 (no spin). A −1 is
    /// recorded in [`LegacyFaults::no_cid`].
    ///
    /// # Locks
    /// Takes `cid_lock` (the model: one step).
    pub fn get(&mut self) -> LegacyCid {
        self.stats.lock();
        match self.cidmask.first_zero(self.np.n()) {
            Some(c) => {
                self.stats.bit_op();
                self.cidmask.test_and_set(c);
                LegacyCid::new(c)
            }
            None => {
                self.faults.no_cid = true;
                LegacyCid::UNSET
            }
        }
    }

    /// `mm_cid_put(mm, c)`: nothing for a negative value, else `clear_bit(c)` (no range check; a
    /// bad clear is recorded in [`Mm63Of::faults`]).
    ///
    /// # Locks
    /// Takes `cid_lock` (the model: one step).
    pub fn put(&mut self, c: LegacyCid) {
        if c.user_value() < 0 {
            return;
        }
        self.stats.lock();
        self.stats.bit_op();
        let i = c.raw();
        let r = self.cidmask.clear(i, self.np.n());
        self.faults.record(i, r);
    }
}

/// `mm_init_cid(mm)`: clear the bitmap. Called in `mm_init` (that is [`Mm63Of::new`]) and **again** in
/// `exec_mmap`, after `current` has switched to the new mm (designs.md E.0.1).
///
/// # Locks
/// None (the mm is not shared yet).
pub fn mm_init_cid<S: Storage>(mm: &mut Mm63Of<S>) {
    mm.cidmask = S::Bitmap::with_bits(mm.np.n());
}

/// `sched_mm_cid_fork(child)` in `copy_mm`, after `child.mm` is set: `child.active = 1`. The child
/// keeps `mm_cid = -1` from `dup_task_struct` until its first switch-in.
///
/// # Locks
/// None.
pub fn fork(child: &mut Task63) {
    child.active = true;
}

/// The mms of a context switch's two tasks, so that "same mm" can be passed without aliasing.
pub enum SwitchMmsOf<'a, S: Storage> {
    /// `prev.mm == next.mm`.
    Same(&'a mut Mm63Of<S>),
    /// Different mms; `None` for a task without an mm (a kernel thread, which is never active).
    Distinct {
        /// `prev.mm`.
        prev: Option<&'a mut Mm63Of<S>>,
        /// `next.mm`.
        next: Option<&'a mut Mm63Of<S>>,
    },
}

/// The checker's compact [`SwitchMmsOf`].
pub type SwitchMms<'a> = SwitchMmsOf<'a, Compact>;

/// `switch_mm_cid(prev, next)` in `prepare_task_switch` (designs.md E.1):
/// - prev active and next an active task of the same mm: hand prev's CID to next, no lock, no
///   bitmap operation;
/// - else put prev's CID (if prev is active), then get one for next (if next is active; may be −1).
///
/// # Locks
/// The local rq lock, IRQs off; `cid_lock` inside put and get. One step.
///
/// # Panics
/// If an active task's mm is missing from `mms`.
pub fn switch<S: Storage>(mms: SwitchMmsOf<'_, S>, prev: &mut Task63, next: &mut Task63) {
    let (mm_prev, mm_next) = match mms {
        SwitchMmsOf::Same(mm) => {
            if prev.active && next.active {
                next.mm_cid = prev.mm_cid;
                prev.mm_cid = LegacyCid::UNSET;
                return;
            }
            if prev.active {
                mm.put(prev.mm_cid);
                prev.mm_cid = LegacyCid::UNSET;
            }
            if next.active {
                next.mm_cid = mm.get();
            }
            return;
        }
        SwitchMmsOf::Distinct { prev, next } => (prev, next),
    };
    if prev.active {
        let mm = mm_prev.expect("active prev without an mm");
        mm.put(prev.mm_cid);
        prev.mm_cid = LegacyCid::UNSET;
    }
    if next.active {
        let mm = mm_next.expect("active next without an mm");
        next.mm_cid = mm.get();
    }
}

/// `sched_mm_cid_exit_signals(t)` (before PF_EXITING): with IRQs off, put `t`'s CID,
/// `mm_cid = -1`, `active = 0`. The caller skips tasks without an mm.
///
/// # Locks
/// IRQs off (not the rq lock, designs.md E.0.1); `cid_lock` inside put. One step.
pub fn exit_signals<S: Storage>(mm: &mut Mm63Of<S>, t: &mut Task63) {
    mm.put(t.mm_cid);
    t.mm_cid = LegacyCid::UNSET;
    t.active = false;
}

/// `sched_mm_cid_before_execve(t)`: the same as [`exit_signals`], on the old mm.
///
/// # Locks
/// IRQs off; `cid_lock` inside put. One step.
pub fn before_execve<S: Storage>(mm: &mut Mm63Of<S>, t: &mut Task63) {
    exit_signals(mm, t);
}

/// `sched_mm_cid_after_execve(t)` (success: the new mm, after [`mm_init_cid`] ran again in
/// `exec_mmap`; failure: the old mm): with IRQs off, `mm_cid = get()` **then** `active = 1`
/// (designs.md E.0.1). The get may hand out −1. The caller skips tasks without an mm
/// (bbd0b031509b; before it the kernel WARNed).
///
/// # Locks
/// IRQs off; `cid_lock` inside get. One step.
pub fn after_execve<S: Storage>(mm: &mut Mm63Of<S>, t: &mut Task63) {
    t.mm_cid = mm.get();
    t.active = true;
}

/// Bit ownership in 6.3: the bits set in `mm.cidmask` are exactly the `mm_cid`s of the tasks of
/// this mm, each named once. A task has a non-negative `mm_cid` exactly while it is switched in,
/// or while it runs `after_execve` and after; so `holders` is the `mm_cid` of every task whose mm
/// is `mm` (UNSET entries are ignored, so passing all of them is fine).
pub fn check_ownership<S: Storage>(
    mm: &Mm63Of<S>,
    holders: impl IntoIterator<Item = LegacyCid>,
) -> Result<(), OwnershipError> {
    super::check_owners(&mm.cidmask, mm.np.n(), holders)
}

/// I2 for 6.3 on one running task: an active task's `mm_cid` is in `0..nr_cpu_ids`. A −1 (the
/// allocator found nothing, and user space reads a negative `mm_cid`) is
/// [`OwnershipError::Negative`].
pub fn check_bound<S: Storage>(mm: &Mm63Of<S>, t: &Task63) -> Result<(), OwnershipError> {
    if !t.active {
        return Ok(());
    }
    match t.mm_cid.user_value() {
        v if v < 0 => Err(OwnershipError::Negative),
        v if v as u32 >= mm.np.n() => Err(OwnershipError::OutOfBound(v as u32)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Task63 {
        let mut t = Task63::default();
        fork(&mut t);
        t
    }

    #[test]
    fn fork_sets_active_without_a_cid() {
        let t = active();
        assert!(t.active && t.mm_cid.is_unset());
        assert_eq!(t.user_value(), -1);
    }

    #[test]
    fn same_mm_switch_hands_the_cid_over_without_the_bitmap() {
        let mut mm = Mm63::new(2);
        let (mut a, mut b) = (active(), active());
        let mut idle = Task63::default();
        switch(
            SwitchMms::Distinct {
                prev: None,
                next: Some(&mut mm),
            },
            &mut idle,
            &mut a,
        );
        assert_eq!(a.mm_cid, LegacyCid::new(0));
        let before = mm.cidmask;
        switch(SwitchMms::Same(&mut mm), &mut a, &mut b);
        assert_eq!((a.mm_cid, b.mm_cid), (LegacyCid::UNSET, LegacyCid::new(0)));
        assert_eq!(mm.cidmask, before, "handover does not touch the bitmap");
        assert_eq!(check_ownership(&mm, [a.mm_cid, b.mm_cid]), Ok(()));
    }

    #[test]
    fn same_mm_switch_to_an_inactive_task_puts() {
        let mut mm = Mm63::new(2);
        let mut a = active();
        a.mm_cid = mm.get();
        let mut exiting = Task63::default(); // active = 0 (e.g. after exit_signals)
        switch(SwitchMms::Same(&mut mm), &mut a, &mut exiting);
        assert!(a.mm_cid.is_unset() && exiting.mm_cid.is_unset());
        assert_eq!(mm.cidmask.weight(), 0);
    }

    #[test]
    fn distinct_mm_switch_puts_then_gets() {
        let (mut m1, mut m2) = (Mm63::new(2), Mm63::new(2));
        let (mut a, mut b) = (active(), active());
        a.mm_cid = m1.get();
        switch(
            SwitchMms::Distinct {
                prev: Some(&mut m1),
                next: Some(&mut m2),
            },
            &mut a,
            &mut b,
        );
        assert!(a.mm_cid.is_unset() && m1.cidmask.weight() == 0);
        assert_eq!(b.mm_cid, LegacyCid::new(0));
        assert!(m2.cidmask.is_set(0));
    }

    #[test]
    fn get_returns_minus_one_when_full_and_records_it() {
        let mut mm = Mm63::new(2);
        let mut ts = [active(), active(), active()];
        let mut idle = Task63::default();
        for t in &mut ts {
            switch(
                SwitchMms::Distinct {
                    prev: None,
                    next: Some(&mut mm),
                },
                &mut idle,
                t,
            );
        }
        assert_eq!(ts.map(|t| t.user_value()), [0, 1, -1]);
        assert!(mm.faults.no_cid);
        assert_eq!(check_bound(&mm, &ts[2]), Err(OwnershipError::Negative));
        assert_eq!(check_bound(&mm, &ts[1]), Ok(()));
        // the -1 is not put back
        mm.put(ts[2].mm_cid);
        assert_eq!(mm.faults.already_clear, None);
        assert_eq!(check_ownership(&mm, ts.map(|t| t.mm_cid)), Ok(()));
    }

    #[test]
    fn exit_and_execve() {
        let mut mm = Mm63::new(2);
        let mut t = active();
        t.mm_cid = mm.get();
        exit_signals(&mut mm, &mut t);
        assert!(!t.active && t.mm_cid.is_unset() && mm.cidmask.weight() == 0);

        let mut u = active();
        u.mm_cid = mm.get();
        before_execve(&mut mm, &mut u);
        assert!(!u.active && u.mm_cid.is_unset() && mm.cidmask.weight() == 0);
        let mut new_mm = Mm63::new(2);
        mm_init_cid(&mut new_mm);
        after_execve(&mut new_mm, &mut u);
        assert!(u.active && u.mm_cid == LegacyCid::new(0) && new_mm.cidmask.is_set(0));
        // switched out later: its CID goes back
        let mut idle = Task63::default();
        switch(
            SwitchMms::Distinct {
                prev: Some(&mut new_mm),
                next: None,
            },
            &mut u,
            &mut idle,
        );
        assert_eq!(new_mm.cidmask.weight(), 0);
    }

    #[test]
    fn bad_puts_are_observable() {
        let mut mm = Mm63::new(2);
        mm.put(LegacyCid::new(1));
        assert_eq!(mm.faults.already_clear, Some(1));
        mm.put(LegacyCid::new(5));
        assert_eq!(mm.faults.out_of_range, Some(5));
    }

    #[test]
    fn ownership_check_finds_leaks_and_duplicates() {
        let mut mm = Mm63::new(2);
        let c = mm.get();
        assert_eq!(check_ownership(&mm, []), Err(OwnershipError::Leaked(0)));
        assert_eq!(check_ownership(&mm, [c, c]), Err(OwnershipError::Duplicate(0)));
        assert_eq!(
            check_ownership(&mm, [c, LegacyCid::new(1)]),
            Err(OwnershipError::Unbacked(1))
        );
    }
}
