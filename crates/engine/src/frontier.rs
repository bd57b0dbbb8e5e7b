//! The BFS queue ("Frontier", TLC's state queue), level by level, in chunks.
//!
//! It holds the states discovered but not yet expanded, because expanding a state needs the
//! state; the visited set only keeps fingerprints. Two levels: the one being expanded and the
//! one being discovered. Expanding level `d` completely before level `d + 1` makes the first
//! time a state is reached a shortest way to reach it, so every trace rebuilt from parent
//! pointers is shortest.
//!
//! A level is a list of [`Chunk`]s, each a run of consecutive states. States are numbered in
//! discovery order, so the states of a level have consecutive indices and a state's index is
//! its level's first index plus its position: no index is stored.
//!
//! - **Packed** (the model implements [`crate::Model::codec`]): a chunk is one byte
//!   arena (1 KiB for a level's first chunk, doubling up to 32 KiB)
//!   of `varint length ‖ encoding` entries; no allocation per state, ~1 byte of overhead
//!   per state, and a state is decoded only when it is expanded.
//! - **Plain** (no codec): a chunk is a `Vec` of whole states (16 for a level's first chunk,
//!   doubling up to 32 KiB of them, or 256 states if they are larger).
//!
//! Chunks are also the unit of parallel work ([`crate::Options::workers`]): the engine hands
//! whole chunks of the current level to the workers, and frees each chunk once it is expanded,
//! so the current level shrinks while the next one grows.

use std::collections::VecDeque;

/// Bytes of a packed chunk (an entry larger than this gets a chunk of its own).
pub const CHUNK_BYTES: usize = 32 << 10;
/// Bytes of the first packed chunk of a level; each next one is twice as large.
const FIRST_CHUNK_BYTES: usize = 1 << 10;

/// A run of consecutive states of one level.
#[derive(Debug)]
pub enum Chunk<S> {
    /// Whole states.
    Plain(Vec<S>),
    /// Encoded states: `varint length ‖ bytes` entries, and how many.
    Packed {
        /// The entries.
        bytes: Vec<u8>,
        /// Number of entries.
        len: usize,
    },
}

impl<S> Chunk<S> {
    /// The `n`-th chunk of a level: small, doubling up to [`CHUNK_BYTES`] (so that small levels
    /// are still split for the workers, and small searches allocate little).
    fn new(packed: bool, state_size: usize, n: usize) -> Self {
        let n = n.min(20);
        if packed {
            Chunk::Packed {
                bytes: Vec::with_capacity((FIRST_CHUNK_BYTES << n).min(CHUNK_BYTES)),
                len: 0,
            }
        } else {
            let most = (CHUNK_BYTES / state_size.max(1)).max(256);
            Chunk::Plain(Vec::with_capacity((16 << n).min(most)))
        }
    }

    /// Number of states.
    pub fn len(&self) -> usize {
        match self {
            Chunk::Plain(v) => v.len(),
            Chunk::Packed { len, .. } => *len,
        }
    }

    /// True if the chunk holds no state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held.
    pub fn bytes(&self) -> u64 {
        match self {
            Chunk::Plain(v) => (v.capacity() * std::mem::size_of::<S>()) as u64,
            Chunk::Packed { bytes, .. } => bytes.capacity() as u64,
        }
    }

    /// The encodings of a packed chunk, in order (nothing for a plain chunk).
    pub fn encodings(&self) -> Entries<'_> {
        match self {
            Chunk::Packed { bytes, .. } => Entries { rest: bytes },
            Chunk::Plain(_) => Entries { rest: &[] },
        }
    }
}

/// Iterator over the entries of a packed chunk.
pub struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (len, used) = read_varint(self.rest);
        let entry = &self.rest[used..used + len];
        self.rest = &self.rest[used + len..];
        Some(entry)
    }
}

/// Appends `x` as a LEB128 varint (the length prefix of a packed entry).
#[inline]
pub(crate) fn write_varint(out: &mut Vec<u8>, mut x: usize) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

#[inline]
fn read_varint(b: &[u8]) -> (usize, usize) {
    let (mut x, mut shift, mut i) = (0usize, 0, 0);
    loop {
        let byte = b[i];
        x |= ((byte & 0x7F) as usize) << shift;
        i += 1;
        if byte < 0x80 {
            return (x, i);
        }
        shift += 7;
    }
}

/// One BFS level: chunks of consecutive states, the first numbered `start`.
#[derive(Debug)]
pub struct Level<S> {
    /// Index of the level's first state.
    pub start: u32,
    /// The chunks, in order.
    pub chunks: VecDeque<Chunk<S>>,
    len: usize,
    /// Heap bytes of the chunks (their capacity is fixed when they are made).
    bytes: u64,
}

impl<S> Level<S> {
    fn new(start: u32) -> Self {
        Level {
            start,
            chunks: VecDeque::new(),
            len: 0,
            bytes: 0,
        }
    }

    /// States in the level.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the level holds no state.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bytes(&self) -> u64 {
        self.bytes + (self.chunks.capacity() * std::mem::size_of::<Chunk<S>>()) as u64
    }
}

/// The two levels of the search.
#[derive(Debug)]
pub struct Frontier<S> {
    packed: bool,
    /// The level being expanded; chunks are taken from its front as they are expanded.
    current: Level<S>,
    /// States of `current` already taken.
    taken: usize,
    next: Level<S>,
    depth: u32,
    peak_bytes: u64,
}

impl<S> Frontier<S> {
    /// An empty frontier at depth 0 whose first state will be numbered 0. `packed`: states are
    /// pushed as encodings ([`Frontier::push_encoded`]), else whole ([`Frontier::push`]).
    pub fn new(packed: bool) -> Self {
        Frontier {
            packed,
            current: Level::new(0),
            taken: 0,
            next: Level::new(0),
            depth: 0,
            peak_bytes: 0,
        }
    }

    /// Depth of the level being expanded (roots are depth 0).
    #[inline]
    pub fn depth(&self) -> u32 {
        self.depth
    }

    fn last_chunk(&mut self, room: usize) -> &mut Chunk<S> {
        let full = match self.next.chunks.back() {
            None => true,
            Some(Chunk::Plain(v)) => v.len() == v.capacity(),
            Some(Chunk::Packed { bytes, .. }) => bytes.len() + room > bytes.capacity(),
        };
        if full {
            let mut c = Chunk::new(self.packed, std::mem::size_of::<S>(), self.next.chunks.len());
            if let Chunk::Packed { bytes, .. } = &mut c
                && room > bytes.capacity()
            {
                bytes.reserve_exact(room);
            }
            self.next.bytes += c.bytes();
            self.next.chunks.push_back(c);
        }
        self.next.chunks.back_mut().expect("just pushed")
    }

    /// Queues a whole state for the next level (plain frontiers).
    #[inline]
    pub fn push(&mut self, state: S) {
        debug_assert!(!self.packed);
        if let Chunk::Plain(v) = self.last_chunk(1) {
            v.push(state);
        }
        self.next.len += 1;
    }

    /// Queues an encoded state for the next level (packed frontiers).
    #[inline]
    pub fn push_encoded(&mut self, encoding: &[u8]) {
        debug_assert!(self.packed);
        if let Chunk::Packed { bytes, len } = self.last_chunk(encoding.len() + 10) {
            write_varint(bytes, encoding.len());
            bytes.extend_from_slice(encoding);
            *len += 1;
        }
        self.next.len += 1;
    }

    /// Queues a whole chunk of states for the next level (built elsewhere, e.g. by a worker).
    pub fn push_chunk(&mut self, chunk: Chunk<S>) {
        if chunk.is_empty() {
            return;
        }
        self.next.len += chunk.len();
        self.next.bytes += chunk.bytes();
        self.next.chunks.push_back(chunk);
    }

    /// Takes chunks from the front of the current level until they hold at least `min_states`
    /// states (or the level is used up), with the index of their first state.
    pub fn take_chunks(&mut self, min_states: usize) -> (u32, Vec<Chunk<S>>) {
        let first = self.current.start + self.taken as u32;
        let mut out = Vec::new();
        let mut states = 0;
        while states < min_states.max(1) && !self.current.chunks.is_empty() {
            let c = self.current.chunks.pop_front().expect("not empty");
            self.current.bytes -= c.bytes();
            states += c.len();
            out.push(c);
        }
        self.taken += states;
        (first, out)
    }

    /// Moves to the next level. Returns false (and stays put) if it is empty.
    pub fn advance(&mut self) -> bool {
        self.note_peak();
        if self.next.is_empty() {
            return false;
        }
        let start = self.next.start + self.next.len as u32;
        self.current = std::mem::replace(&mut self.next, Level::new(start));
        self.taken = 0;
        self.depth += 1;
        true
    }

    /// Makes the states queued so far the current level (used once, after the roots).
    pub fn start(&mut self) {
        let start = self.next.start + self.next.len as u32;
        self.current = std::mem::replace(&mut self.next, Level::new(start));
        self.taken = 0;
        self.note_peak();
    }

    /// States not yet taken from the current level.
    pub fn current_len(&self) -> usize {
        self.current.len - self.taken
    }

    /// States queued in the next level.
    pub fn next_len(&self) -> usize {
        self.next.len
    }

    /// States not yet expanded in both levels.
    pub fn len(&self) -> usize {
        self.current_len() + self.next.len
    }

    /// True if both levels are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by both levels now (for plain chunks, heap memory owned *by* the states,
    /// e.g. their own `Vec`s, is not counted).
    pub fn bytes(&self) -> u64 {
        self.current.bytes() + self.next.bytes()
    }

    /// Largest [`Frontier::bytes`] seen at a level boundary or noted by [`Frontier::note_peak`].
    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes.max(self.bytes())
    }

    /// Remembers the current size if it is the largest so far.
    pub fn note_peak(&mut self) {
        self.peak_bytes = self.peak_bytes.max(self.bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(c: &Chunk<char>) -> Vec<char> {
        match c {
            Chunk::Plain(v) => v.clone(),
            Chunk::Packed { .. } => panic!("packed"),
        }
    }

    #[test]
    fn levels_in_order() {
        let mut f = Frontier::new(false);
        f.push('a');
        f.push('b');
        f.start();
        assert_eq!(f.current_len(), 2);
        let (first, chunks) = f.take_chunks(1);
        assert_eq!(first, 0);
        assert_eq!(plain(&chunks[0]), vec!['a', 'b']);
        f.push('c');
        f.push('d');
        assert_eq!(f.take_chunks(1).1.len(), 0);
        assert!(f.advance());
        assert_eq!(f.depth(), 1);
        let (first, chunks) = f.take_chunks(1);
        assert_eq!(first, 2);
        assert_eq!(plain(&chunks[0]), vec!['c', 'd']);
        assert!(!f.advance());
        assert!(f.is_empty());
    }

    #[test]
    fn packed_entries_round_trip_across_chunks() {
        let mut f: Frontier<()> = Frontier::new(true);
        let entries: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| (0..(i % 300)).map(|j| (i + j) as u8).collect())
            .collect();
        for e in &entries {
            f.push_encoded(e);
        }
        f.push_encoded(&vec![7u8; CHUNK_BYTES + 5]);
        f.start();
        let (first, chunks) = f.take_chunks(usize::MAX);
        assert_eq!(first, 0);
        assert!(chunks.len() > 2);
        let got: Vec<&[u8]> = chunks.iter().flat_map(|c| c.encodings()).collect();
        assert_eq!(got.len(), entries.len() + 1);
        for (g, e) in got.iter().zip(&entries) {
            assert_eq!(g, e);
        }
        assert_eq!(got.last().unwrap().len(), CHUNK_BYTES + 5);
        assert_eq!(chunks.iter().map(Chunk::len).sum::<usize>(), entries.len() + 1);
    }
}
