//! Per-CID data: [`PerCid<T>`] and the rseq counter [`PerCidCounter`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_arch = "x86_64")]
use crate::sys::CsAdd;
use crate::{cid_area, current_cid, note_abort, possible_cpus, rseq_info};

/// Aligns its content to 128 bytes: two 64-byte lines, because x86's
/// adjacent-line prefetcher otherwise couples neighbouring slots.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// One cache-line-padded `T` per possible CPU, indexed by the calling
/// thread's concurrency ID ([`current_cid`]).
///
/// With the kernel's `mm_cid`, threads running at the same instant use
/// different slots (I1) and every ID has a slot (I2). A thread can still be
/// preempted right after picking its slot and another thread can then pick
/// the same one, so `T` must synchronise itself (atomics, a lock); the point
/// of `PerCid` is that such synchronisation is almost never contended. With
/// the thread-ID fallback, IDs are folded modulo [`len`](Self::len); in a
/// process where some threads have `mm_cid` and others do not (see the
/// crate docs on mixed registration), a fallback ID can equal a running
/// thread's `mm_cid`, which costs contention, not correctness.
#[derive(Debug)]
pub struct PerCid<T> {
    slots: Box<[Padded<T>]>,
}

impl<T> PerCid<T> {
    /// One slot per possible CPU, the slot for ID `i` initialised with
    /// `init(i)`.
    pub fn new_with(init: impl FnMut(usize) -> T) -> Self {
        Self::with_len(possible_cpus(), init)
    }

    /// `len` slots (at least 1); IDs at or above `len` are folded modulo
    /// `len`. Mostly for tests and for callers that know a tighter bound.
    pub fn with_len(len: usize, mut init: impl FnMut(usize) -> T) -> Self {
        let slots = (0..len.max(1)).map(|i| Padded(init(i))).collect();
        PerCid { slots }
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: there is at least one slot.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The slot index the calling thread would use now.
    #[inline]
    pub fn current_index(&self) -> usize {
        current_cid() as usize % self.slots.len()
    }

    /// The slot of the calling thread's current concurrency ID.
    #[inline]
    pub fn get(&self) -> &T {
        &self.slots[self.current_index()].0
    }

    /// The slot for ID `cid`, if there is one.
    #[inline]
    pub fn get_slot(&self, cid: usize) -> Option<&T> {
        self.slots.get(cid).map(|p| &p.0)
    }

    /// All slots, in ID order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> {
        self.slots.iter().map(|p| &p.0)
    }

    /// All slots, mutably, in ID order.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = &mut T> {
        self.slots.iter_mut().map(|p| &mut p.0)
    }
}

impl<T: Default> PerCid<T> {
    /// One default-initialised slot per possible CPU.
    pub fn new() -> Self {
        Self::new_with(|_| T::default())
    }
}

impl<T: Default> Default for PerCid<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for PerCidCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// How one [`PerCidCounter::add_traced`] call was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// Committed by an rseq critical section into slot `cid`, after
    /// `aborts` aborted attempts.
    Rseq {
        /// The `mm_cid` (and slot) the commit used.
        cid: u32,
        /// Attempts aborted before the commit.
        aborts: u32,
    },
    /// Done with an atomic `fetch_add` on slot `slot`: no thread of this
    /// process commits with critical sections
    /// ([`RseqInfo::critical_sections`](crate::RseqInfo::critical_sections)
    /// is false: thread-ID fallback, or no critical sections on this
    /// architecture).
    Atomic {
        /// The slot that was incremented.
        slot: usize,
    },
    /// Done with an atomic `fetch_add` on side cell `cell`: critical
    /// sections commit to the slots in this process, and the calling thread
    /// has no `mm_cid` (mixed registration) or its `mm_cid` has no slot.
    Side {
        /// The side cell that was incremented (ID modulo the cell count).
        cell: usize,
    },
}

/// A counter sharded by `mm_cid`, incremented in rseq critical sections.
///
/// [`add`](Self::add) costs a small multiple of incrementing a thread-local
/// variable (see `mmcid bench-percid` and the README for figures against a
/// thread-local `Cell` and librseq) and never bounces cache lines between
/// running threads;
/// [`sum`](Self::sum) reads every slot (not an atomic snapshot: adds that
/// race with it may or may not be counted; once they happen-before the
/// call, they are).
///
/// Where an add goes:
///
/// | process ([`RseqInfo::critical_sections`](crate::RseqInfo::critical_sections)) | calling thread | written with |
/// |---|---|---|
/// | sections | `mm_cid` below [`slots`](Self::slots) | a critical section into slot `mm_cid` |
/// | sections | no `mm_cid`, or `mm_cid` out of range | an atomic add into a side cell |
/// | no sections | any | an atomic add into slot `ID mod slots` |
///
/// The side cells are allocated on first use (never, on a normal system).
#[derive(Debug)]
pub struct PerCidCounter {
    slots: PerCid<AtomicU64>,
    /// Written only by atomic RMWs, while critical sections commit to
    /// `slots` in this process: threads without `mm_cid` and IDs without a
    /// slot must not fold into a slot, whose owner commits with a
    /// non-atomic `add` that an atomic RMW from another CPU does not exclude
    /// (increments would be lost).
    side: OnceLock<Box<[Padded<AtomicU64>]>>,
    /// `slots`' address and length in one word for the hot path
    /// (`sys::pack_slots`, `RseqArea::add_packed`): derived from `slots`,
    /// whose heap array never moves, and stored because loading one word
    /// instead of two is what keeps `add` level with librseq.
    packed: u64,
}

impl PerCidCounter {
    /// A zeroed counter with one slot per possible CPU.
    pub fn new() -> Self {
        Self::with_slots(possible_cpus())
    }

    /// A zeroed counter with `len` slots (at least 1; for tests of the
    /// out-of-range path: IDs at or above `len` add atomically to a side
    /// cell, see [`add_traced`](Self::add_traced)).
    pub fn with_slots(len: usize) -> Self {
        let slots = PerCid::with_len(len, |_| AtomicU64::new(0));
        PerCidCounter {
            packed: crate::sys::pack_slots(&slots.slots),
            slots,
            side: OnceLock::new(),
        }
    }

    /// Adds `v` (wrapping on overflow).
    ///
    /// On x86_64 with a usable `mm_cid` the fast path is one TLS load (the
    /// thread's rseq area), one load of the counter (its slots' address and
    /// length, packed) and one critical section: arm `rseq_cs`, read
    /// `mm_cid`, bounds-check it, `add` to its slot. Retries after an abort
    /// and the atomic paths are out of line.
    #[inline(always)]
    pub fn add(&self, v: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(area) = cid_area() {
            match area.add_packed(self.packed, v) {
                CsAdd::Done => {}
                CsAdd::Aborted => self.add_after_abort(area, v),
                CsAdd::OutOfRange => self.add_out_of_range(area, v),
            }
            return;
        }
        self.add_atomic(v);
    }

    /// The rest of [`add`](Self::add) for an ID without a slot, or slots
    /// that could not be packed (`packed` is 0): one section on the
    /// unpacked slot array decides.
    #[cfg(target_arch = "x86_64")]
    #[cold]
    #[inline(never)]
    fn add_out_of_range(&self, area: crate::sys::RseqArea, v: u64) {
        match area.add_at_mm_cid(&self.slots.slots, v) {
            CsAdd::Done => {}
            CsAdd::Aborted => self.add_after_abort(area, v),
            CsAdd::OutOfRange => {
                self.add_side(v);
            }
        }
    }

    /// The rest of [`add`](Self::add) after an aborted first attempt:
    /// retry until a section commits (or the new ID has no slot).
    #[cfg(target_arch = "x86_64")]
    #[cold]
    #[inline(never)]
    fn add_after_abort(&self, area: crate::sys::RseqArea, v: u64) {
        loop {
            note_abort();
            match area.add_at_mm_cid(&self.slots.slots, v) {
                CsAdd::Done => return,
                CsAdd::Aborted => {}
                CsAdd::OutOfRange => {
                    self.add_side(v);
                    return;
                }
            }
        }
    }

    /// An atomic add to side cell `current_cid() mod cells` (see the
    /// field's docs for why not to a slot); returns the cell.
    #[cold]
    #[inline(never)]
    fn add_side(&self, v: u64) -> usize {
        let side = self
            .side
            .get_or_init(|| (0..self.slots.len()).map(|_| Padded(AtomicU64::new(0))).collect());
        let i = current_cid() as usize % side.len();
        side[i].0.fetch_add(v, Ordering::Relaxed);
        i
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// No usable `mm_cid` in the calling thread (or no critical sections on
    /// this architecture). If critical sections commit to the slots in this
    /// process, the add goes to a side cell; otherwise no thread writes the
    /// slots non-atomically, and folding IDs into them with atomic RMWs is
    /// exact.
    #[cold]
    #[inline(never)]
    fn add_atomic(&self, v: u64) -> AddOutcome {
        if rseq_info().critical_sections {
            return AddOutcome::Side {
                cell: self.add_side(v),
            };
        }
        let i = self.slots.current_index();
        self.slots.slots[i].0.fetch_add(v, Ordering::Relaxed);
        AddOutcome::Atomic { slot: i }
    }

    /// Like [`add`](Self::add), but reports which path ran. Used by the
    /// tests to prove that the `mm_cid` critical section executed.
    pub fn add_traced(&self, v: u64) -> AddOutcome {
        #[cfg(target_arch = "x86_64")]
        if let Some(area) = cid_area() {
            let mut aborts = 0;
            loop {
                let (r, cid) = area.add_at_mm_cid_traced(&self.slots.slots, v);
                match r {
                    CsAdd::Done => return AddOutcome::Rseq { cid, aborts },
                    CsAdd::Aborted => {
                        note_abort();
                        aborts += 1;
                    }
                    CsAdd::OutOfRange => {
                        return AddOutcome::Side {
                            cell: self.add_side(v),
                        };
                    }
                }
            }
        }
        self.add_atomic(v)
    }

    /// Runs the critical section once *as if* the calling thread had ID
    /// `cid`: adds `v` to slot `cid` only if, inside the section, the
    /// thread's `mm_cid` equals `cid`. `None` if there is no usable
    /// `mm_cid` or `cid` has no slot; `Some(false)` if the section aborted.
    /// Safe for any `cid`: a mismatch never writes. Used by the tests to
    /// show that the check reads `mm_cid` (not `cpu_id`).
    #[doc(hidden)]
    pub fn try_add_as(&self, cid: u32, v: u64) -> Option<bool> {
        let slot = self.slots.get_slot(cid as usize)?;
        #[cfg(target_arch = "x86_64")]
        {
            Some(cid_area()?.add_if_cid(cid, slot, v))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (slot, v);
            None
        }
    }

    /// The old, wrong fallback that issue 14 removed, kept only to show
    /// that the mixed-registration test catches it: an atomic add into slot
    /// `current_cid() mod slots` even while critical sections commit to the
    /// slots. Loses increments under mixed registration.
    #[doc(hidden)]
    pub fn add_folding_into_slots_for_tests(&self, v: u64) {
        let i = self.slots.current_index();
        self.slots.slots[i].0.fetch_add(v, Ordering::Relaxed);
    }

    /// The total of all slots and side cells.
    pub fn sum(&self) -> u64 {
        self.per_slot()
            .into_iter()
            .fold(self.side_sum(), |s, x| s.wrapping_add(x))
    }

    /// The value of each slot, in ID order (how the work was spread over
    /// concurrency IDs). Adds to side cells are not included; [`sum`](Self::sum)
    /// counts them and [`side_sum`](Self::side_sum) reports them.
    pub fn per_slot(&self) -> Vec<u64> {
        self.slots.iter().map(|x| x.load(Ordering::Relaxed)).collect()
    }

    /// The total of the side cells: what threads without `mm_cid`, and
    /// `mm_cid`s without a slot, added while critical sections commit to
    /// the slots (0 on a normal system).
    pub fn side_sum(&self) -> u64 {
        self.side.get().map_or(0, |side| {
            side.iter()
                .fold(0u64, |s, x| s.wrapping_add(x.0.load(Ordering::Relaxed)))
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Sets every slot and side cell to zero (exclusive access, so no add
    /// can race).
    pub fn reset(&mut self) {
        for s in self.slots.iter_mut() {
            *s.get_mut() = 0;
        }
        if let Some(side) = self.side.get_mut() {
            for c in side.iter_mut() {
                *c.0.get_mut() = 0;
            }
        }
    }
}
