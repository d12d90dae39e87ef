//! The node-wide peer → owner-shard table.
//!
//! A pair of nodes shares one QUIC connection; the shard that holds it is the peer's owner.
//! Every shard reads this table to route a send to the owner (a send from another shard is
//! handed over in a batch). Entries change only when a connection is dialled, accepted,
//! replaced or closed — rare next to sends — so a mutex guards the map and an epoch counter
//! lets shards keep a local cache that they drop when the epoch moves.
//!
//! The duplicate rule lives here too, because deciding it needs the node-wide view: the two
//! nodes of a pair that dial each other at once must keep the same connection. Both keep
//! the one dialled by the lower name (byte order of the names), which each side can evaluate
//! without a further message. A HELLO carrying a different incarnation than the live
//! connection's means the peer restarted: the new connection replaces the old one at once
//! instead of waiting for the old one's idle timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use shoal_protocols::NodeName;

/// A connection slot on a shard (`generation` tells a reused slot from the old one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnRef {
    /// The owning shard.
    pub shard: usize,
    /// Slot index in the shard's connection table.
    pub slot: u32,
    /// Slot generation.
    pub generation: u32,
}

/// One peer's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The connection.
    pub conn: ConnRef,
    /// Whether this node dialled the connection.
    pub dialled_by_us: bool,
    /// The peer's incarnation once its HELLO or WELCOME arrived.
    pub incarnation: Option<u64>,
}

/// What to do with a connection whose peer just said HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloDecision {
    /// Keep it; if `replaces` is set, that older connection must be closed (`REPLACED`) and
    /// its queued messages moved to the new one.
    Accept {
        /// The connection the new one replaces.
        replaces: Option<ConnRef>,
    },
    /// Close it with `DUPLICATE`: the pair keeps the connection in the table.
    Reject,
}

/// The duplicate rule (pure, so both sides' views can be tested against each other).
pub fn decide_hello(
    existing: Option<&Entry>,
    me: &NodeName,
    peer: &NodeName,
    incarnation: u64,
) -> HelloDecision {
    let Some(entry) = existing else {
        return HelloDecision::Accept { replaces: None };
    };
    if entry.incarnation.is_some_and(|known| known != incarnation) {
        // The peer restarted: whatever we hold belongs to its previous life.
        return HelloDecision::Accept { replaces: Some(entry.conn) };
    }
    if !entry.dialled_by_us {
        // The peer dialled us before and dials again: it gave the old connection up.
        return HelloDecision::Accept { replaces: Some(entry.conn) };
    }
    // Both sides dialled: the connection dialled by the lower name wins on both sides.
    if me.as_str().as_bytes() < peer.as_str().as_bytes() {
        HelloDecision::Reject
    } else {
        HelloDecision::Accept { replaces: Some(entry.conn) }
    }
}

/// The table, shared by all shards of a node.
#[derive(Debug, Default)]
pub struct Directory {
    entries: Mutex<HashMap<NodeName, Entry>>,
    epoch: AtomicU64,
}

impl Directory {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the table for a decision that must see and change it atomically.
    pub fn lock(&self) -> DirectoryGuard<'_> {
        // A poisoned lock means a shard panicked while holding it; the map itself is always
        // left consistent (single inserts/removes), so keep serving.
        let map = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        DirectoryGuard { map, epoch: &self.epoch }
    }

    /// The shard that owns `peer`'s connection, if any.
    pub fn owner(&self, peer: &NodeName) -> Option<usize> {
        self.lock().get(peer).map(|entry| entry.conn.shard)
    }

    /// Changes whenever an entry is inserted or removed (for shard-local caches).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Number of peers with a connection.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether no peer has a connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The locked table.
#[derive(Debug)]
pub struct DirectoryGuard<'a> {
    map: MutexGuard<'a, HashMap<NodeName, Entry>>,
    epoch: &'a AtomicU64,
}

impl DirectoryGuard<'_> {
    /// The entry of `peer`.
    pub fn get(&self, peer: &NodeName) -> Option<&Entry> {
        self.map.get(peer)
    }

    /// Sets the entry of `peer`.
    pub fn insert(&mut self, peer: NodeName, entry: Entry) {
        let previous = self.map.insert(peer, entry);
        if previous.map(|old| old.conn) != Some(entry.conn) {
            self.epoch.fetch_add(1, Ordering::Release);
        }
    }

    /// Removes `peer`'s entry if it still names `conn` (a newer connection stays).
    pub fn remove_if(&mut self, peer: &NodeName, conn: ConnRef) -> bool {
        if self.map.get(peer).is_some_and(|entry| entry.conn == conn) {
            self.map.remove(peer);
            self.epoch.fetch_add(1, Ordering::Release);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> NodeName {
        NodeName::parse(text).expect("valid test name")
    }

    fn entry(dialled_by_us: bool, incarnation: Option<u64>) -> Entry {
        Entry { conn: ConnRef { shard: 0, slot: 1, generation: 1 }, dialled_by_us, incarnation }
    }

    #[test]
    fn first_connection_is_accepted() {
        let decision = decide_hello(None, &name("a@h"), &name("b@h"), 1);
        assert_eq!(decision, HelloDecision::Accept { replaces: None });
    }

    #[test]
    fn simultaneous_dials_keep_the_lower_names_connection_on_both_sides() {
        let (a, b) = (name("a@h"), name("b@h"));
        // On a: its own dial is pending; b's dial arrives. a is lower, so a's dial wins.
        let on_a = decide_hello(Some(&entry(true, None)), &a, &b, 9);
        assert_eq!(on_a, HelloDecision::Reject);
        // On b: its own dial is pending; a's dial arrives and wins, replacing b's dial.
        let on_b = decide_hello(Some(&entry(true, None)), &b, &a, 7);
        assert!(matches!(on_b, HelloDecision::Accept { replaces: Some(_) }));
        // Same when a's dial had already been welcomed on a's side.
        let on_a_ready = decide_hello(Some(&entry(true, Some(9))), &a, &b, 9);
        assert_eq!(on_a_ready, HelloDecision::Reject);
    }

    #[test]
    fn restarted_peer_replaces_the_stale_connection() {
        let decision = decide_hello(Some(&entry(true, Some(1))), &name("a@h"), &name("b@h"), 2);
        assert!(matches!(decision, HelloDecision::Accept { replaces: Some(_) }));
    }

    #[test]
    fn peer_redialling_its_own_connection_replaces_it() {
        let decision = decide_hello(Some(&entry(false, Some(1))), &name("a@h"), &name("b@h"), 1);
        assert!(matches!(decision, HelloDecision::Accept { replaces: Some(_) }));
    }

    #[test]
    fn remove_if_keeps_a_newer_connection_and_epoch_moves() {
        let dir = Directory::new();
        let epoch0 = dir.epoch();
        let old = ConnRef { shard: 0, slot: 1, generation: 1 };
        let new = ConnRef { shard: 1, slot: 1, generation: 1 };
        let mut guard = dir.lock();
        guard.insert(name("b@h"), Entry { conn: old, dialled_by_us: true, incarnation: None });
        guard.insert(name("b@h"), Entry { conn: new, dialled_by_us: false, incarnation: None });
        assert!(!guard.remove_if(&name("b@h"), old));
        drop(guard);
        assert_eq!(dir.owner(&name("b@h")), Some(1));
        assert!(dir.epoch() > epoch0);
    }
}
