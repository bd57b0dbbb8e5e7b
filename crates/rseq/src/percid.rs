//! Per-CID data: [`PerCid<T>`] and the rseq counter [`PerCidCounter`].

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(target_arch = "x86_64")]
use crate::sys::CsAdd;
use crate::{cid_area, current_cid, note_abort, possible_cpus};

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
/// the thread-ID fallback, IDs are folded modulo [`len`](Self::len).
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
    /// Done with an atomic `fetch_add` on slot `slot` (no usable `mm_cid`,
    /// an ID out of range, or no rseq critical sections on this
    /// architecture).
    Atomic {
        /// The slot that was incremented; [`PerCidCounter::slots`] for the
        /// overflow cell that IDs without a slot use while the rseq path
        /// is in use.
        slot: usize,
    },
}

/// A counter sharded by `mm_cid`, incremented in rseq critical sections.
///
/// [`add`](Self::add) costs a small multiple of incrementing a thread-local
/// variable (on a Zen 4 machine about 0.9 ns against 0.55 ns, see
/// `mmcid bench-percid`) and never bounces cache lines between running
/// threads;
/// [`sum`](Self::sum) reads every slot (not an atomic snapshot: adds that
/// race with it may or may not be counted; once they happen-before the
/// call, they are).
#[derive(Debug, Default)]
pub struct PerCidCounter {
    slots: PerCid<AtomicU64>,
    /// Where threads whose `mm_cid` has no slot add (atomically) while the
    /// rseq path is in use. They must not fold into a slot: that slot's
    /// owner commits with a non-atomic `add`, which an atomic RMW from
    /// another CPU does not exclude (increments would be lost).
    overflow: Padded<AtomicU64>,
}

impl PerCidCounter {
    /// A zeroed counter with one slot per possible CPU.
    pub fn new() -> Self {
        PerCidCounter {
            slots: PerCid::new(),
            overflow: Padded::default(),
        }
    }

    /// A zeroed counter with `len` slots (for tests of the out-of-range
    /// path; IDs at or above `len` add atomically to a separate overflow
    /// cell, reported as slot `len` by [`add_traced`](Self::add_traced)).
    pub fn with_slots(len: usize) -> Self {
        PerCidCounter {
            slots: PerCid::with_len(len, |_| AtomicU64::new(0)),
            overflow: Padded::default(),
        }
    }

    /// Adds `v` (wrapping on overflow).
    ///
    /// On x86_64 with a usable `mm_cid` the fast path is one TLS load (the
    /// thread's rseq area) and one critical section: arm `rseq_cs`, read
    /// `mm_cid`, bounds-check it, `add` to its slot. Retries after an abort
    /// and the atomic fallback are out of line.
    #[inline(always)]
    pub fn add(&self, v: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(area) = cid_area() {
            match area.add_at_mm_cid(&self.slots.slots, v) {
                CsAdd::Done => {}
                CsAdd::Aborted => self.add_after_abort(area, v),
                CsAdd::OutOfRange => {
                    self.add_overflow(v);
                }
            }
            return;
        }
        self.add_atomic(v);
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
                    self.add_overflow(v);
                    return;
                }
            }
        }
    }

    /// An ID without a slot while the rseq path is in use: atomic add to
    /// the overflow cell (see the field's docs for why not to a slot).
    #[cold]
    #[inline(never)]
    fn add_overflow(&self, v: u64) -> usize {
        self.overflow.0.fetch_add(v, Ordering::Relaxed);
        self.slots.len()
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }

    /// No usable `mm_cid` (thread-ID fallback, or no critical sections on
    /// this architecture): every thread of the process takes this path, so
    /// folding IDs into slots with atomic RMWs is exact.
    #[cold]
    #[inline(never)]
    fn add_atomic(&self, v: u64) -> usize {
        let i = self.slots.current_index();
        self.slots.slots[i].0.fetch_add(v, Ordering::Relaxed);
        i
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
                        return AddOutcome::Atomic {
                            slot: self.add_overflow(v),
                        };
                    }
                }
            }
        }
        AddOutcome::Atomic {
            slot: self.add_atomic(v),
        }
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

    /// The total of all slots.
    pub fn sum(&self) -> u64 {
        self.slots
            .iter()
            .chain(std::iter::once(&self.overflow.0))
            .fold(0u64, |s, x| s.wrapping_add(x.load(Ordering::Relaxed)))
    }

    /// The value of each slot, in ID order (how the work was spread over
    /// concurrency IDs). Adds by IDs without a slot (only possible with
    /// [`with_slots`](Self::with_slots)) are not included; [`sum`](Self::sum)
    /// counts them.
    pub fn per_slot(&self) -> Vec<u64> {
        self.slots.iter().map(|x| x.load(Ordering::Relaxed)).collect()
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Sets every slot to zero (exclusive access, so no add can race).
    pub fn reset(&mut self) {
        for s in self.slots.iter_mut() {
            *s.get_mut() = 0;
        }
        *self.overflow.0.get_mut() = 0;
    }
}
