//! HyParView settings. Each default names its source: "paper §x" (Leitão et al., DSN 2007,
//! TR DI-FCUL-07-13), "seed" (the reference system's configuration reference), "measured" (the
//! simulator, docs/SIMULATION.md) or "guess".

/// HyParView configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Active view bound, in peers. Default 5 (paper §5: log10(10,000) + 1; seed). Range 1..=64.
    pub active_size: usize,
    /// Passive view bound, in peers. Default 30 (paper §5: 6 × active; seed). Range 1..=1024.
    pub passive_size: usize,
    /// Active random walk length for FORWARD_JOIN. Default 6 (paper §5; seed).
    pub arwl: u8,
    /// Passive random walk length: FORWARD_JOIN adds the joiner to the passive view when its
    /// TTL equals this. Default 3 (paper §5; seed). Must be <= `arwl`.
    pub prwl: u8,
    /// Entries in one SHUFFLE sample, including the originator itself. Default 8 (paper §5:
    /// self + 3 active + 4 passive; seed).
    pub shuffle_length: usize,
    /// Active entries in a shuffle sample (the rest, less self, come from the passive view).
    /// Default 3 (paper §5).
    pub shuffle_active: usize,
    /// TTL of a shuffle walk. Default 6 (paper §5 uses the active walk length; iroh-gossip
    /// marks the same value "from the paper").
    pub shuffle_ttl: u8,
    /// Base period between shuffles, in ms. Default 10,000 (seed). The effective period adapts
    /// to churn within [`Self::shuffle_period_min_ms`, `Self::shuffle_period_max_ms`].
    pub shuffle_period_ms: u64,
    /// Lower bound of the adaptive shuffle period, in ms. Default 2,000 (seed).
    pub shuffle_period_min_ms: u64,
    /// Upper bound of the adaptive shuffle period, in ms. Default 30,000 (seed).
    pub shuffle_period_max_ms: u64,
    /// Window over which active-view churn (peer up + peer down events) is counted to adapt the
    /// shuffle period, in ms. Default 30,000 (seed).
    pub churn_window_ms: u64,
    /// Failures after which a passive entry is dropped; entries at or above it are never
    /// promoted. Default 5 (seed). Range 1..=32.
    pub max_fail_count: u8,
    /// Backoff after the n-th failure is `base_backoff_ms · 2^n`, capped at
    /// [`Self::backoff_max_ms`]. Default 1,000 ms (seed).
    pub base_backoff_ms: u64,
    /// Cap of the failure backoff, in ms. Default 300,000 (seed).
    pub backoff_max_ms: u64,
    /// Passive entries not refreshed (by a shuffle, a join walk or an active link) for this
    /// long, on the local monotonic clock, are dropped. Default 300,000 ms (seed).
    pub passive_max_age_ms: u64,
    /// Period of the passive-view cleanup sweep, in ms. Default 60,000 (seed).
    pub passive_cleanup_period_ms: u64,
    /// Backstop for a pending JOIN or NEIGHBOR that never gets an answer, in ms. Default
    /// 30,000 (seed: deliberately longer than the 10 s authentication timeout).
    pub pending_timeout_ms: u64,
    /// While the active view is empty, the contacts are retried this often, in ms. Default
    /// 5,000 (seed).
    pub contact_retry_ms: u64,
    /// After a NEIGHBOR rejection the candidate is not asked again for this long, in ms.
    /// Default 1,000 (guess: one base backoff).
    pub rejected_backoff_ms: u64,
    /// Cap of the exponential retry delay after consecutive NEIGHBOR rejections, in ms. A node
    /// one link short keeps probing random passive candidates at most this often until it
    /// meets another node with a free slot. Default 2,000 (measured: with 10,000 nodes it
    /// brings ≥ 99 % of nodes to a full active view within 50 cycles at ~0.5 request/s per
    /// short node).
    pub rejected_backoff_max_ms: u64,
    /// Peers dropped from the passive view after `max_fail_count` failures are remembered in a
    /// bounded "failed" list and one of them is probed with a high-priority NEIGHBOR every
    /// this many ms. A probe that succeeds bridges a healed partition, which passive views
    /// alone cannot do once both sides have full active views. Default 30,000 (guess, after
    /// Serf's reconnect interval).
    pub reconnect_period_ms: u64,
    /// How long a failed peer is remembered for reconnection probes, in ms. Default 3,600,000
    /// (guess: partitions longer than an hour need an operator).
    pub reconnect_timeout_ms: u64,
    /// Bound of the failed list, in peers. Default 32 (guess).
    pub failed_len_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            active_size: 5,
            passive_size: 30,
            arwl: 6,
            prwl: 3,
            shuffle_length: 8,
            shuffle_active: 3,
            shuffle_ttl: 6,
            shuffle_period_ms: 10_000,
            shuffle_period_min_ms: 2_000,
            shuffle_period_max_ms: 30_000,
            churn_window_ms: 30_000,
            max_fail_count: 5,
            base_backoff_ms: 1_000,
            backoff_max_ms: 300_000,
            passive_max_age_ms: 300_000,
            passive_cleanup_period_ms: 60_000,
            pending_timeout_ms: 30_000,
            contact_retry_ms: 5_000,
            rejected_backoff_ms: 1_000,
            rejected_backoff_max_ms: 2_000,
            reconnect_period_ms: 30_000,
            reconnect_timeout_ms: 3_600_000,
            failed_len_max: 32,
        }
    }
}

pub use crate::config::ConfigError;

impl Config {
    /// Checks every documented bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, value: &dyn std::fmt::Display, fix| {
            Err(ConfigError::new("hyparview", key, value, fix))
        };
        if !(1..=64).contains(&self.active_size) {
            return err("active_size", &self.active_size, "use a value in 1..=64");
        }
        if !(1..=1024).contains(&self.passive_size) {
            return err("passive_size", &self.passive_size, "use a value in 1..=1024");
        }
        if self.arwl == 0 {
            return err("arwl", &self.arwl, "use a value >= 1");
        }
        if self.prwl > self.arwl {
            return err("prwl", &self.prwl, "prwl must not exceed arwl");
        }
        if self.shuffle_length < 1 || self.shuffle_length > 256 {
            return err("shuffle_length", &self.shuffle_length, "use a value in 1..=256");
        }
        if self.shuffle_active >= self.shuffle_length {
            return err("shuffle_active", &self.shuffle_active, "must be below shuffle_length");
        }
        if self.shuffle_period_min_ms == 0
            || self.shuffle_period_min_ms > self.shuffle_period_ms
            || self.shuffle_period_ms > self.shuffle_period_max_ms
        {
            return err(
                "shuffle_period",
                &self.shuffle_period_ms,
                "need 0 < shuffle_period_min_ms <= shuffle_period <= shuffle_period_max_ms",
            );
        }
        if !(1..=32).contains(&self.max_fail_count) {
            return err("max_fail_count", &self.max_fail_count, "use a value in 1..=32");
        }
        if self.rejected_backoff_ms == 0 || self.rejected_backoff_ms > self.rejected_backoff_max_ms
        {
            return err(
                "rejected_backoff_ms",
                &self.rejected_backoff_ms,
                "need 0 < rejected_backoff_ms <= rejected_backoff_max_ms",
            );
        }
        if self.base_backoff_ms == 0 || self.base_backoff_ms > self.backoff_max_ms {
            return err("base_backoff_ms", &self.base_backoff_ms, "need 0 < base <= backoff cap");
        }
        for (key, v) in [
            ("passive_max_age_ms", self.passive_max_age_ms),
            ("passive_cleanup_period_ms", self.passive_cleanup_period_ms),
            ("pending_timeout_ms", self.pending_timeout_ms),
            ("contact_retry_ms", self.contact_retry_ms),
            ("churn_window_ms", self.churn_window_ms),
            ("reconnect_period_ms", self.reconnect_period_ms),
        ] {
            if v == 0 {
                return err(key, &v, "use a value >= 1 ms");
            }
        }
        Ok(())
    }
}
