//! Settings of a shard's endpoint (the QUIC-level ones live in `tls::QuicSettings`).

use shoal_protocols::config::ConfigError;

/// Endpoint settings. Every field has a unit in its name and a documented source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSettings {
    /// Largest frame (kind + body) accepted or sent on a stream. A peer declaring more is
    /// closed with `PROTOCOL`; a local send of more is refused. Default 1 MiB (guess: the
    /// largest registry sync of a 10,000-service cluster is ~400 KiB). Bound 64 B..=16 MiB.
    pub frame_bytes_max: usize,
    /// Bytes of messages queued per peer that QUIC has not taken yet (flow control or
    /// congestion holds them). A send beyond is refused with `QueueFull` and counted.
    /// Default 4 MiB (guess: 4× the stream window, so a busy peer never starves on our side).
    pub peer_queue_bytes_max: usize,
    /// Data streams per connection and direction (unidirectional; a message's key picks one).
    /// Default 4 (guess: enough to keep a slow mailbox from blocking the others).
    /// Bound 1..=16 (the peer allows 16 unidirectional streams, `QuicSettings`).
    pub data_lanes: usize,
    /// Streams per connection that may wait for their preamble at once. Default and bound
    /// 64 (issue #3, DESIGN §7).
    pub preamble_pending_max: usize,
    /// One deadline for the whole authenticated handshake: from a connection's creation, the
    /// QUIC handshake and the HELLO/WELCOME proofs must finish within it, otherwise the
    /// connection closes with `auth_stream_timeout` (`auth_handshake_timeout`, deployment
    /// seed default 10,000 ms). Bound 1..=600,000 ms.
    pub auth_handshake_timeout_ms: u64,
    /// Idle time before the GC may close a connection (`dist_gc_min_age_ms`, deployment
    /// seed default 300,000 ms).
    pub dist_gc_min_age_ms: u64,
    /// Period of the GC sweep (`dist_gc_sweep_period_ms`, deployment seed default 60,000 ms).
    pub dist_gc_sweep_period_ms: u64,
    /// Time for a migration's path validation to finish. Default 5,000 ms (guess: several
    /// PTOs on a WAN path).
    pub migrate_timeout_ms: u64,
    /// Delay before re-dialling after the peer refused our dial as a duplicate and no other
    /// connection appeared. Default 200 ms (guess: a few LAN round trips for the peer's own
    /// dial to arrive).
    pub redial_delay_ms: u64,
    /// Connections one shard holds at most; further dials and Initials are refused and
    /// counted. Default 65,536 (guess: ~16 KiB each → 1 GiB per shard at the bound).
    pub connections_max: usize,
}

impl Default for EndpointSettings {
    fn default() -> Self {
        Self {
            frame_bytes_max: 1 << 20,
            peer_queue_bytes_max: 4 << 20,
            data_lanes: 4,
            preamble_pending_max: 64,
            auth_handshake_timeout_ms: 10_000,
            dist_gc_min_age_ms: 300_000,
            dist_gc_sweep_period_ms: 60_000,
            migrate_timeout_ms: 5_000,
            redial_delay_ms: 200,
            connections_max: 65_536,
        }
    }
}

fn invalid(key: &'static str, value: &dyn std::fmt::Display, fix: &'static str) -> ConfigError {
    ConfigError { section: "transport", key, value: value.to_string(), fix }
}

impl EndpointSettings {
    /// Checks every bound; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1_024..=16 << 20).contains(&self.frame_bytes_max) {
            return Err(invalid(
                "frame_bytes_max",
                &self.frame_bytes_max,
                "use 1024..=16777216 bytes (the largest HELLO is 659 bytes)",
            ));
        }
        if self.peer_queue_bytes_max < self.frame_bytes_max + crate::frame::HEADER_BYTES {
            return Err(invalid(
                "peer_queue_bytes_max",
                &self.peer_queue_bytes_max,
                "must hold at least one frame: make it >= frame_bytes_max + 5",
            ));
        }
        if !(1..=16).contains(&self.data_lanes) {
            return Err(invalid("data_lanes", &self.data_lanes, "use 1..=16"));
        }
        if !(1..=64).contains(&self.preamble_pending_max) {
            return Err(invalid("preamble_pending_max", &self.preamble_pending_max, "use 1..=64"));
        }
        if !(1..=600_000).contains(&self.auth_handshake_timeout_ms) {
            return Err(invalid(
                "auth_handshake_timeout_ms",
                &self.auth_handshake_timeout_ms,
                "use 1..=600000 milliseconds (raise it only for genuinely slow links)",
            ));
        }
        if self.dist_gc_sweep_period_ms == 0 {
            return Err(invalid(
                "dist_gc_sweep_period_ms",
                &self.dist_gc_sweep_period_ms,
                "use a positive number of milliseconds",
            ));
        }
        if self.migrate_timeout_ms == 0 {
            return Err(invalid(
                "migrate_timeout_ms",
                &self.migrate_timeout_ms,
                "use a positive number of milliseconds",
            ));
        }
        if self.connections_max == 0 {
            return Err(invalid("connections_max", &self.connections_max, "use at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_each_bad_key_is_named() {
        assert_eq!(EndpointSettings::default().validate(), Ok(()));
        let bad = EndpointSettings { data_lanes: 0, ..EndpointSettings::default() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("data_lanes"));
        let bad = EndpointSettings { frame_bytes_max: 10, ..EndpointSettings::default() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("frame_bytes_max"));
        let bad = EndpointSettings { peer_queue_bytes_max: 100, ..EndpointSettings::default() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("peer_queue_bytes_max"));
        let bad = EndpointSettings { preamble_pending_max: 65, ..EndpointSettings::default() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("preamble_pending_max"));
        let bad = EndpointSettings { dist_gc_sweep_period_ms: 0, ..EndpointSettings::default() };
        assert_eq!(bad.validate().map_err(|e| e.key), Err("dist_gc_sweep_period_ms"));
    }
}
