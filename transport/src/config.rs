//! The transport's configuration: one node's listen address, shards, sockets, QUIC and
//! endpoint settings. Keys follow the deployment seed's configuration reference where it has
//! them (`listen_port`, `quic_cert_dir`, `dist_gc_*`) and say "shoal" in their docs otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;

use shoal_protocols::config::ConfigError;
use shoal_protocols::NodeName;

use crate::auth::AuthConfig;
use crate::cid::SHARDS_MAX;
use crate::endpoint::EndpointSettings;
use crate::tls::QuicSettings;

/// Bound on [`TransportConfig::spin_before_park_us`]: 10 ms; beyond it a shard is a busy loop.
pub const SPIN_BEFORE_PARK_US_MAX: u64 = 10_000;

/// Everything [`crate::shard::Transport::start`] needs.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This node's name (`name@host`).
    pub name: NodeName,
    /// The one listen address every shard's socket binds (SO_REUSEPORT group). Must be a
    /// concrete IP: glommio passes no packet info, so the local address of a datagram is
    /// only known when the socket is bound to one. Port 0 picks a free port (`listen_port`
    /// default 0 in the deployment seed).
    pub listen_addr: SocketAddr,
    /// Executors, one per shard. Default: the available cores (shoal). Bound 1..=256 (the
    /// shard index is one CID byte).
    pub shards: usize,
    /// Pin shard i to CPU i modulo the online CPUs (production and benchmarks). Default true
    /// (DESIGN §3); tests set false so that the test runner keeps a core.
    pub pin_shards: bool,
    /// Directory of `node.key`/`node.crt` (`quic_cert_dir`, default `data/quic`). `None`
    /// generates an in-memory certificate for this run only (tests, benchmarks).
    pub quic_cert_dir: Option<PathBuf>,
    /// SO_RCVBUF per shard socket. Default 4 MiB (measured: the kernel's `rmem_max` on the
    /// reference machines; bursts of 64-segment GRO batches need it). Bound 64 KiB..=1 GiB.
    pub socket_rcvbuf_bytes: usize,
    /// SO_SNDBUF per shard socket. Default 4 MiB (same reason). Bound 64 KiB..=1 GiB.
    pub socket_sndbuf_bytes: usize,
    /// Time a shard's executor keeps polling for work before it parks, in µs (glommio's
    /// `spin_before_park`). Default 0: park at once (stack-facts §1.4: on a 2-core host the
    /// spinning steals from everything else). A parked shard takes ≈ 80 µs (measured, VM
    /// without halt-polling) to wake for the next datagram; latency-sensitive nodes with
    /// cores to spare set 50–200. Bound 0..=10,000 (10 ms: beyond it a shard is a busy loop).
    pub spin_before_park_us: u64,
    /// Bound on the whole shutdown: closes sent, drained, executors joined. Default 3,000 ms
    /// (guess: ≥ 3 PTOs of a LAN path with room to spare).
    pub shutdown_timeout_ms: u64,
    /// Cross-shard batches a shard's mailbox holds. Default 1,024 (guess: each batch is one
    /// flush of another shard; a full mailbox makes the producer keep its batch for the
    /// next flush, counted in `mailbox_full`). Bound 16..=1,048,576.
    pub mailbox_batches_max: usize,
    /// Sockets a shard keeps for migrated connections. Default 64 (guess); a migration
    /// beyond it is refused. Bound 1..=4,096.
    pub migration_sockets_max: usize,
    /// QUIC settings (ALPN, windows, idle timeout, …).
    pub quic: QuicSettings,
    /// Endpoint settings (frames, queues, GC, migration, the handshake deadline).
    pub endpoint: EndpointSettings,
    /// Peer authentication (identity key directory, trust mode, cookie, …).
    pub auth: AuthConfig,
}

impl TransportConfig {
    /// Defaults for `name` listening on `listen_addr`.
    pub fn new(name: NodeName, listen_addr: SocketAddr) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            name,
            listen_addr,
            shards: cores.min(SHARDS_MAX),
            pin_shards: true,
            quic_cert_dir: Some(PathBuf::from(crate::tls::DEFAULT_CERT_DIR)),
            socket_rcvbuf_bytes: 4 << 20,
            socket_sndbuf_bytes: 4 << 20,
            spin_before_park_us: 0,
            shutdown_timeout_ms: 3_000,
            mailbox_batches_max: 1_024,
            migration_sockets_max: 64,
            quic: QuicSettings::default(),
            endpoint: EndpointSettings::default(),
            auth: AuthConfig::default(),
        }
    }

    /// Checks every key; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, value: &dyn std::fmt::Display, fix: &'static str| {
            ConfigError { section: "transport", key, value: value.to_string(), fix }
        };
        if self.listen_addr.ip().is_unspecified() {
            return Err(invalid(
                "listen_addr",
                &self.listen_addr,
                "bind a concrete IP (e.g. the host's cluster address or 127.0.0.1): shoal needs the local address of every datagram",
            ));
        }
        if !(1..=SHARDS_MAX).contains(&self.shards) {
            return Err(invalid(
                "shards",
                &self.shards,
                "use 1..=256 (the shard index is one connection-ID byte)",
            ));
        }
        for (key, value) in [
            ("socket_rcvbuf_bytes", self.socket_rcvbuf_bytes),
            ("socket_sndbuf_bytes", self.socket_sndbuf_bytes),
        ] {
            if !(64 << 10..=1 << 30).contains(&value) {
                return Err(invalid(key, &value, "use 65536..=1073741824 bytes"));
            }
        }
        if self.spin_before_park_us > SPIN_BEFORE_PARK_US_MAX {
            return Err(invalid(
                "spin_before_park_us",
                &self.spin_before_park_us,
                // The fix is a `&'static str`: the number is checked against the constant.
                {
                    const _: () = assert!(SPIN_BEFORE_PARK_US_MAX == 10_000, "fix text below");
                    "use 0..=10000 µs (0 parks at once)"
                },
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return Err(invalid(
                "shutdown_timeout_ms",
                &self.shutdown_timeout_ms,
                "use a positive number of milliseconds",
            ));
        }
        if !(16..=1 << 20).contains(&self.mailbox_batches_max) {
            return Err(invalid(
                "mailbox_batches_max",
                &self.mailbox_batches_max,
                "use 16..=1048576",
            ));
        }
        if !(1..=4_096).contains(&self.migration_sockets_max) {
            return Err(invalid(
                "migration_sockets_max",
                &self.migration_sockets_max,
                "use 1..=4096",
            ));
        }
        self.quic.validate()?;
        self.endpoint.validate()?;
        self.auth.validate()?;
        if self.endpoint.data_lanes as u64 > self.quic.initial_max_streams_uni {
            return Err(invalid(
                "data_lanes",
                &self.endpoint.data_lanes,
                "must not exceed initial_max_streams_uni (each lane is one unidirectional stream)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        TransportConfig::new(
            NodeName::parse("a@h").expect("valid"),
            "127.0.0.1:0".parse().expect("literal"),
        )
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn each_bad_key_is_named() {
        let mut bad = config();
        bad.listen_addr = "0.0.0.0:4000".parse().expect("literal");
        assert_eq!(bad.validate().map_err(|e| e.key), Err("listen_addr"));
        let mut bad = config();
        bad.shards = 0;
        assert_eq!(bad.validate().map_err(|e| e.key), Err("shards"));
        let mut bad = config();
        bad.socket_rcvbuf_bytes = 10;
        assert_eq!(bad.validate().map_err(|e| e.key), Err("socket_rcvbuf_bytes"));
        let mut bad = config();
        bad.spin_before_park_us = SPIN_BEFORE_PARK_US_MAX + 1;
        assert_eq!(bad.validate().map_err(|e| e.key), Err("spin_before_park_us"));
        let mut bad = config();
        bad.endpoint.data_lanes = 16;
        bad.quic.initial_max_streams_uni = 8;
        assert_eq!(bad.validate().map_err(|e| e.key), Err("data_lanes"));
    }
}
