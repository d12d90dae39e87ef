//! One connection's state beside its quiche connection.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use shoal_protocols::NodeName;

use super::event::DownReason;
use super::queue::Queues;
use super::settings::EndpointSettings;
use crate::cid::CID_LEN;
use crate::frame::FrameReader;

/// Which side of the QUIC handshake this node played (it fixes stream-ID parity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// This node dialled (QUIC client).
    Dialer,
    /// The peer dialled (QUIC server).
    Acceptor,
}

/// Where the connection is in shoal's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// QUIC handshake running.
    Handshake,
    /// Dialer: HELLO sent, waiting for WELCOME (or a DUPLICATE close).
    AwaitWelcome,
    /// Acceptor: waiting for the dialer's HELLO.
    AwaitHello,
    /// Messages flow.
    Ready,
    /// Closed locally or by the peer; waiting for quiche to drain.
    Closing,
}

/// A tagged user stream.
#[derive(Debug)]
pub(crate) struct Tagged {
    /// Preamble progress for streams the peer opened; `None` once the tag is known.
    pub preamble: Option<Vec<u8>>,
    /// The tag (empty until the preamble completed).
    pub tag: Bytes,
    /// A write was refused for lack of room: report writability.
    pub write_blocked: bool,
    /// The peer finished its side (all bytes read).
    pub fin_received: bool,
    /// This side finished or reset its sending half.
    pub send_done: bool,
}

/// Migration in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// The new local address.
    pub local: SocketAddr,
    /// When to give up.
    pub deadline: Instant,
}

/// Everything shoal keeps per connection.
pub(crate) struct Conn {
    pub q: quiche::Connection,
    /// This connection's slot on its shard (set when inserted).
    pub slot: u32,
    pub role: Role,
    pub phase: Phase,
    /// Known at dial time for the dialer, from HELLO for the acceptor.
    pub peer: Option<NodeName>,
    pub peer_addr: SocketAddr,
    pub local_addr: SocketAddr,
    pub created_at: Instant,
    pub last_activity: Instant,
    /// Whether LinkUp was reported (LinkDown is reported only then).
    pub announced: bool,
    /// Whether LinkDown was reported already (at a local close, before draining ends).
    pub down_reported: bool,
    pub control_in: FrameReader,
    /// Readers of the peer's data lanes, by stream ID (bounded by the peer's uni stream limit).
    pub lanes_in: HashMap<u64, FrameReader>,
    pub out: Queues,
    pub tagged: BTreeMap<u64, Tagged>,
    pub preamble_pending: usize,
    pub next_local_bidi: u64,
    pub cids: Vec<[u8; CID_LEN]>,
    pub migration: Option<Migration>,
    /// The reason this side closed the connection, reported when it is gone.
    pub local_close: Option<DownReason>,
    /// The deadline of the queued timer entry for this connection.
    pub timer_at: Option<Instant>,
    /// Queued for `poll_transmit`.
    pub dirty: bool,
    /// The first source connection ID this side chose (bound into the proofs).
    pub initial_scid: [u8; CID_LEN],
    /// What the proofs are bound to, known once the QUIC handshake completed.
    pub binding: Option<crate::auth::Binding>,
    /// Whether this connection's authentication outcome was recorded (exactly once).
    pub auth_recorded: bool,
    /// A close asked for in the call that completed a dialer's QUIC handshake, carried out at
    /// the connection's next event (see `Endpoint::close_conn`).
    pub deferred_close: Option<(u64, DownReason)>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("peer", &self.peer)
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

/// Stream ID of the control stream (the dialer's first bidirectional stream).
pub(crate) const CONTROL_STREAM: u64 = 0;

impl Conn {
    /// `path` is (local address, peer address); `initial_scid` the first source CID this side
    /// chose for it.
    pub(crate) fn new(
        q: quiche::Connection,
        role: Role,
        peer: Option<NodeName>,
        path: (SocketAddr, SocketAddr),
        initial_scid: [u8; CID_LEN],
        now: Instant,
        settings: &EndpointSettings,
    ) -> Self {
        let (local_addr, peer_addr) = path;
        let (frame_bytes_max, data_lanes) = (settings.frame_bytes_max, settings.data_lanes);
        Self {
            q,
            slot: u32::MAX,
            role,
            phase: Phase::Handshake,
            peer,
            peer_addr,
            local_addr,
            created_at: now,
            last_activity: now,
            announced: false,
            down_reported: false,
            control_in: FrameReader::new(frame_bytes_max),
            lanes_in: HashMap::new(),
            out: Queues::new(data_lanes),
            tagged: BTreeMap::new(),
            preamble_pending: 0,
            // Client bidi IDs are 0 mod 4 (0 is the control stream), server bidi IDs 1 mod 4.
            next_local_bidi: match role {
                Role::Dialer => 4,
                Role::Acceptor => 1,
            },
            cids: Vec::new(),
            migration: None,
            local_close: None,
            timer_at: None,
            dirty: false,
            initial_scid,
            binding: None,
            auth_recorded: false,
            deferred_close: None,
        }
    }

    /// This side's stream-ID parity bit (0 for the client, 1 for the server).
    pub(crate) fn own_parity(&self) -> u64 {
        match self.role {
            Role::Dialer => 0,
            Role::Acceptor => 1,
        }
    }

    /// Stream ID of this side's data lane `index` (unidirectional: ID = 4·i + 2 + parity).
    pub(crate) fn lane_stream(&self, index: usize) -> u64 {
        4 * index as u64 + 2 + self.own_parity()
    }

    /// Whether `stream_id` is a data lane the peer opened.
    pub(crate) fn is_peer_lane(&self, stream_id: u64) -> bool {
        stream_id & 0x2 == 0x2 && stream_id & 0x1 != self.own_parity()
    }

    /// Whether `stream_id` is a bidirectional stream the peer opened (a tagged stream unless it
    /// is the control stream).
    pub(crate) fn is_peer_bidi(&self, stream_id: u64) -> bool {
        stream_id & 0x2 == 0 && stream_id & 0x1 != self.own_parity()
    }

    /// Whether a user stream keeps the connection busy (GC never reaps it).
    pub(crate) fn has_live_user_stream(&self) -> bool {
        !self.tagged.is_empty()
    }
}
