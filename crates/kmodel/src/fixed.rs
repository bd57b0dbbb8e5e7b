//! A fixed-capacity vector that is `Copy`: the model's states are copied, hashed and compared
//! millions of times, so they hold no heap allocations.

use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

/// Up to `N` items inline. Only the first `len` items take part in equality and hashing; unused
/// items are kept at their default.
#[derive(Clone, Copy)]
pub struct Fixed<T: Copy + Default, const N: usize> {
    len: u8,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Fixed<T, N> {
    /// An empty vector.
    pub fn new() -> Self {
        Fixed {
            len: 0,
            items: [T::default(); N],
        }
    }
    /// Appends `x`; panics past the capacity (the configuration bounds prevent that).
    pub fn push(&mut self, x: T) {
        assert!((self.len as usize) < N, "model capacity {N} exceeded");
        self.items[self.len as usize] = x;
        self.len += 1;
    }
    /// Removes every item (the storage keeps its old values; only `len` items ever count).
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// A vector holding `xs`.
    pub fn from_slice(xs: &[T]) -> Self {
        let mut f = Self::new();
        for &x in xs {
            f.push(x);
        }
        f
    }
}

impl<T: Copy + Default, const N: usize> Default for Fixed<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Default, const N: usize> Deref for Fixed<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..self.len as usize]
    }
}

impl<T: Copy + Default, const N: usize> DerefMut for Fixed<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.items[..self.len as usize]
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for Fixed<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for Fixed<T, N> {}

impl<T: Copy + Default + Hash, const N: usize> Hash for Fixed<T, N> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (**self).hash(h)
    }
}

impl<T: Copy + Default + std::fmt::Debug, const N: usize> std::fmt::Debug for Fixed<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Copy + Default, const N: usize> IntoIterator for &'a Fixed<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T: Copy + Default, const N: usize> IntoIterator for Fixed<T, N> {
    type Item = T;
    type IntoIter = std::iter::Take<std::array::IntoIter<T, N>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().take(self.len as usize)
    }
}

/// Serialised as a sequence of its `len` items (unused capacity is not written).
impl<T: Copy + Default + serde::Serialize, const N: usize> serde::Serialize for Fixed<T, N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Copy + Default + serde::Deserialize<'de>, const N: usize> serde::Deserialize<'de>
    for Fixed<T, N>
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Copy + Default + serde::Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Seq<T, N> {
            type Value = Fixed<T, N>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "at most {N} items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Fixed::new();
                while let Some(x) = seq.next_element()? {
                    if out.len() == N {
                        return Err(serde::de::Error::invalid_length(N + 1, &self));
                    }
                    out.push(x);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Seq(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_used_items_count() {
        let mut a: Fixed<u8, 4> = Fixed::new();
        a.push(1);
        let mut b: Fixed<u8, 4> = Fixed::from_slice(&[1, 2]);
        assert_ne!(a, b);
        b = Fixed::from_slice(&[1]);
        assert_eq!(a, b);
        a[0] = 7;
        assert_eq!(&*a, &[7]);
    }
}
