//! Parent pointers ("Parents", TLC's trace file): how each state was first reached.
//!
//! Per state index: the parent's index (`u32`) and the index of the action, within the parent's
//! enabled-action list as [`crate::Model::actions`] enumerates it, that led here (`u32`). Roots
//! store [`ROOT`] as parent and the index of their initial state (in
//! [`crate::Model::init_states`]) as action. 8 bytes per state; no state and no action is stored,
//! traces are rebuilt by replay (see [`crate::trace`]).

use crate::seen::push_lean;

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

/// Parent pointers, indexed by state index.
#[derive(Debug, Default)]
pub struct Parents {
    parent: Vec<u32>,
    action: Vec<u32>,
}

impl Parents {
    /// Empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next state as the root reached by `init_states()[init]`.
    #[inline]
    pub fn push_root(&mut self, init: usize) {
        push_lean(&mut self.parent, ROOT);
        push_lean(&mut self.action, init as u32);
    }

    /// Records the next state as reached from `parent` by its `action`-th action.
    #[inline]
    pub fn push(&mut self, parent: u32, action: u32) {
        push_lean(&mut self.parent, parent);
        push_lean(&mut self.action, action);
    }

    /// How state `idx` was reached.
    pub fn link(&self, idx: u32) -> Link {
        let i = idx as usize;
        if self.parent[i] == ROOT {
            Link::Root {
                init: self.action[i] as usize,
            }
        } else {
            Link::Step {
                parent: self.parent[i],
                action: self.action[i],
            }
        }
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
        self.parent.len()
    }

    /// True if no state is recorded.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> u64 {
        (self.parent.capacity() * 4 + self.action.capacity() * 4) as u64
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
