//! Append-only storage in fixed-size chunks, and the process's resident memory.
//!
//! The engine's per-state stores (fingerprints, parent links, the frontier) grow to hundreds of
//! megabytes. A doubling `Vec` would hold up to twice what it needs and, while it reallocates,
//! the old and the new buffer at once; both show up in the resident set size a user sees. A
//! [`ChunkedVec`] grows by one fixed chunk at a time instead: at most one chunk of slack, no
//! copying, and every growth is a small, separate allocation that the memory limit
//! ([`crate::Options::memory_limit`]) can refuse before it happens.

/// Elements per chunk are `1 << CHUNK_BITS` (64 Ki): 512 KiB chunks of `u64`, 64 KiB of `u8`.
const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;

/// An append-only vector of `Copy` values stored in 64 Ki-element chunks.
#[derive(Clone, Debug)]
pub struct ChunkedVec<T> {
    chunks: Vec<Box<[T]>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        ChunkedVec {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy + Default> ChunkedVec<T> {
    /// An empty vector (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `x`.
    #[inline]
    pub fn push(&mut self, x: T) {
        let (c, i) = (self.len >> CHUNK_BITS, self.len & (CHUNK - 1));
        if c == self.chunks.len() {
            self.chunks.push(vec![T::default(); CHUNK].into_boxed_slice());
        }
        self.chunks[c][i] = x;
        self.len += 1;
    }

    /// The element at `i` (panics if `i >= len()`).
    #[inline]
    pub fn get(&self, i: usize) -> T {
        assert!(i < self.len, "index {i} out of bounds ({})", self.len);
        self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)]
    }

    /// Overwrites the element at `i` (panics if `i >= len()`).
    #[inline]
    pub fn set(&mut self, i: usize, x: T) {
        assert!(i < self.len, "index {i} out of bounds ({})", self.len);
        self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)] = x;
    }

    /// Asks the CPU to load element `i` into cache (a hint; nothing if out of bounds).
    #[inline(always)]
    pub fn prefetch(&self, i: usize) {
        if i < self.len {
            let p: *const T = &self.chunks[i >> CHUNK_BITS][i & (CHUNK - 1)];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `p` points into a live chunk; a prefetch never faults nor writes.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = p;
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `len` elements (and frees the chunks past them).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            self.chunks.truncate(len.div_ceil(CHUNK));
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().copied()).take(self.len)
    }

    /// Heap bytes held (whole chunks).
    pub fn bytes(&self) -> u64 {
        (self.chunks.len() * CHUNK * std::mem::size_of::<T>() + self.chunks.capacity() * 16) as u64
    }

    /// Bytes the next [`ChunkedVec::push`] allocates (0 unless the last chunk is full).
    pub fn next_growth(&self) -> u64 {
        if self.len == self.chunks.len() * CHUNK {
            (CHUNK * std::mem::size_of::<T>()) as u64
        } else {
            0
        }
    }
}

/// The process's resident set size now and at its peak, in bytes, from `/proc/self/status`
/// (`VmRSS`, `VmHWM`). `None` where that file does not exist (not Linux) or cannot be read.
pub fn rss() -> Option<Rss> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some(Rss {
        current: field("VmRSS:")?,
        peak: field("VmHWM:")?,
    })
}

/// Resets the process's peak resident set size (`VmHWM`) to its current size, so that a later
/// [`rss`] reports the peak since now (Linux: `echo 5 > /proc/self/clear_refs`). Returns false
/// if the kernel refused; the peak then covers the whole life of the process.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory of the process, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub current: u64,
    /// `VmHWM`: the peak ("high water mark") since the process started or since the last
    /// [`reset_peak_rss`].
    pub peak: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_truncate_across_chunks() {
        let mut v = ChunkedVec::new();
        assert_eq!(v.bytes(), 0);
        for i in 0..(3 * CHUNK as u64 + 5) {
            v.push(i);
        }
        assert_eq!(v.len(), 3 * CHUNK + 5);
        assert_eq!(v.get(CHUNK), CHUNK as u64);
        assert_eq!(v.get(3 * CHUNK + 4), 3 * CHUNK as u64 + 4);
        v.set(7, 70);
        assert_eq!(v.get(7), 70);
        assert_eq!(v.iter().count(), v.len());
        v.truncate(CHUNK);
        assert_eq!(v.len(), CHUNK);
        assert_eq!(v.chunks.len(), 1);
        assert!(v.next_growth() > 0);
        v.push(1);
        assert_eq!(v.next_growth(), 0);
    }

    #[test]
    fn rss_is_read_on_linux() {
        if let Some(r) = rss() {
            assert!(r.current > 0 && r.peak >= r.current / 2, "{r:?}");
        }
    }
}
