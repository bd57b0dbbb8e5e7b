//! [`Table`]: the simulator's dense per-task, per-CPU and per-mm tables, indexed without a bounds
//! check and without a panic path.
//!
//! A context switch indexes the task, CPU and mm tables a few dozen times; with `Vec` each index
//! is a compare, a branch and a panic landing pad that LLVM must keep reachable (7.0 thread-pool
//! bench: ≈125 of 762 instructions per switch were attributed to `core::slice::index`). A `Table`
//! keeps its elements in a boxed slice whose length is a power of two (padded with clones of a
//! filler element) and reads element `i & mask`: every index is in range by construction, so
//! `get_unchecked` is sound for *any* `usize`, whatever the caller passes.
//!
//! The cost of that: an index at or past [`Table::len`] (a simulator bug) reads a padding element
//! or an element from the start of the table instead of panicking in release builds. Debug builds
//! (`cargo test`, whose profile keeps debug assertions) still panic on it, so the simulator's test
//! suite checks every index as `Vec` did.
//!
//! This is the only `unsafe` in the crate.

use std::ops::{Index, IndexMut};

/// A growable table of `T` indexed by ids `0..len`, with unchecked (masked) indexing.
#[derive(Clone, Debug)]
pub struct Table<T> {
    /// The elements `0..len`, then padding; `slots.len()` is a power of two, `mask` is it minus 1.
    slots: Box<[T]>,
    /// `slots.len() - 1`, kept beside the pointer so an index is one `and`.
    mask: usize,
    /// Elements in use.
    len: usize,
    /// What the padding is made of.
    filler: T,
}

impl<T: Clone> Table<T> {
    /// An empty table whose padding elements are clones of `filler`.
    pub fn new(filler: T) -> Table<T> {
        Table {
            slots: vec![filler.clone()].into_boxed_slice(),
            mask: 0,
            len: 0,
            filler,
        }
    }

    /// A table of the elements of `v`.
    pub fn from_vec(v: Vec<T>, filler: T) -> Table<T> {
        let mut t = Table::new(filler);
        for x in v {
            t.push(x);
        }
        t
    }

    /// Appends `x`; its id is the returned index.
    pub fn push(&mut self, x: T) -> usize {
        if self.len == self.slots.len() {
            let n = self.slots.len() * 2;
            let mut v = std::mem::take(&mut self.slots).into_vec();
            v.resize(n, self.filler.clone());
            self.slots = v.into_boxed_slice();
            self.mask = n - 1;
        }
        self.slots[self.len] = x;
        self.len += 1;
        self.len - 1
    }

    /// Sets element `i` (`i < len`), or appends it (`i == len`).
    pub fn set(&mut self, i: usize, x: T) {
        if i < self.len {
            self[i] = x;
        } else {
            assert_eq!(i, self.len, "a table grows by one element at a time");
            self.push(x);
        }
    }
}

impl<T> Table<T> {
    /// Elements in use.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No element in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in use.
    #[inline(always)]
    pub fn as_slice(&self) -> &[T] {
        &self.slots[..self.len]
    }

    /// The elements in use, mutably.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.slots[..self.len]
    }

    /// The elements in use, in id order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.as_slice().iter()
    }
}

impl<T> Index<usize> for Table<T> {
    type Output = T;

    #[inline(always)]
    fn index(&self, i: usize) -> &T {
        debug_assert!(i < self.len, "index {i} of a table of {}", self.len);
        debug_assert_eq!(self.mask + 1, self.slots.len());
        // SAFETY: `slots.len() == mask + 1` always (set together in `new` and `push`, the only
        // places that change either), so `i & mask < slots.len()` for every `i`.
        unsafe { self.slots.get_unchecked(i & self.mask) }
    }
}

impl<T> IndexMut<usize> for Table<T> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut T {
        debug_assert!(i < self.len, "index {i} of a table of {}", self.len);
        debug_assert_eq!(self.mask + 1, self.slots.len());
        // SAFETY: as in `index`: `i & mask < slots.len()`.
        unsafe { self.slots.get_unchecked_mut(i & self.mask) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_keeps_elements() {
        let mut t = Table::new(0u32);
        assert!(t.is_empty());
        for i in 0..1000u32 {
            assert_eq!(t.push(i * 3), i as usize);
        }
        assert_eq!(t.len(), 1000);
        assert!((0..1000).all(|i| t[i] == i as u32 * 3));
        t.set(5, 7);
        t.set(1000, 9);
        assert_eq!((t[5], t[1000], t.len()), (7, 9, 1001));
        assert_eq!(t.iter().count(), 1001);
        assert_eq!(t.as_mut_slice().len(), 1001);
        let u = Table::from_vec(vec![1u8, 2, 3], 0);
        assert_eq!(u.as_slice(), &[1, 2, 3]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "index 3 of a table of 3")]
    fn an_index_past_the_end_panics_in_debug_builds() {
        let t = Table::from_vec(vec![1u8, 2, 3], 0);
        let _ = t[3];
    }
}
