//! Plumtree settings. Each default names its source: "paper §x" (Leitão, Pereira, Rodrigues,
//! "Epidemic Broadcast Trees", SRDS 2007, TR DI-FCUL-07-14), "seed" (the reference system's
//! configuration reference), "measured" (the simulator) or "guess". The simulator tunes the
//! guesses; every field is public so it can.

/// Plumtree configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long announcements for lazy peers are collected before one IHAVE message per peer
    /// is sent, in ms. Default 50 (guess: batching is what keeps lazy-push control traffic at
    /// no more than one packet per payload; 50 ms adds little to the repair latency).
    /// Range 1..=10,000.
    pub ihave_batch_interval_ms: u64,
    /// Most announcements in one IHAVE message, and most queued for one peer: a queue reaching
    /// it is sent at once rather than waiting for the flush timer. Default 256 (guess: 256 ×
    /// 18 bytes per announcement keeps one IHAVE message under 5 KiB). Range 1..=4,096.
    pub ihave_batch_len_max: usize,
    /// After the first IHAVE for a missing message, wait this long for the eager push before
    /// sending GRAFT, in ms. Default 500 (guess: above twice the worst one-way latency plus
    /// [`Self::ihave_batch_interval_ms`]; paper §3.4 leaves it to the overlay diameter and the
    /// target recovery latency). Range 1..=600,000.
    pub graft_timeout_1_ms: u64,
    /// After each GRAFT, wait this long for the payload before grafting the next announcer, in
    /// ms. Default 250 (guess; paper §3.4: the second timeout is shorter than the first, about
    /// one round trip). Range 1..=`graft_timeout_1_ms`.
    pub graft_timeout_2_ms: u64,
    /// Random extra delay added to the first graft timer, in ms, uniform in
    /// `0..=graft_jitter_ms`. Default 250 (measured under churn: it lets one graft per
    /// orphaned subtree re-attach it before the others fire).
    pub graft_jitter_ms: u64,
    /// Tree optimisation: a lazy announcer whose copy is at least this many hops closer to the
    /// origin than the eager copy we received replaces the eager sender. `u16::MAX` disables
    /// it, which is the default (measured): with concurrent senders the swaps race each other
    /// — a GRAFT and a PRUNE take a round trip to land, transient cycles get pruned in two
    /// places — and cut the tree (2,000 nodes, random senders 10 ms apart: RMR 0.35, LDH 23
    /// and 1.2 s deliveries with threshold 7, against RMR 0 and LDH 12 without; 10,000 nodes
    /// without: LDH 14.4). The tree Plumtree builds by first arrival already meets the LDH
    /// targets. The paper (§4) uses 7
    /// for multiple senders and 3 for a single one, with one broadcast at a time.
    /// Range 1..=`u16::MAX`.
    pub optimization_threshold: u16,
    /// Minimum time between two tree optimisations at one node, in ms. A swap (GRAFT one
    /// link, PRUNE another) takes a round trip to take effect at both ends; swaps decided on
    /// different messages while earlier ones are still in flight can form cycles and cut the
    /// tree, which the simulator measured as RMR 0.49 and 1.3 s deliveries with concurrent
    /// random senders. Default 1,000 (measured).
    pub optimization_cooldown_ms: u64,
    /// After we PRUNE a peer, new messages it sent before the PRUNE reached it do not make it
    /// eager again for this long, in ms. Must cover a one-way delay plus queueing. Default
    /// 1,000 (guess: well above WAN one-way delays).
    pub prune_grace_ms: u64,
    /// Most messages kept in the message cache (for answering GRAFT and deduplicating); the
    /// oldest is evicted first. Default 8,192 (guess: 300 s of a sustained 27 broadcasts/s).
    /// Range 1..=1,048,576.
    pub message_cache_len_max: usize,
    /// Most payload bytes kept in the message cache; the oldest messages are evicted first
    /// (the newest is always kept). Default 64 MiB (guess: 1,024 maximum-size payloads; a count
    /// bound alone would allow 8,192 × 64 KiB = 512 MiB). Range >= 1.
    pub message_cache_bytes_max: usize,
    /// How long a delivered message stays in the cache, in ms. After that a replay of the same
    /// id counts as new. Default 300,000 (seed: reference MESSAGE_TTL of 300 s). Must be >= 1.
    pub message_cache_ttl_ms: u64,
    /// Period of the cache expiry sweep, in ms (expiry is precise to this period). Default
    /// 1,000 (guess). Range 1..=`message_cache_ttl_ms`.
    pub cache_evict_interval_ms: u64,
    /// Most message ids announced by IHAVE but not yet received that are tracked at once;
    /// announcements beyond it are dropped and counted. Default 4,096 (guess). Range
    /// 1..=1,048,576.
    pub missing_len_max: usize,
    /// A new neighbour is sent one IHAVE with the messages this node received within this
    /// window, in ms (at most [`Self::ihave_batch_len_max`], newest first): a broadcast that
    /// passed before the link came up could not reach the neighbour over it otherwise. 0
    /// disables it. Default 10,000 (guess: several failure-detection delays and promotion
    /// retries; in the 1,000-node 30 % crash that showed the gap, the first replacement link
    /// of a survivor that missed the first broadcast came up 1.1 s after it was sent).
    /// Any value; in effect at most `message_cache_ttl_ms` (only cached messages are
    /// announced).
    pub link_up_announce_ms: u64,
    /// Most announcers remembered per missing message (the GRAFT candidates); more are dropped
    /// and counted. Default 8 (guess: more than the active view of 5, so every neighbour
    /// fits). Range 1..=256.
    pub announcers_len_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ihave_batch_interval_ms: 50,
            ihave_batch_len_max: 256,
            graft_timeout_1_ms: 500,
            graft_timeout_2_ms: 250,
            graft_jitter_ms: 250,
            optimization_threshold: u16::MAX,
            optimization_cooldown_ms: 1_000,
            prune_grace_ms: 1_000,
            message_cache_len_max: 8_192,
            message_cache_bytes_max: 64 << 20,
            message_cache_ttl_ms: 300_000,
            cache_evict_interval_ms: 1_000,
            missing_len_max: 4_096,
            announcers_len_max: 8,
            link_up_announce_ms: 10_000,
        }
    }
}

pub use crate::config::ConfigError;

impl Config {
    /// Checks every documented bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, value: &dyn std::fmt::Display, fix| {
            Err(ConfigError::new("plumtree", key, value, fix))
        };
        if !(1..=10_000).contains(&self.ihave_batch_interval_ms) {
            return err(
                "ihave_batch_interval_ms",
                &self.ihave_batch_interval_ms,
                "use a value in 1..=10000",
            );
        }
        if !(1..=4_096).contains(&self.ihave_batch_len_max) {
            return err(
                "ihave_batch_len_max",
                &self.ihave_batch_len_max,
                "use a value in 1..=4096",
            );
        }
        if !(1..=600_000).contains(&self.graft_timeout_1_ms) {
            return err(
                "graft_timeout_1_ms",
                &self.graft_timeout_1_ms,
                "use a value in 1..=600000",
            );
        }
        if self.graft_timeout_2_ms == 0 || self.graft_timeout_2_ms > self.graft_timeout_1_ms {
            return err(
                "graft_timeout_2_ms",
                &self.graft_timeout_2_ms,
                "need 0 < graft_timeout_2_ms <= graft_timeout_1_ms",
            );
        }
        if self.optimization_threshold == 0 {
            return err("optimization_threshold", &self.optimization_threshold, "use a value >= 1");
        }
        if !(1..=1_048_576).contains(&self.message_cache_len_max) {
            return err(
                "message_cache_len_max",
                &self.message_cache_len_max,
                "use a value in 1..=1048576",
            );
        }
        if self.message_cache_bytes_max == 0 {
            return err("message_cache_bytes_max", &self.message_cache_bytes_max, "use >= 1");
        }
        if self.message_cache_ttl_ms == 0 {
            return err("message_cache_ttl_ms", &self.message_cache_ttl_ms, "use a value >= 1 ms");
        }
        if self.cache_evict_interval_ms == 0
            || self.cache_evict_interval_ms > self.message_cache_ttl_ms
        {
            return err(
                "cache_evict_interval_ms",
                &self.cache_evict_interval_ms,
                "need 0 < cache_evict_interval_ms <= message_cache_ttl_ms",
            );
        }
        if !(1..=1_048_576).contains(&self.missing_len_max) {
            return err("missing_len_max", &self.missing_len_max, "use a value in 1..=1048576");
        }
        if !(1..=256).contains(&self.announcers_len_max) {
            return err("announcers_len_max", &self.announcers_len_max, "use a value in 1..=256");
        }
        Ok(())
    }
}
