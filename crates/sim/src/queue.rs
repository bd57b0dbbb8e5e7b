//! The event queue: a calendar queue (Brown 1988) of 32 ns buckets over a 0.5 ms window, with a
//! binary heap for the events beyond it.
//!
//! A run pushes and pops a few events per context switch; with thousands of sleeping tasks a binary
//! heap pays O(log n) comparisons and cache misses on each. Here each bucket is a short list kept
//! sorted by `(time, payload)` (9% of a 64-CPU thread pool's pushes find their bucket taken: most
//! lists hold zero or one), each bucket's first event is stored in the bucket itself and the later
//! ones in a pool of list nodes with a free list (no allocation per event once the pool has grown).
//! A bitmap of the non-empty buckets, 64 to a word, and a byte per word saying whether it has any,
//! find the next event. The window starts at a word's first bucket, so that every event in the
//! current word is current: a pop takes its lowest bit, and only when the word runs empty does it
//! move the window on (and with it the far events that fall within it). A push is a sorted insert
//! into its bucket's list, a pop takes the first event of the first non-empty bucket, so the order
//! is exactly the heap's: ties in payload order, a run is a pure function of its configuration.
//!
//! Measurements: callgrind on the 7.0 thread-pool bench (`mmcid sim --bench --design 7.0 --switches
//! 2000000`, 2.66 M events, half CPU and half wake events, none stale), instructions per context
//! switch for the whole simulator, `--cache-sim=yes --branch-sim=yes` for L1 misses and branch
//! mispredictions. Bucket width: 256 ns buckets took 2.1 M more mispredictions (list ends and empty
//! heads are coin flips at 1.5 events a bucket) for 1.0 M fewer L1 misses than 128 ns; 64 ns took
//! 18 M fewer instructions (704 against 713 a switch) and 1.2 M fewer mispredictions for 1.5 M more
//! L1 misses, and 0.64 s of user time against 0.70 (min of 5 alternating runs of 10^7 switches).
//! With that queue (704; `pop` 51 instructions a call, `push` 36, the sorted insert 50 on 17% of
//! the pushes, when not inlined) the window was redrawn to start at a word (686.5: no masking of
//! the word's earlier bits, no look at the far heap on every pop), the window's end and the first
//! far bucket kept in fields (674.1), the summary made bytes (666.5: a push marks its word with a
//! store, where a bit of a `u128` took 5 instructions), and the buckets narrowed to 32 ns over the
//! same 0.5 ms (659.2; half the sorted inserts: 8.9% of the pushes, 0.72 M fewer mispredictions for
//! 1.26 M more L1 misses; 16 ns took 663.2, and 32 ns over 0.25 ms 663.2, its far heap taking 1.3%
//! of the wakes). 6.18 went 851 -> 804, 6.3 834 -> 790; the other workloads' runs 1.5-5.7% fewer
//! instructions. User time, min of 8 alternating pairs of 2·10^7 switches at load 1-1.2: 1.52 s
//! (704) -> 1.37 s (666.5) -> 1.45 s against 1.48 (659.2 against 666.5; within the noise). Tried
//! and dropped: 16-byte buckets (the first event without its link, a second bitmap saying which
//! buckets have a list, their heads in an array of their own): 5% fewer L1 misses but 4.8 more
//! instructions a switch and more mispredictions, as a pop then tests a second bitmap and a list
//! pop updates three places; separate structures for the per-CPU events or cancelling stale ones
//! (the bench has no stale events, and every CPU's pop is followed by a push of its next event,
//! which a tournament tree would not make cheaper).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// log2 of the bucket width in ns.
const SHIFT: u32 = 5;
/// Buckets in the wheel (256 occupancy words of 64).
const NB: u64 = 16384;
const WORDS: usize = (NB / 64) as usize;
/// End of a list.
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    t: u64,
    payload: u64,
    next: u32,
}

const EMPTY: Node = Node {
    t: 0,
    payload: 0,
    next: NIL,
};

/// A priority queue of `(time, payload)`, least first, for times that never go back below the
/// last popped one.
#[derive(Clone, Debug)]
pub struct Calendar {
    /// Each bucket's first event, in place (valid where `occ` says the bucket is not empty): a
    /// push into an empty bucket and the pop of a bucket's only event touch no list node.
    first: Box<[Node; NB as usize]>,
    /// Bit `i % 64` of word `i / 64`: bucket `i` is not empty.
    occ: [u64; WORDS],
    /// Byte `w` is 1 if `occ[w]` is not zero, else 0 (the current word's may be 1 while it is
    /// empty: a pop does not clear it, [`Calendar::advance`] does when it leaves the word). Bytes,
    /// not bits: a push marks its word with one store, and a search reads 8 words' bytes at once.
    summary: [u8; WORDS],
    /// The second and later events of the buckets, each bucket's sorted after its first.
    nodes: Vec<Node>,
    /// Head of the free nodes' list.
    free: u32,
    /// The current occupancy word: its buckets are the window's first 64.
    cw: usize,
    /// Absolute index of the first bucket after the window: the wheel holds the buckets
    /// `end - (NB - 64)..end` (the first of them a multiple of 64, in word `cw`), the far heap the
    /// later ones. (The window leaves out the 64 buckets that would share word `cw` with the
    /// current ones, so that every event in word `cw` is current, and a pop takes its lowest bit
    /// without masking the ones before.)
    end: u64,
    /// The events beyond the window.
    far: BinaryHeap<Reverse<(u64, u64)>>,
    /// The bucket of the first far event (`u64::MAX` if none).
    far_next: u64,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar::new()
    }
}

impl Calendar {
    /// An empty queue.
    pub fn new() -> Calendar {
        Calendar {
            first: Box::new([EMPTY; NB as usize]),
            occ: [0; WORDS],
            summary: [0; WORDS],
            nodes: Vec::new(),
            free: NIL,
            cw: 0,
            end: NB - 64,
            far: BinaryHeap::new(),
            far_next: u64::MAX,
        }
    }

    /// Adds an event at `t` (not before the last popped time).
    #[inline(always)]
    pub fn push(&mut self, t: u64, payload: u64) {
        let b = t >> SHIFT;
        debug_assert!(b + (NB - 64) >= self.end, "events must not go back in time");
        if b < self.end {
            self.insert(b, t, payload);
        } else {
            self.far.push(Reverse((t, payload)));
            self.far_next = self.far_next.min(b);
        }
    }

    /// Puts `(t, payload)` into bucket `b` at its place.
    #[inline(always)]
    fn insert(&mut self, b: u64, t: u64, payload: u64) {
        let i = (b & (NB - 1)) as usize;
        let bit = 1u64 << (i % 64);
        if self.occ[i / 64] & bit == 0 {
            self.first[i] = Node {
                t,
                payload,
                next: NIL,
            };
            self.occ[i / 64] |= bit;
            self.summary[i / 64] = 1;
        } else {
            self.insert_sorted(i, t, payload);
        }
    }

    /// A free list node (the pool grows to the most events ever sharing buckets at once).
    #[inline(always)]
    fn alloc(&mut self) -> u32 {
        if self.free != NIL {
            let n = self.free;
            self.free = self.nodes[n as usize].next;
            n
        } else {
            self.grow()
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> u32 {
        self.nodes.push(EMPTY);
        (self.nodes.len() - 1) as u32
    }

    /// Puts `(t, payload)` into the non-empty bucket `i` at its place.
    #[inline(never)]
    fn insert_sorted(&mut self, i: usize, t: u64, payload: u64) {
        let key = (t, payload);
        let n = self.alloc();
        let head = self.first[i];
        if key < (head.t, head.payload) {
            // the new event comes first: the old first moves into the list
            self.nodes[n as usize] = head;
            self.first[i] = Node { t, payload, next: n };
            return;
        }
        let next = head.next;
        if next == NIL || key < (self.nodes[next as usize].t, self.nodes[next as usize].payload) {
            self.nodes[n as usize] = Node { t, payload, next };
            self.first[i].next = n;
            return;
        }
        let mut prev = next;
        loop {
            let next = self.nodes[prev as usize].next;
            if next == NIL || key < (self.nodes[next as usize].t, self.nodes[next as usize].payload) {
                self.nodes[n as usize] = Node { t, payload, next };
                self.nodes[prev as usize].next = n;
                return;
            }
            prev = next;
        }
    }

    /// Removes the least `(time, payload)`.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<(u64, u64)> {
        let mut w = self.cw % WORDS;
        let mut bits = self.occ[w];
        if bits == 0 {
            bits = self.advance();
            if bits == 0 {
                return None;
            }
            w = self.cw % WORDS;
        }
        // the first event of the word's first non-empty bucket (the word holds no earlier ones)
        let i = w * 64 + bits.trailing_zeros() as usize;
        let Node { t, payload, next } = self.first[i];
        if next == NIL {
            self.occ[w] = bits & (bits - 1);
        } else {
            self.first[i] = self.nodes[next as usize];
            self.nodes[next as usize].next = self.free;
            self.free = next;
        }
        Some((t, payload))
    }

    /// The current word is empty: moves the window to the next non-empty word, else to the
    /// first far event, and with it the far events that now fall within it (all later than the
    /// wheel's). The new current word's bits; 0 if the queue is empty.
    #[cold]
    #[inline(never)]
    fn advance(&mut self) -> u64 {
        let cw = self.cw % WORDS;
        self.summary[cw] = 0;
        let w = if let Some(w) = self.next_word(cw) {
            self.end += (((w + WORDS - cw) % WORDS) * 64) as u64;
            w
        } else if self.far_next != u64::MAX {
            // the wheel is empty: on to the first far event's word
            self.end = (self.far_next & !63) + (NB - 64);
            (self.far_next / 64) as usize % WORDS
        } else {
            return 0;
        };
        self.cw = w;
        if self.far_next < self.end {
            self.refill();
        }
        self.occ[w]
    }

    /// The first non-empty word after `cw`, circularly (`cw` is empty).
    #[inline(always)]
    fn next_word(&self, cw: usize) -> Option<usize> {
        // 8 words' bytes at a time: the rest of cw's group, the next groups, cw's group again
        let group = |g: usize| u64::from_le_bytes(self.summary[g * 8..g * 8 + 8].try_into().unwrap());
        let g0 = cw / 8;
        let first = group(g0) & (!0 << (cw % 8 * 8));
        if first != 0 {
            return Some(g0 * 8 + first.trailing_zeros() as usize / 8);
        }
        for k in 1..=WORDS / 8 {
            let g = (g0 + k) % (WORDS / 8);
            let x = group(g);
            if x != 0 {
                return Some(g * 8 + x.trailing_zeros() as usize / 8);
            }
        }
        None
    }

    /// Moves the far events that now fall within the window into their buckets.
    #[cold]
    #[inline(never)]
    fn refill(&mut self) {
        while let Some(&Reverse((t, p))) = self.far.peek() {
            let b = t >> SHIFT;
            if b >= self.end {
                self.far_next = b;
                return;
            }
            self.far.pop();
            self.insert(b, t, p);
        }
        self.far_next = u64::MAX;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_exactly_as_a_binary_heap() {
        let mut q = Calendar::new();
        let mut reference = BinaryHeap::new();
        let mut rng = crate::rng::Rng::new(3);
        let mut now = 0u64;
        for _ in 0..200_000 {
            if rng.below(3) > 0 || reference.is_empty() {
                // mostly near events, sometimes far beyond the window, ties often
                let d = match rng.below(10) {
                    0 => rng.below(200_000_000) as u64,
                    1 => 0,
                    _ => rng.below(50_000) as u64,
                };
                let p = rng.below(4) as u64;
                q.push(now + d, p);
                reference.push(Reverse((now + d, p)));
            } else {
                let got = q.pop();
                let want = reference.pop().map(|r| r.0);
                assert_eq!(got, want);
                now = got.unwrap().0;
            }
        }
        while let Some(Reverse(w)) = reference.pop() {
            assert_eq!(q.pop(), Some(w));
        }
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn sparse_events_wrap_around_the_window() {
        // one or two events at a time, spaced so that the next one is mostly in a bucket before
        // the current one's index (the search wraps) or beyond the window (the far heap)
        let mut q = Calendar::new();
        let mut reference = BinaryHeap::new();
        let mut rng = crate::rng::Rng::new(5);
        let mut now = 0u64;
        for _ in 0..50_000 {
            for _ in 0..1 + rng.below(2) {
                let d = match rng.below(4) {
                    0 => (NB << SHIFT) - 1 - rng.below(1000) as u64,
                    1 => (NB << SHIFT) + rng.below(1 << 20) as u64,
                    2 => rng.below(64 << SHIFT) as u64 * 63,
                    _ => rng.below(3) as u64,
                };
                let p = rng.below(3) as u64;
                q.push(now + d, p);
                reference.push(Reverse((now + d, p)));
            }
            let got = q.pop();
            assert_eq!(got, reference.pop().map(|r| r.0));
            now = got.unwrap().0;
        }
    }

    #[test]
    fn window_edges_and_emptied_queues() {
        // events on both sides of the window's end and of the current word's, in the current
        // bucket, and after the queue ran empty (the window jumps to the far heap's first event)
        let mut q = Calendar::new();
        assert_eq!(q.pop(), None);
        let mut reference = BinaryHeap::new();
        let mut rng = crate::rng::Rng::new(7);
        let mut now = 0u64;
        for round in 0..20_000 {
            for _ in 0..1 + rng.below(4) {
                let bucket = match rng.below(6) {
                    // around the window's end
                    0 => q.end - 2 + rng.below(4) as u64,
                    // around the end of the current word and of the next one
                    1 => (q.end - (NB - 64)) + 63 + rng.below(3) as u64,
                    2 => (q.end - (NB - 64)) + 127 + rng.below(3) as u64,
                    // far beyond the window
                    3 => q.end + rng.below(1 << 20) as u64,
                    _ => now >> SHIFT,
                };
                let t = ((bucket << SHIFT) + rng.below(1 << SHIFT) as u64).max(now);
                let p = rng.below(3) as u64;
                q.push(t, p);
                reference.push(Reverse((t, p)));
            }
            let pops = if round % 50 == 0 {
                usize::MAX
            } else {
                1 + rng.below(4) as usize
            };
            for _ in 0..pops {
                let got = q.pop();
                assert_eq!(got, reference.pop().map(|r| r.0));
                match got {
                    Some((t, _)) => now = t,
                    None => break,
                }
            }
        }
    }
}
