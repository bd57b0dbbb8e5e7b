//! The thread-ID fallback's allocator: the lowest free ID, lock-free.
//!
//! # Why lock-free, and what happens at `fork()`
//!
//! The allocator used to be a `Mutex<BTreeSet>`. Two things went wrong
//! with it in a process that forks (issue 14):
//!
//! * `fork()` copies memory, not threads. A mutex held by another thread at
//!   the moment of the fork stays held in the child for ever, and the
//!   child's next allocation (its next new thread) would hang (a short
//!   window: not seen in 1,000 forks of the test below).
//! * The IDs of the parent's other threads stayed allocated in the child,
//!   where those threads do not exist and so never return them: the
//!   child's first new thread got ID 4 instead of 1 behind three parent
//!   threads, and 1 to 4 children in 200 forked while threads came and went
//!   got a wrong ID (test `fork_in_fallback_mode_frees_absent_threads_ids`).
//!
//! Here every operation is a single compare-and-swap or fetch-and on one
//! word of a bitmap, so there is no lock to be caught half-way, and the
//! crate registers a `pthread_atfork` child handler
//! ([`CompactIdAllocator::reset_keeping`] through `crate::ids_after_fork`)
//! that frees every ID but the forking thread's, the only thread the child
//! has (POSIX `fork()`: "a process shall be created with a single thread").
//! `vfork()` and `posix_spawn()` run no fork handlers, but their child
//! only calls `exec`, which discards this state anyway. A raw `clone()`
//! without `CLONE_VM` that bypasses the C library also bypasses the
//! handler: such a child keeps the parent's IDs allocated (harmless for
//! [`PerCid`](crate::PerCid) and [`PerCidCounter`](crate::PerCidCounter),
//! which only use them as a hint).
//!
//! No crate fits: the ones that recycle IDs (`thread_local`'s internal
//! `ThreadId`, `sharded-slab`'s) use a mutex or do not hand out the lowest
//! free ID, and none is fork-aware.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Words in the bitmap: 1024 x 64 = 65,536 IDs, 8 KiB of zero-initialised
/// memory of which a process touches only the words it uses.
const WORDS: usize = 1024;

/// Hands out the lowest free ID below [`CAPACITY`](Self::CAPACITY),
/// without locks; used for the thread-ID fallback.
///
/// Each ID is one bit. `alloc` scans the words in order and sets the lowest
/// clear bit with a compare-and-swap (retrying that word if another thread
/// changed it in between); `release` clears the bit. Without concurrent
/// calls this is exactly the lowest free ID; with them, an ID freed behind
/// a scan in progress is only found by the next scan.
#[derive(Debug)]
pub struct CompactIdAllocator {
    words: [AtomicU64; WORDS],
    /// One more than the highest word index ever used: scans and resets
    /// stop there.
    used_words: AtomicUsize,
}

impl Default for CompactIdAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl CompactIdAllocator {
    /// How many IDs can be in use at once.
    pub const CAPACITY: u32 = (WORDS * 64) as u32;

    /// An allocator with every ID free.
    pub const fn new() -> Self {
        CompactIdAllocator {
            words: [const { AtomicU64::new(0) }; WORDS],
            used_words: AtomicUsize::new(0),
        }
    }

    /// Takes the lowest free ID; `None` when all [`CAPACITY`](Self::CAPACITY)
    /// IDs are in use.
    pub fn alloc(&self) -> Option<u32> {
        for (i, word) in self.words.iter().enumerate() {
            let mut w = word.load(Ordering::Relaxed);
            while w != u64::MAX {
                let bit = (!w).trailing_zeros();
                match word.compare_exchange_weak(w, w | 1 << bit, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        self.used_words.fetch_max(i + 1, Ordering::Relaxed);
                        return Some(i as u32 * 64 + bit);
                    }
                    Err(now) => w = now,
                }
            }
        }
        None
    }

    /// Returns `id`. Releasing an ID that is not allocated (or not below
    /// [`CAPACITY`](Self::CAPACITY)) is ignored.
    pub fn release(&self, id: u32) {
        if let Some(word) = self.words.get(id as usize / 64) {
            word.fetch_and(!(1 << (id % 64)), Ordering::Release);
        }
    }

    /// Number of IDs in use.
    pub fn in_use(&self) -> usize {
        self.scanned()
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Frees every ID except `keep`: what the child of a `fork()` needs,
    /// where only the forking thread (holding `keep`, if it has an ID)
    /// exists. Must not race with `alloc` or `release` (in the fork child
    /// nothing else runs yet).
    pub fn reset_keeping(&self, keep: Option<u32>) {
        for w in self.scanned() {
            // Only write words that need it: untouched ones stay unmapped.
            if w.load(Ordering::Relaxed) != 0 {
                w.store(0, Ordering::Relaxed);
            }
        }
        if let Some(id) = keep.filter(|&id| id < Self::CAPACITY) {
            self.words[id as usize / 64].store(1 << (id % 64), Ordering::Relaxed);
        }
    }

    fn scanned(&self) -> &[AtomicU64] {
        &self.words[..self.used_words.load(Ordering::Relaxed).min(WORDS)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_lowest_free() {
        let a = CompactIdAllocator::new();
        assert_eq!((a.alloc(), a.alloc(), a.alloc()), (Some(0), Some(1), Some(2)));
        a.release(1);
        a.release(1);
        assert_eq!(a.in_use(), 2);
        assert_eq!(a.alloc(), Some(1));
        a.release(2);
        a.release(0);
        assert_eq!(a.alloc(), Some(0));
        assert_eq!(a.alloc(), Some(2));
        a.release(7);
        a.release(CompactIdAllocator::CAPACITY + 5);
        assert_eq!(a.in_use(), 3);
    }

    #[test]
    fn crosses_words_and_fills_up() {
        let a = CompactIdAllocator::new();
        for i in 0..CompactIdAllocator::CAPACITY {
            assert_eq!(a.alloc(), Some(i));
        }
        assert_eq!(a.alloc(), None);
        assert_eq!(a.in_use(), CompactIdAllocator::CAPACITY as usize);
        a.release(64 * 700 + 3);
        assert_eq!(a.alloc(), Some(64 * 700 + 3));
    }

    #[test]
    fn reset_keeps_only_the_forking_threads_id() {
        let a = CompactIdAllocator::new();
        for _ in 0..200 {
            a.alloc();
        }
        a.reset_keeping(Some(130));
        assert_eq!(a.in_use(), 1);
        assert_eq!(a.alloc(), Some(0));
        a.reset_keeping(None);
        assert_eq!(a.in_use(), 0);
    }

    #[test]
    fn concurrent_ids_are_distinct_and_compact() {
        let a = CompactIdAllocator::new();
        let per_thread: Vec<Vec<u32>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        for round in 0..2000 {
                            mine.push(a.alloc().unwrap());
                            if round % 2 == 1 {
                                a.release(mine.remove(0));
                            }
                        }
                        mine
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u32> = per_thread.concat();
        all.sort();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "an ID was handed out twice");
        assert_eq!(a.in_use(), n);
        // At most 4 x 1001 IDs are held at any time; a scan can miss IDs
        // freed behind it, but not by more than the IDs freed meanwhile.
        assert!(all.iter().all(|&id| id < 2 * 4 * 1001), "{:?}", all.last());
    }
}
