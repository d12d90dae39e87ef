//! Announcements waiting to be sent to lazy peers as batched IHAVE messages.

use std::collections::BTreeMap;

use super::IHave;

/// Per-peer queues of announcements, each shorter than `len_max` between calls.
///
/// A BTreeMap so that a flush visits peers in their `Ord` order, never in hash order.
#[derive(Debug)]
pub(super) struct LazyQueue<P> {
    queues: BTreeMap<P, Vec<IHave>>,
    len_max: usize,
}

impl<P: Ord + Clone> LazyQueue<P> {
    pub(super) fn new(len_max: usize) -> Self {
        assert!(len_max > 0, "an IHAVE batch holds at least one announcement");
        Self { queues: BTreeMap::new(), len_max }
    }

    /// Queues one announcement. When the peer's queue reaches `len_max` it is removed and
    /// returned, to be sent at once: memory stays bounded and nothing is ever dropped.
    pub(super) fn push(&mut self, peer: P, ihave: IHave) -> Option<Vec<IHave>> {
        let queue = self.queues.entry(peer.clone()).or_default();
        queue.push(ihave);
        if queue.len() >= self.len_max {
            self.queues.remove(&peer)
        } else {
            None
        }
    }

    /// Removes and returns every queue (none is ever empty), in peer order.
    pub(super) fn take_all(&mut self) -> BTreeMap<P, Vec<IHave>> {
        std::mem::take(&mut self.queues)
    }

    /// Forgets the announcements queued for a peer that went down.
    pub(super) fn remove_peer(&mut self, peer: &P) {
        self.queues.remove(peer);
    }

    /// Peers with queued announcements, and the queue lengths (for invariant checks).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&P, usize)> {
        self.queues.iter().map(|(p, q)| (p, q.len()))
    }
}
