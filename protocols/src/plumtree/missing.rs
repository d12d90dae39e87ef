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

/// Bounded map of missing messages.
#[derive(Debug)]
pub(super) struct MissingTable<P> {
    entries: BTreeMap<MessageId, Missing<P>>,
    len_max: usize,
    announcers_len_max: usize,
}

impl<P: PartialEq> MissingTable<P> {
    pub(super) fn new(len_max: usize, announcers_len_max: usize) -> Self {
        assert!(len_max > 0 && announcers_len_max > 0, "missing table bounds must be non-zero");
        Self { entries: BTreeMap::new(), len_max, announcers_len_max }
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
        if self.entries.len() >= self.len_max {
            return Recorded::Dropped;
        }
        self.entries
            .insert(id, Missing { announcers: VecDeque::from([(from, round)]), attempt: 0 });
        Recorded::NewEntry
    }

    /// Adds `from` as a candidate for an id that is already missing (no new entry is made);
    /// bounded by `announcers_len_max` like every announcer list.
    pub(super) fn add_announcer(&mut self, id: MessageId, from: P, round: u16) {
        if self.entries.contains_key(&id) {
            let _ = self.record(id, from, round);
        }
    }

    pub(super) fn get_mut(&mut self, id: &MessageId) -> Option<&mut Missing<P>> {
        self.entries.get_mut(id)
    }

    pub(super) fn remove(&mut self, id: &MessageId) -> Option<Missing<P>> {
        self.entries.remove(id)
    }

    /// Forgets a peer that went down as an announcer of every missing message. Entries left
    /// without announcers stay until their timer fires and counts them as exhausted.
    pub(super) fn remove_peer(&mut self, peer: &P) {
        for entry in self.entries.values_mut() {
            entry.announcers.retain(|(p, _)| p != peer);
        }
    }
}
