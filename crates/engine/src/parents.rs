//! Parent pointers ("Parents", TLC's trace file): how each state was first reached.
//!
//! Per state index: the parent's index and the index of the action, within the parent's
//! enabled-action list as [`crate::Model::actions`] enumerates it, that led here. Roots (the
//! distinct states of [`crate::Model::init_states`], which take the first indices) store the
//! index of their initial state instead. No state and no action is stored; traces are rebuilt
//! by replay (see [`crate::trace`]).
//!
//! # About two bytes per state
//!
//! The breadth-first search expands states in index order and numbers new states in the order
//! it finds them, so the parent index is *non-decreasing* in the child's index. Parents are
//! therefore stored as one-byte deltas from the previous state's parent, with an absolute
//! checkpoint every 64 states (`4/64` bytes per state) so that a lookup adds at most 63 deltas;
//! action indices are one byte. A delta or an action index of 255 or more is an escape to a
//! small side table (sorted by child, so a binary search finds it). Typical models cost
//! 2.1 bytes per state here, against 8 for two `u32` arrays.

use crate::chunked::ChunkedVec;

const BLOCK: usize = 64;
const ESCAPE: u8 = u8::MAX;

/// The parent value that marks a root (a state of [`crate::Model::init_states`]).
pub const ROOT: u32 = u32::MAX;

/// How a state was first reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// An initial state: its index in `init_states()`.
    Root {
        /// Index into `init_states()`.
        init: usize,
    },
    /// Reached from `parent` by the parent's `action`-th enabled action.
    Step {
        /// The parent's state index.
        parent: u32,
        /// Index into the parent's enabled-action list.
        action: u32,
    },
}

/// One step of a path: the state reached and the index of the action taken to reach it, within
/// the previous state's enabled-action list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// State index reached.
    pub child: u32,
    /// Action index within the predecessor's enabled actions (a replay hint; see
    /// [`crate::trace`]).
    pub action: u32,
}

/// Parent pointers, indexed by state index (see the module doc for the encoding).
#[derive(Debug, Default)]
pub struct Parents {
    /// `init_states()` index of each root (roots are states `0..roots.len()`).
    roots: Vec<u32>,
    /// Per non-root state: parent delta (or [`ESCAPE`]).
    delta: ChunkedVec<u8>,
    /// Per non-root state: action index (or [`ESCAPE`]).
    action: ChunkedVec<u8>,
    /// Absolute parent of every `BLOCK`-th non-root state.
    base: Vec<u32>,
    /// Escaped deltas and actions: `(non-root position, value)`, in position order.
    big_delta: Vec<(u32, u32)>,
    big_action: Vec<(u32, u32)>,
    /// Parent of the last state pushed.
    last: u32,
}

impl Parents {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next state as the root reached by `init_states()[init]`. Roots come first.
    #[inline]
    pub fn push_root(&mut self, init: usize) {
        assert!(
            self.delta.is_empty(),
            "roots are numbered before every other state"
        );
        self.roots.push(init as u32);
    }

    /// Records the next state as reached from `parent` by its `action`-th action. Parents must
    /// be non-decreasing (breadth-first order guarantees it).
    #[inline]
    pub fn push(&mut self, parent: u32, action: u32) {
        let pos = self.delta.len();
        if pos.is_multiple_of(BLOCK) {
            self.base.push(parent);
            self.last = parent;
        }
        assert!(
            parent >= self.last,
            "parents must be pushed in breadth-first order"
        );
        let d = parent - self.last;
        if d < ESCAPE as u32 {
            self.delta.push(d as u8);
        } else {
            self.delta.push(ESCAPE);
            self.big_delta.push((pos as u32, d));
        }
        if action < ESCAPE as u32 {
            self.action.push(action as u8);
        } else {
            self.action.push(ESCAPE);
            self.big_action.push((pos as u32, action));
        }
        self.last = parent;
    }

    fn escaped(table: &[(u32, u32)], pos: usize) -> u32 {
        let i = table
            .binary_search_by_key(&(pos as u32), |&(p, _)| p)
            .expect("an escaped entry is in its side table");
        table[i].1
    }

    /// How state `idx` was reached (panics if `idx >= len()`).
    pub fn link(&self, idx: u32) -> Link {
        let i = idx as usize;
        if i < self.roots.len() {
            return Link::Root {
                init: self.roots[i] as usize,
            };
        }
        let pos = i - self.roots.len();
        let block = pos / BLOCK;
        let mut parent = self.base[block];
        for j in block * BLOCK + 1..=pos {
            parent += match self.delta.get(j) {
                ESCAPE => Self::escaped(&self.big_delta, j),
                d => d as u32,
            };
        }
        let action = match self.action.get(pos) {
            ESCAPE => Self::escaped(&self.big_action, pos),
            a => a as u32,
        };
        Link::Step { parent, action }
    }

    /// The path from a root to `idx`: `(root state index, init index, steps)`; `steps` is empty
    /// for a root. With BFS numbering this path is a shortest one.
    pub fn path_to(&self, idx: u32) -> (u32, usize, Vec<Step>) {
        let mut steps = Vec::new();
        let mut cur = idx;
        loop {
            match self.link(cur) {
                Link::Root { init } => {
                    steps.reverse();
                    return (cur, init, steps);
                }
                Link::Step { parent, action } => {
                    steps.push(Step { child: cur, action });
                    cur = parent;
                }
            }
        }
    }

    /// Number of states recorded.
    pub fn len(&self) -> usize {
        self.roots.len() + self.delta.len()
    }

    /// True if no state is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> u64 {
        (self.roots.capacity() * 4
            + self.base.capacity() * 4
            + (self.big_delta.capacity() + self.big_action.capacity()) * 8) as u64
            + self.delta.bytes()
            + self.action.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let mut p = Parents::new();
        p.push_root(3); // 0
        p.push_root(5); // 1
        p.push(0, 2); // 2
        p.push(2, 0); // 3
        assert_eq!(p.link(1), Link::Root { init: 5 });
        assert_eq!(p.link(3), Link::Step { parent: 2, action: 0 });
        assert_eq!(p.path_to(1), (1, 5, vec![]));
        assert_eq!(
            p.path_to(3),
            (
                0,
                3,
                vec![Step { child: 2, action: 2 }, Step { child: 3, action: 0 }]
            )
        );
    }
}

#[cfg(test)]
mod escapes {
    use super::*;

    #[test]
    fn large_deltas_and_actions_and_many_blocks() {
        let mut p = Parents::new();
        p.push_root(0);
        let mut want = Vec::new();
        let mut parent = 0u32;
        for i in 0..10_000u32 {
            parent += match i % 7 {
                0 => 300,
                1 | 2 => 1,
                _ => 0,
            };
            let action = if i % 11 == 0 { 1000 + i } else { i % 5 };
            p.push(parent, action);
            want.push(Link::Step { parent, action });
        }
        assert_eq!(p.len(), 10_001);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(p.link(i as u32 + 1), *w, "state {}", i + 1);
        }
    }
}
