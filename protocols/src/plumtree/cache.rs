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

/// Most entries a cache holds while it finds ids by scanning their fingerprints; past it, a
/// hash index takes over. 64 is the longest list one [`eq_mask`](crate::eq_mask) call covers;
/// a simulated 100,000-node broadcast run holds ≈ 33 per node.
const LINEAR_MAX: usize = crate::eq_mask::LEN_MAX;
/// Entries below which an indexed cache goes back to scanning (when expiring): half of
/// [`LINEAR_MAX`], so that a cache hovering at the limit does not rebuild on every message.
const LINEAR_AGAIN: usize = LINEAR_MAX / 2;

/// Entries in arrival order plus a way to find them by id.
///
/// Entries are only ever removed from the front (oldest first, by length bound or by age), and
/// `now_ms` is monotonic, so `entries` is sorted by `received_ms`.
///
/// A small cache (at most [`LINEAR_MAX`] entries, the usual case) keeps a 4-byte fingerprint
/// of each id in `prints`, in entry order: a lookup compares them all at once and checks the
/// full id of the matches. ≈ 4 B per message, one or two cache lines per lookup; the hash
/// index it replaces for small caches took ≈ 10 B per message and three cache misses per
/// lookup (control bytes, slot, entry), 13–16 % of a broadcast-heavy simulation. Fingerprints
/// are not keyed: ids crafted to collide cost at most [`LINEAR_MAX`] id comparisons per
/// lookup.
///
/// A large cache keeps a hash index instead: each entry has a sequence number, `front_seq`
/// plus its position, and `index` holds exactly the sequence numbers of `entries`, hashed by
/// their ids. Memory is one queue slot (64 B) plus ≈ 5–10 B of index per message.
#[derive(Debug)]
pub(super) struct MessageCache<P> {
    entries: VecDeque<(MessageId, CachedMessage<P>)>,
    /// Unless `indexed`: `fingerprint` of each entry's id, in entry order.
    prints: Vec<u32>,
    /// Sequence number of `entries[0]` (wrapping; `len_max` < 2^32 keeps them distinct).
    front_seq: u32,
    /// Whether `index` is in use (more than [`LINEAR_AGAIN`] entries, having passed
    /// [`LINEAR_MAX`]); empty otherwise.
    indexed: bool,
    index: HashTable<u32>,
    /// Keyed hash of ids: ids come from the network, so an unkeyed hash could be flooded with
    /// colliding ids. Never iterated, so the random key cannot change any output. hashbrown's
    /// default (foldhash, seeded at random per process and instance) rather than the
    /// standard library's SipHash-1-3: a 16-byte id hashes in a few multiplies instead of
    /// ≈ 100 instructions.
    hasher: DefaultHashBuilder,
    len_max: usize,
    /// Bound of the payload bytes held (`message_cache_bytes_max`).
    bytes_max: usize,
    /// Payload bytes held now.
    bytes: usize,
    ttl_ms: u64,
}

/// Room to add to a full list of `len` entries bounded by `len_max` (callers grow a list only
/// below its bound, so `len < len_max`).
fn growth_step(len: usize, len_max: usize) -> usize {
    (len / GROWTH_DIVISOR).max(GROWTH_MIN).min(len_max - len)
}

/// The 4 bytes of an id a small cache compares first (both halves folded in: the simulator's
/// ids differ only in their low half, the engine's in both).
fn fingerprint(id: &MessageId) -> u32 {
    let folded = (id.0 as u64) ^ ((id.0 >> 64) as u64);
    (folded ^ (folded >> 32)) as u32
}

impl<P> MessageCache<P> {
    pub(super) fn new(len_max: usize, bytes_max: usize, ttl_ms: u64) -> Self {
        assert!(len_max > 0, "message cache needs room for at least one message");
        assert!(u32::try_from(len_max).is_ok(), "message cache bound must fit sequence numbers");
        Self {
            entries: VecDeque::new(),
            prints: Vec::new(),
            front_seq: 0,
            indexed: false,
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

    /// What a lookup reads first (a prefetch hint; null when the cache is empty): the
    /// fingerprints of a small cache, the newest entry of a large one.
    pub(super) fn lookup_hint(&self) -> *const u8 {
        if self.entries.is_empty() {
            std::ptr::null()
        } else if self.indexed {
            self.entries.back().map_or(std::ptr::null(), |e| std::ptr::from_ref(e).cast())
        } else {
            self.prints.as_ptr().cast()
        }
    }

    /// The entries received at or after `since_ms`, newest first.
    pub(super) fn newest_since(
        &self,
        since_ms: u64,
    ) -> impl Iterator<Item = (&MessageId, &CachedMessage<P>)> {
        self.entries
            .iter()
            .rev()
            .take_while(move |(_, cached)| cached.received_ms >= since_ms)
            .map(|(id, cached)| (id, cached))
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
        if self.indexed {
            return self.position_hashed(self.hasher.hash_one(id), id);
        }
        // Invariant: not indexed, so at most `LINEAR_MAX` (64) entries, one print each.
        debug_assert_eq!(self.prints.len(), self.entries.len());
        let mut matches = crate::eq_mask::equal_mask(&self.prints, &fingerprint(id));
        while matches != 0 {
            let i = matches.trailing_zeros() as usize;
            if self.entries[i].0 == *id {
                return Some(i);
            }
            matches &= matches - 1;
        }
        None
    }

    /// [`MessageCache::position`] in the hash index, with the id's hash already computed.
    fn position_hashed(&self, hash: u64, id: &MessageId) -> Option<usize> {
        let (entries, front) = (&self.entries, self.front_seq);
        let seq =
            self.index.find(hash, |seq| entries[seq.wrapping_sub(front) as usize].0 == *id)?;
        Some(seq.wrapping_sub(front) as usize)
    }

    /// Inserts a message not yet cached, evicting the oldest entries first when full. Returns
    /// how many were evicted for room.
    pub(super) fn insert(&mut self, id: MessageId, message: CachedMessage<P>) -> usize {
        // An indexed cache hashes the id once, for the presence check and the insert.
        let hash = self.indexed.then(|| self.hasher.hash_one(id));
        let present = match hash {
            Some(hash) => self.position_hashed(hash, &id),
            None => self.position(&id),
        };
        assert!(present.is_none(), "cache insert of an id already cached");
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
            self.entries.reserve_exact(growth_step(self.entries.len(), self.len_max));
        }
        if !self.indexed && self.entries.len() == LINEAR_MAX {
            self.build_index();
        }
        // `len < len_max <= u32::MAX`, checked in `new`.
        let seq = self.front_seq.wrapping_add(self.entries.len() as u32);
        self.entries.push_back((id, message));
        if self.indexed {
            let (entries, front, hasher) = (&self.entries, self.front_seq, &self.hasher);
            let hash = hash.unwrap_or_else(|| hasher.hash_one(id));
            self.index.insert_unique(hash, seq, |seq| {
                hasher.hash_one(entries[seq.wrapping_sub(front) as usize].0)
            });
            debug_assert_eq!(self.index.len(), self.entries.len());
        } else {
            if self.prints.len() == self.prints.capacity() {
                // The same growth as the entries, never past `LINEAR_MAX`.
                self.prints.reserve_exact(growth_step(self.prints.len(), LINEAR_MAX));
            }
            self.prints.push(fingerprint(&id));
        }
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
            if self.indexed && self.entries.len() < LINEAR_AGAIN {
                self.drop_index();
            }
            self.release_spare();
        }
        expired
    }

    fn pop_oldest(&mut self) {
        // Invariant: `index` holds exactly the sequence numbers of `entries` (or `prints` one
        // fingerprint per entry), so the front entry's is present.
        let (id, removed) = self.entries.pop_front().expect("pop_oldest on an empty cache");
        let front = self.front_seq;
        if self.indexed {
            let Ok(slot) = self.index.find_entry(self.hasher.hash_one(id), |seq| *seq == front)
            else {
                panic!("cache index out of sync with its entries");
            };
            slot.remove();
        } else {
            // At most `LINEAR_MAX` (64) prints move down: 252 bytes.
            self.prints.remove(0);
        }
        self.front_seq = front.wrapping_add(1);
        self.bytes -= removed.payload.len();
    }

    /// Switches from fingerprints to the hash index (the cache grows past `LINEAR_MAX`).
    fn build_index(&mut self) {
        let (entries, front, hasher) = (&self.entries, self.front_seq, &self.hasher);
        let mut index = HashTable::with_capacity(entries.len() + 1);
        for (i, (id, _)) in entries.iter().enumerate() {
            let seq = front.wrapping_add(i as u32);
            index.insert_unique(hasher.hash_one(id), seq, |seq| {
                hasher.hash_one(entries[seq.wrapping_sub(front) as usize].0)
            });
        }
        self.index = index;
        self.prints = Vec::new();
        self.indexed = true;
    }

    /// Switches from the hash index back to fingerprints (expiry shrank the cache below
    /// `LINEAR_AGAIN`).
    fn drop_index(&mut self) {
        self.index = HashTable::new();
        self.prints = self.entries.iter().map(|(id, _)| fingerprint(id)).collect();
        self.indexed = false;
    }

    /// Gives back the memory of expired entries (a burst must not stay resident for good).
    fn release_spare(&mut self) {
        let len = self.entries.len();
        if self.entries.capacity() > 2 * len + GROWTH_MIN {
            self.entries.shrink_to(len + len / GROWTH_DIVISOR);
            if self.indexed {
                let (entries, front, hasher) = (&self.entries, self.front_seq, &self.hasher);
                self.index.shrink_to(len, |seq| {
                    hasher.hash_one(entries[seq.wrapping_sub(front) as usize].0)
                });
            } else {
                self.prints.shrink_to(len + len / GROWTH_DIVISOR);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert_eq, proptest};

    use super::*;

    fn message(received_ms: u64) -> CachedMessage<u32> {
        CachedMessage { tag: Tag(256), payload: Bytes::new(), round: 1, from: 0, received_ms }
    }

    proptest! {
        /// The cache answers as a plain list of (id, time) would, through the switch from
        /// fingerprints to the hash index and back (up to 100 entries; the unit test below
        /// checks that the switch happens): random inserts (ids from a small range,
        /// half of them with one shared fingerprint, so matches that are not the id are
        /// common), expiries and lookups of present and absent ids.
        #[test]
        fn lookups_equal_a_plain_list_in_both_modes(
            ops in prop::collection::vec((0u8..4, 0u64..200, any::<bool>()), 1..600),
        ) {
            const TTL_MS: u64 = 150;
            let id = |n: u64, colliding: bool| {
                // `n << 64 | n` folds to fingerprint 0 for every n.
                MessageId(if colliding { u128::from(n) << 64 | u128::from(n) } else { u128::from(n) })
            };
            let mut cache = MessageCache::new(100, 1 << 20, TTL_MS);
            let mut model: VecDeque<(MessageId, u64)> = VecDeque::new();
            let mut now_ms = 0;
            for (op, n, colliding) in ops {
                let id = id(n, colliding);
                match op {
                    0 | 1 => {
                        now_ms += 1;
                        if model.iter().all(|(m, _)| *m != id) {
                            cache.insert(id, message(now_ms));
                            if model.len() == 100 {
                                model.pop_front();
                            }
                            model.push_back((id, now_ms));
                        }
                    }
                    2 => {
                        now_ms += n / 4;
                        let expired = cache.expire(now_ms);
                        let before = model.len();
                        model.retain(|(_, t)| now_ms - t < TTL_MS);
                        prop_assert_eq!(expired, before - model.len());
                    }
                    _ => {}
                }
                prop_assert_eq!(cache.len(), model.len());
                let want = model.iter().find(|(m, _)| *m == id).map(|(_, t)| *t);
                prop_assert_eq!(cache.get(&id).map(|m| m.received_ms), want);
                for (m, t) in model.iter().step_by(7) {
                    prop_assert_eq!(cache.get(m).map(|c| c.received_ms), Some(*t));
                }
            }
        }
    }

    #[test]
    fn a_growing_cache_switches_to_the_index_and_back() {
        let mut cache = MessageCache::new(1_000, 1 << 20, 1_000);
        for i in 0..(LINEAR_MAX as u64 + 10) {
            assert_eq!(cache.indexed, i > LINEAR_MAX as u64, "before insert {i}");
            cache.insert(MessageId(u128::from(i)), message(i));
        }
        assert!(cache.indexed && cache.prints.is_empty());
        for i in 0..(LINEAR_MAX as u64 + 10) {
            assert_eq!(cache.get(&MessageId(u128::from(i))).map(|m| m.received_ms), Some(i));
        }
        // Expiring down to fewer than `LINEAR_AGAIN` entries goes back to fingerprints.
        cache.expire(1_000 + LINEAR_MAX as u64 + 10 - 6);
        assert_eq!(cache.len(), 5);
        assert!(!cache.indexed);
        assert_eq!(cache.prints.len(), 5);
        assert!(cache.contains(&MessageId(u128::from(LINEAR_MAX as u64 + 9))));
        assert!(!cache.contains(&MessageId(u128::from(LINEAR_MAX as u64 + 4))));
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
