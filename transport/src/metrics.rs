//! Per-shard transport counters and gauges.
//!
//! Each shard owns one [`ShardMetrics`] and is its only writer; any thread may read it at any
//! time (relaxed atomics, no lock, the shard never stops). One shard's block is cache-padded
//! so that two shards never write the same cache line. Names are the metric catalogue's
//! (docs/operations/observability.md lists them with their labels).

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

macro_rules! shard_metrics {
    ($( $(#[doc = $doc:literal])* $name:ident, )*) => {
        /// Counters and gauges of one shard's transport.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
            /// Authentication failures by reason and handshake durations.
            pub auth: AuthMetrics,
        }

        /// A copy of one shard's (or the sum of all shards') metrics.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
            /// Authentication failures by reason and handshake durations.
            pub auth: AuthSnapshot,
        }

        impl Counters {
            /// Reads every value (relaxed: each value is exact, the set is not a transaction).
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $( $name: self.$name.load(Ordering::Relaxed), )* auth: self.auth.snapshot() }
            }
        }

        impl Snapshot {
            /// Field-wise sum (totals over shards).
            pub fn add(&mut self, other: &Self) {
                $( self.$name += other.$name; )*
                self.auth.add(&other.auth);
            }

            /// `(name, value)` pairs in catalogue order, for rendering.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![ $( (stringify!($name), self.$name), )* ]
            }
        }
    };
}

shard_metrics! {
    /// UDP datagrams received (after GRO splitting).
    packets_in,
    /// UDP datagrams sent (GSO segments counted one by one).
    packets_out,
    /// UDP payload bytes received.
    bytes_in,
    /// UDP payload bytes sent.
    bytes_out,
    /// Gauge: connections owned by this shard (handshaking included).
    connections,
    /// Connections whose handshake completed and whose HELLO was accepted.
    connections_established,
    /// Connections closed, for any reason.
    connections_closed,
    /// Handshakes that failed or timed out.
    handshake_failures,
    /// Connections closed because the pair already had one (simultaneous dials).
    connections_duplicate,
    /// Gauge: open tagged user streams.
    streams,
    /// Datagrams whose destination connection ID belongs to another shard, handed over.
    foreign_dcid_handoffs,
    /// Datagrams dropped: unparseable header, unknown connection ID, or rejected by quiche.
    datagrams_dropped,
    /// Sends refused because the peer's send queue was full (reported to the caller).
    send_queue_overflows,
    /// Frames or HELLOs from peers that did not decode (the connection was closed).
    decode_errors,
    /// Streams reset because 64 were already waiting for their preamble.
    preamble_dropped,
    /// Streams reset because their tag has no acceptor.
    unknown_tag_resets,
    /// Idle connections closed by the GC sweep.
    dist_gc_reap,
    /// Migrations whose new path validated.
    migrate_ok,
    /// Migrations whose path validation failed or could not start.
    migrate_failed,
    /// Migrations without an outcome before `migrate_timeout_ms`.
    migrate_timeout,
    /// Application messages delivered to the layer above.
    messages_in,
    /// Application messages handed to QUIC.
    messages_out,
    /// Authentication attempts this node dialled that succeeded
    /// (`dist.auth.attempts{role=outgoing,outcome=ok}`).
    auth_attempts_outgoing_ok,
    /// Authentication attempts this node dialled that failed, crashed or timed out.
    auth_attempts_outgoing_fail,
    /// Authentication attempts of peers that dialled this node and succeeded.
    auth_attempts_incoming_ok,
    /// Authentication attempts of peers that dialled this node and failed.
    auth_attempts_incoming_fail,
    /// Events the default channel handler dropped because the application did not drain it.
    handler_events_dropped,
    /// Cross-shard batches that waited because the target shard's mailbox was full.
    mailbox_full,
}

/// Upper bounds of the authentication duration buckets, milliseconds (the last bucket holds
/// everything above 10,000 ms, the default `auth_handshake_timeout_ms`).
pub const AUTH_DURATION_BUCKETS_MS: [u64; 14] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, u64::MAX];

/// Role index of the authentication metrics: 0 = outgoing (this node dialled), 1 = incoming.
pub const AUTH_ROLES: [&str; 2] = ["outgoing", "incoming"];
/// Outcome index of the authentication metrics: 0 = ok, 1 = fail.
pub const AUTH_OUTCOMES: [&str; 2] = ["ok", "fail"];

const BUCKETS: usize = AUTH_DURATION_BUCKETS_MS.len();
const REASONS: usize = crate::auth::failure::REASONS;

/// Authentication failures by reason, and a histogram of handshake durations (connection
/// created → authenticated or given up) by role and outcome, in milliseconds. Fixed buckets of
/// atomics, so that any thread reads them while the shard writes (`dist.auth.duration_ms`).
#[derive(Debug, Default)]
pub struct AuthMetrics {
    /// Failures by reason, indexed like `auth::failure::REASON_LABELS`.
    pub failures: [AtomicU64; REASONS],
    /// Durations: `[role][outcome][bucket]` (non-cumulative counts).
    pub duration_buckets: [[[AtomicU64; BUCKETS]; 2]; 2],
    /// Sum of durations, milliseconds: `[role][outcome]`.
    pub duration_sum_ms: [[AtomicU64; 2]; 2],
}

/// A copy of [`AuthMetrics`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuthSnapshot {
    /// Failures by reason.
    pub failures: [u64; REASONS],
    /// Durations: `[role][outcome][bucket]`.
    pub duration_buckets: [[[u64; BUCKETS]; 2]; 2],
    /// Sum of durations, milliseconds: `[role][outcome]`.
    pub duration_sum_ms: [[u64; 2]; 2],
}

impl AuthMetrics {
    /// Records one finished attempt (`role`, `outcome` as in [`AUTH_ROLES`]/[`AUTH_OUTCOMES`]).
    pub fn record(&self, role: usize, outcome: usize, duration_ms: u64) {
        let bucket = AUTH_DURATION_BUCKETS_MS
            .iter()
            .position(|&bound| duration_ms <= bound)
            .expect("the last bucket is unbounded");
        Counters::add(&self.duration_buckets[role][outcome][bucket], 1);
        Counters::add(&self.duration_sum_ms[role][outcome], duration_ms);
    }

    fn snapshot(&self) -> AuthSnapshot {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        AuthSnapshot {
            failures: self.failures.each_ref().map(load),
            duration_buckets: self
                .duration_buckets
                .each_ref()
                .map(|outcomes| outcomes.each_ref().map(|buckets| buckets.each_ref().map(load))),
            duration_sum_ms: self.duration_sum_ms.each_ref().map(|sums| sums.each_ref().map(load)),
        }
    }
}

impl AuthSnapshot {
    fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.failures.iter_mut().zip(other.failures) {
            *mine += theirs;
        }
        for role in 0..2 {
            for outcome in 0..2 {
                for bucket in 0..BUCKETS {
                    self.duration_buckets[role][outcome][bucket] +=
                        other.duration_buckets[role][outcome][bucket];
                }
                self.duration_sum_ms[role][outcome] += other.duration_sum_ms[role][outcome];
            }
        }
    }

    /// Attempts recorded for `role` and `outcome` (the histogram's count).
    pub fn count(&self, role: usize, outcome: usize) -> u64 {
        self.duration_buckets[role][outcome].iter().sum()
    }

    /// Failures recorded for the reason labelled `label` (0 for an unknown label).
    pub fn failures_of(&self, label: &str) -> u64 {
        crate::auth::failure::REASON_LABELS
            .iter()
            .position(|known| *known == label)
            .map_or(0, |index| self.failures[index])
    }
}

/// One shard's metrics block, padded to its own cache lines.
pub type ShardMetrics = CachePadded<Counters>;

impl Counters {
    /// Adds `n` to a counter (the owning shard is the only writer).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_add_and_pairs() {
        let metrics = ShardMetrics::default();
        Counters::add(&metrics.packets_in, 3);
        Counters::set(&metrics.connections, 2);
        let mut total = metrics.snapshot();
        total.add(&metrics.snapshot());
        assert_eq!(total.packets_in, 6);
        assert_eq!(total.connections, 4);
        let pairs = total.pairs();
        assert_eq!(pairs[0], ("packets_in", 6));
        assert!(pairs.iter().any(|&(name, _)| name == "dist_gc_reap"));
    }

    #[test]
    fn auth_durations_land_in_their_bucket_and_sum() {
        let metrics = ShardMetrics::default();
        metrics.auth.record(0, 0, 0);
        metrics.auth.record(0, 0, 3);
        metrics.auth.record(1, 1, 60_000);
        Counters::add(&metrics.auth.failures[2], 1);
        let mut total = metrics.snapshot();
        total.add(&metrics.snapshot());
        assert_eq!(total.auth.duration_buckets[0][0][0], 2);
        assert_eq!(total.auth.duration_buckets[0][0][2], 2);
        assert_eq!(total.auth.duration_buckets[1][1][BUCKETS - 1], 2);
        assert_eq!(total.auth.count(0, 0), 4);
        assert_eq!(total.auth.duration_sum_ms[1][1], 120_000);
        assert_eq!(total.auth.failures_of("signature_invalid"), 2);
        assert_eq!(total.auth.failures_of("nope"), 0);
    }
}
