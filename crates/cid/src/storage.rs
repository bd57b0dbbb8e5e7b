//! Capacity: how big the state of one mm may grow, as a small storage trait.
//!
//! The same algorithm runs in two drivers of very different size: the model checker, which wants
//! an mm in a few dozen bytes that hash and copy fast (np ≤ 8, ≤ 16 users, `u8` counters), and the
//! simulator (`mmcid-sim`), which wants np up to 4096 and a million tasks. [`Storage`] names the
//! types that change with capacity; every struct and function of the algorithm is generic over it,
//! with [`Compact`] as the default type parameter, so `MmCid`, `Mm63`, `Mm618`, ... written without
//! parameters are the checker's compact types, unchanged in layout and size.
//!
//! ## Why a storage trait and not const generics
//! Const generics (`MmCid<const NP: usize>` with `[Cid; NP]` slots) can size arrays but cannot change
//! a field's *type*: the counters (`users`, `max_cids`, ...) and task ids must be `u8` for the checker
//! (its states are hashed and stored by the million) and `u32` for a million tasks, and the user list
//! of a million-task mm cannot be an inline array at all (it needs O(1) insert and removal). A storage
//! trait with associated types picks each representation once: inline `u8` arrays for [`Compact`],
//! heap vectors and `u32` for [`Wide`]. Monomorphisation makes the compact code the same machine
//! code as before the split (measured: `mmcid bench` before/after, see the crate docs).
//!
//! [`Storage::Stats`] is the second reason: the simulator counts the cache-line traffic of each
//! operation (bitmap atomics, slot writes, lock acquisitions) in the very functions the checker
//! runs, while [`Compact`] counts nothing in a zero-sized [`NoStats`].

use std::fmt::{Debug, Display};
use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pool::{CidBitmap, Cleared};

/// A small unsigned number stored in a capacity-dependent width: counters (`users`, `max_cids`,
/// `np`, ...), CPU numbers and task ids. Arithmetic is done in `u32`.
pub trait Num:
    Copy + Default + Eq + Ord + Hash + Debug + Display + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The value as `u32`.
    fn n(self) -> u32;
    /// The value from a `u32` (debug builds check that it fits).
    fn of(n: u32) -> Self;
    /// The value as an index.
    #[inline]
    fn ix(self) -> usize {
        self.n() as usize
    }
}

macro_rules! num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            #[inline(always)]
            fn n(self) -> u32 {
                self as u32
            }
            #[inline(always)]
            fn of(n: u32) -> Self {
                debug_assert!(n <= <$t>::MAX as u32, "{n} does not fit in {}", stringify!($t));
                n as $t
            }
        }
    )*};
}
num!(u8, u16, u32);

/// What a slot may hold: plain data.
pub trait Elem: Copy + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned + 'static {}
impl<T: Copy + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned + 'static> Elem for T {}

/// The CID bitmap of an mm (spec 1.2): atomic bit operations only.
pub trait Bitmap:
    Clone + Default + Eq + Hash + Debug + Display + Send + Sync + Serialize + DeserializeOwned
{
    /// An empty bitmap able to hold `np` bits.
    fn with_bits(np: u32) -> Self;
    /// Is bit `c` set?
    fn is_set(&self, c: u32) -> bool;
    /// Number of set bits.
    fn weight(&self) -> u32;
    /// `find_first_zero_bit(bitmap, limit)`: the lowest clear bit below `limit`, if any.
    fn first_zero(&self, limit: u32) -> Option<u32>;
    /// `test_and_set_bit`: sets bit `c`, returning whether it was already set.
    fn test_and_set(&mut self, c: u32) -> bool;
    /// `clear_bit` on an `np`-bit bitmap, reporting what it did.
    fn clear(&mut self, c: u32, np: u32) -> Cleared;
    /// The set bits, ascending.
    fn ones(&self) -> impl Iterator<Item = u32> + '_;
}

/// A set of CPUs: an affinity mask or the mm's union of them.
pub trait CpuSet: Clone + Default + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned {
    /// The CPUs `0..np`.
    fn full(np: u32) -> Self;
    /// Number of CPUs in the set.
    fn weight(&self) -> u32;
    /// Is CPU `c` in the set?
    fn has(&self, c: u32) -> bool;
    /// `self |= other`.
    fn union_with(&mut self, other: &Self);
    /// Drops the CPUs `>= np`.
    fn clip(&mut self, np: u32);
}

/// `mm.user_list` (spec 1.2): the active users, newest first. Changed under `mutex` and `lock`,
/// iterated under `mutex` (so never changed during a walk).
pub trait Users<T>: Clone + Default + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned {
    /// Number of tasks on the list.
    fn count(&self) -> usize;
    /// `hlist_add_head`.
    fn add_head(&mut self, t: T);
    /// `hlist_del_init`; returns whether `t` was on the list.
    fn del(&mut self, t: T) -> bool;
    /// The tasks, newest first.
    fn each(&self) -> impl Iterator<Item = T> + '_;
}

/// The per-CPU slots of an mm: one value per possible CPU.
pub trait Slots<T: Elem>: Clone + Eq + Hash + Debug + Send + Sync + Serialize + DeserializeOwned {
    /// `np` slots holding `v`.
    fn filled(np: u32, v: T) -> Self;
    /// The slots as a slice (at least `np` long).
    fn as_slice(&self) -> &[T];
    /// The slots as a mutable slice.
    fn as_mut_slice(&mut self) -> &mut [T];
}

impl<T: Elem> Slots<T> for [T; crate::mm::MAX_CPUS] {
    #[inline]
    fn filled(np: u32, v: T) -> Self {
        assert!(
            np as usize <= crate::mm::MAX_CPUS,
            "np {np} exceeds the compact capacity {}",
            crate::mm::MAX_CPUS
        );
        [v; crate::mm::MAX_CPUS]
    }
    #[inline(always)]
    fn as_slice(&self) -> &[T] {
        self
    }
    #[inline(always)]
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

impl<T: Elem> Slots<T> for Box<[T]> {
    fn filled(np: u32, v: T) -> Self {
        vec![v; np as usize].into_boxed_slice()
    }
    #[inline(always)]
    fn as_slice(&self) -> &[T] {
        self
    }
    #[inline(always)]
    fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

/// Counters of the shared-memory traffic an operation causes, kept by the algorithm itself so that
/// every driver measures the same code. [`NoStats`] (the checker's) is zero-sized and free.
pub trait Stats: Copy + Default + Eq + Hash + Debug + Send + Sync {
    /// An atomic read-modify-write on the CID bitmap (`test_and_set_bit`, `clear_bit`).
    fn bit_op(&mut self);
    /// A store to a per-CPU slot (or a cmpxchg on one).
    fn slot_write(&mut self);
    /// An acquisition of a per-mm lock taken by the CID code itself (6.3's `cid_lock`).
    fn lock(&mut self);
    /// The totals so far (all zero for [`NoStats`]).
    fn totals(&self) -> Traffic;
}

/// Totals of [`Stats`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug, Serialize, serde::Deserialize)]
pub struct Traffic {
    /// Atomic bitmap operations.
    pub bit_ops: u64,
    /// Slot stores.
    pub slot_writes: u64,
    /// Lock acquisitions inside the CID code.
    pub locks: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.bit_ops += o.bit_ops;
        self.slot_writes += o.slot_writes;
        self.locks += o.locks;
    }
}

impl Traffic {
    /// `self - before`, field by field.
    pub fn since(&self, before: &Traffic) -> Traffic {
        Traffic {
            bit_ops: self.bit_ops - before.bit_ops,
            slot_writes: self.slot_writes - before.slot_writes,
            locks: self.locks - before.locks,
        }
    }
}

/// Counts nothing; zero-sized.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct NoStats;

impl Stats for NoStats {
    #[inline(always)]
    fn bit_op(&mut self) {}
    #[inline(always)]
    fn slot_write(&mut self) {}
    #[inline(always)]
    fn lock(&mut self) {}
    fn totals(&self) -> Traffic {
        Traffic::default()
    }
}

/// Counts every operation. Equality and hashing ignore the counts (they are measurements, not
/// state).
#[derive(Clone, Copy, Default, Debug)]
pub struct Counted(pub Traffic);

impl PartialEq for Counted {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Counted {}
impl Hash for Counted {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl Stats for Counted {
    #[inline(always)]
    fn bit_op(&mut self) {
        self.0.bit_ops += 1;
    }
    #[inline(always)]
    fn slot_write(&mut self) {
        self.0.slot_writes += 1;
    }
    #[inline(always)]
    fn lock(&mut self) {
        self.0.locks += 1;
    }
    fn totals(&self) -> Traffic {
        self.0
    }
}

/// The types that change with capacity. See the module docs for why this is a trait.
pub trait Storage:
    Copy + Clone + Default + PartialEq + Eq + Hash + PartialOrd + Ord + Debug + Send + Sync + 'static
{
    /// Counters (`np`, `users`, `max_cids`, ...).
    type Count: Num;
    /// A CPU number.
    type Cpu: Num;
    /// A task id.
    type Task: Num;
    /// The CID bitmap.
    type Bitmap: Bitmap;
    /// A set of CPUs.
    type Mask: CpuSet;
    /// `mm.user_list`.
    type Users: Users<Self::Task>;
    /// Per-CPU slots.
    type Slots<T: Elem>: Slots<T>;
    /// 6.18's slot clock (`pcpu.time`): abstract in the checker, nanoseconds in the simulator.
    type Time: Copy + Default + Eq + Ord + Hash + Debug + Serialize + DeserializeOwned + Send + Sync;
    /// Traffic counters.
    type Stats: Stats;
    /// Largest `np` this storage holds.
    const MAX_NP: u32;
}

/// The model checker's storage: np ≤ 8, ≤ 16 users per mm, `u8` counters and ids, a `u64` bitmap,
/// inline arrays, no counters. The default type parameter everywhere.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Compact;

impl Storage for Compact {
    type Count = u8;
    type Cpu = u8;
    type Task = u8;
    type Bitmap = CidBitmap;
    type Mask = u8;
    type Users = crate::mm::UserList;
    type Slots<T: Elem> = [T; crate::mm::MAX_CPUS];
    type Time = u8;
    type Stats = NoStats;
    const MAX_NP: u32 = crate::mm::MAX_CPUS as u32;
}

/// The simulator's storage: np up to [`Wide::MAX_NP`], `u32` counters and ids (a million tasks),
/// heap bitmaps and slots sized to `np`, a linked user list with O(1) insert and removal, `u64`
/// nanosecond clocks, and traffic counters.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Wide;

impl Storage for Wide {
    type Count = u32;
    type Cpu = u32;
    type Task = u32;
    type Bitmap = WideBitmap;
    type Mask = WideBitmap;
    type Users = LinkedUsers;
    type Slots<T: Elem> = Box<[T]>;
    type Time = u64;
    type Stats = Counted;
    const MAX_NP: u32 = 1 << 16;
}

// ---------------------------------------------------------------------------------------------
// Compact implementations (inline, as before the split).

impl Bitmap for CidBitmap {
    #[inline(always)]
    fn with_bits(np: u32) -> Self {
        assert!(
            np <= CidBitmap::CAPACITY,
            "np {np} exceeds the bitmap's {}",
            CidBitmap::CAPACITY
        );
        CidBitmap::default()
    }
    #[inline(always)]
    fn is_set(&self, c: u32) -> bool {
        CidBitmap::is_set(*self, c)
    }
    #[inline(always)]
    fn weight(&self) -> u32 {
        CidBitmap::weight(*self)
    }
    #[inline(always)]
    fn first_zero(&self, limit: u32) -> Option<u32> {
        CidBitmap::first_zero(*self, limit)
    }
    #[inline(always)]
    fn test_and_set(&mut self, c: u32) -> bool {
        CidBitmap::test_and_set(self, c)
    }
    #[inline(always)]
    fn clear(&mut self, c: u32, np: u32) -> Cleared {
        CidBitmap::clear(self, c, np)
    }
    fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.iter()
    }
}

impl CpuSet for u8 {
    #[inline(always)]
    fn full(np: u32) -> Self {
        ((1u16 << np) - 1) as u8
    }
    #[inline(always)]
    fn weight(&self) -> u32 {
        self.count_ones()
    }
    #[inline(always)]
    fn has(&self, c: u32) -> bool {
        c < 8 && self & (1 << c) != 0
    }
    #[inline(always)]
    fn union_with(&mut self, other: &Self) {
        *self |= *other;
    }
    #[inline(always)]
    fn clip(&mut self, np: u32) {
        *self &= <u8 as CpuSet>::full(np);
    }
}

impl Users<u8> for crate::mm::UserList {
    #[inline(always)]
    fn count(&self) -> usize {
        self.len()
    }
    #[inline(always)]
    fn add_head(&mut self, t: u8) {
        self.push_front(t)
    }
    #[inline(always)]
    fn del(&mut self, t: u8) -> bool {
        self.remove(t)
    }
    fn each(&self) -> impl Iterator<Item = u8> + '_ {
        self.as_slice().iter().copied()
    }
}

// ---------------------------------------------------------------------------------------------
// Wide implementations.

/// A bitmap (or CPU set) of any size, in 64-bit words on the heap.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug, Serialize, serde::Deserialize)]
pub struct WideBitmap {
    words: Box<[u64]>,
}

impl WideBitmap {
    /// The raw words (bit `c` is bit `c % 64` of word `c / 64`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }
    /// Number of set bits.
    pub fn weight(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
    /// Is bit `c` set?
    pub fn has(&self, c: u32) -> bool {
        self.words
            .get((c / 64) as usize)
            .is_some_and(|w| w & (1 << (c % 64)) != 0)
    }
    /// Sets bit `c` (must be within capacity).
    pub fn insert(&mut self, c: u32) {
        self.words[(c / 64) as usize] |= 1 << (c % 64);
    }
    /// Clears bit `c` if within capacity.
    pub fn remove(&mut self, c: u32) {
        if let Some(w) = self.words.get_mut((c / 64) as usize) {
            *w &= !(1 << (c % 64));
        }
    }
    /// A set holding exactly the given CPUs, with room for `np`.
    pub fn from_iter_np(np: u32, it: impl IntoIterator<Item = u32>) -> Self {
        let mut b = Self::with_bits(np);
        for c in it {
            b.insert(c);
        }
        b
    }
}

impl Bitmap for WideBitmap {
    fn with_bits(np: u32) -> Self {
        WideBitmap {
            words: vec![0; np.div_ceil(64) as usize].into_boxed_slice(),
        }
    }
    #[inline]
    fn is_set(&self, c: u32) -> bool {
        self.has(c)
    }
    fn weight(&self) -> u32 {
        WideBitmap::weight(self)
    }
    #[inline]
    fn first_zero(&self, limit: u32) -> Option<u32> {
        let cap = self.words.len() as u32 * 64;
        let limit = limit.min(cap);
        for (i, &w) in self.words.iter().enumerate() {
            if w != u64::MAX {
                let c = i as u32 * 64 + (!w).trailing_zeros();
                return (c < limit).then_some(c);
            }
            if (i as u32 + 1) * 64 >= limit {
                break;
            }
        }
        None
    }
    #[inline]
    fn test_and_set(&mut self, c: u32) -> bool {
        let w = &mut self.words[(c / 64) as usize];
        let was = *w & (1 << (c % 64)) != 0;
        *w |= 1 << (c % 64);
        was
    }
    #[inline]
    fn clear(&mut self, c: u32, np: u32) -> Cleared {
        if c >= np {
            return Cleared::OutOfRange;
        }
        if !self.is_set(c) {
            return Cleared::WasClear;
        }
        self.words[(c / 64) as usize] &= !(1 << (c % 64));
        Cleared::Cleared
    }
    fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

impl Display for WideBitmap {
    /// Set bits as a list of ranges, e.g. `{0-3,7}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{")?;
        let mut first = true;
        let mut it = self.ones().peekable();
        while let Some(a) = it.next() {
            let mut b = a;
            while it.peek() == Some(&(b + 1)) {
                b = it.next().unwrap_or(b);
            }
            if !first {
                write!(f, ",")?;
            }
            first = false;
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        write!(f, "}}")
    }
}

impl CpuSet for WideBitmap {
    fn full(np: u32) -> Self {
        let mut b = Self::with_bits(np);
        for (i, w) in b.words.iter_mut().enumerate() {
            let lo = i as u32 * 64;
            *w = if np >= lo + 64 {
                u64::MAX
            } else {
                (1u64 << (np - lo)) - 1
            };
        }
        b
    }
    fn weight(&self) -> u32 {
        WideBitmap::weight(self)
    }
    fn has(&self, c: u32) -> bool {
        WideBitmap::has(self, c)
    }
    fn union_with(&mut self, other: &Self) {
        if other.words.len() > self.words.len() {
            let mut w = other.words.to_vec();
            for (a, b) in w.iter_mut().zip(self.words.iter()) {
                *a |= b;
            }
            self.words = w.into_boxed_slice();
        } else {
            for (a, b) in self.words.iter_mut().zip(other.words.iter()) {
                *a |= b;
            }
        }
    }
    fn clip(&mut self, np: u32) {
        for (i, w) in self.words.iter_mut().enumerate() {
            let lo = i as u32 * 64;
            if np <= lo {
                *w = 0;
            } else if np < lo + 64 {
                *w &= (1u64 << (np - lo)) - 1;
            }
        }
    }
}

const NIL: u32 = u32::MAX;

/// `mm.user_list` for any number of users: a doubly linked list (as the kernel's hlist) whose
/// links live in a map keyed by task id, so insertion at the head and removal are O(1).
#[derive(Clone, Debug)]
pub struct LinkedUsers {
    head: u32,
    /// task -> (prev, next)
    links: std::collections::HashMap<u32, (u32, u32), BuildFx>,
}

impl Default for LinkedUsers {
    fn default() -> Self {
        LinkedUsers {
            head: NIL,
            links: Default::default(),
        }
    }
}

impl PartialEq for LinkedUsers {
    fn eq(&self, o: &Self) -> bool {
        self.count() == o.count() && self.each().eq(o.each())
    }
}
impl Eq for LinkedUsers {}
impl Hash for LinkedUsers {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for t in self.each() {
            t.hash(h);
        }
    }
}

impl Serialize for LinkedUsers {
    /// Newest first, as a list.
    fn serialize<Se: serde::Serializer>(&self, s: Se) -> Result<Se::Ok, Se::Error> {
        s.collect_seq(self.each())
    }
}

impl<'de> serde::Deserialize<'de> for LinkedUsers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<u32> = serde::Deserialize::deserialize(d)?;
        let mut l = LinkedUsers::default();
        for t in v.into_iter().rev() {
            l.add_head(t);
        }
        Ok(l)
    }
}

impl Users<u32> for LinkedUsers {
    fn count(&self) -> usize {
        self.links.len()
    }
    fn add_head(&mut self, t: u32) {
        let old = self.head;
        let prev = self.links.insert(t, (NIL, old));
        assert!(prev.is_none(), "task {t} added to the user list twice");
        if old != NIL
            && let Some(l) = self.links.get_mut(&old)
        {
            l.0 = t;
        }
        self.head = t;
    }
    fn del(&mut self, t: u32) -> bool {
        let Some((p, n)) = self.links.remove(&t) else {
            return false;
        };
        if p == NIL {
            self.head = n;
        } else if let Some(l) = self.links.get_mut(&p) {
            l.1 = n;
        }
        if n != NIL
            && let Some(l) = self.links.get_mut(&n)
        {
            l.0 = p;
        }
        true
    }
    fn each(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            if at == NIL {
                return None;
            }
            let t = at;
            at = self.links.get(&t).map_or(NIL, |l| l.1);
            Some(t)
        })
    }
}

/// A multiplicative hasher for `u32` keys (task ids): the std `SipHash` is DoS-resistant, which a
/// simulator does not need, and several times slower on the fork and exit paths.
#[derive(Clone, Copy, Default, Debug)]
pub struct BuildFx;

/// The hasher of [`BuildFx`].
#[derive(Clone, Copy, Default, Debug)]
pub struct Fx(u64);

impl std::hash::BuildHasher for BuildFx {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

impl std::hash::Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker stores millions of states: the compact instantiation must not grow. These are
    /// the sizes from before the algorithm became generic over its storage.
    #[test]
    fn compact_sizes_are_unchanged() {
        use crate::legacy::{v6_3, v6_18};
        use std::mem::size_of;
        assert_eq!(size_of::<crate::MmCid>(), 88);
        assert_eq!(size_of::<crate::TaskCid>(), 8);
        assert_eq!(size_of::<CidBitmap>(), 8);
        assert_eq!(size_of::<crate::UserList>(), 17);
        assert_eq!(size_of::<v6_3::Mm63>(), 32);
        assert_eq!(size_of::<v6_3::Task63>(), 8);
        assert_eq!(size_of::<v6_18::Mm618>(), 136);
        assert_eq!(size_of::<v6_18::Task618>(), 12);
        assert_eq!(size_of::<v6_18::Slot618>(), 12);
        assert_eq!(size_of::<v6_18::GetCont>(), 2);
        assert_eq!(size_of::<v6_18::Migrate>(), 12);
        assert_eq!(size_of::<crate::SchedinSpin>(), 8);
        assert_eq!(size_of::<NoStats>(), 0);
    }

    #[test]
    fn wide_bitmap_matches_the_compact_one() {
        let mut w = WideBitmap::with_bits(200);
        let mut c = CidBitmap::default();
        for i in [0u32, 1, 5, 63] {
            assert_eq!(w.test_and_set(i), Bitmap::test_and_set(&mut c, i));
        }
        assert_eq!(Bitmap::first_zero(&w, 64), Bitmap::first_zero(&c, 64));
        assert_eq!(Bitmap::weight(&w), Bitmap::weight(&c));
        assert_eq!(w.ones().collect::<Vec<_>>(), vec![0, 1, 5, 63]);
        for i in 2..200 {
            w.test_and_set(i);
        }
        assert_eq!(w.first_zero(200), None);
        assert_eq!(w.clear(150, 200), Cleared::Cleared);
        assert_eq!(w.first_zero(200), Some(150));
        assert_eq!(w.first_zero(150), None);
        assert_eq!(w.clear(150, 200), Cleared::WasClear);
        assert_eq!(w.clear(200, 200), Cleared::OutOfRange);
        assert_eq!(WideBitmap::from_iter_np(10, [0, 1, 2, 5]).to_string(), "{0-2,5}");
    }

    #[test]
    fn wide_cpu_sets() {
        let f = WideBitmap::full(70);
        assert_eq!(CpuSet::weight(&f), 70);
        let mut a = WideBitmap::from_iter_np(128, [1, 100]);
        a.union_with(&WideBitmap::from_iter_np(64, [2]));
        assert_eq!(CpuSet::weight(&a), 3);
        a.clip(64);
        assert_eq!(CpuSet::weight(&a), 2);
        assert_eq!(<u8 as CpuSet>::full(8), 0xff);
    }

    #[test]
    fn linked_users_are_newest_first_with_o1_removal() {
        let mut l = LinkedUsers::default();
        for t in [1, 2, 3, 4] {
            l.add_head(t);
        }
        assert_eq!(l.each().collect::<Vec<_>>(), vec![4, 3, 2, 1]);
        assert!(l.del(3) && l.del(4) && !l.del(4));
        assert_eq!(l.each().collect::<Vec<_>>(), vec![2, 1]);
        assert!(l.del(1));
        l.add_head(9);
        assert_eq!(l.each().collect::<Vec<_>>(), vec![9, 2]);
        assert_eq!(l.count(), 2);
    }
}
