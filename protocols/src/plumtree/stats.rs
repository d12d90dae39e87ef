//! Counters the state machine keeps for metrics and tests.

/// Monotonic event counters of one [`super::State`]. All start at zero and never decrease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// GOSSIP messages sent (one per destination: eager pushes and GRAFT answers).
    pub gossip_sent: u64,
    /// GOSSIP messages received, new or duplicate.
    pub gossip_received: u64,
    /// GOSSIP messages received for an id already cached.
    pub duplicates_received: u64,
    /// IHAVE messages (packets) sent.
    pub ihave_messages_sent: u64,
    /// Announcements carried by those IHAVE messages.
    pub ihave_ids_sent: u64,
    /// GRAFT messages sent (repairs and tree optimisations).
    pub graft_sent: u64,
    /// GRAFT messages received.
    pub graft_received: u64,
    /// PRUNE messages sent.
    pub prune_sent: u64,
    /// PRUNE messages received.
    pub prune_received: u64,
    /// Broadcasts delivered to the layers above (local broadcasts included).
    pub delivered: u64,
    /// Tree optimisation swaps (paper §3.8): one GRAFT to a closer announcer plus one PRUNE to
    /// the eager sender.
    pub optimisations: u64,
    /// Announcements ignored because a bound was hit (`missing_len_max`,
    /// `announcers_len_max`, or an IHAVE message longer than `ihave_batch_len_max`).
    pub announcements_dropped: u64,
    /// Missing messages given up on: every announcer was grafted (or went down) and the
    /// payload still did not arrive.
    pub graft_exhausted: u64,
}
