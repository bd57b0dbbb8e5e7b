//! The event queue: a calendar queue (Brown 1988) of 1.024 µs buckets over a 1 ms window, with a
//! binary heap for the events beyond it.
//!
//! A run pushes and pops a few events per context switch; with thousands of sleeping tasks a
//! binary heap pays O(log n) comparisons and cache misses on each. Here a push is an append to
//! the bucket of its time and a pop takes the least `(time, payload)` of the current bucket (a
//! handful of entries), so the order is exactly the heap's: ties in payload order, a run is a pure
//! function of its configuration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

const SHIFT: u32 = 10;
const NB: u64 = 1 << 10;

/// A priority queue of `(time, payload)`, least first, for times that never go back below the
/// last popped one.
#[derive(Clone, Debug)]
pub struct Calendar {
    buckets: Vec<Vec<(u64, u64)>>,
    /// Absolute index of the current bucket.
    cur: u64,
    in_wheel: usize,
    far: BinaryHeap<Reverse<(u64, u64)>>,
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
            buckets: (0..NB).map(|_| Vec::new()).collect(),
            cur: 0,
            in_wheel: 0,
            far: BinaryHeap::new(),
        }
    }

    /// Adds an event at `t` (not before the last popped time).
    #[inline]
    pub fn push(&mut self, t: u64, payload: u64) {
        let b = t >> SHIFT;
        debug_assert!(b >= self.cur, "events must not go back in time");
        if b < self.cur + NB {
            self.buckets[(b & (NB - 1)) as usize].push((t, payload));
            self.in_wheel += 1;
        } else {
            self.far.push(Reverse((t, payload)));
        }
    }

    /// Removes the least `(time, payload)`.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, u64)> {
        loop {
            if self.in_wheel == 0 {
                let Reverse((t, _)) = *self.far.peek()?;
                self.cur = t >> SHIFT;
                self.refill();
                continue;
            }
            let bucket = &mut self.buckets[(self.cur & (NB - 1)) as usize];
            if bucket.is_empty() {
                self.cur += 1;
                self.refill();
                continue;
            }
            let mut best = 0;
            for i in 1..bucket.len() {
                if bucket[i] < bucket[best] {
                    best = i;
                }
            }
            self.in_wheel -= 1;
            return Some(bucket.swap_remove(best));
        }
    }

    /// Moves the far events that now fall within the window into their buckets.
    #[inline]
    fn refill(&mut self) {
        while let Some(&Reverse((t, p))) = self.far.peek() {
            let b = t >> SHIFT;
            if b >= self.cur + NB {
                break;
            }
            self.far.pop();
            self.buckets[(b & (NB - 1)) as usize].push((t, p));
            self.in_wheel += 1;
        }
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
}
