//! Deterministic 64-bit fingerprints and the collision estimate.
//!
//! The visited set stores a 64-bit hash ("fingerprint") of each state instead of the state itself,
//! as TLC does. Two distinct states with the same fingerprint are silently merged, so the second
//! one (and whatever only it leads to) is never explored; [`collision_probability`] estimates how
//! likely that is for a run.
//!
//! The hasher has a fixed seed: the same model always yields the same fingerprints, the same state
//! numbering and the same traces, run after run and machine after machine (on the same
//! endianness and `Hash` implementations).
//!
//! Two ways to fingerprint a state, chosen by the model ([`Fingerprinter`]):
//! - **its encoding** ([`crate::Model::codec`]): XXH3-64 with a fixed seed over the bytes of
//!   [`crate::Model::encode`] (or [`crate::Model::encode_canonical`] under symmetry),
//!   [`fingerprint_bytes`]. XXH3 passes SMHasher's quality tests and hashes a 40-byte
//!   encoding in a few nanoseconds; its output is specified, so it is the same on every
//!   platform and version. This is also what `mmcid-dist` partitions states by.
//! - **its `Hash`** ([`fingerprint`], [`FpHasher`]): for models without a codec, as before.

use std::hash::{Hash, Hasher};

const SEED: u64 = 0x243F_6A88_85A3_08D3; // pi
const MUL: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio

/// Multiply two words into 128 bits and fold the halves together (as foldhash / ahash do).
#[inline(always)]
fn folded_mul(x: u64, y: u64) -> u64 {
    let p = (x as u128).wrapping_mul(y as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Murmur3's 64-bit finaliser: spreads every input bit over every output bit.
#[inline(always)]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    k ^= k >> 33;
    k = k.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    k ^ (k >> 33)
}

/// A small, fast, fixed-seed [`Hasher`]: one folded multiply per word written, a Murmur3
/// finaliser at the end. Not cryptographic; good enough to make fingerprints behave like random
/// 64-bit numbers for the structured, mostly-small-integer data that model states are made of.
#[derive(Clone, Debug)]
pub struct FpHasher {
    h: u64,
    /// Small writes are packed into this word (low bytes first) and mixed in once it is full:
    /// derived `Hash` impls make many one- and four-byte writes, and mixing each one separately
    /// was the largest single cost of the search.
    buf: u64,
    /// Bytes used in `buf`.
    n: u32,
}

impl Default for FpHasher {
    fn default() -> Self {
        FpHasher {
            h: SEED,
            buf: 0,
            n: 0,
        }
    }
}

impl FpHasher {
    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.h = folded_mul(self.h ^ w, MUL);
    }

    /// Appends the low `len` bytes of `v` to the byte stream. The stream a value produces is
    /// decided by its type and contents alone, so equal values give equal streams and the
    /// packing (a word is mixed when the next write does not fit) is the same for both.
    #[inline(always)]
    fn push(&mut self, v: u64, len: u32) {
        if self.n + len > 8 {
            self.word(self.buf);
            self.buf = 0;
            self.n = 0;
        }
        if len == 8 {
            self.word(v);
            return;
        }
        self.buf |= v << (8 * self.n);
        self.n += len;
    }

    #[inline(always)]
    fn flush(&mut self) {
        if self.n > 0 {
            self.word(self.buf ^ ((self.n as u64) << 60));
            self.buf = 0;
            self.n = 0;
        }
    }
}

impl Hasher for FpHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.flush();
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            // Mark the length of the tail so "ab" and "ab\0" differ.
            self.word(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.push(i as u64, 1);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.push(i as u64, 2);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.push(i as u64, 4);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.push(i, 8);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        // Lengths and enum discriminants are small: one byte, or an escape and eight bytes.
        if i < 255 {
            self.push(i as u64, 1);
        } else {
            self.push(255, 1);
            self.push(i as u64, 8);
        }
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.clone();
        h.flush();
        fmix64(h.h)
    }
}

/// The 64-bit fingerprint of a value (deterministic; see the module doc).
#[inline]
pub fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = FpHasher::default();
    value.hash(&mut h);
    h.finish()
}

/// The 64-bit fingerprint of an encoded state: XXH3-64 with a fixed seed (see the module doc).
#[inline]
pub fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(bytes, SEED)
}

/// How the engine fingerprints a model's states: through the codec when the model has one,
/// through `Hash` otherwise; of the representative under symmetry; masked to
/// [`crate::Options::fingerprint_bits`].
pub struct Fingerprinter<'m, M> {
    model: &'m M,
    symmetry: bool,
    mask: u64,
    codec: bool,
}

impl<'m, M: crate::Model> Fingerprinter<'m, M> {
    /// The fingerprinter of a search over `model` with these options.
    pub fn new(model: &'m M, symmetry: bool, bits: u32) -> Self {
        Fingerprinter {
            model,
            symmetry,
            mask: mask(bits),
            codec: model.codec(),
        }
    }

    /// Whether states are fingerprinted (and stored) through the model's codec.
    pub fn codec(&self) -> bool {
        self.codec
    }

    /// Whether fingerprints are of symmetry representatives.
    pub fn symmetry(&self) -> bool {
        self.symmetry
    }

    /// A fingerprinter that tells apart states whose agents are named differently: this one
    /// when its symmetry never renames agents ([`crate::Model::symmetry_preserves_agents`]),
    /// else one without symmetry. What a stall sub-search needs: it asks whether *this* agent
    /// is ever released, and a state whose renamed twin was seen may be the one that releases it.
    pub fn preserving_agents(&self) -> Self {
        Fingerprinter {
            model: self.model,
            symmetry: self.symmetry && self.model.symmetry_preserves_agents(),
            mask: self.mask,
            codec: self.codec,
        }
    }

    /// The fingerprint of `state`; `scratch` is a buffer the codec path may use.
    #[inline]
    pub fn of(&self, state: &M::State, scratch: &mut Vec<u8>) -> u64 {
        if self.codec {
            scratch.clear();
            if self.symmetry {
                self.model.encode_canonical(state, scratch);
            } else {
                self.model.encode(state, scratch);
            }
            fingerprint_bytes(scratch) & self.mask
        } else if self.symmetry {
            fingerprint(&self.model.representative(state)) & self.mask
        } else {
            fingerprint(state) & self.mask
        }
    }

    /// Appends `state`'s canonical encoding to `out` and returns its fingerprint and whether
    /// the bytes may differ from `state`'s own encoding ([`crate::Model::encode_representative`];
    /// codec models under symmetry only).
    #[inline]
    pub fn encode_representative(&self, state: &M::State, out: &mut Vec<u8>) -> (u64, bool) {
        let at = out.len();
        let renamed = self.model.encode_representative(state, out);
        (fingerprint_bytes(&out[at..]) & self.mask, renamed)
    }

    /// Appends `state`'s encoding to `out` and returns its fingerprint (codec models only);
    /// under symmetry the fingerprint is of the canonical encoding, built in `scratch`.
    #[inline]
    pub fn encode(&self, state: &M::State, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> u64 {
        let at = out.len();
        if self.symmetry {
            scratch.clear();
            if self.model.encode_pair(state, out, scratch) {
                return fingerprint_bytes(scratch) & self.mask;
            }
        } else {
            self.model.encode(state, out);
        }
        fingerprint_bytes(&out[at..]) & self.mask
    }
}

/// The mask that keeps the low `bits` bits of a fingerprint (`bits` in `1..=64`).
pub fn mask(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

/// Birthday-bound estimate of the probability that at least two of `n` distinct states share a
/// `bits`-bit fingerprint: `n(n-1)/2 / 2^bits`, capped at 1. For 64-bit fingerprints this is
/// `≈ n² / 2^65`: about 2.7e-8 for 10^6 states, 2.7e-6 for 10^7, 2.7e-4 for 10^8.
pub fn collision_probability(n: u64, bits: u32) -> f64 {
    let n = n as f64;
    let pairs = n * (n - 1.0).max(0.0) / 2.0;
    (pairs / 2f64.powi(bits as i32)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinguishing() {
        assert_eq!(fingerprint(&(1u32, 2u32)), fingerprint(&(1u32, 2u32)));
        assert_ne!(fingerprint(&(1u32, 2u32)), fingerprint(&(2u32, 1u32)));
        assert_ne!(fingerprint(&vec![0u8; 3]), fingerprint(&vec![0u8; 4]));
        assert_ne!(fingerprint("ab"), fingerprint("ab\0"));
        // A fixed value pins the seed: runs must be reproducible across builds.
        assert_eq!(fingerprint(&0u64), fingerprint(&0u64));
    }

    #[test]
    fn no_collisions_among_small_tuples() {
        let mut seen = std::collections::HashSet::new();
        for a in 0u8..64 {
            for b in 0u8..64 {
                for c in 0u8..16 {
                    assert!(seen.insert(fingerprint(&[a, b, c])));
                }
            }
        }
    }

    #[test]
    fn byte_fingerprints_are_pinned() {
        // XXH3 is specified: these values must never change, or fingerprints (and state
        // numbering) would differ between builds and hosts.
        assert_eq!(fingerprint_bytes(b""), fingerprint_bytes(&[]));
        assert_ne!(fingerprint_bytes(b"ab"), fingerprint_bytes(b"ab\0"));
        assert_eq!(fingerprint_bytes(b"mmcid"), 0x4119_8c53_62ec_39e8);
    }

    #[test]
    fn estimate() {
        assert_eq!(collision_probability(0, 64), 0.0);
        assert_eq!(collision_probability(1, 64), 0.0);
        let p = collision_probability(1_000_000, 64);
        assert!(p > 2.0e-8 && p < 3.0e-8, "{p}");
        assert_eq!(collision_probability(1000, 8), 1.0);
        assert_eq!(mask(64), u64::MAX);
        assert_eq!(mask(8), 0xFF);
    }
}
