//! The per-mm CID bitmap (spec 1.2): `np` bits, touched only by atomic bit operations.

/// The CID bitmap of one mm: bit `c` set means CID `c` is owned by someone (invariant I4 says by
/// exactly one task, CPU or running task in transit).
///
/// # Locks
/// None: the kernel uses only atomic `test_and_set_bit` / `clear_bit` on it. The model takes each
/// operation as one atomic step.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct CidBitmap(u64);

/// What `clear_bit` did. The kernel's `drop()` has no range check (designs.md I.0.3), so a drop of
/// an index outside the bitmap, or of a bit that was not set, is made observable instead of masked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Cleared {
    /// The bit was set and is now clear.
    Cleared,
    /// The bit was already clear: somebody dropped a CID it did not own.
    WasClear,
    /// The index lies outside the `np`-bit bitmap: the kernel would clear a bit of adjacent memory.
    OutOfRange,
}

impl CidBitmap {
    /// Maximum `np` the model supports.
    pub const CAPACITY: u32 = 64;

    /// The raw bits (bit `c` = CID `c`).
    pub const fn bits(self) -> u64 {
        self.0
    }
    /// Builds a bitmap from raw bits.
    pub const fn from_bits(bits: u64) -> Self {
        CidBitmap(bits)
    }
    /// Is bit `c` set?
    pub const fn is_set(self, c: u32) -> bool {
        c < 64 && self.0 & (1 << c) != 0
    }
    /// Number of set bits.
    pub const fn weight(self) -> u32 {
        self.0.count_ones()
    }
    /// `find_first_zero_bit(bitmap, limit)`: the lowest clear bit below `limit`, if any.
    pub fn first_zero(self, limit: u32) -> Option<u32> {
        let c = (!self.0).trailing_zeros();
        (c < limit.min(Self::CAPACITY)).then_some(c)
    }
    /// `test_and_set_bit`: sets bit `c`, returning whether it was already set.
    pub fn test_and_set(&mut self, c: u32) -> bool {
        assert!(c < Self::CAPACITY, "bit {c} outside the model's bitmap");
        let was = self.is_set(c);
        self.0 |= 1 << c;
        was
    }
    /// `clear_bit` on an `np`-bit bitmap.
    pub fn clear(&mut self, c: u32, np: u32) -> Cleared {
        if c >= np {
            return Cleared::OutOfRange;
        }
        if !self.is_set(c) {
            return Cleared::WasClear;
        }
        self.0 &= !(1 << c);
        Cleared::Cleared
    }
    /// Iterates the set bits in ascending order.
    pub fn iter(self) -> impl Iterator<Item = u32> {
        let mut w = self.0;
        std::iter::from_fn(move || {
            if w == 0 {
                return None;
            }
            let c = w.trailing_zeros();
            w &= w - 1;
            Some(c)
        })
    }
}

impl std::fmt::Display for CidBitmap {
    /// Set bits as a list, e.g. `{0,1,3}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{")?;
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{c}")?;
        }
        write!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_bit_below_limit() {
        let mut b = CidBitmap::default();
        assert_eq!(b.first_zero(4), Some(0));
        assert!(!b.test_and_set(0));
        assert!(b.test_and_set(0));
        b.test_and_set(1);
        assert_eq!(b.first_zero(4), Some(2));
        assert_eq!(b.first_zero(2), None);
        assert_eq!(b.first_zero(0), None);
    }

    #[test]
    fn clear_reports_what_happened() {
        let mut b = CidBitmap::default();
        b.test_and_set(2);
        assert_eq!(b.clear(2, 4), Cleared::Cleared);
        assert_eq!(b.clear(2, 4), Cleared::WasClear);
        assert_eq!(b.clear(4, 4), Cleared::OutOfRange);
        assert_eq!(b.to_string(), "{}");
    }
}
