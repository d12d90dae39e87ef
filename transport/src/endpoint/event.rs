//! What the endpoint reports to the layer above, and the codes it puts on the wire.

use std::net::SocketAddr;

use bytes::Bytes;
use shoal_protocols::NodeName;

/// Application error codes in CONNECTION_CLOSE frames (docs/protocols/wire.md).
pub mod close_code {
    /// Orderly close (shutdown of the node or of the link by the layer above).
    pub const NO_ERROR: u64 = 0x0;
    /// The pair already has a connection: the one dialled by the lower name wins.
    pub const DUPLICATE: u64 = 0x1;
    /// The peer restarted or re-dialled; a newer connection replaced this one.
    pub const REPLACED: u64 = 0x2;
    /// Closed by the idle-connection GC.
    pub const REAPED: u64 = 0x3;
    /// The peer sent bytes that are not shoal frames.
    pub const PROTOCOL: u64 = 0x4;
    /// The QUIC handshake and HELLO/WELCOME did not finish within
    /// `auth_handshake_timeout_ms` (`auth_stream_timeout`). Codes 0x20..=0x27 are the
    /// authentication refusals (`crate::auth::failure::close_code`).
    pub const HELLO_TIMEOUT: u64 = 0x5;
    /// The node is shutting down.
    pub const SHUTDOWN: u64 = 0x6;
}

/// Stream reset codes (RESET_STREAM / STOP_SENDING) used by the transport itself.
pub mod reset_code {
    /// The tag of a tagged stream has no acceptor on this node.
    pub const UNKNOWN_TAG: u64 = 0x10;
    /// 64 streams of this connection were already waiting for their preamble.
    pub const PREAMBLE_OVERFLOW: u64 = 0x11;
    /// The preamble's tag length was 0.
    pub const BAD_PREAMBLE: u64 = 0x12;
    /// The peer opened a stream kind shoal does not use.
    pub const UNEXPECTED_STREAM: u64 = 0x13;
    /// The connection went away with the stream open.
    pub const LINK_DOWN: u64 = 0x14;
}

/// Which ordered channel of a connection a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The control stream: protocol messages, sent before anything else.
    Control,
    /// One of the data streams, chosen by `key % data_lanes` so that one key (a sender →
    /// mailbox pair) always uses one stream and keeps its order.
    Data(u64),
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Closed by this node or by the peer without error.
    Closed,
    /// No packet from the peer within the QUIC idle timeout.
    IdleTimeout,
    /// The peer closed with an error code or the connection failed (code, peer side).
    Reset {
        /// Application or transport error code.
        code: u64,
        /// Whether the peer sent the close.
        by_peer: bool,
    },
    /// Closed by the idle-connection GC (this side or the peer's).
    Reaped,
    /// A newer connection of the same pair replaced it.
    Replaced,
    /// The handshake (QUIC or HELLO) did not complete.
    HandshakeFailed,
    /// Authentication refused the peer (or the peer refused us): `reason` is the label of
    /// `crate::auth::AuthFailure` (`key_mismatch`, `untrusted_key`, …).
    AuthFailed {
        /// The reason's label.
        reason: &'static str,
        /// Whether the peer detected it and closed.
        by_peer: bool,
    },
    /// The node is shutting down.
    Shutdown,
}

/// Outcome of a migration request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// The new path validated and carries the connection.
    Ok,
    /// Path validation failed; the connection stays on its old path.
    Failed,
    /// No outcome within `migrate_timeout_ms`.
    Timeout,
}

/// Identifies a tagged stream on one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub(crate) conn: u32,
    pub(crate) generation: u32,
    pub(crate) stream_id: u64,
}

/// An event for the layer above. The endpoint queues events while it handles an input; the
/// driver drains them after every call ([`super::Endpoint::poll_event`]), so the queue never
/// holds more than one input's worth (each event stems from at least one frame header of input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A connection to `peer` completed its handshake and HELLO; messages flow.
    LinkUp {
        /// The peer.
        peer: NodeName,
        /// Its address as seen by this node.
        addr: SocketAddr,
        /// This node's shard that owns the connection.
        shard: usize,
    },
    /// The connection to `peer` went away. `unsent_messages` queued messages were not handed
    /// to QUIC and are lost to this link (the caller decides whether to resend).
    LinkDown {
        /// The peer.
        peer: NodeName,
        /// Why.
        reason: DownReason,
        /// Messages that never left this node.
        unsent_messages: usize,
    },
    /// A message from `peer`.
    Message {
        /// Sender.
        peer: NodeName,
        /// The lane it came on (the data lane reports the stream's index, not the sender's key).
        lane: Lane,
        /// The bytes.
        payload: Bytes,
    },
    /// A DATAGRAM from `peer` (unordered, unreliable).
    Datagram {
        /// Sender.
        peer: NodeName,
        /// The bytes.
        payload: Bytes,
    },
    /// A peer opened a tagged stream whose tag has an acceptor.
    StreamOpened {
        /// The peer.
        peer: NodeName,
        /// The tag from the preamble.
        tag: Bytes,
        /// Handle for stream calls.
        stream: StreamKey,
    },
    /// A tagged stream has bytes (or its end) to read.
    StreamReadable {
        /// The stream.
        stream: StreamKey,
    },
    /// A tagged stream that refused a write has room again.
    StreamWritable {
        /// The stream.
        stream: StreamKey,
    },
    /// A tagged stream is gone (finished both ways, reset, or its connection closed).
    StreamClosed {
        /// The stream.
        stream: StreamKey,
        /// Reset code, `None` for a clean finish.
        reset_code: Option<u64>,
    },
    /// A migration finished.
    Migrated {
        /// The peer.
        peer: NodeName,
        /// Outcome.
        outcome: MigrationOutcome,
    },
}
