//! The passive view: a bounded cache of spare peers with failure bookkeeping.
//!
//! Every timestamp here is on the *local* monotonic clock. Nothing about an entry's health is
//! ever taken from another node (the reference system copied remote monotonic stamps around).

use crate::eq_mask;
use crate::rng::Rng;
use crate::PeerId;

/// One passive entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveEntry<P> {
    /// The peer.
    pub peer: P,
    /// Consecutive failed attempts to use this peer (link failure, dial failure, backstop).
    pub fail_count: u8,
    /// The peer is not promoted before this local monotonic time, in ms.
    pub backoff_until_ms: u64,
    /// Last time we learnt this peer exists (shuffle, join walk, former active link), in ms.
    pub refreshed_ms: u64,
}

/// Failure bookkeeping of one passive peer (the fields of [`PassiveEntry`] but the peer), in
/// 16 bytes: the failure count shares a word with the backoff deadline. With a separate byte
/// the record took 24 bytes (padding), and the end of every shuffle walk, which touches
/// records all over a full view, read 12 cache lines of them instead of 8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) refreshed_ms: u64,
    /// `backoff_until_ms` in the low [`Record::TIME_BITS`] bits, `fail_count` above.
    backoff_and_fails: u64,
}

impl Record {
    /// Bits of a backoff deadline: local monotonic times up to 2^56 ms (2.2 million years);
    /// a later deadline is kept as that maximum, i.e. still "not before the end of time".
    const TIME_BITS: u32 = 56;
    const TIME_MAX_MS: u64 = (1 << Self::TIME_BITS) - 1;

    fn new(refreshed_ms: u64) -> Self {
        Self { refreshed_ms, backoff_and_fails: 0 }
    }

    pub(crate) fn fail_count(&self) -> u8 {
        (self.backoff_and_fails >> Self::TIME_BITS) as u8
    }

    pub(crate) fn backoff_until_ms(&self) -> u64 {
        self.backoff_and_fails & Self::TIME_MAX_MS
    }

    fn set(&mut self, fail_count: u8, backoff_until_ms: u64) {
        self.backoff_and_fails =
            u64::from(fail_count) << Self::TIME_BITS | backoff_until_ms.min(Self::TIME_MAX_MS);
    }
}

/// Bounded passive view. Order is insertion order; lookups are linear (the view holds tens of
/// entries, so a scan beats any map in both time and memory). Peers and their records are
/// kept in two parallel vectors: every shuffle scans the peers once per integrated entry, and
/// a scan of 30 × 4-byte peers touches 2 cache lines where 30 × 24-byte entries touched 12
/// (`PassiveView::insert` was 12 % of a 20,000-node simulation).
#[derive(Clone, Debug)]
pub(crate) struct PassiveView<P> {
    peers: Vec<P>,
    /// `records[i]` belongs to `peers[i]`.
    records: Vec<Record>,
    len_max: usize,
}

impl<P: PeerId> PassiveView<P> {
    pub(crate) fn new(len_max: usize) -> Self {
        assert!(len_max > 0);
        Self { peers: Vec::new(), records: Vec::new(), len_max }
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Every entry with its record, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&P, &Record)> {
        self.peers.iter().zip(&self.records)
    }

    /// A copy of every entry, in order.
    pub(crate) fn entries(&self) -> Vec<PassiveEntry<P>> {
        self.iter().map(|(peer, r)| entry(peer, r)).collect()
    }

    pub(crate) fn contains(&self, peer: &P) -> bool {
        self.position(peer).is_some()
    }

    /// Bit i set where entry i is `peer` (views of at most 64 entries): a scan without early
    /// exit or branches. Testing each of a full view's 30 entries against a shuffle's 7
    /// listed peers with `contains`, then finding each incoming peer with an early-exit
    /// scan, were most of a shuffle's integration (mispredicted branches).
    fn mask_of(&self, peer: &P) -> u64 {
        eq_mask::equal_mask(&self.peers, peer)
    }

    fn position(&self, peer: &P) -> Option<usize> {
        if self.peers.len() > eq_mask::LEN_MAX {
            return self.peers.iter().position(|p| p == peer);
        }
        let mask = self.mask_of(peer);
        (mask != 0).then(|| mask.trailing_zeros() as usize)
    }

    fn swap_remove(&mut self, i: usize) -> PassiveEntry<P> {
        let peer = self.peers.swap_remove(i);
        let r = self.records.swap_remove(i);
        entry(&peer, &r)
    }

    /// Adds `peer` (or refreshes it if present, keeping its failure record). When full, evicts
    /// an entry listed in `prefer_evict` if one is present, otherwise a random entry.
    pub(crate) fn insert(&mut self, peer: P, now_ms: u64, prefer_evict: &[P], rng: &mut Rng) {
        self.insert_all([peer], now_ms, prefer_evict, rng);
    }

    /// Where the view's entries live, both lists whole as (start, bytes): prefetch hints for
    /// the simulator (integrating a shuffle reads a random record and the last one).
    pub(crate) fn heap_ranges(&self) -> [(*const u8, usize); 2] {
        [
            (self.peers.as_ptr().cast(), size_of_val(self.peers.as_slice())),
            (self.records.as_ptr().cast(), size_of_val(self.records.as_slice())),
        ]
    }

    /// [`PassiveView::insert`] of each of `peers` in turn. Which entries are listed in
    /// `prefer_evict` is worked out once, as one bit per position, instead of by a rescan of
    /// both lists for every eviction (that rescan was most of a shuffle's cost in
    /// simulation); views of more than 64 entries rescan.
    pub(crate) fn insert_all(
        &mut self,
        peers: impl IntoIterator<Item = P>,
        now_ms: u64,
        prefer_evict: &[P],
        rng: &mut Rng,
    ) {
        let listed = self.listed_mask(prefer_evict);
        self.insert_all_listed(peers, now_ms, prefer_evict, listed, rng);
    }

    /// [`PassiveView::insert_all`] preferring to evict `sample`, which
    /// [`PassiveView::sample_into`] just drew from this view (unchanged since) and whose
    /// positions it returned as `sampled`: the end of a shuffle walk, where searching the view
    /// for each sampled peer was a quarter of the integration's searches.
    pub(crate) fn insert_all_evicting_sample(
        &mut self,
        peers: impl IntoIterator<Item = P>,
        now_ms: u64,
        sample: &[P],
        sampled: u64,
        rng: &mut Rng,
    ) {
        let listed = self.masks_fit().then_some(sampled);
        debug_assert_eq!(
            listed,
            self.listed_mask(sample),
            "a sample's positions are those of its peers in the view"
        );
        self.insert_all_listed(peers, now_ms, sample, listed, rng);
    }

    /// Whether every search of this view fits one mask (its bound is at most
    /// [`eq_mask::LEN_MAX`]).
    fn masks_fit(&self) -> bool {
        self.len_max <= eq_mask::LEN_MAX
    }

    /// Bit i set where entry i is in `prefer_evict`; `None` for a view too large for masks.
    fn listed_mask(&self, prefer_evict: &[P]) -> Option<u64> {
        self.masks_fit()
            .then(|| prefer_evict.iter().fold(0, |bits, listed| bits | self.mask_of(listed)))
    }

    /// The insertions of [`PassiveView::insert_all`], with bit i of `listed` set where entry i
    /// is in `prefer_evict` (`None`: the view may be too large for a mask).
    fn insert_all_listed(
        &mut self,
        peers: impl IntoIterator<Item = P>,
        now_ms: u64,
        prefer_evict: &[P],
        listed: Option<u64>,
        rng: &mut Rng,
    ) {
        let Some(mut listed) = listed else {
            // A view too large for masks: plain scans.
            for peer in peers {
                if let Some(i) = self.position(&peer) {
                    self.records[i].refreshed_ms = now_ms;
                } else if self.peers.len() >= self.len_max {
                    let victim = self.peers.iter().position(|p| prefer_evict.contains(p));
                    let victim = victim.unwrap_or_else(|| rng.index(self.peers.len()));
                    self.replace(victim, peer, now_ms);
                } else {
                    self.peers.push(peer);
                    self.records.push(Record::new(now_ms));
                }
            }
            return;
        };
        debug_assert!(self.masks_fit());
        let prefer_evict = eq_mask::ShortList::new(prefer_evict);
        for peer in peers {
            let found = self.mask_of(&peer);
            if found != 0 {
                self.records[found.trailing_zeros() as usize].refreshed_ms = now_ms;
                continue;
            }
            let new_bit = u64::from(prefer_evict.contains(&peer));
            let len = self.peers.len();
            if len < self.len_max {
                listed |= new_bit << len;
                if len == self.peers.capacity() {
                    // Room for the whole view at once (at most 64 entries here): a view fills
                    // within its first shuffles, and growing both lists by doubling took six
                    // reallocations per node and left them at 32 entries for a bound of 30.
                    self.peers.reserve_exact(self.len_max - len);
                    self.records.reserve_exact(self.len_max - len);
                }
                self.peers.push(peer);
                self.records.push(Record::new(now_ms));
                continue;
            }
            // Full: the first listed entry in view order, else a random one, makes room.
            let victim =
                if listed != 0 { listed.trailing_zeros() as usize } else { rng.index(len) };
            self.replace(victim, peer, now_ms);
            // As in `replace`, the last entry's bit moves into the victim's place and the new
            // entry's bit is the last one (when the victim is the last entry, only the latter).
            let last = len - 1;
            let last_bit = (listed >> last) & 1;
            listed = (listed & !(1 << victim)) | last_bit << victim;
            listed = (listed & !(1 << last)) | new_bit << last;
        }
    }

    /// Evicts entry `victim` of a full view for `peer`: what `swap_remove(victim)` then a push
    /// would leave (the last entry takes the victim's place, the new one goes last), without
    /// changing the lengths.
    fn replace(&mut self, victim: usize, peer: P, now_ms: u64) {
        let last = self.peers.len() - 1;
        self.peers.swap(victim, last);
        self.peers[last] = peer;
        self.records[victim] = self.records[last];
        self.records[last] = Record::new(now_ms);
    }

    pub(crate) fn remove(&mut self, peer: &P) -> Option<PassiveEntry<P>> {
        self.position(peer).map(|i| self.swap_remove(i))
    }

    pub(crate) fn get(&self, peer: &P) -> Option<PassiveEntry<P>> {
        self.position(peer).map(|i| entry(&self.peers[i], &self.records[i]))
    }

    /// Records a failed attempt. Returns true if the entry was dropped for reaching
    /// `max_fail_count`.
    pub(crate) fn record_failure(
        &mut self,
        peer: &P,
        now_ms: u64,
        max_fail_count: u8,
        base_backoff_ms: u64,
        backoff_max_ms: u64,
    ) -> bool {
        let Some(i) = self.position(peer) else { return false };
        let record = &mut self.records[i];
        let fail_count = record.fail_count().saturating_add(1);
        if fail_count >= max_fail_count {
            self.swap_remove(i);
            return true;
        }
        let until_ms =
            now_ms.saturating_add(backoff_ms(fail_count, base_backoff_ms, backoff_max_ms));
        record.set(fail_count, until_ms);
        false
    }

    /// Pushes back a candidate that is alive but declined (no failure counted).
    pub(crate) fn defer(&mut self, peer: &P, until_ms: u64) {
        if let Some(i) = self.position(peer) {
            let record = &mut self.records[i];
            record.set(record.fail_count(), record.backoff_until_ms().max(until_ms));
        }
    }

    /// Drops entries not refreshed within `max_age_ms` and entries at the failure limit.
    /// Returns how many were dropped.
    pub(crate) fn cleanup(&mut self, now_ms: u64, max_age_ms: u64, max_fail_count: u8) -> usize {
        let before = self.peers.len();
        let keep = |r: &Record| {
            r.fail_count() < max_fail_count && now_ms.saturating_sub(r.refreshed_ms) <= max_age_ms
        };
        // The order of the survivors is kept, as `Vec::retain` would.
        let mut kept = 0;
        for i in 0..before {
            if keep(&self.records[i]) {
                self.peers.swap(kept, i);
                self.records.swap(kept, i);
                kept += 1;
            }
        }
        self.peers.truncate(kept);
        self.records.truncate(kept);
        before - kept
    }

    /// Appends a uniformly random sample of at most `count` peers, excluding `exclude`, to
    /// `out`. Returns the view positions sampled, one bit each, for views of at most 64
    /// entries (0 for larger ones): the end of a shuffle walk prefers to evict exactly the
    /// entries it sends away, and gets their positions here instead of searching the view for
    /// each of them.
    ///
    /// Positions are shuffled, not peers, and only as far as the sample reaches
    /// ([`Rng::partial_shuffle`]): a copy and a whole shuffle of a full view were a seventh of
    /// a simulated membership cycle.
    pub(crate) fn sample_into(
        &self,
        count: usize,
        exclude: &P,
        rng: &mut Rng,
        out: &mut Vec<P>,
    ) -> u64 {
        let len = self.peers.len();
        if len <= eq_mask::LEN_MAX {
            let mut order = IDENTITY;
            let order = &mut order[..len];
            // Peers are distinct: `exclude` is at most one position.
            let excluded = self.mask_of(exclude);
            let kept = if excluded == 0 {
                order
            } else {
                let at = excluded.trailing_zeros() as usize;
                order.copy_within(at + 1.., at);
                &mut order[..len - 1]
            };
            self.take_sample(kept, count, rng, out)
        } else {
            let mut order: Vec<u16> =
                (0..len as u16).filter(|i| self.peers[usize::from(*i)] != *exclude).collect();
            self.take_sample(&mut order, count, rng, out);
            0
        }
    }

    /// Appends the peers at `count` positions drawn from `order`; returns their bits (those
    /// below 64).
    fn take_sample<I: Copy + Into<usize>>(
        &self,
        order: &mut [I],
        count: usize,
        rng: &mut Rng,
        out: &mut Vec<P>,
    ) -> u64 {
        let count = count.min(order.len());
        rng.partial_shuffle(order, count);
        let mut taken = 0;
        for i in &order[..count] {
            let i: usize = (*i).into();
            out.push(self.peers[i].clone());
            taken |= 1u64.checked_shl(i as u32).unwrap_or(0);
        }
        taken
    }
}

/// View positions 0..64 in order, copied as the starting order of a sample.
const IDENTITY: [u8; eq_mask::LEN_MAX] = {
    let mut order = [0; eq_mask::LEN_MAX];
    let mut i = 0;
    while i < eq_mask::LEN_MAX {
        order[i] = i as u8;
        i += 1;
    }
    order
};

fn entry<P: Clone>(peer: &P, r: &Record) -> PassiveEntry<P> {
    PassiveEntry {
        peer: peer.clone(),
        fail_count: r.fail_count(),
        backoff_until_ms: r.backoff_until_ms(),
        refreshed_ms: r.refreshed_ms,
    }
}

/// Backoff after `fail_count` failures: `base · 2^fail_count`, capped.
pub(crate) fn backoff_ms(fail_count: u8, base_ms: u64, max_ms: u64) -> u64 {
    let factor = 1u64.checked_shl(u32::from(fail_count)).unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{any, prop, prop_assert_eq, proptest};

    use super::*;

    fn view(len_max: usize, initial: &[u32]) -> PassiveView<u32> {
        let mut view = PassiveView::new(len_max);
        let mut rng = Rng::from_seed(0);
        for (t, peer) in initial.iter().enumerate() {
            view.insert(*peer, t as u64, &[], &mut rng);
        }
        view
    }

    proptest! {
        /// The batched insert is the sequential one: same entries, same order, same records,
        /// same random draws (so a replayed simulation cannot tell them apart).
        #[test]
        fn insert_all_equals_inserting_one_by_one(
            len_max in prop::sample::select(vec![3usize, 8, 30, 64, 65]),
            initial in prop::collection::vec(0u32..120, 0..80),
            incoming in prop::collection::vec(0u32..120, 0..16),
            prefer_evict in prop::collection::vec(0u32..120, 0..12),
            seed in any::<u64>(),
        ) {
            let mut batched = view(len_max, &initial);
            let mut sequential = batched.clone();
            let (mut rng_b, mut rng_s) = (Rng::from_seed(seed), Rng::from_seed(seed));
            batched.insert_all(incoming.iter().copied(), 1_000, &prefer_evict, &mut rng_b);
            for peer in &incoming {
                sequential.insert(*peer, 1_000, &prefer_evict, &mut rng_s);
            }
            prop_assert_eq!(batched.entries(), sequential.entries());
            prop_assert_eq!(rng_b.next_u64(), rng_s.next_u64());
        }
    }

    #[test]
    fn a_record_keeps_its_count_and_deadline_in_16_bytes() {
        assert_eq!(size_of::<Record>(), 16);
        let mut r = Record::new(7);
        assert_eq!((r.fail_count(), r.backoff_until_ms(), r.refreshed_ms), (0, 0, 7));
        r.set(u8::MAX, Record::TIME_MAX_MS);
        assert_eq!((r.fail_count(), r.backoff_until_ms()), (u8::MAX, Record::TIME_MAX_MS));
        r.set(3, 1_767_225_600_000);
        assert_eq!((r.fail_count(), r.backoff_until_ms()), (3, 1_767_225_600_000));
        // A deadline past the representable range stays the latest one, count untouched.
        r.set(4, u64::MAX);
        assert_eq!((r.fail_count(), r.backoff_until_ms()), (4, Record::TIME_MAX_MS));
    }

    #[test]
    fn a_full_view_evicts_the_first_listed_entry_then_random_ones() {
        let mut v = view(4, &[10, 11, 12, 13]);
        let mut rng = Rng::from_seed(1);
        // 12 then 10 are listed: 10 comes first in view order, then 12 (moved by swap_remove).
        v.insert_all([20, 21], 5, &[12, 10], &mut rng);
        let peers: Vec<u32> = v.entries().iter().map(|e| e.peer).collect();
        assert_eq!(peers, vec![13, 11, 20, 21]);
        // Nothing listed is left: the next eviction is random, and the view stays full.
        v.insert_all([22], 6, &[12, 10], &mut rng);
        assert_eq!(v.len(), 4);
        assert!(v.contains(&22));
    }
}
