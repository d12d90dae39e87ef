//! The message cache: every delivered broadcast, kept to answer GRAFT and to recognise
//! duplicates, bounded in length and in age.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::{MessageId, Tag};

/// One cached broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CachedMessage<P> {
    pub(super) tag: Tag,
    pub(super) payload: Bytes,
    /// Round at which we received it (0 for a local broadcast). Tree optimisation may lower
    /// it to the round a better announcer offered (see `State::optimise`).
    pub(super) round: u16,
    /// The neighbour it came from (`None` for a local broadcast). Tree optimisation may
    /// replace it with the announcer that became our eager parent for it.
    pub(super) from: Option<P>,
    pub(super) received_ms: u64,
}

/// Ordered map plus an expiry queue.
///
/// Entries are only ever removed from the front of `expiry` (oldest first, by length bound or
/// by age), and `now_ms` is monotonic, so `expiry` is sorted by `received_ms` and holds exactly
/// the keys of `messages`.
#[derive(Debug)]
pub(super) struct MessageCache<P> {
    messages: BTreeMap<MessageId, CachedMessage<P>>,
    expiry: VecDeque<(u64, MessageId)>,
    len_max: usize,
    /// Bound of the payload bytes held (`message_cache_bytes_max`).
    bytes_max: usize,
    /// Payload bytes held now.
    bytes: usize,
    ttl_ms: u64,
}

impl<P> MessageCache<P> {
    pub(super) fn new(len_max: usize, bytes_max: usize, ttl_ms: u64) -> Self {
        assert!(len_max > 0, "message cache needs room for at least one message");
        Self {
            messages: BTreeMap::new(),
            expiry: VecDeque::new(),
            len_max,
            bytes_max,
            bytes: 0,
            ttl_ms,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub(super) fn contains(&self, id: &MessageId) -> bool {
        self.messages.contains_key(id)
    }

    pub(super) fn get(&self, id: &MessageId) -> Option<&CachedMessage<P>> {
        self.messages.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &MessageId) -> Option<&mut CachedMessage<P>> {
        self.messages.get_mut(id)
    }

    /// Inserts a message not yet cached, evicting the oldest entries first when full. Returns
    /// how many were evicted for room.
    pub(super) fn insert(&mut self, id: MessageId, message: CachedMessage<P>) -> usize {
        assert!(!self.messages.contains_key(&id), "cache insert of an id already cached");
        if let Some((newest_ms, _)) = self.expiry.back() {
            assert!(*newest_ms <= message.received_ms, "now_ms went backwards");
        }
        let mut evicted = 0;
        // By count, and by payload bytes: a peer may send 64 KiB payloads, and 8,192 of those
        // would be 512 MiB.
        while self.messages.len() >= self.len_max
            || (!self.messages.is_empty() && self.bytes + message.payload.len() > self.bytes_max)
        {
            self.pop_oldest();
            evicted += 1;
        }
        self.bytes += message.payload.len();
        self.expiry.push_back((message.received_ms, id));
        self.messages.insert(id, message);
        debug_assert_eq!(self.expiry.len(), self.messages.len());
        evicted
    }

    /// Removes every message received at least `ttl_ms` before `now_ms`. Returns how many.
    pub(super) fn expire(&mut self, now_ms: u64) -> usize {
        let mut expired = 0;
        while let Some(&(received_ms, _)) = self.expiry.front() {
            if now_ms.saturating_sub(received_ms) < self.ttl_ms {
                break;
            }
            self.pop_oldest();
            expired += 1;
        }
        expired
    }

    fn pop_oldest(&mut self) {
        // Invariant: `expiry` holds exactly the keys of `messages`, so it is non-empty whenever
        // `messages` is, and its front is cached.
        let (_, id) = self.expiry.pop_front().expect("expiry queue in sync with the cache");
        let removed = self.messages.remove(&id).expect("expiry queue in sync with the cache");
        self.bytes -= removed.payload.len();
    }
}
