//! The HyParView state machine.

use std::collections::VecDeque;
use std::sync::Arc;

use super::passive::{PassiveEntry, PassiveView};
use super::{Config, DownReason, Event, InEvent, Message, OutEvent, Priority, Timer};
use crate::outbox::Sink;
use crate::rng::Rng;
use crate::PeerId;

/// Counters of what the state machine did. Monotonic; never reset.
///
/// `repr(C)` with `shuffles_received` first: it is the one counter a shuffle hop updates,
/// and [`State`] keeps what a hop touches in its first bytes (see `State::SHUFFLE_HOP_BYTES`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stats {
    /// SHUFFLE messages received (forwarded or answered).
    pub shuffles_received: u64,
    /// JOIN messages received.
    pub joins_received: u64,
    /// FORWARD_JOIN messages received.
    pub forward_joins_received: u64,
    /// NEIGHBOR requests received.
    pub neighbor_requests_received: u64,
    /// NEIGHBOR requests we accepted.
    pub neighbor_requests_accepted: u64,
    /// NEIGHBOR requests we rejected.
    pub neighbor_requests_rejected: u64,
    /// NEIGHBOR requests we sent (promotions from the passive view and walk ends).
    pub neighbor_requests_sent: u64,
    /// NEIGHBOR requests not sent because the pending map was at its bound.
    pub neighbor_requests_refused: u64,
    /// Shuffle walks we started.
    pub shuffles_started: u64,
    /// Pending operations whose backstop fired.
    pub pending_timeouts: u64,
    /// Reconnection probes sent to failed peers.
    pub reconnect_probes: u64,
    /// Active peers evicted to make room.
    pub evictions: u64,
    /// Active links that failed.
    pub active_failures: u64,
    /// Passive entries dropped for reaching `max_fail_count`.
    pub passive_dropped_failed: u64,
    /// Passive entries dropped for age.
    pub passive_dropped_aged: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PendingKind {
    Join,
    Neighbor(Priority),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    kind: PendingKind,
    op_id: u64,
}

/// Outstanding JOIN/NEIGHBOR requests by peer, sorted by peer (so iteration order is the
/// peers' order, as with an ordered map). A vector: it holds at most `pending_len_max` (a few
/// dozen) entries and is usually empty, and an empty ordered map kept a 232-byte node
/// allocated in every node of a simulation; the vector is released when it empties.
#[derive(Clone, Debug)]
struct PendingMap<P>(Vec<(P, Pending)>);

impl<P> Default for PendingMap<P> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<P: PeerId> PendingMap<P> {
    fn find(&self, peer: &P) -> Result<usize, usize> {
        self.0.binary_search_by(|(p, _)| p.cmp(peer))
    }

    fn contains_key(&self, peer: &P) -> bool {
        self.find(peer).is_ok()
    }

    fn get(&self, peer: &P) -> Option<&Pending> {
        self.find(peer).ok().map(|i| &self.0[i].1)
    }

    fn insert(&mut self, peer: P, pending: Pending) {
        match self.find(&peer) {
            Ok(i) => self.0[i].1 = pending,
            Err(i) => self.0.insert(i, (peer, pending)),
        }
    }

    fn remove(&mut self, peer: &P) -> Option<Pending> {
        let i = self.find(peer).ok()?;
        let (_, pending) = self.0.remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(pending)
    }

    fn clear(&mut self) {
        self.0 = Vec::new();
    }

    fn keys(&self) -> impl Iterator<Item = &P> {
        self.0.iter().map(|(p, _)| p)
    }

    fn values(&self) -> impl Iterator<Item = &Pending> {
        self.0.iter().map(|(_, v)| v)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Pending JOIN/NEIGHBOR requests allowed per active-view slot (see `pending_len_max`).
const PENDING_PER_ACTIVE_SLOT: usize = 4;

/// Upper bound on active-view churn timestamps kept for the adaptive shuffle period; the
/// period only distinguishes "more than 10 events", so a few more than that suffice.
const CHURN_SAMPLES_MAX: usize = 16;

/// HyParView membership of one node.
///
/// Drive it with [`State::handle`]; every effect comes out as an [`OutEvent`]. One call pushes
/// at most `3 · active_size + passive_size + 8` outputs (a JOIN at a full node: an eviction,
/// a reply, `active_size` FORWARD_JOINs and the promotions that follow).
///
/// `repr(C)`, in two parts: first what passing a shuffle walk on touches (most messages of a
/// large cluster are such hops; the simulator prefetches only these
/// `State::SHUFFLE_HOP_BYTES` for them, 2–3 cache lines instead of 7), then the rest.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct State<P> {
    me: P,
    left: bool,
    joining: bool,
    shuffle_armed: bool,
    cleanup_armed: bool,
    contact_retry_armed: bool,
    promote_armed: bool,
    reconnect_armed: bool,
    /// `Event::Isolated` was emitted and the active view has not grown since.
    isolated: bool,
    /// Consecutive NEIGHBOR rejections since the active view last grew.
    rejections: u32,
    /// Shared by every node built from one configuration (see `node::SharedConfig`).
    config: Arc<Config>,
    rng: Rng,
    active: Vec<P>,
    /// First field `shuffles_received`, the last thing a hop touches.
    stats: Stats,
    passive: PassiveView<P>,
    pending: PendingMap<P>,
    contacts: Vec<P>,
    next_op_id: u64,
    churn_ms: VecDeque<u64>,
    last_shuffle_sample: Vec<P>,
    /// Peers dropped for failures, with the local time they were dropped (oldest first).
    failed: VecDeque<(P, u64)>,
}

impl<P: PeerId> State<P> {
    /// Bytes at the start of a `State` that passing a shuffle walk on reads or writes: `me`,
    /// `left`, `config`, `rng`, `active` and `stats.shuffles_received` (a prefetch hint for
    /// the simulator; the unit test `shuffle_hop_fields_lead_the_state` holds the order).
    pub(crate) const SHUFFLE_HOP_BYTES: usize =
        std::mem::offset_of!(Self, stats) + std::mem::offset_of!(Stats, shuffles_received) + 8;

    /// Where the passive view's peers live, as (start, bytes): what a shuffle's sample reads
    /// (a prefetch hint for the simulator).
    pub(crate) fn passive_peers_range(&self) -> (*const u8, usize) {
        self.passive.heap_ranges()[0]
    }

    /// Where the active view's entries live (what a shuffle hop reads from the heap).
    pub(crate) fn active_heap(&self) -> *const u8 {
        self.active.as_ptr().cast()
    }

    /// Where the views' entries live (prefetch hints for the simulator).
    pub(crate) fn heap(&self) -> [*const u8; 4] {
        let [(peers, _), (records, _)] = self.passive.heap_ranges();
        [self.active.as_ptr().cast(), peers, records, self.churn_ms.as_slices().0.as_ptr().cast()]
    }

    /// What the end of a shuffle walk reads besides the views' first lines, as (start,
    /// bytes): the passive view's lists whole (see `PassiveView::heap_ranges`) and the sample
    /// this node sent on its own last walk, which a reply prefers to evict (prefetch hints for
    /// the simulator).
    pub(crate) fn shuffle_end_ranges(&self) -> [(*const u8, usize); 3] {
        let [peers, records] = self.passive.heap_ranges();
        let sent = &self.last_shuffle_sample;
        [peers, records, (sent.as_ptr().cast(), size_of_val(sent.as_slice()))]
    }

    /// Creates the membership state of node `me`.
    ///
    /// # Panics
    /// If `config` breaks a documented bound ([`Config::validate`] reports which).
    pub fn new(me: P, config: impl Into<Arc<Config>>, rng: Rng) -> Self {
        let config = config.into();
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        let passive = PassiveView::new(config.passive_size);
        Self {
            me,
            active: Vec::with_capacity(config.active_size),
            passive,
            config,
            rng,
            pending: PendingMap::default(),
            contacts: Vec::new(),
            left: false,
            joining: false,
            next_op_id: 0,
            shuffle_armed: false,
            cleanup_armed: false,
            contact_retry_armed: false,
            promote_armed: false,
            reconnect_armed: false,
            rejections: 0,
            isolated: false,
            failed: VecDeque::new(),
            churn_ms: VecDeque::with_capacity(CHURN_SAMPLES_MAX),
            last_shuffle_sample: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// This node's identity.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The active view (symmetric links), in insertion order.
    pub fn active_view(&self) -> &[P] {
        &self.active
    }

    /// The passive view with each entry's failure record (a copy, in order).
    pub fn passive_view(&self) -> Vec<PassiveEntry<P>> {
        self.passive.entries()
    }

    /// Whether `peer` is in the active view.
    pub fn is_active(&self, peer: &P) -> bool {
        self.active.contains(peer)
    }

    /// Whether the node has left (after [`InEvent::Leave`], until the next [`InEvent::Join`]).
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Peers with an outstanding JOIN or NEIGHBOR request.
    pub fn pending_peers(&self) -> impl Iterator<Item = &P> {
        self.pending.keys()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds one input. `now_ms` is the local monotonic time and must never go backwards.
    pub fn handle(&mut self, now_ms: u64, event: InEvent<P>, out: &mut impl Sink<OutEvent<P>>) {
        match event {
            InEvent::Message { from, message } => {
                if from == self.me {
                    return; // A message claiming to come from ourselves is a driver bug or a loop.
                }
                match message {
                    Message::Join => self.on_join(now_ms, from, out),
                    Message::ForwardJoin { peer, ttl } => {
                        self.on_forward_join(now_ms, from, peer, ttl, out)
                    }
                    Message::Neighbor { priority } => self.on_neighbor(now_ms, from, priority, out),
                    Message::NeighborReply { accepted } => {
                        self.on_neighbor_reply(now_ms, from, accepted, out)
                    }
                    Message::Disconnect { leaving } => {
                        self.on_disconnect(now_ms, from, leaving, out)
                    }
                    Message::Shuffle { origin, ttl, peers } => {
                        self.on_shuffle(now_ms, from, origin, ttl, peers, out)
                    }
                    Message::ShuffleReply { peers } => {
                        self.on_shuffle_reply(now_ms, from, peers, out)
                    }
                }
            }
            InEvent::PeerFailed(peer) => self.on_peer_failed(now_ms, peer, out),
            InEvent::TimerExpired(timer) => self.on_timer(now_ms, timer, out),
            InEvent::Join(contacts) => self.join(contacts, out),
            InEvent::Leave => self.leave(out),
        }
        self.check_invariants();
    }

    fn join(&mut self, contacts: Vec<P>, out: &mut impl Sink<OutEvent<P>>) {
        self.left = false;
        self.joining = true;
        self.contacts = contacts.into_iter().filter(|c| c != &self.me).collect();
        self.contacts.sort();
        self.contacts.dedup();
        self.arm_periodic_timers(out);
        // A node short of links joins again through the contacts: fresh walks reconnect an
        // island; a node with a full active view is already part of the overlay.
        if self.active.len() < self.config.active_size {
            self.send_joins(out);
        }
        if !self.contact_retry_armed {
            self.contact_retry_armed = true;
            let after_ms = self.config.contact_retry_ms;
            out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::ContactRetry });
        }
    }

    fn send_joins(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        for contact in self.contacts.clone() {
            if self.active.contains(&contact) || self.pending.contains_key(&contact) {
                continue;
            }
            self.start_pending(contact.clone(), PendingKind::Join, out);
            out.push(OutEvent::SendMessage { to: contact, message: Message::Join });
        }
    }

    fn leave(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        for peer in std::mem::take(&mut self.active) {
            out.push(OutEvent::SendMessage {
                to: peer.clone(),
                message: Message::Disconnect { leaving: true },
            });
            out.push(OutEvent::DisconnectPeer(peer.clone()));
            out.push(OutEvent::EmitEvent(Event::PeerDown(peer, DownReason::LocalLeave)));
        }
        self.pending.clear();
        self.left = true;
        self.joining = false;
        out.push(OutEvent::EmitEvent(Event::Left));
    }

    fn on_join(&mut self, now_ms: u64, from: P, out: &mut impl Sink<OutEvent<P>>) {
        self.stats.joins_received += 1;
        if self.left {
            out.push(OutEvent::SendMessage {
                to: from,
                message: Message::NeighborReply { accepted: false },
            });
            return;
        }
        let accepted = self.active.len() < self.config.active_size || self.active.contains(&from);
        if accepted {
            self.add_active(now_ms, from.clone(), out);
        }
        out.push(OutEvent::SendMessage {
            to: from.clone(),
            message: Message::NeighborReply { accepted },
        });
        // Paper §4.2: the contact starts one random walk through each of its other neighbours.
        let ttl = self.config.arwl;
        for peer in self.active.iter().filter(|p| **p != from) {
            out.push(OutEvent::SendMessage {
                to: peer.clone(),
                message: Message::ForwardJoin { peer: from.clone(), ttl },
            });
        }
    }

    fn on_forward_join(
        &mut self,
        now_ms: u64,
        from: P,
        peer: P,
        ttl: u8,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.forward_joins_received += 1;
        if self.left || peer == self.me {
            return;
        }
        // The TTL comes from the network: a walk never runs longer than we would start it.
        let ttl = ttl.min(self.config.arwl);
        // Paper §4.2 ends the walk at TTL 0 or at a node with a single neighbour. We also end it
        // at a node with a free slot once the walk has left the contact's neighbourhood: each
        // eviction at a full walk end leaves a neighbour one link short, and ending walks at
        // such holes fills them instead of making new ones (docs/protocols/hyparview.md has
        // the measurements: it matters when joins overlap, and is neutral one at a time).
        let has_room = self.active.len() < self.config.active_size;
        if ttl == 0 || self.active.len() <= 1 || (has_room && ttl < self.config.arwl) {
            self.request_neighbor(peer, Priority::High, out);
            return;
        }
        if ttl == self.config.prwl && !self.active.contains(&peer) {
            self.passive.insert(peer.clone(), now_ms, &[], &mut self.rng);
        }
        // A uniform pick among the active peers other than `from` and `peer`.
        let others = self.active.iter().filter(|p| **p != from && **p != peer);
        match self.rng.choose_from(others) {
            Some(next) => out.push(OutEvent::SendMessage {
                to: next.clone(),
                message: Message::ForwardJoin { peer, ttl: ttl - 1 },
            }),
            // Nowhere to walk: the walk ends here.
            None => self.request_neighbor(peer, Priority::High, out),
        }
    }

    fn on_neighbor(
        &mut self,
        now_ms: u64,
        from: P,
        priority: Priority,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.neighbor_requests_received += 1;
        let accepted = !self.left
            && (self.active.contains(&from)
                || priority == Priority::High
                || self.active.len() < self.config.active_size);
        if accepted {
            self.stats.neighbor_requests_accepted += 1;
            self.add_active(now_ms, from.clone(), out);
        } else {
            self.stats.neighbor_requests_rejected += 1;
        }
        out.push(OutEvent::SendMessage { to: from, message: Message::NeighborReply { accepted } });
    }

    fn on_neighbor_reply(
        &mut self,
        now_ms: u64,
        from: P,
        accepted: bool,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        let pending = self.pending.remove(&from);
        if accepted {
            if self.left {
                // We left meanwhile; undo the peer's half of the link.
                out.push(OutEvent::SendMessage {
                    to: from.clone(),
                    message: Message::Disconnect { leaving: true },
                });
                out.push(OutEvent::DisconnectPeer(from));
                return;
            }
            if pending.is_none()
                && !self.active.contains(&from)
                && self.active.len() >= self.config.active_size
            {
                // An answer to a request whose backstop already fired, and we filled up since:
                // tell the peer to drop its half so the link stays symmetric.
                out.push(OutEvent::SendMessage {
                    to: from.clone(),
                    message: Message::Disconnect { leaving: false },
                });
                out.push(OutEvent::DisconnectPeer(from));
                return;
            }
            self.add_active(now_ms, from, out);
            return;
        }
        if !self.active.contains(&from) {
            // Declined: the connection carried only the request and this answer. Closed now
            // instead of lingering until the idle-connection GC; in simulation, rejected
            // JOIN and NEIGHBOR requests had left ≈ 10 unused connections per node open after
            // a 10,000-node join phase.
            out.push(OutEvent::DisconnectPeer(from.clone()));
        }
        if pending.is_some() {
            // A live peer declined: it is full. Asking the next candidate at once would turn a
            // node one link short into a request storm against a full overlay, so retries
            // back off exponentially with consecutive rejections, up to
            // `rejected_backoff_max_ms`.
            let c = &self.config;
            let shift = self.rejections.min(16);
            let delay_ms =
                c.rejected_backoff_ms.saturating_mul(1 << shift).min(c.rejected_backoff_max_ms);
            self.rejections = self.rejections.saturating_add(1);
            self.passive.defer(&from, now_ms + delay_ms);
            if !self.promote_armed {
                self.promote_armed = true;
                out.push(OutEvent::ScheduleTimer { after_ms: delay_ms, timer: Timer::Promote });
            }
        }
    }

    fn on_disconnect(
        &mut self,
        now_ms: u64,
        from: P,
        leaving: bool,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.pending.remove(&from);
        if leaving {
            self.passive.remove(&from);
        }
        if let Some(i) = self.active.iter().position(|p| *p == from) {
            self.active.remove(i);
            self.note_churn(now_ms);
            let reason = if leaving {
                DownReason::Left
            } else {
                self.passive.insert(from.clone(), now_ms, &[], &mut self.rng);
                // It just dropped us: do not ask it straight back.
                self.passive.defer(&from, now_ms + self.config.rejected_backoff_ms);
                DownReason::Disconnected
            };
            out.push(OutEvent::DisconnectPeer(from.clone()));
            out.push(OutEvent::EmitEvent(Event::PeerDown(from, reason)));
        }
        self.maybe_promote(now_ms, out);
    }

    fn on_shuffle(
        &mut self,
        now_ms: u64,
        from: P,
        origin: P,
        ttl: u8,
        peers: Vec<P>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.shuffles_received += 1;
        if self.left || origin == self.me {
            return;
        }
        // Both come from the network: a walk never runs longer, and a sample never carries more
        // entries, than we would send ourselves (the decoder only bounds them by list_len_max).
        let ttl = ttl.min(self.config.shuffle_ttl);
        let mut peers = peers;
        peers.truncate(self.config.shuffle_length);
        if ttl > 1 && self.active.len() > 1 {
            // A uniform pick among the active peers other than `from` and `origin`.
            let others = self.active.iter().filter(|p| **p != from && **p != origin);
            if let Some(next) = self.rng.choose_from(others) {
                out.push(OutEvent::SendMessage {
                    to: next.clone(),
                    message: Message::Shuffle { origin, ttl: ttl - 1, peers },
                });
                return;
            }
        }
        // End of the walk: answer the originator directly with a passive sample of equal size,
        // then integrate, preferring to evict what we just sent away.
        let mut reply = Vec::with_capacity(peers.len().min(self.passive.len()));
        let sampled = self.passive.sample_into(peers.len(), &origin, &mut self.rng, &mut reply);
        // Integrated before the reply is queued, so the reply moves instead of being copied;
        // integrating only changes the views and draws after the sample, as before.
        let Self { me, active, passive, rng, .. } = self;
        passive.insert_all_evicting_sample(
            unknown(me, active, peers),
            now_ms,
            &reply,
            sampled,
            rng,
        );
        // The reply travels on a temporary link; HyParView does not need it afterwards.
        let temporary = !self.active.contains(&origin);
        out.push(OutEvent::SendMessage {
            to: origin.clone(),
            message: Message::ShuffleReply { peers: reply },
        });
        if temporary {
            out.push(OutEvent::DisconnectPeer(origin));
        }
    }

    fn on_shuffle_reply(
        &mut self,
        now_ms: u64,
        from: P,
        mut peers: Vec<P>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        if self.left {
            return;
        }
        peers.truncate(self.config.shuffle_length);
        let sent = std::mem::take(&mut self.last_shuffle_sample);
        let Self { me, active, passive, rng, .. } = self;
        passive.insert_all(unknown(me, active, peers), now_ms, &sent, rng);
        if !self.active.contains(&from) {
            out.push(OutEvent::DisconnectPeer(from));
        }
    }

    fn on_peer_failed(&mut self, now_ms: u64, peer: P, out: &mut impl Sink<OutEvent<P>>) {
        let pending = self.pending.remove(&peer);
        if let Some(i) = self.active.iter().position(|p| *p == peer) {
            self.active.remove(i);
            self.stats.active_failures += 1;
            self.note_churn(now_ms);
            // A failed active peer stays a passive candidate with a failure record and backoff
            // (DESIGN §6); it is dropped only after `max_fail_count` consecutive failures.
            // (`insert` refreshes an existing entry and keeps its record.)
            self.passive.insert(peer.clone(), now_ms, &[], &mut self.rng);
            self.record_failure(now_ms, &peer);
            out.push(OutEvent::EmitEvent(Event::PeerDown(peer, DownReason::Failed)));
        } else if pending.is_some() || self.passive.contains(&peer) {
            self.record_failure(now_ms, &peer);
        }
        self.maybe_promote(now_ms, out);
    }

    fn record_failure(&mut self, now_ms: u64, peer: &P) {
        let c = &self.config;
        if self.passive.record_failure(
            peer,
            now_ms,
            c.max_fail_count,
            c.base_backoff_ms,
            c.backoff_max_ms,
        ) {
            self.stats.passive_dropped_failed += 1;
            self.remember_failed(now_ms, peer.clone());
        }
    }

    fn remember_failed(&mut self, now_ms: u64, peer: P) {
        if let Some(i) = self.failed.iter().position(|(p, _)| *p == peer) {
            self.failed.remove(i);
        }
        if self.failed.len() >= self.config.failed_len_max {
            self.failed.pop_front();
        }
        self.failed.push_back((peer, now_ms));
    }

    /// Peers remembered for reconnection probes (oldest first).
    pub fn failed_peers(&self) -> impl Iterator<Item = &P> {
        self.failed.iter().map(|(p, _)| p)
    }

    fn probe_failed(&mut self, now_ms: u64, out: &mut impl Sink<OutEvent<P>>) {
        let timeout_ms = self.config.reconnect_timeout_ms;
        self.failed.retain(|(_, at)| now_ms.saturating_sub(*at) <= timeout_ms);
        // Candidates: peers dropped for failures, and passive peers with a failure record
        // whose backoff expired. After a partition heals, a side may have stopped trying the
        // other side before reaching `max_fail_count` (its active view refilled), so the
        // failed list alone can miss every bridge.
        let mut candidates: Vec<P> = self.failed.iter().map(|(p, _)| p.clone()).collect();
        candidates.extend(
            self.passive
                .iter()
                .filter(|(_, r)| r.fail_count() > 0 && r.backoff_until_ms() <= now_ms)
                .map(|(peer, _)| peer.clone()),
        );
        candidates.retain(|p| !self.active.contains(p) && !self.pending.contains_key(p));
        if let Some(peer) = self.rng.choose(&candidates).cloned() {
            self.stats.reconnect_probes += 1;
            // High priority: if the peer answers, a link across a healed partition must form
            // even though both sides have full active views.
            self.request_neighbor(peer, Priority::High, out);
        }
    }

    fn on_timer(&mut self, now_ms: u64, timer: Timer<P>, out: &mut impl Sink<OutEvent<P>>) {
        match timer {
            Timer::Shuffle => {
                self.shuffle_armed = false;
                if !self.left {
                    self.start_shuffle(out);
                    self.arm_shuffle(now_ms, out);
                }
            }
            Timer::PassiveCleanup => {
                self.cleanup_armed = false;
                let c = &self.config;
                let dropped = self.passive.cleanup(now_ms, c.passive_max_age_ms, c.max_fail_count);
                self.stats.passive_dropped_aged += dropped as u64;
                if !self.left {
                    self.arm_cleanup(out);
                }
            }
            Timer::ContactRetry => {
                self.contact_retry_armed = false;
                if !self.left && self.active.is_empty() && !self.contacts.is_empty() {
                    self.send_joins(out);
                    self.contact_retry_armed = true;
                    let after_ms = self.config.contact_retry_ms;
                    out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::ContactRetry });
                }
            }
            Timer::Promote => {
                self.promote_armed = false;
                self.maybe_promote(now_ms, out);
            }
            Timer::Reconnect => {
                self.reconnect_armed = false;
                if !self.left {
                    self.probe_failed(now_ms, out);
                    self.arm_reconnect(out);
                }
            }
            Timer::PendingTimeout { peer, op_id } => {
                // Only the operation this backstop was armed for may be cancelled by it.
                if self.pending.get(&peer).map(|p| p.op_id) == Some(op_id) {
                    self.pending.remove(&peer);
                    self.stats.pending_timeouts += 1;
                    self.record_failure(now_ms, &peer);
                    self.maybe_promote(now_ms, out);
                }
            }
        }
    }

    fn start_shuffle(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        let Some(target) = self.rng.choose(&self.active).cloned() else { return };
        let c = &self.config;
        // One buffer for the message: the origin, then the active sample, drawn in place in
        // the buffer's tail, then the passive one (without allocating a vector for each per
        // walk). Sized for the whole active view and the whole message so that it never grows.
        let mut peers = Vec::with_capacity((1 + self.active.len()).max(c.shuffle_length));
        peers.push(self.me.clone());
        peers.extend(self.active.iter().filter(|p| **p != target).cloned());
        self.rng.partial_shuffle(&mut peers[1..], c.shuffle_active);
        peers.truncate(1 + c.shuffle_active);
        let passive_count = c.shuffle_length - 1 - (peers.len() - 1).min(c.shuffle_active);
        self.passive.sample_into(passive_count, &target, &mut self.rng, &mut peers);
        self.last_shuffle_sample = peers[1..].to_vec();
        self.stats.shuffles_started += 1;
        let ttl = c.shuffle_ttl;
        out.push(OutEvent::SendMessage {
            to: target,
            message: Message::Shuffle { origin: self.me.clone(), ttl, peers },
        });
    }

    /// Sends NEIGHBOR requests to passive candidates until the requests in flight could fill
    /// the active view. Arms retries for candidates in backoff and for the contacts.
    fn maybe_promote(&mut self, now_ms: u64, out: &mut impl Sink<OutEvent<P>>) {
        if self.left {
            return;
        }
        let in_flight =
            self.pending.values().filter(|p| matches!(p.kind, PendingKind::Neighbor(_))).count();
        let mut wanted = self.config.active_size.saturating_sub(self.active.len() + in_flight);
        let mut next_backoff_ms: Option<u64> = None;
        while wanted > 0 {
            // Candidates: passive peers neither pending nor active, out of backoff. Counted,
            // then the one drawn found again: the draw `Rng::choose` would make over a list
            // of them, without building the list (a node one link short comes here on every
            // retry).
            let (pending, active) = (&self.pending, &self.active);
            let available = |peer: &P| !pending.contains_key(peer) && !active.contains(peer);
            let mut count = 0;
            for (_, r) in self.passive.iter().filter(|(peer, _)| available(peer)) {
                let until_ms = r.backoff_until_ms();
                if until_ms > now_ms {
                    next_backoff_ms = Some(next_backoff_ms.map_or(until_ms, |t| t.min(until_ms)));
                } else {
                    count += 1;
                }
            }
            if count == 0 {
                break;
            }
            let pick = self.rng.index(count);
            let candidate = self
                .passive
                .iter()
                .filter(|(peer, r)| available(peer) && r.backoff_until_ms() <= now_ms)
                .nth(pick)
                .map(|(peer, _)| peer.clone())
                // Invariant: nothing changed since `count` candidates were counted.
                .expect("pick < count");
            // High priority only for the first request made with an empty active view: one
            // forced eviction somewhere is enough to reconnect us.
            let high_in_flight =
                self.pending.values().any(|p| p.kind == PendingKind::Neighbor(Priority::High));
            let priority = if self.active.is_empty() && !high_in_flight {
                Priority::High
            } else {
                Priority::Low
            };
            self.request_neighbor(candidate, priority, out);
            wanted -= 1;
        }
        if wanted > 0 {
            if let Some(at_ms) = next_backoff_ms {
                if !self.promote_armed {
                    self.promote_armed = true;
                    out.push(OutEvent::ScheduleTimer {
                        after_ms: at_ms - now_ms,
                        timer: Timer::Promote,
                    });
                }
            }
            if self.active.is_empty() && !self.contacts.is_empty() && !self.contact_retry_armed {
                self.contact_retry_armed = true;
                let after_ms = self.config.contact_retry_ms;
                out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::ContactRetry });
            }
            // Nothing local can fill the view: no eligible candidate now, none coming out of
            // backoff, nothing in flight. That covers an empty active view, and also a small
            // island of survivors whose passive peers all died (measured: after a 90 % crash
            // a few such islands never rejoined without it).
            if next_backoff_ms.is_none() && self.pending.is_empty() && !self.isolated {
                self.isolated = true;
                out.push(OutEvent::EmitEvent(Event::Isolated));
            }
        }
    }

    fn request_neighbor(&mut self, peer: P, priority: Priority, out: &mut impl Sink<OutEvent<P>>) {
        if peer == self.me || self.active.contains(&peer) || self.pending.contains_key(&peer) {
            return;
        }
        if self.pending.len() >= self.pending_len_max() {
            // Walk ends are chosen by FORWARD_JOINs from the network; without a bound a peer
            // could make us hold (and dial) arbitrarily many requests at once.
            self.stats.neighbor_requests_refused += 1;
            return;
        }
        self.stats.neighbor_requests_sent += 1;
        self.start_pending(peer.clone(), PendingKind::Neighbor(priority), out);
        out.push(OutEvent::SendMessage { to: peer, message: Message::Neighbor { priority } });
    }

    /// Bound of the pending map: promotions fill at most `active_size` slots; walk ends,
    /// reconnection probes and joins to the contacts come on top.
    fn pending_len_max(&self) -> usize {
        PENDING_PER_ACTIVE_SLOT * self.config.active_size + self.contacts.len()
    }

    fn start_pending(&mut self, peer: P, kind: PendingKind, out: &mut impl Sink<OutEvent<P>>) {
        let op_id = self.next_op_id;
        self.next_op_id += 1;
        self.pending.insert(peer.clone(), Pending { kind, op_id });
        out.push(OutEvent::ScheduleTimer {
            after_ms: self.config.pending_timeout_ms,
            timer: Timer::PendingTimeout { peer, op_id },
        });
    }

    /// Adds `peer` to the active view, evicting a random other member if full.
    fn add_active(&mut self, now_ms: u64, peer: P, out: &mut impl Sink<OutEvent<P>>) {
        self.pending.remove(&peer);
        if peer == self.me || self.active.contains(&peer) {
            return;
        }
        if self.active.len() >= self.config.active_size {
            let victim_index = self.rng.index(self.active.len());
            let victim = self.active.remove(victim_index);
            self.stats.evictions += 1;
            self.passive.insert(victim.clone(), now_ms, &[], &mut self.rng);
            out.push(OutEvent::SendMessage {
                to: victim.clone(),
                message: Message::Disconnect { leaving: false },
            });
            out.push(OutEvent::DisconnectPeer(victim.clone()));
            out.push(OutEvent::EmitEvent(Event::PeerDown(victim, DownReason::Evicted)));
        }
        self.passive.remove(&peer);
        if let Some(i) = self.failed.iter().position(|(p, _)| *p == peer) {
            self.failed.remove(i);
        }
        let was_empty = self.active.is_empty();
        self.rejections = 0;
        self.isolated = false;
        self.active.push(peer.clone());
        self.note_churn(now_ms);
        out.push(OutEvent::EmitEvent(Event::PeerUp(peer)));
        if was_empty && self.joining {
            self.joining = false;
            out.push(OutEvent::EmitEvent(Event::Joined));
        }
        self.arm_periodic_timers(out);
    }

    fn note_churn(&mut self, now_ms: u64) {
        if self.churn_ms.len() == CHURN_SAMPLES_MAX {
            self.churn_ms.pop_front();
        }
        self.churn_ms.push_back(now_ms);
    }

    /// Shuffle period adapted to recent churn (seed: >10 events in the window → minimum,
    /// >5 → half the base), clamped to the configured bounds.
    fn shuffle_period_ms(&self, now_ms: u64) -> u64 {
        let c = &self.config;
        let since = now_ms.saturating_sub(c.churn_window_ms);
        let churn = self.churn_ms.iter().filter(|t| **t > since).count();
        let period = if churn > 10 {
            c.shuffle_period_min_ms
        } else if churn > 5 {
            (c.shuffle_period_ms / 2).max(c.shuffle_period_min_ms)
        } else {
            c.shuffle_period_ms
        };
        period.clamp(c.shuffle_period_min_ms, c.shuffle_period_max_ms)
    }

    fn arm_periodic_timers(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        if !self.shuffle_armed {
            // The first round starts at a random phase so that nodes started together do not
            // shuffle in lock-step.
            self.shuffle_armed = true;
            let after_ms = 1 + self.rng.below(self.config.shuffle_period_ms);
            out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Shuffle });
        }
        if !self.cleanup_armed {
            self.arm_cleanup(out);
        }
        if !self.reconnect_armed {
            self.arm_reconnect(out);
        }
    }

    fn arm_reconnect(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        self.reconnect_armed = true;
        let after_ms = self.config.reconnect_period_ms;
        out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Reconnect });
    }

    fn arm_shuffle(&mut self, now_ms: u64, out: &mut impl Sink<OutEvent<P>>) {
        self.shuffle_armed = true;
        let after_ms = self.shuffle_period_ms(now_ms);
        out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Shuffle });
    }

    fn arm_cleanup(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        self.cleanup_armed = true;
        let after_ms = self.config.passive_cleanup_period_ms;
        out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::PassiveCleanup });
    }

    fn check_invariants(&self) {
        debug_assert!(self.active.len() <= self.config.active_size, "active view over its bound");
        debug_assert!(
            self.passive.len() <= self.config.passive_size,
            "passive view over its bound"
        );
        debug_assert!(!self.active.contains(&self.me), "self in the active view");
        debug_assert!(!self.passive.contains(&self.me), "self in the passive view");
        debug_assert!(
            self.active.iter().all(|p| !self.passive.contains(p)),
            "a peer is in both views"
        );
    }

    /// The failure record of a passive peer, if present.
    pub fn passive_entry(&self, peer: &P) -> Option<PassiveEntry<P>> {
        self.passive.get(peer)
    }
}

/// The peers of a received shuffle sample worth keeping as passive candidates: neither this
/// node nor already in the active view.
fn unknown<'a, P: PeerId>(
    me: &'a P,
    active: &'a [P],
    peers: Vec<P>,
) -> impl Iterator<Item = P> + 'a {
    let active = crate::eq_mask::ShortList::new(active);
    peers.into_iter().filter(move |peer| peer != me && !active.contains(peer))
}

#[cfg(test)]
mod layout_tests {
    use std::mem::offset_of;

    use super::{State, Stats};

    /// The simulator prefetches only `SHUFFLE_HOP_BYTES` of a node passing a walk on: every
    /// field `on_shuffle` reads or writes when it forwards must lie inside them.
    #[test]
    fn shuffle_hop_fields_lead_the_state() {
        type S = State<u32>;
        let hop = S::SHUFFLE_HOP_BYTES;
        let end = |offset: usize, bytes: usize| offset + bytes;
        assert!(end(offset_of!(S, me), 4) <= hop);
        assert!(end(offset_of!(S, left), 1) <= hop);
        assert!(end(offset_of!(S, config), 8) <= hop);
        assert!(end(offset_of!(S, rng), size_of::<crate::rng::Rng>()) <= hop);
        assert!(end(offset_of!(S, active), size_of::<Vec<u32>>()) <= hop);
        assert_eq!(end(offset_of!(S, stats) + offset_of!(Stats, shuffles_received), 8), hop);
        // Small enough to be worth it: at most two cache lines' worth.
        assert!(hop <= 128, "{hop} bytes");
    }
}
