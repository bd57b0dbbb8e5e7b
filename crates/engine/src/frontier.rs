//! The BFS queue ("Frontier", TLC's state queue), level by level.
//!
//! It holds *full* states (plus their index), because expanding a state needs the state; the
//! visited set only keeps fingerprints. Two vectors: the level being expanded and the level being
//! discovered. Expanding level `d` completely before level `d + 1` makes the first time a state is
//! reached a shortest way to reach it, so every trace rebuilt from parent pointers is shortest.

/// Level-by-level queue of `(state, state index)`.
#[derive(Debug)]
pub struct Frontier<S> {
    /// The level being expanded, reversed so `pop` takes from the end in discovery order.
    current: Vec<(S, u32)>,
    next: Vec<(S, u32)>,
    depth: u32,
    peak_bytes: u64,
}

impl<S> Frontier<S> {
    /// A frontier whose level 0 holds `roots` (in order).
    pub fn new(mut roots: Vec<(S, u32)>) -> Self {
        roots.reverse();
        let mut f = Frontier {
            current: roots,
            next: Vec::new(),
            depth: 0,
            peak_bytes: 0,
        };
        f.note_peak();
        f
    }

    /// Depth of the level being expanded (roots are depth 0).
    #[inline]
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Takes the next state of the current level, in discovery order.
    #[inline]
    pub fn pop(&mut self) -> Option<(S, u32)> {
        self.current.pop()
    }

    /// Queues a state discovered for the next level.
    #[inline]
    pub fn push(&mut self, state: S, idx: u32) {
        self.next.push((state, idx));
    }

    /// Moves to the next level. Returns false (and stays put) if it is empty.
    pub fn advance(&mut self) -> bool {
        self.note_peak();
        if self.next.is_empty() {
            return false;
        }
        self.current = std::mem::take(&mut self.next);
        self.current.reverse();
        self.depth += 1;
        true
    }

    /// States not yet expanded in the current level.
    pub fn current_len(&self) -> usize {
        self.current.len()
    }

    /// States queued in both levels.
    pub fn len(&self) -> usize {
        self.current.len() + self.next.len()
    }

    /// True if both levels are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the two vectors now (`size_of` of the entries times capacity; heap memory
    /// owned *by* the states, e.g. their own `Vec`s, is not counted).
    pub fn bytes(&self) -> u64 {
        ((self.current.capacity() + self.next.capacity()) * std::mem::size_of::<(S, u32)>()) as u64
    }

    /// Largest [`Frontier::bytes`] seen at a level boundary.
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes.max(self.bytes())
    }

    fn note_peak(&mut self) {
        self.peak_bytes = self.peak_bytes.max(self.bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_in_order() {
        let mut f = Frontier::new(vec![('a', 0), ('b', 1)]);
        assert_eq!(f.pop(), Some(('a', 0)));
        f.push('c', 2);
        assert_eq!(f.pop(), Some(('b', 1)));
        f.push('d', 3);
        assert_eq!(f.pop(), None);
        assert!(f.advance());
        assert_eq!(f.depth(), 1);
        assert_eq!(f.pop(), Some(('c', 2)));
        assert_eq!(f.pop(), Some(('d', 3)));
        assert!(!f.advance());
        assert!(f.is_empty());
    }
}
