//! The replicated state and its merge (join) rules, free of events and I/O.
//!
//! The state is a map `owner -> (status, key -> value)`. Both levels merge by taking the larger
//! element of a total order: [`OwnerStatus`] (incarnation, then `Alive < Suspect < Dead`) and
//! [`Value`] (HLC stamp first). A pointwise maximum is a join semilattice, so merging is
//! commutative, associative and idempotent, and replicas that have merged the same writes hold
//! the same state whatever the order (the property tests check this on [`Store::merge_from`]).
//!
//! Tombstone collection is the one non-lattice step; it is bounded by `tombstone_ttl_ms` and
//! documented in docs/protocols/registry.md.

use std::collections::BTreeMap;

use super::message::{EntryUpdate, OwnerDigest, OwnerStatus, Value};
use super::small_map::{CompactMap, CompactSet};
use crate::hlc::Hlc;
use crate::peer::PeerId;

/// A value with the local monotonic time at which it was stored (for tombstone collection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) value: Value,
    pub(crate) stored_mono_ms: u64,
}

/// Everything known about one owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OwnerRecord {
    pub(crate) status: OwnerStatus,
    /// `(service name, registration id) -> value`.
    pub(crate) entries: CompactMap<(String, u64), Stored>,
}

impl OwnerRecord {
    /// Live (registered) entries, in key order.
    pub(crate) fn registered(&self) -> impl Iterator<Item = (&(String, u64), &Stored)> {
        self.entries.iter().filter(|(_, s)| s.value.is_registered())
    }

    /// True when the owner has at least one registered entry.
    pub(crate) fn has_registered(&self) -> bool {
        self.entries.values().any(|s| s.value.is_registered())
    }

    /// Summary used by anti-entropy.
    pub(crate) fn digest(&self) -> OwnerDigest {
        let entries_max_stamp =
            self.entries.values().map(|s| s.value.stamp()).max().unwrap_or(Hlc::ZERO);
        OwnerDigest {
            incarnation: self.status.incarnation,
            state: self.status.state,
            entries_max_stamp,
            // Entries per owner are bounded far below u32::MAX by `services_local_max` at the
            // owner; saturate rather than trust a hostile owner.
            entries_count: u32::try_from(self.entries.len()).unwrap_or(u32::MAX),
            entries_hash: self.entries_hash(),
        }
    }

    /// FNV-1a over every entry's key, kind and stamp, in key order (a pure function of the
    /// replicated values, so equal replicas hash equal everywhere).
    fn entries_hash(&self) -> u64 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        let mut feed = |bytes: &[u8]| {
            for b in bytes {
                hash = (hash ^ u64::from(*b)).wrapping_mul(PRIME);
            }
        };
        for ((name, reg_id), stored) in self.entries.iter() {
            let stamp = stored.value.stamp();
            feed(&(name.len() as u64).to_be_bytes());
            feed(name.as_bytes());
            feed(&reg_id.to_be_bytes());
            feed(&[u8::from(stored.value.is_registered())]);
            feed(&stamp.wall_ms.to_be_bytes());
            feed(&stamp.logical.to_be_bytes());
        }
        hash
    }

    /// All entries as wire updates, in key order.
    pub(crate) fn updates(&self) -> Vec<EntryUpdate> {
        self.entries
            .iter()
            .map(|((name, reg_id), s)| EntryUpdate {
                name: name.clone(),
                reg_id: *reg_id,
                value: s.value.clone(),
            })
            .collect()
    }
}

/// The replicated registry state plus a name index of registered keys.
#[derive(Clone, Debug)]
pub(crate) struct Store<P> {
    /// A sorted vector while small: most replicas know one owner (themselves), and a
    /// `BTreeMap` allocates a whole node (584 bytes) even for that one record.
    owners: CompactMap<P, OwnerRecord>,
    /// `name -> {(owner, reg_id)}` for every key whose value is `Registered` (whatever the
    /// owner's status). Derived from `owners`; kept in step by `merge_entry` and `collect`.
    by_name: BTreeMap<String, CompactSet<(P, u64)>>,
}

impl<P> Default for Store<P> {
    fn default() -> Self {
        Self { owners: CompactMap::default(), by_name: BTreeMap::new() }
    }
}

/// Canonical content of a store, for comparisons in tests: local storage times excluded.
#[cfg(test)]
pub(crate) type Snapshot<P> = BTreeMap<P, (OwnerStatus, BTreeMap<(String, u64), Value>)>;

impl<P: PeerId> Store<P> {
    /// The record of `owner`.
    pub(crate) fn record(&self, owner: &P) -> Option<&OwnerRecord> {
        self.owners.get(owner)
    }

    /// Every owner record, in owner order.
    pub(crate) fn records(&self) -> &CompactMap<P, OwnerRecord> {
        &self.owners
    }

    /// Name index of registered keys.
    pub(crate) fn by_name(&self) -> &BTreeMap<String, CompactSet<(P, u64)>> {
        &self.by_name
    }

    /// Merges a status for `owner`. Returns `Some(previous)` when the stored status changed
    /// (`previous` is `None` for a new owner), `None` when `status` was not newer.
    pub(crate) fn merge_status(
        &mut self,
        owner: &P,
        status: OwnerStatus,
    ) -> Option<Option<OwnerStatus>> {
        match self.owners.get_mut(owner) {
            None => {
                self.owners
                    .insert(owner.clone(), OwnerRecord { status, entries: CompactMap::new() });
                Some(None)
            }
            Some(record) if status > record.status => {
                let before = record.status;
                record.status = status;
                Some(Some(before))
            }
            Some(_) => None,
        }
    }

    /// Merges one value (last writer wins by the [`Value`] order). Returns `Some(previous)`
    /// when the stored value changed, `None` when `value` was not newer. An owner without a
    /// record is created `Alive` at incarnation 0 (callers merge the status first).
    pub(crate) fn merge_entry(
        &mut self,
        owner: &P,
        name: &str,
        reg_id: u64,
        value: Value,
        mono_ms: u64,
    ) -> Option<Option<Value>> {
        let record = self.owners.get_or_insert_with(owner, || OwnerRecord {
            status: OwnerStatus::alive(0),
            entries: CompactMap::new(),
        });
        let key = (name.to_owned(), reg_id);
        let before = match record.entries.get(&key) {
            Some(stored) if value <= stored.value => return None,
            Some(stored) => Some(stored.value.clone()),
            None => None,
        };
        let was_registered = before.as_ref().is_some_and(Value::is_registered);
        let is_registered = value.is_registered();
        record.entries.insert(key, Stored { value, stored_mono_ms: mono_ms });
        if was_registered && !is_registered {
            self.unindex(name, owner, reg_id);
        } else if !was_registered && is_registered {
            self.by_name.entry(name.to_owned()).or_default().insert((owner.clone(), reg_id));
        }
        Some(before)
    }

    fn unindex(&mut self, name: &str, owner: &P, reg_id: u64) {
        if let Some(set) = self.by_name.get_mut(name) {
            set.remove(&(owner.clone(), reg_id));
            if set.is_empty() {
                self.by_name.remove(name);
            }
        }
    }

    /// Removes tombstones stored at or before `mono_ms - ttl_ms`. Returns how many.
    pub(crate) fn collect_tombstones(&mut self, mono_ms: u64, ttl_ms: u64) -> u64 {
        let mut collected = 0;
        for record in self.owners.values_mut() {
            record.entries.retain(|_, s| {
                let expired =
                    !s.value.is_registered() && s.stored_mono_ms.saturating_add(ttl_ms) <= mono_ms;
                collected += u64::from(expired);
                !expired
            });
        }
        collected
    }

    /// Full-state merge: every status and entry of `other` (the join of the two states).
    #[cfg(test)]
    pub(crate) fn merge_from(&mut self, other: &Self, mono_ms: u64) {
        for (owner, record) in &other.owners {
            self.merge_status(owner, record.status);
            for ((name, reg_id), stored) in &record.entries {
                self.merge_entry(owner, name, *reg_id, stored.value.clone(), mono_ms);
            }
        }
    }

    /// Canonical content (statuses and values, no local times).
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> Snapshot<P> {
        self.owners
            .iter()
            .map(|(owner, record)| {
                let entries =
                    record.entries.iter().map(|(k, s)| (k.clone(), s.value.clone())).collect();
                (owner.clone(), (record.status, entries))
            })
            .collect()
    }

    /// Checks that the name index matches the records (tests and debug assertions).
    #[cfg(test)]
    pub(crate) fn index_is_consistent(&self) -> bool {
        use std::collections::BTreeSet;
        let mut rebuilt: BTreeMap<String, BTreeSet<(P, u64)>> = BTreeMap::new();
        for (owner, record) in &self.owners {
            for ((name, reg_id), _) in record.registered() {
                rebuilt.entry(name.clone()).or_default().insert((owner.clone(), *reg_id));
            }
        }
        let current: BTreeMap<String, BTreeSet<(P, u64)>> = self
            .by_name
            .iter()
            .map(|(name, set)| (name.clone(), set.iter().cloned().collect()))
            .collect();
        rebuilt == current
    }
}
