//! Registry settings. Each default names its source: "seed" (the reference system's
//! configuration reference), "measured" (the simulator) or "guess".

/// Service-registry configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest metadata blob of one registration, in bytes. Default 4,096 (guess: room for a
    /// few addresses and labels). Range 0..=`message_size_max` − 1,024.
    pub meta_size_max: usize,
    /// Live registrations this node may own at once, in entries. Default 10,000 (guess).
    /// Range 1..=1,000,000.
    pub services_local_max: usize,
    /// Mean period between anti-entropy rounds, in ms; each delay is jittered by ±25 % with the
    /// state machine's RNG. Default 30,000 (seed: the reference replica anti-entropy period).
    /// Range >= 100.
    pub anti_entropy_period_ms: u64,
    /// How long a tombstone is kept, in ms of local monotonic time since it was stored.
    /// Default 3,600,000 = 1 h (seed: the reference's TTL for its other replicas). Must be at
    /// least 2 × `anti_entropy_period_ms` so a removal reaches every replica before it is
    /// forgotten.
    pub tombstone_ttl_ms: u64,
    /// Delay between suspecting an owner and declaring it dead, in ms. Default 5,000 (guess:
    /// several round trips plus one Plumtree traversal, so a live owner can refute).
    /// Range >= 1.
    pub suspicion_timeout_ms: u64,
    /// Remote HLC stamps more than this ahead of the local wall clock are refused, in ms.
    /// Default 30,000 (seed: the reference's `auth_timestamp_window`). Range >= 1.
    pub skew_max_ms: u64,
    /// Items (owner headers plus entries) in one `Sync` message or one broadcast delta; longer
    /// batches are split. Default 512 (guess). Range 2..=4,096 (`Limits::list_len_max`).
    pub sync_entries_per_message_max: usize,
    /// Owners in one digest; larger registries are digested in windows, one per round.
    /// Default 4,096 (guess; equals `Limits::list_len_max`). Range 1..=4,096.
    pub digest_owners_max: usize,
    /// Target encoded size of one registry message or broadcast delta, in bytes; longer batches
    /// are split (a single entry is never split). Default 61,440 = 60 KiB (guess: fits the
    /// default 64 KiB `Limits::payload_size_max` of a Plumtree payload with room for headers).
    /// Range 2,048..=1,048,576.
    pub message_size_max: usize,
    /// Service owners whose records this node keeps (one per node that ever registered a
    /// service); a remote write about a further owner is refused and counted. Default 100,000
    /// (guess: one record per node of a 100,000-node cluster). Range >= 1.
    pub owners_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            meta_size_max: 4_096,
            services_local_max: 10_000,
            anti_entropy_period_ms: 30_000,
            tombstone_ttl_ms: 3_600_000,
            suspicion_timeout_ms: 5_000,
            skew_max_ms: 30_000,
            sync_entries_per_message_max: 512,
            owners_max: 100_000,
            digest_owners_max: 4_096,
            message_size_max: 61_440,
        }
    }
}

pub use crate::config::ConfigError;

impl Config {
    /// Entries (registrations plus tombstones) kept per remote owner: what an honest owner
    /// can produce, its `services_local_max` live entries plus as many tombstones. An owner
    /// configured with a larger `services_local_max` than ours is truncated here.
    pub fn entries_per_owner_max(&self) -> usize {
        self.services_local_max.saturating_mul(2)
    }

    /// Checks every documented bound.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key, value: &dyn std::fmt::Display, fix| {
            Err(ConfigError::new("registry", key, value, fix))
        };
        if !(2_048..=1 << 20).contains(&self.message_size_max) {
            return err("message_size_max", &self.message_size_max, "use 2048..=1048576 bytes");
        }
        if self.meta_size_max.saturating_add(1_024) > self.message_size_max {
            return err(
                "meta_size_max",
                &self.meta_size_max,
                "must be at most message_size_max - 1024 bytes",
            );
        }
        if !(1..=1_000_000).contains(&self.services_local_max) {
            return err("services_local_max", &self.services_local_max, "use 1..=1000000");
        }
        if self.anti_entropy_period_ms < 100 {
            return err("anti_entropy_period_ms", &self.anti_entropy_period_ms, "use >= 100 ms");
        }
        if self.tombstone_ttl_ms < self.anti_entropy_period_ms.saturating_mul(2) {
            return err(
                "tombstone_ttl_ms",
                &self.tombstone_ttl_ms,
                "must be at least 2 x anti_entropy_period_ms",
            );
        }
        if self.owners_max == 0 {
            return err("owners_max", &self.owners_max, "use >= 1");
        }
        if self.suspicion_timeout_ms == 0 {
            return err("suspicion_timeout_ms", &self.suspicion_timeout_ms, "use >= 1 ms");
        }
        if self.skew_max_ms == 0 {
            return err("skew_max_ms", &self.skew_max_ms, "use >= 1 ms");
        }
        if !(2..=4_096).contains(&self.sync_entries_per_message_max) {
            return err(
                "sync_entries_per_message_max",
                &self.sync_entries_per_message_max,
                "use 2..=4096 (one owner header plus one entry; Limits::list_len_max)",
            );
        }
        if !(1..=4_096).contains(&self.digest_owners_max) {
            return err(
                "digest_owners_max",
                &self.digest_owners_max,
                "use 1..=4096 (Limits::list_len_max)",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_bound_is_checked() {
        let cases: Vec<(&str, Config)> = vec![
            ("message_size_max", Config { message_size_max: 100, ..Config::default() }),
            ("meta_size_max", Config { meta_size_max: 61_000, ..Config::default() }),
            ("services_local_max", Config { services_local_max: 0, ..Config::default() }),
            ("anti_entropy_period_ms", Config { anti_entropy_period_ms: 5, ..Config::default() }),
            ("tombstone_ttl_ms", Config { tombstone_ttl_ms: 59_999, ..Config::default() }),
            ("suspicion_timeout_ms", Config { suspicion_timeout_ms: 0, ..Config::default() }),
            ("skew_max_ms", Config { skew_max_ms: 0, ..Config::default() }),
            (
                "sync_entries_per_message_max",
                Config { sync_entries_per_message_max: 5_000, ..Config::default() },
            ),
            ("digest_owners_max", Config { digest_owners_max: 0, ..Config::default() }),
        ];
        for (key, config) in cases {
            assert_eq!(config.validate().unwrap_err().key, key);
        }
    }
}
