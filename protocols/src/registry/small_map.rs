//! A map kept as a sorted vector, for the many tiny maps of the registry.
//!
//! Every node holds one entry map per service owner, and most owners have one or a few
//! services. A `BTreeMap` allocates a whole B-tree node (11 slots) even for a single entry:
//! with 100 owners the simulator measured ≈ 1.8 KB per service per node. A sorted vector
//! grown one slot at a time while small costs one slot per entry; lookups are binary searches.

/// Below this length the vector grows by exactly one slot per insert; above it, by doubling
/// (amortised O(1) for owners with thousands of services).
const EXACT_GROWTH_LEN_MAX: usize = 16;

/// Sorted-vector map with the subset of the `BTreeMap` API the registry uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortedVecMap<K, V> {
    items: Vec<(K, V)>,
}

impl<K, V> Default for SortedVecMap<K, V> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<K: Ord, V> SortedVecMap<K, V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn position(&self, key: &K) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.position(key).ok().map(|i| &self.items[i].1)
    }

    /// Inserts or replaces; returns the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
            Err(i) => {
                if self.items.len() == self.items.capacity()
                    && self.items.len() < EXACT_GROWTH_LEN_MAX
                {
                    self.items.reserve_exact(1);
                }
                self.items.insert(i, (key, value));
                None
            }
        }
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    /// Values in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }

    /// Keeps the entries for which `keep` returns true (order preserved).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SortedVecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        fn split<K, V>(item: &(K, V)) -> (&K, &V) {
            (&item.0, &item.1)
        }
        self.items.iter().map(split as fn(&'a (K, V)) -> (&'a K, &'a V))
    }
}

/// Sorted-vector set (same growth policy as [`SortedVecMap`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortedVecSet<T> {
    map: SortedVecMap<T, ()>,
}

impl<T> Default for SortedVecSet<T> {
    fn default() -> Self {
        Self { map: SortedVecMap::default() }
    }
}

impl<T: Ord> SortedVecSet<T> {
    /// Adds `item`; returns false if it was present.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        self.map.insert(item, ()).is_none()
    }

    /// Removes `item`; returns whether it was present.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        let before = self.map.len();
        self.map.retain(|k, _| k != item);
        self.map.len() != before
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Items in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.map.iter().map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rng::Rng;

    #[test]
    fn behaves_like_a_btreemap() {
        let mut rng = Rng::from_seed(4);
        let mut ours = SortedVecMap::new();
        let mut reference = BTreeMap::new();
        for step in 0..5_000u64 {
            let key = rng.below(200);
            match rng.below(3) {
                0 | 1 => assert_eq!(ours.insert(key, step), reference.insert(key, step)),
                _ => {
                    let cut = rng.below(200);
                    ours.retain(|k, _| *k != cut);
                    reference.retain(|k, _| *k != cut);
                }
            }
            assert_eq!(ours.len(), reference.len());
            assert_eq!(ours.get(&key), reference.get(&key));
        }
        assert!(ours.iter().eq(reference.iter()));
        assert!(ours.values().eq(reference.values()));
        assert!((&ours).into_iter().eq(reference.iter()));
    }

    #[test]
    fn small_maps_hold_exactly_their_entries() {
        let mut m = SortedVecMap::new();
        for i in 0..EXACT_GROWTH_LEN_MAX as u32 {
            m.insert(i, i);
            assert_eq!(m.items.capacity(), m.len(), "exact growth while small");
        }
    }
}

#[cfg(test)]
mod set_tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::rng::Rng;

    #[test]
    fn behaves_like_a_btreeset() {
        let mut rng = Rng::from_seed(5);
        let mut ours = SortedVecSet::default();
        let mut reference = BTreeSet::new();
        for _ in 0..3_000 {
            let item = rng.below(100);
            if rng.chance(0.6) {
                assert_eq!(ours.insert(item), reference.insert(item));
            } else {
                assert_eq!(ours.remove(&item), reference.remove(&item));
            }
            assert_eq!(ours.is_empty(), reference.is_empty());
        }
        assert!(ours.iter().eq(reference.iter()));
    }
}
