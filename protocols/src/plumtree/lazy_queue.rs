//! Announcements waiting to be sent to lazy peers as batched IHAVE messages.

use super::IHave;

/// Per-peer queues of announcements, each shorter than `len_max` between calls.
///
/// A vector sorted by peer, so that a flush visits peers in their `Ord` order, never in hash
/// order. A node has a handful of lazy peers (at most its active view), so the linear moves of
/// an insert are cheap, and one vector costs a slot per peer where a `BTreeMap` allocated a
/// whole node (11 slots) for the first: this queue is non-empty at every node while
/// broadcasts overlap.
#[derive(Debug)]
pub(super) struct LazyQueue<P> {
    queues: Vec<(P, Vec<IHave>)>,
    len_max: usize,
}

impl<P: Ord + Clone> LazyQueue<P> {
    /// Where the per-peer queues live (a prefetch hint).
    pub(super) fn heap(&self) -> *const u8 {
        self.queues.as_ptr().cast()
    }

    pub(super) fn new(len_max: usize) -> Self {
        assert!(len_max > 0, "an IHAVE batch holds at least one announcement");
        Self { queues: Vec::new(), len_max }
    }

    /// Queues one announcement. When the peer's queue reaches `len_max` it is removed and
    /// returned, to be sent at once: memory stays bounded and nothing is ever dropped.
    pub(super) fn push(&mut self, peer: P, ihave: IHave) -> Option<Vec<IHave>> {
        let index = match self.queues.binary_search_by(|(p, _)| p.cmp(&peer)) {
            Ok(index) => index,
            Err(index) => {
                self.queues.insert(index, (peer, Vec::new()));
                index
            }
        };
        let queue = &mut self.queues[index].1;
        queue.push(ihave);
        if queue.len() >= self.len_max {
            Some(self.queues.remove(index).1)
        } else {
            None
        }
    }

    /// Removes and returns every queue (none is ever empty), in peer order.
    pub(super) fn take_all(&mut self) -> Vec<(P, Vec<IHave>)> {
        std::mem::take(&mut self.queues)
    }

    /// Forgets the announcements queued for a peer that went down.
    pub(super) fn remove_peer(&mut self, peer: &P) {
        if let Ok(index) = self.queues.binary_search_by(|(p, _)| p.cmp(peer)) {
            self.queues.remove(index);
        }
    }

    /// Peers with queued announcements, and the queue lengths (for invariant checks).
    pub(super) fn iter(&self) -> impl Iterator<Item = (&P, usize)> {
        self.queues.iter().map(|(p, q)| (p, q.len()))
    }
}
