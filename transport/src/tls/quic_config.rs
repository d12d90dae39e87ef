//! The quiche configuration factory and the settings it applies.
//!
//! quiche's defaults are unusable as they stand: every flow-control limit and stream count
//! defaults to 0 (the peer may send nothing), `max_idle_timeout` to 0 (never time out) and the
//! DATAGRAM queues to 0. [`QuicSettings`] therefore names every value shoal relies on, and
//! [`quiche_config`] sets each one. Each default documents its source: "quiche default",
//! "tokio-quiche production default" (Cloudflare's `tokio-quiche` settings), "RFC", "measured"
//! or "guess".
//!
//! Left at quiche's defaults, which are sane: `ack_delay_exponent` 3, `max_ack_delay` 25 ms,
//! GREASE on, HyStart++ on, path MTU discovery off, anti-amplification factor 3, initial
//! congestion window 10 packets, 0-RTT off.

use std::sync::Arc;
use std::time::Duration;

use quiche::CongestionControlAlgorithm;
use shoal_protocols::config::ConfigError;

use super::context::ssl_context_builder;
use super::{PeerVerifier, TlsError, TlsMaterial};

/// The ALPN protocol of shoal's QUIC connections, version 1. A peer offering anything else fails
/// the handshake.
pub const ALPN: &[u8] = b"shoal/1";

/// Smallest UDP payload QUIC allows, in bytes (RFC 9000 §14: 1200).
const MIN_UDP_PAYLOAD_BYTES: usize = 1200;
/// Largest UDP payload over IPv4, in bytes: 65,535 − 8 (UDP header); RFC 9000 §18.2's maximum.
const MAX_UDP_PAYLOAD_BYTES: usize = 65_527;
/// Ceiling of both flow-control windows, in bytes: 1 GiB, a bound on what one connection may
/// make the node buffer (guess).
const MAX_WINDOW_BYTES: u64 = 1 << 30;

/// QUIC transport settings for every connection of a node. Validate with [`Self::validate`]
/// ([`quiche_config`] does it too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicSettings {
    /// The `max_idle_timeout` transport parameter, in ms: a connection with no packet for this
    /// long (the smaller of both sides' values) is closed silently. Default 30,000 (guess;
    /// tokio-quiche production default is 56,000). Range 1..=3,600,000 (quiche's default, 0,
    /// would mean never).
    pub idle_timeout_ms: u64,
    /// The `initial_max_data` transport parameter: bytes of stream data the peer may send on the
    /// whole connection before the first flow-control update. Default 10 MiB (guess, about
    /// tokio-quiche's production 10,000,000). Range 1..=`max_connection_window_bytes` (quiche's
    /// default, 0, lets the peer send nothing).
    pub initial_max_data_bytes: u64,
    /// The `initial_max_stream_data_bidi_local`, `…_bidi_remote` and `…_uni` transport
    /// parameters, in bytes per stream. Default 1 MiB (guess, about tokio-quiche's production
    /// 1,000,000). Range 1..=`max_stream_window_bytes` (quiche's default is 0).
    pub initial_max_stream_data_bytes: u64,
    /// The `initial_max_streams_bidi` transport parameter: bidirectional streams the peer may
    /// open before the first MAX_STREAMS. Default 128 (guess). Range 1..=65,536 (quiche's default
    /// is 0).
    pub initial_max_streams_bidi: u64,
    /// The `initial_max_streams_uni` transport parameter. Default 16 (guess). Range 1..=65,536
    /// (quiche's default is 0).
    pub initial_max_streams_uni: u64,
    /// Received DATAGRAM frames queued until the application reads them; more are dropped.
    /// Default 1,024 (guess). Range 1..=65,536 (quiche's default is 0; the ceiling is
    /// tokio-quiche's production default).
    pub dgram_recv_queue_len: usize,
    /// DATAGRAM frames queued for sending; `dgram_send` fails with `Done` beyond. Default 1,024
    /// (guess). Range 1..=65,536 (quiche's default is 0).
    pub dgram_send_queue_len: usize,
    /// Largest UDP payload this node sends, in bytes (before path MTU discovery, which is off).
    /// Default 1,350 (tokio-quiche production default: fits common tunnels and encapsulations).
    /// Range 1,200..=65,527; larger values need a path (and GSO segment size) that carries them.
    pub max_send_udp_payload_bytes: usize,
    /// The `max_udp_payload_size` transport parameter: largest UDP payload this node accepts, in
    /// bytes. Default 65,527 (quiche default). Range 1,200..=65,527.
    pub max_recv_udp_payload_bytes: usize,
    /// The `active_connection_id_limit` transport parameter: connection IDs the peer may issue
    /// to this node at once. Default 4 (guess: shoal rotates connection IDs, which encode the
    /// shard, so a spare or two beyond the RFC minimum helps). Range 2..=16 (RFC 9000 §18.2
    /// minimum 2; quiche silently ignores lower values).
    pub active_connection_id_limit: u64,
    /// The `disable_active_migration` transport parameter. Default false (quiche default;
    /// migration is a feature: a node whose address changes keeps its connections).
    pub disable_active_migration: bool,
    /// Congestion controller. Default CUBIC (quiche default).
    pub cc_algorithm: CongestionControlAlgorithm,
    /// Whether quiche paces: it then stamps each packet with a send time (`SendInfo::at`),
    /// which only takes effect if the sender honours it. Default true (quiche default).
    pub enable_pacing: bool,
    /// Ceiling of the connection flow-control window as quiche auto-tunes it, in bytes.
    /// Default 10 MiB = `initial_max_data_bytes`, i.e. no auto-tuning (measured: with quiche's
    /// 24 MiB, a one-core receiver flooded over loopback let its windows and the sender's
    /// congestion window grow into multi-second stalls — 2 of 6 `shoal-loadgen transport
    /// --workload messages` runs fell to 0.1–0.3 M msg/s with a 2.5 s smoothed RTT; capped,
    /// 8 of 8 runs held 3.6–4.4 M msg/s with no loss; docs/PERFORMANCE.md). Range
    /// `initial_max_data_bytes`..=1 GiB; raise it for long fat paths.
    pub max_connection_window_bytes: u64,
    /// Ceiling of each stream's flow-control window as quiche auto-tunes it, in bytes. Default
    /// 1 MiB = `initial_max_stream_data_bytes` (measured, same runs as above; quiche's default
    /// is 16 MiB). Range `initial_max_stream_data_bytes`..=1 GiB.
    pub max_stream_window_bytes: u64,
    /// RTT assumed before the first sample, in ms; sets the first retransmission timeouts.
    /// Default 333 (quiche default, RFC 9002 §6.2.2). Range 1..=10,000.
    pub initial_rtt_ms: u64,
}

impl Default for QuicSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: 30_000,
            initial_max_data_bytes: 10 * 1024 * 1024,
            initial_max_stream_data_bytes: 1024 * 1024,
            initial_max_streams_bidi: 128,
            initial_max_streams_uni: 16,
            dgram_recv_queue_len: 1024,
            dgram_send_queue_len: 1024,
            max_send_udp_payload_bytes: 1350,
            max_recv_udp_payload_bytes: MAX_UDP_PAYLOAD_BYTES,
            active_connection_id_limit: 4,
            disable_active_migration: false,
            cc_algorithm: CongestionControlAlgorithm::CUBIC,
            enable_pacing: true,
            max_connection_window_bytes: 10 * 1024 * 1024,
            max_stream_window_bytes: 1024 * 1024,
            initial_rtt_ms: 333,
        }
    }
}

impl QuicSettings {
    /// Checks every documented bound; the error names the key (section `transport`) and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn err(key: &'static str, value: &dyn std::fmt::Display, fix: &'static str) -> ConfigError {
            ConfigError { section: "transport", key, value: value.to_string(), fix }
        }
        let u64_in = |key, v: u64, lo: u64, hi: u64, fix| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(err(key, &v, fix))
            }
        };
        u64_in("idle_timeout_ms", self.idle_timeout_ms, 1, 3_600_000, "use 1..=3600000 ms")?;
        u64_in(
            "max_connection_window_bytes",
            self.max_connection_window_bytes,
            1,
            MAX_WINDOW_BYTES,
            "use 1..=1073741824 bytes",
        )?;
        u64_in(
            "initial_max_data_bytes",
            self.initial_max_data_bytes,
            1,
            self.max_connection_window_bytes,
            "use a value >= 1 and <= max_connection_window_bytes",
        )?;
        u64_in(
            "max_stream_window_bytes",
            self.max_stream_window_bytes,
            1,
            MAX_WINDOW_BYTES,
            "use 1..=1073741824 bytes",
        )?;
        u64_in(
            "initial_max_stream_data_bytes",
            self.initial_max_stream_data_bytes,
            1,
            self.max_stream_window_bytes,
            "use a value >= 1 and <= max_stream_window_bytes",
        )?;
        u64_in(
            "initial_max_streams_bidi",
            self.initial_max_streams_bidi,
            1,
            65_536,
            "use 1..=65536",
        )?;
        u64_in(
            "initial_max_streams_uni",
            self.initial_max_streams_uni,
            1,
            65_536,
            "use 1..=65536",
        )?;
        for (key, len) in [
            ("dgram_recv_queue_len", self.dgram_recv_queue_len),
            ("dgram_send_queue_len", self.dgram_send_queue_len),
        ] {
            if !(1..=65_536).contains(&len) {
                return Err(err(key, &len, "use 1..=65536"));
            }
        }
        for (key, bytes) in [
            ("max_send_udp_payload_bytes", self.max_send_udp_payload_bytes),
            ("max_recv_udp_payload_bytes", self.max_recv_udp_payload_bytes),
        ] {
            if !(MIN_UDP_PAYLOAD_BYTES..=MAX_UDP_PAYLOAD_BYTES).contains(&bytes) {
                return Err(err(key, &bytes, "use 1200..=65527 bytes (RFC 9000 bounds)"));
            }
        }
        u64_in(
            "active_connection_id_limit",
            self.active_connection_id_limit,
            2,
            16,
            "use 2..=16 (RFC 9000 requires at least 2)",
        )?;
        u64_in("initial_rtt_ms", self.initial_rtt_ms, 1, 10_000, "use 1..=10000 ms")?;
        Ok(())
    }
}

/// The factory of `quiche::Config`s: a new config, with its own BoringSSL context, for a node
/// with `material` that accepts the peers `verifier` accepts. The same config serves client
/// (`quiche::connect`) and server (`quiche::accept`) connections.
///
/// Call it once per shard: a `quiche::Config` is not `Clone` and creating a connection borrows
/// it mutably, so each shard owns one; building one is cheap next to a handshake.
///
/// Never call `verify_peer` on the result: it overwrites the verify mode set here, and either
/// value silently weakens authentication (`false`: `verifier` never runs; `true`: a server
/// accepts clients without a certificate). The handshake tests fail in both cases.
pub fn quiche_config(
    material: &TlsMaterial,
    settings: &QuicSettings,
    verifier: Arc<dyn PeerVerifier>,
) -> Result<quiche::Config, TlsError> {
    settings.validate()?;
    let context = ssl_context_builder(material, verifier)?;
    let mut config = quiche::Config::with_boring_ssl_ctx_builder(quiche::PROTOCOL_VERSION, context)
        .map_err(TlsError::quiche("create a config from the TLS context"))?;
    apply(&mut config, settings)?;
    Ok(config)
}

/// Sets every [`QuicSettings`] value on `config` (and the ALPN).
pub(crate) fn apply(config: &mut quiche::Config, settings: &QuicSettings) -> Result<(), TlsError> {
    config.set_application_protos(&[ALPN]).map_err(TlsError::quiche("set the ALPN"))?;
    config.set_max_idle_timeout(settings.idle_timeout_ms);
    config.set_initial_max_data(settings.initial_max_data_bytes);
    config.set_initial_max_stream_data_bidi_local(settings.initial_max_stream_data_bytes);
    config.set_initial_max_stream_data_bidi_remote(settings.initial_max_stream_data_bytes);
    config.set_initial_max_stream_data_uni(settings.initial_max_stream_data_bytes);
    config.set_initial_max_streams_bidi(settings.initial_max_streams_bidi);
    config.set_initial_max_streams_uni(settings.initial_max_streams_uni);
    config.enable_dgram(true, settings.dgram_recv_queue_len, settings.dgram_send_queue_len);
    config.set_max_send_udp_payload_size(settings.max_send_udp_payload_bytes);
    config.set_max_recv_udp_payload_size(settings.max_recv_udp_payload_bytes);
    config.set_active_connection_id_limit(settings.active_connection_id_limit);
    config.set_disable_active_migration(settings.disable_active_migration);
    config.set_cc_algorithm(settings.cc_algorithm);
    config.enable_pacing(settings.enable_pacing);
    config.set_max_connection_window(settings.max_connection_window_bytes);
    config.set_max_stream_window(settings.max_stream_window_bytes);
    config.set_initial_rtt(Duration::from_millis(settings.initial_rtt_ms));
    Ok(())
}
