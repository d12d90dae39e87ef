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
        }

        /// A copy of one shard's (or the sum of all shards') metrics.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Snapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Counters {
            /// Reads every value (relaxed: each value is exact, the set is not a transaction).
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }

        impl Snapshot {
            /// Field-wise sum (totals over shards).
            pub fn add(&mut self, other: &Self) {
                $( self.$name += other.$name; )*
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
    /// Events the default channel handler dropped because the application did not drain it.
    handler_events_dropped,
    /// Cross-shard batches that waited because the target shard's mailbox was full.
    mailbox_full,
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
}
