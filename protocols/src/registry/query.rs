//! Read-only queries. Every result is in a deterministic order (name, then owner, then
//! registration id) and contains only visible entries: registered, owner not dead.

use bytes::Bytes;

use super::message::{OwnerState, OwnerStatus, Value};
use super::{State, Stats};
use crate::peer::PeerId;
use crate::wire::Wire;

/// One visible registration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceEntry<P> {
    /// Service name.
    pub name: String,
    /// Owner.
    pub node: P,
    /// Registration id.
    pub reg_id: u64,
    /// The owner's metadata.
    pub meta: Bytes,
}

/// Which service names a subscription wants events for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// Every name.
    All,
    /// Exactly this name.
    Exact(String),
    /// Names starting with this prefix (byte-wise).
    Prefix(String),
}

impl Filter {
    /// True when `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Exact(exact) => name == exact,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

impl<P: PeerId + Wire> State<P> {
    fn owner_visible(&self, owner: &P) -> bool {
        self.store.record(owner).is_some_and(|r| r.status.state != OwnerState::Dead)
    }

    /// Visible registrations of `name`, ordered by owner then registration id.
    pub fn lookup(&self, name: &str) -> Vec<ServiceEntry<P>> {
        let Some(keys) = self.store.by_name().get(name) else { return Vec::new() };
        keys.iter()
            .filter(|(owner, _)| self.owner_visible(owner))
            .filter_map(|(owner, reg_id)| {
                let record = self.store.record(owner)?;
                match &record.entries.get(&(name.to_owned(), *reg_id))?.value {
                    Value::Registered { meta, .. } => Some(ServiceEntry {
                        name: name.to_owned(),
                        node: owner.clone(),
                        reg_id: *reg_id,
                        meta: meta.clone(),
                    }),
                    Value::Tombstone { .. } => None,
                }
            })
            .collect()
    }

    /// One visible registration of `name`: a local one when there is any, else a remote one.
    /// `pick` chooses among the candidates (`pick % candidates`), so a caller passing a random
    /// number spreads load and one passing a fixed number gets a stable answer.
    pub fn whereis(&self, name: &str, pick: u64) -> Option<ServiceEntry<P>> {
        let all = self.lookup(name);
        let (local, remote): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|entry| entry.node == self.local);
        let candidates = if local.is_empty() { remote } else { local };
        if candidates.is_empty() {
            return None;
        }
        let index = (pick % candidates.len() as u64) as usize;
        candidates.into_iter().nth(index)
    }

    /// Distinct names with at least one visible registration, sorted.
    pub fn list_services(&self) -> Vec<String> {
        self.store
            .by_name()
            .iter()
            .filter(|(_, keys)| keys.iter().any(|(owner, _)| self.owner_visible(owner)))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Number of visible registrations.
    pub fn visible_count(&self) -> usize {
        self.store
            .records()
            .iter()
            .filter(|(_, r)| r.status.state != OwnerState::Dead)
            .map(|(_, r)| r.registered().count())
            .sum()
    }

    /// True when `(name, owner, reg_id)` is visible.
    pub fn is_visible(&self, name: &str, owner: &P, reg_id: u64) -> bool {
        self.owner_visible(owner)
            && self.store.record(owner).is_some_and(|r| {
                r.entries.get(&(name.to_owned(), reg_id)).is_some_and(|s| s.value.is_registered())
            })
    }

    /// This replica's view of `owner`'s liveness (`None` if it never heard of it).
    pub fn owner_status(&self, owner: &P) -> Option<OwnerStatus> {
        self.store.record(owner).map(|r| r.status)
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
