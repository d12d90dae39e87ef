//! Messages announced by IHAVE but not received yet, with the peers that announced them (the
//! paper's `missing` set).

use std::collections::{BTreeMap, VecDeque};

use super::MessageId;

/// One missing message.
#[derive(Debug)]
pub(super) struct Missing<P> {
    /// Announcers in arrival order with the round each offered; the oldest is grafted first.
    pub(super) announcers: VecDeque<(P, u16)>,
    /// Attempt number of the graft timer currently armed for this entry. A firing timer with
    /// another number belongs to an earlier entry for the same id and is stale.
    pub(super) attempt: u16,
    /// The peer whose announcement created the entry (charged against its quota).
    creator: P,
}

/// What [`MissingTable::record`] did with an announcement.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recorded {
    /// First announcement for the id: the caller arms the first graft timer.
    NewEntry,
    /// Appended to an existing entry (a timer is already armed).
    Added,
    /// The peer already announced this id; nothing changed.
    AlreadyKnown,
    /// A bound was hit; the announcement was not recorded.
    Dropped,
}

/// Share of the table one peer's announcements may create entries for: one neighbour
/// announcing made-up ids must not crowd out the real announcements of the others.
const CREATOR_SHARE_DIVISOR: usize = 4;

/// Bounded map of missing messages.
#[derive(Debug)]
pub(super) struct MissingTable<P> {
    entries: BTreeMap<MessageId, Missing<P>>,
    /// Entries each peer created (only peers with at least one).
    created: BTreeMap<P, usize>,
    len_max: usize,
    announcers_len_max: usize,
}

impl<P: Ord + Clone> MissingTable<P> {
    pub(super) fn new(len_max: usize, announcers_len_max: usize) -> Self {
        assert!(len_max > 0 && announcers_len_max > 0, "missing table bounds must be non-zero");
        Self { entries: BTreeMap::new(), created: BTreeMap::new(), len_max, announcers_len_max }
    }

    /// Entries one peer may create: a quarter of the table (at least one).
    fn created_max(&self) -> usize {
        (self.len_max / CREATOR_SHARE_DIVISOR).max(1)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = &MessageId> {
        self.entries.keys()
    }

    /// Records that `from` offered `id` at `round`.
    pub(super) fn record(&mut self, id: MessageId, from: P, round: u16) -> Recorded {
        if let Some(entry) = self.entries.get_mut(&id) {
            if entry.announcers.iter().any(|(p, _)| *p == from) {
                return Recorded::AlreadyKnown;
            }
            if entry.announcers.len() >= self.announcers_len_max {
                return Recorded::Dropped;
            }
            entry.announcers.push_back((from, round));
            return Recorded::Added;
        }
        let created = self.created.get(&from).copied().unwrap_or(0);
        if self.entries.len() >= self.len_max || created >= self.created_max() {
            return Recorded::Dropped;
        }
        self.created.insert(from.clone(), created + 1);
        let announcers = VecDeque::from([(from.clone(), round)]);
        self.entries.insert(id, Missing { announcers, attempt: 0, creator: from });
        Recorded::NewEntry
    }

    /// Adds `peer` as a candidate announcer of every missing message, in one pass (no new
    /// entry is made). Returns how many announcer lists were full.
    pub(super) fn add_announcer_to_all(&mut self, peer: &P, round: u16) -> u64 {
        let mut dropped = 0;
        for entry in self.entries.values_mut() {
            if entry.announcers.iter().any(|(p, _)| p == peer) {
                continue;
            }
            if entry.announcers.len() >= self.announcers_len_max {
                dropped += 1;
                continue;
            }
            entry.announcers.push_back((peer.clone(), round));
        }
        dropped
    }

    pub(super) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Missing<P>> {
        self.entries.get_mut(id)
    }

    pub(super) fn remove(&mut self, id: &MessageId) -> Option<Missing<P>> {
        let entry = self.entries.remove(id)?;
        if let Some(count) = self.created.get_mut(&entry.creator) {
            *count -= 1;
            if *count == 0 {
                self.created.remove(&entry.creator);
            }
        }
        Some(entry)
    }

    /// Forgets a peer that went down as an announcer of every missing message. Entries left
    /// without announcers stay until their timer fires and counts them as exhausted.
    pub(super) fn remove_peer(&mut self, peer: &P) {
        for entry in self.entries.values_mut() {
            entry.announcers.retain(|(p, _)| p != peer);
        }
    }
}
