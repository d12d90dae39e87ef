//! One shard's QUIC endpoint as a synchronous state machine.
//!
//! quinn-proto's contract: inputs through `handle_*` (datagrams, timeouts, hand-offs from
//! other shards) and the API calls (`send`, `open_stream`, `migrate`, …); outputs pulled with
//! `poll_*` (datagrams to send into a caller-owned buffer, the next deadline, events, hand-offs
//! for other shards). No socket, no executor, no thread: the glommio shard driver and the
//! in-memory test pairs drive the same code. quiche reads the system clock internally, so
//! the `now` passed in must be `Instant::now()` (docs/ARCHITECTURE.md).
//!
//! Bounds (docs/ARCHITECTURE.md, "Bounds"): connections per shard ≤ `connections_max`; per
//! peer, queued bytes ≤ `peer_queue_bytes_max`; per stream reader, one frame ≤
//! `frame_bytes_max`; per connection, streams waiting for a preamble ≤
//! `preamble_pending_max`, peer streams ≤ the QUIC stream limits; one GSO batch ≤ 64
//! segments; events and hand-offs are drained after every call.

mod auth;
mod conn;
pub mod event;
mod io;
mod peers;
mod queue;
pub mod settings;
pub mod streams;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_protocols::NodeName;

use crate::auth::Auth;
use crate::cid::CID_LEN;
use crate::directory::{ConnRef, Directory};
use crate::metrics::{Counters, ShardMetrics};
use crate::tls::PeerVerifier;
use conn::Conn;
pub use event::{DownReason, Event, Lane, MigrationOutcome, StreamKey};
pub use queue::Queues;
pub use settings::EndpointSettings;
pub use streams::StreamError;

/// What a shard needs to build its endpoint.
pub struct EndpointParams {
    /// This shard's index.
    pub shard: usize,
    /// Shards of the node (CIDs encode the index modulo this).
    pub shards: usize,
    /// The node's name (sent in HELLO).
    pub name: NodeName,
    /// Random per process start (sent in HELLO and WELCOME).
    pub incarnation: u64,
    /// The node's listen address (every shard's socket is bound to it).
    pub local_addr: SocketAddr,
    /// The shard's own quiche configuration (quiche's `Config` is not `Clone`).
    pub quic_config: quiche::Config,
    /// Endpoint settings (validated by the caller).
    pub settings: EndpointSettings,
    /// The node-wide peer table.
    pub directory: Arc<Directory>,
    /// This shard's metrics block.
    pub metrics: Arc<ShardMetrics>,
    /// The node's authentication state (identity, pins, cookie), shared by its shards.
    pub auth: Arc<Auth>,
    /// The node's peer verifier, run again on the peer's TLS key after the handshake.
    pub verifier: Arc<dyn PeerVerifier>,
    /// The node's TLS public key (bound into every proof).
    pub tls_public_key: [u8; 32],
}

impl std::fmt::Debug for EndpointParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointParams")
            .field("shard", &self.shard)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One batch of equal-sized datagrams to send (one `sendmsg` with `UDP_SEGMENT`): the
/// first `len` bytes of the caller's buffer, cut every `segment_size` bytes (the last
/// segment may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Local address to send from (the listen address, or a migration socket's).
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// Bytes in the buffer.
    pub len: usize,
    /// Size of each datagram but the last.
    pub segment_size: usize,
    /// Number of datagrams.
    pub segments: usize,
}

/// What became of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramOutcome {
    /// Fed to a connection or accepted as a new one.
    Handled,
    /// Its connection ID belongs to another shard: hand it over (counted).
    Foreign(usize),
    /// Not a datagram this shard can use (counted in `datagrams_dropped`).
    Dropped,
}

/// Work for another shard of this node.
#[derive(Debug)]
pub enum Handoff {
    /// Messages for `peer`, whose connection lives on the receiving shard.
    Queues {
        /// The peer.
        peer: NodeName,
        /// Its address (to dial if its connection is gone by then).
        addr: SocketAddr,
        /// Its messages, in order per lane.
        queues: Queues,
    },
    /// A newer connection replaced `conn` (on the receiving shard): close it with
    /// `REPLACED` and hand its queued messages to the peer's owner.
    CloseReplaced {
        /// The peer.
        peer: NodeName,
        /// The old connection.
        conn: ConnRef,
    },
}

/// Why a send was refused. Nothing was queued; the caller still holds its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer's queue holds `peer_queue_bytes_max` already (counted). Retry after the
    /// queue drains (the peer or the path is slower than the sender).
    #[error("send queue to {peer} is full ({queued_bytes} bytes queued, bound {max_bytes}); retry later")]
    QueueFull {
        /// The peer.
        peer: NodeName,
        /// Bytes queued.
        queued_bytes: usize,
        /// The bound.
        max_bytes: usize,
    },
    /// The message is larger than `frame_bytes_max`. A retry fails the same way.
    #[error("message of {len} bytes exceeds frame_bytes_max = {max}")]
    TooLarge {
        /// Message length.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// Another shard owns the peer's connection: send through it. Nothing changed here.
    #[error("peer {peer} is owned by shard {shard}")]
    OtherShard {
        /// The peer.
        peer: NodeName,
        /// Its owner shard.
        shard: usize,
    },
    /// The shard that owns the peer has not taken hand-offs for a long time (its backlog
    /// reached `OUTBOUND_ITEMS_MAX`); nothing was queued (counted). Retry later.
    #[error("shard {shard}, which owns the peer, is not keeping up; retry later")]
    OwnerBusy {
        /// The owner shard.
        shard: usize,
    },
    /// The shard holds `connections_max` connections; retry after some close.
    #[error("shard holds connections_max = {max} connections")]
    ShardFull {
        /// Bound.
        max: usize,
    },
    /// No established connection to the peer (DATAGRAMs and streams need one). Send a
    /// message first to dial, then retry after LinkUp.
    #[error("no established connection to {peer}")]
    NotConnected {
        /// The peer.
        peer: NodeName,
    },
    /// quiche refused (the text says why). Whether a retry helps depends on the error.
    #[error("quic: {0}")]
    Quic(String),
}

/// Why a migration could not start. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MigrateError {
    /// No established connection to the peer.
    #[error("no established connection to {0}")]
    NotConnected(NodeName),
    /// QUIC lets only the client of a connection migrate it (RFC 9000 §9); the peer dialled
    /// this one. Ask the peer to migrate, or close and re-dial.
    #[error("the connection to {0} was dialled by the peer; only the dialling side can migrate (RFC 9000 §9)")]
    NotDialer(NodeName),
    /// A migration of this connection is already running.
    #[error("a migration to {0} is already running")]
    InProgress(NodeName),
    /// The peer shares no spare connection ID with us yet, or quiche refused.
    #[error("quic refused the migration: {0}")]
    Quic(String),
}

/// Path figures of a connection's active path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStats {
    /// Local address of the active path.
    pub local_addr: SocketAddr,
    /// Peer address of the active path.
    pub peer_addr: SocketAddr,
    /// Smoothed RTT, microseconds.
    pub srtt_us: u64,
    /// Minimum RTT, microseconds.
    pub min_rtt_us: u64,
    /// RTT variation, microseconds.
    pub rttvar_us: u64,
    /// Congestion window, bytes.
    pub cwnd_bytes: u64,
    /// Bytes sent and neither acknowledged nor declared lost (sent − acked − lost over the
    /// connection; quiche 0.30 does not expose the recovery's own figure).
    pub bytes_in_flight: u64,
    /// Packets sent on the path.
    pub sent_packets: u64,
    /// Packets lost on the path.
    pub lost_packets: u64,
}

struct Slot {
    generation: u32,
    conn: Option<Box<Conn>>,
}

/// Messages waiting for a connection: the peer refused our dial as a duplicate (its own
/// dial is on the way), or they arrived from another shard whose connection went away.
struct Parked {
    queues: Queues,
    addr: SocketAddr,
    retry_at: Instant,
}

/// One shard's QUIC endpoint.
pub struct Endpoint {
    shard: usize,
    shards: usize,
    name: NodeName,
    incarnation: u64,
    local_addr: SocketAddr,
    quic_config: quiche::Config,
    settings: EndpointSettings,
    directory: Arc<Directory>,
    metrics: Arc<ShardMetrics>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    live: usize,
    by_cid: HashMap<[u8; CID_LEN], u32>,
    by_peer: HashMap<NodeName, u32>,
    parked: HashMap<NodeName, Parked>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    dirty: VecDeque<u32>,
    events: VecDeque<Event>,
    handoffs: VecDeque<(usize, Handoff)>,
    acceptors: BTreeSet<Vec<u8>>,
    gc_exempt: HashSet<NodeName>,
    next_gc: Instant,
    stash: Option<(Vec<u8>, quiche::SendInfo)>,
    scratch: Vec<u8>,
    auth: Arc<Auth>,
    verifier: Arc<dyn PeerVerifier>,
    tls_public_key: [u8; 32],
    /// Transcript buffer of the proofs (≤ `auth::proof::TRANSCRIPT_BYTES_MAX`).
    auth_scratch: Vec<u8>,
    auth_log: auth::LogLimiter,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("shard", &self.shard)
            .field("name", &self.name)
            .field("connections", &self.live)
            .finish_non_exhaustive()
    }
}

/// Stale timer entries tolerated beyond two per connection before the heap is rebuilt.
const TIMER_SLACK: usize = 64;

/// Largest DATAGRAM frame payload read at once (quiche caps DATAGRAMs by the path MTU).
const DGRAM_SCRATCH_BYTES: usize = 65_536;

impl Endpoint {
    /// A shard endpoint with no connections.
    pub fn new(params: EndpointParams, now: Instant) -> Self {
        assert!(params.shard < params.shards, "shard index out of range");
        let sweep = Duration::from_millis(params.settings.dist_gc_sweep_period_ms);
        Self {
            shard: params.shard,
            shards: params.shards,
            name: params.name,
            incarnation: params.incarnation,
            local_addr: params.local_addr,
            quic_config: params.quic_config,
            settings: params.settings,
            directory: params.directory,
            metrics: params.metrics,
            slots: Vec::new(),
            free_slots: Vec::new(),
            live: 0,
            by_cid: HashMap::new(),
            by_peer: HashMap::new(),
            parked: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: VecDeque::new(),
            events: VecDeque::new(),
            handoffs: VecDeque::new(),
            acceptors: BTreeSet::new(),
            gc_exempt: HashSet::new(),
            next_gc: now + sweep,
            stash: None,
            scratch: vec![0; DGRAM_SCRATCH_BYTES],
            auth: params.auth,
            verifier: params.verifier,
            tls_public_key: params.tls_public_key,
            auth_scratch: Vec::with_capacity(crate::auth::proof::TRANSCRIPT_BYTES_MAX),
            auth_log: auth::LogLimiter::new(),
        }
    }

    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The node's listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections this shard holds (handshaking and closing included).
    pub fn connections(&self) -> usize {
        self.live
    }

    /// The metrics block.
    pub fn metrics(&self) -> &Arc<ShardMetrics> {
        &self.metrics
    }

    /// The next event for the layer above.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next piece of work for another shard.
    pub fn poll_handoff(&mut self) -> Option<(usize, Handoff)> {
        self.handoffs.pop_front()
    }

    /// Peers the GC must never reap (the active view); replaces the previous set.
    pub fn set_gc_exempt(&mut self, peers: impl IntoIterator<Item = NodeName>) {
        self.gc_exempt = peers.into_iter().collect();
    }

    /// Whether `peer` has a connection on this shard that carries messages.
    pub fn is_connected(&self, peer: &NodeName) -> bool {
        self.conn_of(peer).is_some_and(|conn| conn.phase == conn::Phase::Ready)
    }

    fn conn_of(&self, peer: &NodeName) -> Option<&Conn> {
        let slot = *self.by_peer.get(peer)?;
        self.slots[slot as usize].conn.as_deref()
    }

    fn conn_ref(&self, slot: u32) -> ConnRef {
        ConnRef { shard: self.shard, slot, generation: self.slots[slot as usize].generation }
    }

    fn insert_conn(&mut self, mut conn: Conn) -> u32 {
        self.live += 1;
        Counters::set(&self.metrics.connections, self.live as u64);
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                let entry = &mut self.slots[slot as usize];
                entry.generation = entry.generation.wrapping_add(1);
                slot
            }
            None => {
                self.slots.push(Slot { generation: 0, conn: None });
                u32::try_from(self.slots.len() - 1)
                    .expect("connections_max keeps slots below u32::MAX")
            }
        };
        conn.slot = slot;
        self.slots[slot as usize].conn = Some(Box::new(conn));
        slot
    }

    /// Takes a connection out of its slot for processing (put it back with `put`). Taking it
    /// out lets the processing borrow the rest of the endpoint freely.
    fn take(&mut self, slot: u32) -> Option<Box<Conn>> {
        self.slots.get_mut(slot as usize)?.conn.take()
    }

    fn put(&mut self, slot: u32, conn: Box<Conn>) {
        let entry = &mut self.slots[slot as usize];
        debug_assert!(entry.conn.is_none(), "slot {slot} refilled while occupied");
        entry.conn = Some(conn);
    }

    fn mark_dirty(&mut self, slot: u32, conn: &mut Conn) {
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push_back(slot);
        }
    }

    fn arm_timer(&mut self, slot: u32, conn: &mut Conn) {
        let mut next = conn.q.timeout_instant();
        if conn.phase != conn::Phase::Ready && conn.phase != conn::Phase::Closing {
            let auth_deadline = conn.created_at + self.auth_deadline();
            next = Some(next.map_or(auth_deadline, |at| at.min(auth_deadline)));
        }
        if let Some(migration) = conn.migration {
            next = Some(next.map_or(migration.deadline, |at| at.min(migration.deadline)));
        }
        // Queue an entry only when the deadline moves earlier than the one already queued.
        // A later deadline keeps the earlier entry: it fires once, finds nothing due, and
        // re-arms with the real deadline. (Pushing on every change queued one entry per
        // datagram — the idle timer moves with each packet — and the heap grew by hundreds of
        // thousands of stale entries per second under load.)
        let Some(at) = next else { return };
        if conn.timer_at.is_some_and(|queued| queued <= at) {
            return;
        }
        conn.timer_at = Some(at);
        let generation = self.slots[slot as usize].generation;
        self.timers.push(Reverse((at, slot, generation)));
        if self.timers.len() > 2 * self.live + TIMER_SLACK {
            self.compact_timers();
        }
    }

    /// Rebuilds the timer heap from the live connections' queued deadlines, dropping stale
    /// entries: the heap never holds more than `2 × connections + TIMER_SLACK` entries.
    fn compact_timers(&mut self) {
        let live = self.slots.iter().enumerate().filter_map(|(slot, entry)| {
            let at = entry.conn.as_ref()?.timer_at?;
            let slot = u32::try_from(slot).expect("slot count fits u32");
            Some(Reverse((at, slot, entry.generation)))
        });
        self.timers = live.collect();
    }

    /// Whether a heap entry is still its connection's queued deadline (not re-armed, not a
    /// connection that left its slot).
    fn timer_entry_live(&self, at: Instant, slot: u32, generation: u32) -> bool {
        self.slots.get(slot as usize).is_some_and(|entry| {
            entry.generation == generation
                && entry.conn.as_ref().is_some_and(|conn| conn.timer_at == Some(at))
        })
    }

    /// The earliest instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Drop stale heap entries (connections re-armed or gone) so the answer is exact.
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if self.timer_entry_live(at, slot, generation) {
                break;
            }
            self.timers.pop();
        }
        let conn_next = self.timers.peek().map(|Reverse((at, _, _))| *at);
        let parked_next = self.parked.values().map(|parked| parked.retry_at).min();
        [conn_next, parked_next, Some(self.next_gc)].into_iter().flatten().min()
    }

    /// Runs everything due at `now`: QUIC timers, HELLO and migration deadlines, redials, the
    /// GC sweep.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Take every due entry first: a connection re-armed at an instant that is still due
        // (quiche reads its own clock) must not be processed twice in one call.
        let mut due = Vec::new();
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.timer_entry_live(at, slot, generation) {
                due.push(slot);
            }
        }
        for slot in due {
            let Some(mut conn) = self.take(slot) else { continue };
            conn.timer_at = None;
            if conn.q.timeout_instant().is_some_and(|quic_at| quic_at <= now) {
                conn.q.on_timeout();
            }
            self.check_deadlines(&mut conn, now);
            self.after_io(slot, conn, now);
        }
        if !self.parked.is_empty() {
            self.retry_parked(now);
        }
        if now >= self.next_gc {
            self.gc_sweep(now);
            let period = Duration::from_millis(self.settings.dist_gc_sweep_period_ms);
            self.next_gc = now + period;
        }
    }

    fn check_deadlines(&mut self, conn: &mut Conn, now: Instant) {
        let handshaking = matches!(
            conn.phase,
            conn::Phase::Handshake | conn::Phase::AwaitHello | conn::Phase::AwaitWelcome
        );
        if handshaking && now >= conn.created_at + self.auth_deadline() {
            self.auth_failed(conn, &crate::auth::AuthFailure::AuthStreamTimeout, now);
        }
        if let Some(migration) = conn.migration {
            if now >= migration.deadline {
                conn.migration = None;
                Counters::add(&self.metrics.migrate_timeout, 1);
                if let Some(peer) = conn.peer.clone() {
                    self.events
                        .push_back(Event::Migrated { peer, outcome: MigrationOutcome::Timeout });
                }
            }
        }
    }

    /// Closes a connection from this side (quiche sends CONNECTION_CLOSE and drains). The
    /// peer stops resolving to it at once, so the next send dials a fresh connection.
    fn close_conn(&mut self, conn: &mut Conn, code: u64, reason: DownReason) {
        if conn.phase == conn::Phase::Closing {
            return;
        }
        if conn.role == conn::Role::Dialer
            && conn.phase == conn::Phase::Handshake
            && conn.q.is_established()
        {
            // The dialler's handshake completed in this very call, before the acceptor's:
            // closing now would send the close in 1-RTT packets only, ahead of our TLS
            // Finished, and the acceptor could read neither (measured: it waited for its
            // deadline). Close at the connection's next event instead, once the Finished went
            // out; meanwhile the connection neither sends HELLO nor accepts frames.
            conn.phase = conn::Phase::AwaitWelcome;
            conn.deferred_close = Some((code, reason));
            return;
        }
        conn.phase = conn::Phase::Closing;
        conn.local_close = Some(reason);
        // `Done` means already closing/closed: nothing more to do either way.
        let _ = conn.q.close(true, code, b"");
        if let Some(peer) = &conn.peer {
            if self.by_peer.get(peer) == Some(&conn.slot) {
                self.by_peer.remove(peer);
            }
            let this = self.conn_ref(conn.slot);
            self.directory.lock().remove_if(peer, this);
            if conn.announced {
                // Report the link down now, not after draining (3 PTOs): a replacing
                // connection's LinkUp must follow this LinkDown. QUIC drops stream data
                // of a closed connection, so whatever is still queued is lost here.
                let queues =
                    std::mem::replace(&mut conn.out, Queues::new(self.settings.data_lanes));
                let unsent = queues.frames();
                conn.down_reported = true;
                let reason = conn.local_close.clone().unwrap_or(DownReason::Closed);
                self.events.push_back(Event::LinkDown {
                    peer: peer.clone(),
                    reason,
                    unsent_messages: unsent,
                });
            }
        }
    }

    /// Closes every connection (node shutdown). Drive `poll_transmit`/`handle_timeout` until
    /// [`Self::connections`] is 0 or the shutdown bound passes.
    pub fn close_all(&mut self, now: Instant) {
        let mut parked: Vec<(NodeName, Parked)> = self.parked.drain().collect();
        parked.sort_by(|a, b| a.0.cmp(&b.0));
        for (peer, waiting) in parked {
            let unsent = waiting.queues.frames();
            self.events.push_back(Event::LinkDown {
                peer,
                reason: DownReason::Shutdown,
                unsent_messages: unsent,
            });
        }
        for slot in 0..self.slots.len() {
            let slot = u32::try_from(slot).expect("slot count fits u32");
            if let Some(mut conn) = self.take(slot) {
                self.close_conn(&mut conn, event::close_code::SHUTDOWN, DownReason::Shutdown);
                self.after_io(slot, conn, now);
            }
        }
    }

    /// Registers `tag` for incoming tagged streams.
    pub fn register_acceptor(&mut self, tag: &[u8]) {
        self.acceptors.insert(tag.to_vec());
    }

    /// Stops accepting streams with `tag` (open ones stay).
    pub fn unregister_acceptor(&mut self, tag: &[u8]) {
        self.acceptors.remove(tag);
    }

    /// Local addresses some connection uses (the driver closes migration sockets that none
    /// uses any more).
    pub fn local_addrs_in_use(&self) -> HashSet<SocketAddr> {
        let mut addrs = HashSet::new();
        for conn in self.slots.iter().filter_map(|slot| slot.conn.as_deref()) {
            addrs.insert(conn.local_addr);
            if let Some(migration) = conn.migration {
                addrs.insert(migration.local);
            }
        }
        addrs
    }

    /// Figures of the active path to `peer`.
    pub fn path_stats(&self, peer: &NodeName) -> Option<PathStats> {
        let conn = self.conn_of(peer)?;
        let stats = conn.q.stats();
        let path = conn.q.path_stats().find(|path| path.active)?;
        Some(PathStats {
            local_addr: path.local_addr,
            peer_addr: path.peer_addr,
            srtt_us: micros(path.rtt),
            min_rtt_us: path.min_rtt.map_or(0, micros),
            rttvar_us: micros(path.rttvar),
            cwnd_bytes: path.cwnd as u64,
            bytes_in_flight: stats
                .sent_bytes
                .saturating_sub(stats.acked_bytes)
                .saturating_sub(stats.lost_bytes),
            sent_packets: path.sent as u64,
            lost_packets: path.lost as u64,
        })
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
