//! The passive view: a bounded cache of spare peers with failure bookkeeping.
//!
//! Every timestamp here is on the *local* monotonic clock. Nothing about an entry's health is
//! ever taken from another node (the reference system copied remote monotonic stamps around).

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

/// Bounded passive view. Order is insertion order; lookups are linear (the view holds tens of
/// entries, so a scan beats any map in both time and memory).
#[derive(Clone, Debug)]
pub(crate) struct PassiveView<P> {
    entries: Vec<PassiveEntry<P>>,
    len_max: usize,
}

impl<P: PeerId> PassiveView<P> {
    pub(crate) fn new(len_max: usize) -> Self {
        assert!(len_max > 0);
        Self { entries: Vec::new(), len_max }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn entries(&self) -> &[PassiveEntry<P>] {
        &self.entries
    }

    pub(crate) fn contains(&self, peer: &P) -> bool {
        self.position(peer).is_some()
    }

    fn position(&self, peer: &P) -> Option<usize> {
        self.entries.iter().position(|e| &e.peer == peer)
    }

    /// Adds `peer` (or refreshes it if present, keeping its failure record). When full, evicts
    /// an entry listed in `prefer_evict` if one is present, otherwise a random entry.
    pub(crate) fn insert(&mut self, peer: P, now_ms: u64, prefer_evict: &[P], rng: &mut Rng) {
        if let Some(i) = self.position(&peer) {
            self.entries[i].refreshed_ms = now_ms;
            return;
        }
        if self.entries.len() >= self.len_max {
            let preferred = self.entries.iter().position(|e| prefer_evict.contains(&e.peer));
            let victim = preferred.unwrap_or_else(|| rng.index(self.entries.len()));
            self.entries.swap_remove(victim);
        }
        self.entries.push(PassiveEntry {
            peer,
            fail_count: 0,
            backoff_until_ms: 0,
            refreshed_ms: now_ms,
        });
        debug_assert!(self.entries.len() <= self.len_max);
    }

    pub(crate) fn remove(&mut self, peer: &P) -> Option<PassiveEntry<P>> {
        self.position(peer).map(|i| self.entries.swap_remove(i))
    }

    pub(crate) fn get(&self, peer: &P) -> Option<&PassiveEntry<P>> {
        self.position(peer).map(|i| &self.entries[i])
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
        let entry = &mut self.entries[i];
        entry.fail_count = entry.fail_count.saturating_add(1);
        if entry.fail_count >= max_fail_count {
            self.entries.swap_remove(i);
            return true;
        }
        entry.backoff_until_ms =
            now_ms + backoff_ms(entry.fail_count, base_backoff_ms, backoff_max_ms);
        false
    }

    /// Pushes back a candidate that is alive but declined (no failure counted).
    pub(crate) fn defer(&mut self, peer: &P, until_ms: u64) {
        if let Some(i) = self.position(peer) {
            self.entries[i].backoff_until_ms = self.entries[i].backoff_until_ms.max(until_ms);
        }
    }

    /// Drops entries not refreshed within `max_age_ms` and entries at the failure limit.
    /// Returns how many were dropped.
    pub(crate) fn cleanup(&mut self, now_ms: u64, max_age_ms: u64, max_fail_count: u8) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| {
            e.fail_count < max_fail_count && now_ms.saturating_sub(e.refreshed_ms) <= max_age_ms
        });
        before - self.entries.len()
    }

    /// A uniformly random sample of at most `count` peers, excluding `exclude`.
    pub(crate) fn sample(&self, count: usize, exclude: &P, rng: &mut Rng) -> Vec<P> {
        let mut peers: Vec<P> =
            self.entries.iter().map(|e| e.peer.clone()).filter(|p| p != exclude).collect();
        rng.shuffle(&mut peers);
        peers.truncate(count);
        peers
    }
}

/// Backoff after `fail_count` failures: `base · 2^fail_count`, capped.
pub(crate) fn backoff_ms(fail_count: u8, base_ms: u64, max_ms: u64) -> u64 {
    let factor = 1u64.checked_shl(u32::from(fail_count)).unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}
