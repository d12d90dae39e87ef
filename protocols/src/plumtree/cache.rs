//! The message cache: every delivered broadcast, kept to answer GRAFT and to recognise
//! duplicates, bounded in length and in age.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};

use super::{MessageId, Tag};

/// One cached broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CachedMessage<P> {
    pub(super) tag: Tag,
    pub(super) payload: Bytes,
    /// Round at which we received it (0 for a local broadcast). Tree optimisation may lower
    /// it to the round a better announcer offered (see `State::optimise`).
    pub(super) round: u16,
    /// The neighbour it came from, or the node itself for a local broadcast (a node never
    /// receives from itself; `State::cached_parent` tells the two apart). Not an `Option`:
    /// with a 4-byte peer that keeps an entry at 64 bytes instead of 72, and a node caches
    /// every broadcast of the last TTL. Tree optimisation may replace it with the announcer
    /// that became our eager parent for it.
    pub(super) from: P,
    pub(super) received_ms: u64,
}

/// Growth step of the entry queue, as a fraction of its length (1/4: amortised O(1) inserts
/// while wasting at most a quarter; doubling left half of a 33-entry cache empty).
const GROWTH_DIVISOR: usize = 4;
/// Smallest growth step of the entry queue, in entries.
const GROWTH_MIN: usize = 4;

/// Entries in arrival order plus a hash index of their positions.
///
/// Entries are only ever removed from the front (oldest first, by length bound or by age), and
/// `now_ms` is monotonic, so `entries` is sorted by `received_ms`. Each entry has a sequence
/// number, `front_seq` plus its position; `index` holds exactly the sequence numbers of
/// `entries`, hashed by their ids. Memory is one queue slot (≈ 80 B) plus ≈ 5–10 B of index
/// per message, against ≈ 150 B for an ordered map plus an expiry queue: a node holds the
/// cache of every broadcast of the last TTL, and a 100,000-node simulation holds 100,000 of
/// them.
#[derive(Debug)]
pub(super) struct MessageCache<P> {
    entries: VecDeque<(MessageId, CachedMessage<P>)>,
    /// Sequence number of `entries[0]` (wrapping; `len_max` < 2^32 keeps them distinct).
    front_seq: u32,
    index: HashTable<u32>,
    /// Keyed hash of ids: ids come from the network, so an unkeyed hash could be flooded with
    /// colliding ids. Never iterated, so the random key cannot change any output. hashbrown's
    /// default (foldhash, seeded at random per process and instance) rather than the
    /// standard library's SipHash-1-3: a 16-byte id hashes in a few multiplies instead of
    /// ≈ 100 instructions, and a broadcast hashes each id several times per node (SipHash was
    /// a tenth of a 10,000-node broadcast run's instructions).
    hasher: DefaultHashBuilder,
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
        assert!(u32::try_from(len_max).is_ok(), "message cache bound must fit sequence numbers");
        Self {
            entries: VecDeque::new(),
            front_seq: 0,
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            len_max,
            bytes_max,
            bytes: 0,
            ttl_ms,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where the newest entry is (a prefetch hint; null when the cache is empty).
    pub(super) fn newest(&self) -> *const u8 {
        self.entries.back().map_or(std::ptr::null(), |e| std::ptr::from_ref(e).cast())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn contains(&self, id: &MessageId) -> bool {
        self.position(id).is_some()
    }

    pub(super) fn get(&self, id: &MessageId) -> Option<&CachedMessage<P>> {
        self.position(id).map(|i| &self.entries[i].1)
    }

    pub(super) fn get_mut(&mut self, id: &MessageId) -> Option<&mut CachedMessage<P>> {
        self.position(id).map(|i| &mut self.entries[i].1)
    }

    fn position(&self, id: &MessageId) -> Option<usize> {
        self.position_hashed(self.hasher.hash_one(id), id)
    }

    /// [`MessageCache::position`] with the id's hash already computed (a keyed hash costs
    /// about as much as the probe it feeds).
    fn position_hashed(&self, hash: u64, id: &MessageId) -> Option<usize> {
        let (entries, front) = (&self.entries, self.front_seq);
        let seq =
            self.index.find(hash, |seq| entries[seq.wrapping_sub(front) as usize].0 == *id)?;
        Some(seq.wrapping_sub(front) as usize)
    }

    /// Inserts a message not yet cached, evicting the oldest entries first when full. Returns
    /// how many were evicted for room.
    pub(super) fn insert(&mut self, id: MessageId, message: CachedMessage<P>) -> usize {
        let hash = self.hasher.hash_one(id);
        assert!(self.position_hashed(hash, &id).is_none(), "cache insert of an id already cached");
        if let Some((_, newest)) = self.entries.back() {
            assert!(newest.received_ms <= message.received_ms, "now_ms went backwards");
        }
        let mut evicted = 0;
        // By count, and by payload bytes: a peer may send 64 KiB payloads, and 8,192 of those
        // would be 512 MiB.
        while self.entries.len() >= self.len_max
            || (!self.entries.is_empty() && self.bytes + message.payload.len() > self.bytes_max)
        {
            self.pop_oldest();
            evicted += 1;
        }
        self.bytes += message.payload.len();
        if self.entries.len() == self.entries.capacity() {
            let step = (self.entries.len() / GROWTH_DIVISOR).max(GROWTH_MIN);
            self.entries.reserve_exact(step.min(self.len_max - self.entries.len()));
        }
        // `len < len_max <= u32::MAX`, checked in `new`.
        let seq = self.front_seq.wrapping_add(self.entries.len() as u32);
        self.entries.push_back((id, message));
        let (entries, front, hasher) = (&self.entries, self.front_seq, &self.hasher);
        self.index.insert_unique(hash, seq, |seq| {
            hasher.hash_one(entries[seq.wrapping_sub(front) as usize].0)
        });
        debug_assert_eq!(self.index.len(), self.entries.len());
        evicted
    }

    /// Removes every message received at least `ttl_ms` before `now_ms`. Returns how many.
    pub(super) fn expire(&mut self, now_ms: u64) -> usize {
        let mut expired = 0;
        while let Some((_, oldest)) = self.entries.front() {
            if now_ms.saturating_sub(oldest.received_ms) < self.ttl_ms {
                break;
            }
            self.pop_oldest();
            expired += 1;
        }
        if expired > 0 {
            self.release_spare();
        }
        expired
    }

    fn pop_oldest(&mut self) {
        // Invariant: `index` holds exactly the sequence numbers of `entries`, so the front
        // entry's is present.
        let (id, removed) = self.entries.pop_front().expect("pop_oldest on an empty cache");
        let front = self.front_seq;
        let Ok(slot) = self.index.find_entry(self.hasher.hash_one(id), |seq| *seq == front) else {
            panic!("cache index out of sync with its entries");
        };
        slot.remove();
        self.front_seq = front.wrapping_add(1);
        self.bytes -= removed.payload.len();
    }

    /// Gives back the memory of expired entries (a burst must not stay resident for good).
    fn release_spare(&mut self) {
        let len = self.entries.len();
        if self.entries.capacity() > 2 * len + GROWTH_MIN {
            self.entries.shrink_to(len + len / GROWTH_DIVISOR);
            let (entries, front, hasher) = (&self.entries, self.front_seq, &self.hasher);
            self.index
                .shrink_to(len, |seq| hasher.hash_one(entries[seq.wrapping_sub(front) as usize].0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(received_ms: u64) -> CachedMessage<u32> {
        CachedMessage { tag: Tag(256), payload: Bytes::new(), round: 1, from: 0, received_ms }
    }

    #[test]
    fn index_follows_eviction_and_expiry() {
        let mut cache = MessageCache::new(50, 1 << 20, 1_000);
        for i in 0..1_000u64 {
            cache.insert(MessageId(u128::from(i) << 64 | 7), message(i));
            let oldest_gone = i.saturating_sub(50);
            assert_eq!(cache.len(), (i + 1).min(50) as usize);
            assert!(cache.contains(&MessageId(u128::from(i) << 64 | 7)));
            if i >= 50 {
                assert!(!cache.contains(&MessageId(u128::from(oldest_gone) << 64 | 7)));
                assert!(cache.contains(&MessageId(u128::from(oldest_gone + 1) << 64 | 7)));
            }
        }
        assert_eq!(cache.get(&MessageId(999 << 64 | 7)).map(|m| m.received_ms), Some(999));
        // Everything received at or before 1,990 - 1,000 expires.
        assert_eq!(cache.expire(1_990), 41);
        assert_eq!(cache.len(), 9);
        assert!(cache.entries.capacity() < 50, "{}", cache.entries.capacity());
        for i in 991..1_000u64 {
            assert!(cache.contains(&MessageId(u128::from(i) << 64 | 7)));
        }
        assert_eq!(cache.expire(10_000), 9);
        assert!(cache.is_empty());
    }

    /// The in-memory layouts the 100,000-node simulation's memory figure relies on
    /// (docs/PERFORMANCE.md): 8-byte-aligned ids, 24-byte announcements and Graft timers,
    /// 64-byte cache entries with a 4-byte peer.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn layouts_stay_compact() {
        use std::mem::{align_of, size_of};
        assert_eq!(align_of::<MessageId>(), 8);
        assert_eq!(size_of::<super::super::IHave>(), 24);
        assert_eq!(size_of::<super::super::Timer>(), 24);
        assert_eq!(size_of::<(MessageId, CachedMessage<u32>)>(), 64);
    }
}
