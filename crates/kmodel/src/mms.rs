//! How a [`State`](crate::state::State) stores its mms: each [`Mm`] in its family's
//! [`Family::MmStore`] (the 7.0 family: 26 bytes packed, [`crate::rewrite::store`]; the legacy
//! families: the [`Mm`] itself), read as [`Mm`] values and written through [`MmMut`], as the
//! tasks are ([`crate::tasks`]).

use crate::family::Family;
use crate::fixed::Fixed;
use crate::state::{MAX_MMS, Mm};

/// The mms of a state, stored in the family's form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mms<F: Family> {
    items: Fixed<F::MmStore, MAX_MMS>,
}

impl<F: Family> Mms<F> {
    /// Mms holding `xs`.
    pub fn from_slice(xs: &[Mm<F>]) -> Self {
        let mut m = Mms::default();
        for x in xs {
            m.push(*x);
        }
        m
    }
    /// Number of mms.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No mm at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Mm `i` (panics if there is none).
    #[inline(always)]
    pub fn at(&self, i: usize) -> Mm<F> {
        F::load_mm(&self.items[i])
    }
    /// Mm `i`, if there is one.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<Mm<F>> {
        self.items.get(i).map(F::load_mm)
    }
    /// The first mm, if any.
    pub fn first(&self) -> Option<Mm<F>> {
        self.get(0)
    }
    /// Appends an mm (panics past [`MAX_MMS`]; the configuration bounds prevent that).
    pub fn push(&mut self, m: Mm<F>) {
        self.items.push(F::store_mm(&m));
    }
    /// The mms in order, unpacked.
    #[inline(always)]
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Mm<F>> + ExactSizeIterator + '_ {
        self.items.iter().map(F::load_mm)
    }
    /// The stored mms.
    pub fn stored(&self) -> &[F::MmStore] {
        &self.items
    }
    /// The stored mms, for changes made on the stored form.
    #[inline(always)]
    pub fn stored_mut(&mut self) -> &mut [F::MmStore] {
        &mut self.items
    }
    /// Appends a stored mm.
    pub fn push_stored(&mut self, m: F::MmStore) {
        self.items.push(m);
    }
}

impl<F: Family> std::fmt::Debug for Mms<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Serialised as the sequence of unpacked mms (as before the packing).
impl<F: Family> serde::Serialize for Mms<F> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, F: Family> serde::Deserialize<'de> for Mms<F> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<Mm<F>> = serde::Deserialize::deserialize(d)?;
        if v.len() > MAX_MMS {
            return Err(serde::de::Error::invalid_length(v.len(), &"at most MAX_MMS mms"));
        }
        Ok(Mms::from_slice(&v))
    }
}

/// Mm `m` of a state, unpacked for writing: the changes are stored when it is dropped.
pub struct MmMut<'a, F: Family> {
    slot: &'a mut F::MmStore,
    mm: Mm<F>,
    /// The mm as loaded: packing is skipped when nothing changed (many schedins and schedouts
    /// only read the mm, and comparing is cheaper than packing).
    orig: Mm<F>,
}

impl<'a, F: Family> MmMut<'a, F> {
    /// Unpacks mm `i` of `mms` for writing.
    #[inline(always)]
    pub fn new(mms: &'a mut Mms<F>, i: usize) -> Self {
        let slot = &mut mms.items[i];
        let mm = F::load_mm(slot);
        MmMut { slot, mm, orig: mm }
    }
}

impl<F: Family> std::ops::Deref for MmMut<'_, F> {
    type Target = Mm<F>;
    #[inline(always)]
    fn deref(&self) -> &Mm<F> {
        &self.mm
    }
}

impl<F: Family> std::ops::DerefMut for MmMut<'_, F> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut Mm<F> {
        &mut self.mm
    }
}

impl<F: Family> Drop for MmMut<'_, F> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.mm != self.orig {
            *self.slot = F::store_mm(&self.mm);
        }
    }
}
