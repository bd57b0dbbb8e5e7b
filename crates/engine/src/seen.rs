//! The visited set ("Seen", TLC's fingerprint set): fingerprint → state index.
//!
//! Layout, chosen for memory (the target is ≤ 40 bytes per stored state, Seen + Parents):
//! - `fps`: a dense array, state index → its 64-bit fingerprint (8 bytes per state), in
//!   [chunks](crate::chunked) so that it grows without slack or copies. Besides backing the
//!   table it answers "what is the fingerprint of state *i*", which trace replay and debugging
//!   use.
//! - `slots`: an open-addressing table (linear probing, power-of-two size, load ≤ 3/4) of 8-byte
//!   slots `high 32 bits of fp << 32 | state index`. A probe compares the 32-bit tag first and
//!   only then reads `fps[index]` for the full 64-bit comparison, so misses almost never touch
//!   `fps`. At a load between 3/8 and 3/4 the table costs 10.7–21.3 bytes per state. It doubles
//!   when it passes 3/4; [`Seen::growth_within`] tells the engine how many bytes the next
//!   doubling will take, so that a memory limit can stop the search before it.
//!
//! State indices are `u32` and dense, in discovery (BFS) order; `u32::MAX` is reserved.

use crate::EngineError;
use crate::chunked::ChunkedVec;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const EMPTY: u64 = u64::MAX;
const MIN_SLOTS: usize = 1 << 10;
/// Fibonacci-hashing multiplier: positions come from the high bits of `fp * K`, which stays
/// well spread even when a test narrows fingerprints to a few bits.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Largest number of states the set can hold (indices are `u32`, `u32::MAX` is reserved).
pub const MAX_STATES: u64 = u32::MAX as u64 - 1;

/// Grows `v` by about 1/8 when full, so a large store wastes at most ~12% in spare capacity
/// (instead of up to 100% with `Vec`'s doubling). Amortised O(1): big reallocations are usually
/// done in place by the allocator (`mremap`).
#[inline]
pub(crate) fn push_lean<T>(v: &mut Vec<T>, x: T) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(1024));
    }
    v.push(x);
}

/// Fingerprint → dense state index. See the module doc for the layout.
#[derive(Debug)]
pub struct Seen {
    /// Atomic so that workers can place new states at once ([`Seen::place`]); every other
    /// access is exclusive or read-only, and relaxed loads cost what plain loads cost.
    slots: Vec<AtomicU64>,
    fps: ChunkedVec<u64>,
    shift: u32,
}

impl Default for Seen {
    fn default() -> Self {
        Self::new()
    }
}

impl Seen {
    /// An empty set.
    pub fn new() -> Self {
        Seen {
            slots: empty_slots(MIN_SLOTS),
            fps: ChunkedVec::new(),
            shift: 64 - MIN_SLOTS.trailing_zeros(),
        }
    }

    #[inline(always)]
    fn home(&self, fp: u64) -> usize {
        (fp.wrapping_mul(K) >> self.shift) as usize
    }

    /// Inserts `fp` if absent. Returns its state index and whether it was new (a new fingerprint
    /// gets the next index, `len()` before the call).
    #[inline]
    pub fn insert(&mut self, fp: u64) -> Result<(u32, bool), EngineError> {
        if (self.fps.len() + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let tag = fp >> 32;
        let mut p = self.home(fp);
        loop {
            let s = *self.slots[p].get_mut();
            if s == EMPTY {
                let idx = self.fps.len() as u64;
                if idx >= MAX_STATES {
                    return Err(EngineError::TooManyStates { limit: MAX_STATES });
                }
                *self.slots[p].get_mut() = (tag << 32) | idx;
                self.fps.push(fp);
                return Ok((idx as u32, true));
            }
            if s >> 32 == tag && self.fps.get((s as u32) as usize) == fp {
                return Ok((s as u32, false));
            }
            p = (p + 1) & mask;
        }
    }

    /// Asks the CPU to start loading the table slot where `fp` would be, so that a later
    /// [`Seen::get`] or [`Seen::insert`] of `fp` finds it in cache. A hint: it has no effect
    /// on the result.
    #[inline(always)]
    pub fn prefetch(&self, fp: u64) {
        let p = self.home(fp);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `p` is in bounds (`home` is below the table length), and a prefetch never
        // faults nor changes memory.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(p) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = p;
    }

    /// Second stage of a prefetch: once `fp`'s slots are in cache ([`Seen::prefetch`] a few
    /// lookups earlier), finds the first slot whose tag matches and prefetches the stored
    /// fingerprint that [`Seen::get`] will compare (a second cache miss on every hit).
    #[inline(always)]
    pub fn prefetch_match(&self, fp: u64) {
        let mask = self.slots.len() - 1;
        let tag = fp >> 32;
        let mut p = self.home(fp);
        loop {
            let s = self.slots[p].load(Relaxed);
            if s == EMPTY {
                return;
            }
            if s >> 32 == tag {
                self.fps.prefetch((s as u32) as usize);
                return;
            }
            p = (p + 1) & mask;
        }
    }

    /// The index of the state with fingerprint `fp`, if any.
    #[inline]
    pub fn get(&self, fp: u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let tag = fp >> 32;
        let mut p = self.home(fp);
        loop {
            let s = self.slots[p].load(Relaxed);
            if s == EMPTY {
                return None;
            }
            if s >> 32 == tag && self.fps.get((s as u32) as usize) == fp {
                return Some(s as u32);
            }
            p = (p + 1) & mask;
        }
    }

    /// The fingerprint of state `idx` (panics if `idx >= len()`).
    #[inline]
    pub fn fingerprint_of(&self, idx: u32) -> u64 {
        self.fps.get(idx as usize)
    }

    /// Number of distinct fingerprints stored.
    #[inline]
    pub fn len(&self) -> usize {
        self.fps.len()
    }

    /// True if nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.fps.is_empty()
    }

    /// Heap bytes held (capacities, not just lengths).
    pub fn bytes(&self) -> u64 {
        (self.slots.capacity() * 8) as u64 + self.fps.bytes()
    }

    /// Bytes that inserting `n` more states would newly allocate: the doubled table if it
    /// would pass its load limit (during the doubling the old table is still held, so the peak
    /// is `bytes()` plus this), plus the fingerprint chunks.
    pub fn growth_within(&self, n: usize) -> u64 {
        let table = if (self.fps.len() + n) * 4 > self.slots.len() * 3 {
            (self.slots.len() * 2 * 8) as u64
        } else {
            0
        };
        table + (n as u64 * 8).next_multiple_of(512 << 10)
    }

    /// Forgets every state with index `len` or more (the table is rebuilt: O(`len`), meant for
    /// the end of a search that was cut inside a batch).
    pub fn truncate(&mut self, len: usize) {
        if len >= self.fps.len() {
            return;
        }
        self.fps.truncate(len);
        self.slots.iter_mut().for_each(|s| *s.get_mut() = EMPTY);
        let mask = self.slots.len() - 1;
        for (idx, fp) in self.fps.iter().enumerate() {
            let mut p = self.home(fp);
            while *self.slots[p].get_mut() != EMPTY {
                p = (p + 1) & mask;
            }
            *self.slots[p].get_mut() = ((fp >> 32) << 32) | idx as u64;
        }
    }

    fn grow(&mut self) {
        let new_len = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, empty_slots(new_len));
        self.shift -= 1;
        let mask = new_len - 1;
        for s in old.into_iter().map(AtomicU64::into_inner).filter(|&s| s != EMPTY) {
            let fp = self.fps.get((s as u32) as usize);
            let mut p = self.home(fp);
            while *self.slots[p].get_mut() != EMPTY {
                p = (p + 1) & mask;
            }
            *self.slots[p].get_mut() = s;
        }
    }

    /// Makes room for `n` more states (counting those appended by [`Seen::push_new`] and not
    /// yet placed) so that they can be placed from several threads ([`Seen::place`]) without
    /// the table growing.
    pub fn reserve(&mut self, n: usize) {
        while (self.fps.len() + n) * 4 > self.slots.len() * 3 {
            self.grow();
        }
    }

    /// Appends a fingerprint that is *not* in the set, as state `len()`, without placing it in
    /// the table yet ([`Seen::place`] does, before the next lookup). Returns its index.
    pub fn push_new(&mut self, fp: u64) -> Result<u32, EngineError> {
        let idx = self.fps.len() as u64;
        if idx >= MAX_STATES {
            return Err(EngineError::TooManyStates { limit: MAX_STATES });
        }
        self.fps.push(fp);
        Ok(idx as u32)
    }

    /// Places state `idx` (appended by [`Seen::push_new`], whose fingerprint `fp` is in no
    /// other slot) in the table. Several threads may place different states at once; room
    /// must have been made with [`Seen::reserve`]; no lookup may run meanwhile.
    pub fn place(&self, fp: u64, idx: u32) {
        let mask = self.slots.len() - 1;
        let slot = ((fp >> 32) << 32) | idx as u64;
        let mut p = self.home(fp);
        while self.slots[p]
            .compare_exchange(EMPTY, slot, Relaxed, Relaxed)
            .is_err()
        {
            p = (p + 1) & mask;
        }
    }
}

fn empty_slots(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(EMPTY)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::fingerprint;

    #[test]
    fn insert_get_grow() {
        let mut s = Seen::new();
        for i in 0..100_000u64 {
            let (idx, new) = s.insert(fingerprint(&i)).unwrap();
            assert!(new);
            assert_eq!(idx as u64, i);
        }
        for i in 0..100_000u64 {
            assert_eq!(s.get(fingerprint(&i)), Some(i as u32));
            assert_eq!(s.insert(fingerprint(&i)).unwrap(), (i as u32, false));
            assert_eq!(s.fingerprint_of(i as u32), fingerprint(&i));
        }
        assert_eq!(s.get(fingerprint(&u64::MAX)), None);
        assert_eq!(s.len(), 100_000);
        let per_state = s.bytes() as f64 / s.len() as f64;
        // 8 bytes of fingerprint (in 64 Ki chunks) and a table at load >= 3/8.
        assert!(
            per_state <= 8.0 + 8.0 * 65536.0 / 100_000.0 + 8.0 / 0.375,
            "{per_state}"
        );
    }

    #[test]
    fn equal_tags_different_fingerprints() {
        let mut s = Seen::new();
        let a = 0xDEAD_BEEF_0000_0001u64;
        let b = 0xDEAD_BEEF_0000_0002u64;
        assert_eq!(s.insert(a).unwrap(), (0, true));
        assert_eq!(s.insert(b).unwrap(), (1, true));
        assert_eq!(s.get(a), Some(0));
        assert_eq!(s.get(b), Some(1));
        // Fingerprint 0 and u64::MAX are ordinary values.
        assert_eq!(s.insert(0).unwrap(), (2, true));
        assert_eq!(s.insert(u64::MAX).unwrap(), (3, true));
        assert_eq!(s.get(u64::MAX), Some(3));
    }

    #[test]
    fn truncate_forgets_the_newest() {
        let mut s = Seen::new();
        for i in 0..5000u64 {
            s.insert(fingerprint(&i)).unwrap();
        }
        s.truncate(1000);
        assert_eq!(s.len(), 1000);
        assert_eq!(s.get(fingerprint(&999u64)), Some(999));
        assert_eq!(s.get(fingerprint(&1000u64)), None);
        assert_eq!(s.insert(fingerprint(&4000u64)).unwrap(), (1000, true));
        assert!(s.growth_within(1 << 20) > s.growth_within(1));
    }

    #[test]
    fn push_new_then_place_from_threads() {
        let mut s = Seen::new();
        s.insert(fingerprint(&0u64)).unwrap();
        let fps: Vec<u64> = (1..20_000u64).map(|i| fingerprint(&i)).collect();
        let idx: Vec<u32> = fps.iter().map(|&fp| s.push_new(fp).unwrap()).collect();
        s.reserve(0);
        std::thread::scope(|t| {
            for part in 0..4 {
                let (s, fps, idx) = (&s, &fps, &idx);
                t.spawn(move || {
                    for k in (part..fps.len()).step_by(4) {
                        s.place(fps[k], idx[k]);
                    }
                });
            }
        });
        for (k, &fp) in fps.iter().enumerate() {
            assert_eq!(s.get(fp), Some(k as u32 + 1));
        }
        assert_eq!(s.insert(fingerprint(&5u64)).unwrap(), (5, false));
        assert_eq!(s.insert(fingerprint(&u64::MAX)).unwrap(), (20_000, true));
    }
}
