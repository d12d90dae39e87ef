//! A map kept as a sorted vector while small, for the many tiny maps of the registry.
//!
//! Every node holds one entry map per service owner, and most owners have one or a few
//! services. A `BTreeMap` allocates a whole B-tree node (11 slots) even for a single entry:
//! with 100 owners the simulator measured ≈ 1.8 KB per service per node. A sorted vector
//! grown one slot at a time while small costs one slot per entry; lookups are binary searches.

use std::collections::BTreeMap;

/// Below this length the vector grows by exactly one slot per insert.
const EXACT_GROWTH_LEN_MAX: usize = 16;

/// Above this length the map moves to a `BTreeMap`: inserting into a sorted vector moves
/// O(n) entries, and a remote owner may hold up to `entries_per_owner_max` of them.
const VEC_LEN_MAX: usize = 64;

/// Map with the subset of the `BTreeMap` API the registry uses: a sorted vector while small
/// (one slot per entry), a `BTreeMap` once larger. Iteration is in key order either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CompactMap<K, V> {
    /// At most `VEC_LEN_MAX` entries, sorted by key.
    Small(Vec<(K, V)>),
    /// More entries.
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for CompactMap<K, V> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

/// Iterator over a [`CompactMap`] in key order.
pub(crate) enum Iter<'a, K, V> {
    Small(std::slice::Iter<'a, (K, V)>),
    Large(std::collections::btree_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Small(it) => it.next().map(|(k, v)| (k, v)),
            Self::Large(it) => it.next(),
        }
    }
}

impl<K, V> CompactMap<K, V> {
    /// Where a small map's entries live, null for a large one (a prefetch hint).
    pub(crate) fn heap(&self) -> *const u8 {
        match self {
            Self::Small(items) => items.as_ptr().cast(),
            Self::Large(_) => std::ptr::null(),
        }
    }
}

impl<K: Ord, V> CompactMap<K, V> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(items) => items.len(),
            Self::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        match self {
            Self::Small(items) => {
                items.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| &items[i].1)
            }
            Self::Large(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            Self::Small(items) => {
                let i = items.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(&mut items[i].1)
            }
            Self::Large(map) => map.get_mut(key),
        }
    }

    /// Inserts or replaces; returns the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let items = match self {
            Self::Large(map) => return map.insert(key, value),
            Self::Small(items) => items,
        };
        match items.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut items[i].1, value)),
            Err(i) => {
                if items.len() >= VEC_LEN_MAX {
                    let mut map: BTreeMap<K, V> = std::mem::take(items).into_iter().collect();
                    map.insert(key, value);
                    *self = Self::Large(map);
                    return None;
                }
                if items.len() == items.capacity() && items.len() < EXACT_GROWTH_LEN_MAX {
                    items.reserve_exact(1);
                }
                items.insert(i, (key, value));
                None
            }
        }
    }

    /// The value of `key`, inserted from `make` first if absent (`key` is cloned only then).
    pub(crate) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V
    where
        K: Clone,
    {
        if self.get(key).is_none() {
            self.insert(key.clone(), make());
        }
        // Invariant: present, or inserted just above.
        self.get_mut(key).expect("key present")
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            Self::Small(items) => {
                let i = items.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(items.remove(i).1)
            }
            Self::Large(map) => map.remove(key),
        }
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Self::Small(items) => Iter::Small(items.iter()),
            Self::Large(map) => Iter::Large(map.iter()),
        }
    }

    /// Values in key order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Values in key order, mutably.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        let (small, large) = match self {
            Self::Small(items) => (Some(items.iter_mut().map(|(_, v)| v)), None),
            Self::Large(map) => (None, Some(map.values_mut())),
        };
        small.into_iter().flatten().chain(large.into_iter().flatten())
    }

    /// Keeps the entries for which `keep` returns true (order preserved). A map that shrinks
    /// stays a `BTreeMap`; it only ever grew that large through its owner's own writes.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        match self {
            Self::Small(items) => items.retain_mut(|(k, v)| keep(k, v)),
            Self::Large(map) => map.retain(|k, v| keep(k, v)),
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a CompactMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Set with the representation of [`CompactMap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompactSet<T> {
    map: CompactMap<T, ()>,
}

impl<T> Default for CompactSet<T> {
    fn default() -> Self {
        Self { map: CompactMap::default() }
    }
}

impl<T: Ord> CompactSet<T> {
    /// Adds `item`; returns false if it was present.
    pub(crate) fn insert(&mut self, item: T) -> bool {
        self.map.insert(item, ()).is_none()
    }

    /// Removes `item`; returns whether it was present.
    pub(crate) fn remove(&mut self, item: &T) -> bool {
        self.map.remove(item).is_some()
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
        let mut ours = CompactMap::new();
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
    fn get_or_insert_with_behaves_like_entry_or_insert_with() {
        let mut rng = Rng::from_seed(6);
        let mut ours = CompactMap::new();
        let mut reference = BTreeMap::new();
        // Up to 200 keys: the map goes from a vector to a B-tree on the way.
        for step in 0..2_000u64 {
            let key = rng.below(200);
            let mut made = false;
            let value = ours.get_or_insert_with(&key, || {
                made = true;
                step
            });
            *value += 1;
            let mut made_reference = false;
            *reference.entry(key).or_insert_with(|| {
                made_reference = true;
                step
            }) += 1;
            assert_eq!(made, made_reference, "make runs exactly when the key is absent");
            assert_eq!(ours.len(), reference.len());
        }
        assert!(matches!(ours, CompactMap::Large(_)));
        assert!(ours.iter().eq(reference.iter()));
    }

    #[test]
    fn small_maps_hold_exactly_their_entries() {
        let mut m = CompactMap::new();
        for i in 0..EXACT_GROWTH_LEN_MAX as u32 {
            m.insert(i, i);
            let CompactMap::Small(items) = &m else { panic!("small maps stay vectors") };
            assert_eq!(items.capacity(), m.len(), "exact growth while small");
        }
        for i in EXACT_GROWTH_LEN_MAX as u32..=VEC_LEN_MAX as u32 {
            m.insert(i, i);
        }
        assert!(matches!(m, CompactMap::Large(_)), "a map over VEC_LEN_MAX entries is a B-tree");
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
        let mut ours = CompactSet::default();
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
