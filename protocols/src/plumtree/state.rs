//! The Plumtree state machine (Leitão, Pereira, Rodrigues, SRDS 2007, Algorithm 1), sans-IO.

use std::sync::Arc;

use bytes::Bytes;

use super::cache::{CachedMessage, MessageCache};
use super::lazy_queue::LazyQueue;
use super::missing::{MissingTable, Recorded};
use super::{
    Config, Delivery, Event, Gossip, IHave, InEvent, Message, MessageId, OutEvent, Stats, Tag,
    Timer,
};
use crate::{PeerId, Rng, Sink};

/// Plumtree broadcast state of one node.
///
/// The neighbours are the HyParView active view, learnt from `NeighborUp` / `NeighborDown`.
/// Every neighbour is in exactly one of [`Self::eager_push_peers`] (payloads are pushed to
/// them) and [`Self::lazy_push_peers`] (only IHAVE announcements are sent to them); the two
/// sets are disjoint and their union is the set of neighbours.
#[derive(Debug)]
pub struct State<P: PeerId> {
    me: P,
    /// Shared by every node built from one configuration (see `node::SharedConfig`).
    config: Arc<Config>,
    /// Draws the graft jitter (graft order itself is announcement order, paper §3.4).
    rng: Rng,
    /// Sorted, deduplicated.
    eager_push_peers: Vec<P>,
    /// Sorted, deduplicated, disjoint from `eager_push_peers`.
    lazy_push_peers: Vec<P>,
    cache: MessageCache<P>,
    missing: MissingTable<P>,
    lazy_queue: LazyQueue<P>,
    /// A `Timer::IHaveFlush` is pending. At most one is armed at a time.
    ihave_flush_armed: bool,
    /// A `Timer::CacheEvict` is pending. Armed while the cache is non-empty.
    cache_evict_armed: bool,
    stats: Stats,
    /// When this node last swapped a tree link (tree optimisation), in ms.
    last_optimisation_ms: Option<u64>,
    /// Peers we sent PRUNE to within `prune_grace_ms`, with the time: at most one entry per
    /// neighbour (entries of peers that go down are dropped).
    recently_pruned: Vec<(P, u64)>,
}

impl<P: PeerId> State<P> {
    /// Where the data nearly every message reads lives (prefetch hints for the simulator):
    /// the eager and lazy neighbour sets, the announcement queues and what a cache lookup
    /// reads first (every GOSSIP and every announced id is looked up).
    pub(crate) fn heap(&self) -> [*const u8; 4] {
        [
            self.eager_push_peers.as_ptr().cast(),
            self.lazy_push_peers.as_ptr().cast(),
            self.lazy_queue.heap(),
            self.cache.lookup_hint(),
        ]
    }

    /// Creates the state of node `me`, with no neighbours and an empty cache.
    ///
    /// # Panics
    /// When `config` is invalid; [`Config::validate`] is the non-panicking check.
    pub fn new(me: P, config: impl Into<Arc<Config>>, rng: Rng) -> Self {
        let config = config.into();
        if let Err(e) = config.validate() {
            panic!("invalid plumtree configuration: {e}");
        }
        Self {
            me,
            cache: MessageCache::new(
                config.message_cache_len_max,
                config.message_cache_bytes_max,
                config.message_cache_ttl_ms,
            ),
            missing: MissingTable::new(config.missing_len_max, config.announcers_len_max),
            lazy_queue: LazyQueue::new(config.ihave_batch_len_max),
            config,
            rng,
            eager_push_peers: Vec::new(),
            lazy_push_peers: Vec::new(),
            ihave_flush_armed: false,
            cache_evict_armed: false,
            stats: Stats::default(),
            last_optimisation_ms: None,
            recently_pruned: Vec::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Neighbours that receive full payloads (the tree links), sorted.
    pub fn eager_push_peers(&self) -> &[P] {
        &self.eager_push_peers
    }

    /// Neighbours that receive only IHAVE announcements (the backup links), sorted.
    pub fn lazy_push_peers(&self) -> &[P] {
        &self.lazy_push_peers
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Messages in the cache (at most `message_cache_len_max`).
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Messages announced but not received yet (at most `missing_len_max`).
    pub fn missing_len(&self) -> usize {
        self.missing.len()
    }

    /// True when `id` is cached: it was delivered and has not expired.
    pub fn has_message(&self, id: &MessageId) -> bool {
        self.cache.contains(id)
    }

    /// The most outputs the next [`Self::handle`] call can push, given the current neighbours:
    /// `max(neighbours + 4, 2 × ihave_batch_len_max)`. Size the [`Outbox`](crate::Outbox) with
    /// it (or with the same formula over the largest active view) and drain after every call.
    pub fn outputs_per_call_max(&self) -> usize {
        let neighbours = self.eager_push_peers.len() + self.lazy_push_peers.len();
        (neighbours + 4).max(2 * self.config.ihave_batch_len_max)
    }

    /// Handles one input at monotonic time `now_ms`, pushing its effects into `out`.
    ///
    /// Outputs per call (N = neighbours, B = `ihave_batch_len_max`), at most
    /// `max(N + 4, 2B)` ([`Self::outputs_per_call_max`]):
    /// - `Broadcast`: ≤ N + 3 (cache timer, delivery, one GOSSIP or full IHAVE batch per
    ///   neighbour, flush timer).
    /// - GOSSIP, new: ≤ N + 4 (as above less the sender, plus GRAFT + PRUNE of a tree
    ///   optimisation); duplicate: ≤ 1 (PRUNE).
    /// - IHAVE: ≤ 2B (the first B announcements are processed, each arming one graft timer
    ///   or causing one GRAFT + PRUNE swap; the rest are dropped and counted).
    /// - GRAFT, `NeighborUp`: ≤ 1; PRUNE, `NeighborDown`: 0.
    /// - `IHaveFlush`: ≤ N; `Graft` timer: ≤ 2; `CacheEvict`: ≤ 1.
    ///
    /// `now_ms` must never decrease between calls.
    ///
    /// # Panics
    /// When `out` overflows (see [`Sink::push`]), on `NeighborUp(me)`, and when an internal
    /// invariant is broken (a bug).
    pub fn handle(&mut self, now_ms: u64, event: InEvent<P>, out: &mut impl Sink<OutEvent<P>>) {
        let len_before = out.count();
        let outputs_max = self.outputs_per_call_max();
        match event {
            InEvent::Message { from, message } => match message {
                Message::Gossip(gossip) => self.on_gossip(now_ms, from, gossip, out),
                Message::IHave(batch) => self.on_ihave(now_ms, from, batch, out),
                Message::Graft { id, round } => self.on_graft(from, id, round, out),
                Message::Prune => self.on_prune(from),
            },
            InEvent::Broadcast { id, tag, payload } => {
                self.on_broadcast(now_ms, id, tag, payload, out);
            }
            InEvent::NeighborUp(peer) => self.on_neighbor_up(now_ms, peer, out),
            InEvent::NeighborDown(peer) => self.on_neighbor_down(&peer),
            InEvent::TimerExpired(Timer::IHaveFlush) => self.on_ihave_flush(out),
            InEvent::TimerExpired(Timer::Graft { id, attempt }) => {
                self.on_graft_timer(id, attempt, out);
            }
            InEvent::TimerExpired(Timer::CacheEvict) => self.on_cache_evict(now_ms, out),
        }
        assert!(
            out.count() - len_before <= outputs_max,
            "plumtree pushed {} outputs, documented bound is {outputs_max}",
            out.count() - len_before
        );
        self.check_invariants();
    }

    /// A local broadcast: deliver it here, push it to the eager peers, announce it to the lazy
    /// ones (paper: `Broadcast(m)`).
    fn on_broadcast(
        &mut self,
        now_ms: u64,
        id: MessageId,
        tag: Tag,
        payload: Bytes,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        if self.cache.contains(&id) {
            // The caller mints unique ids; a repeat is a retry of something already sent.
            return;
        }
        let delivery = Delivery { id, tag, payload: payload.clone(), round: 0, from: None };
        self.deliver(now_ms, delivery, out);
        self.eager_push(&Gossip { id, round: 1, tag, payload }, None, out);
        self.lazy_push(IHave { id, round: 1 }, None, out);
    }

    /// Paper: receive `GOSSIP(m, mID, round, sender)`.
    fn on_gossip(
        &mut self,
        now_ms: u64,
        from: P,
        gossip: Gossip,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.gossip_received += 1;
        if self.cache.contains(&gossip.id) {
            self.stats.duplicates_received += 1;
            // A second copy means the link from `from` is redundant in the tree: make it a
            // backup link on both sides. A lazy or unknown sender is left alone (no PRUNE to
            // non-neighbours, and a lazy one already is a backup link).
            //
            // Unless the copy we kept came over a link we no longer push on (a PRUNE or a tree
            // swap still in flight): then `from` is the link that stays, and pruning it too
            // would cut the tree (measured with concurrent random senders).
            let kept_over_eager = self
                .cache
                .get(&gossip.id)
                .and_then(|c| self.cached_parent(c))
                .is_none_or(|first| self.is_eager(first));
            if !self.is_neighbor(&from) {
                return;
            }
            if kept_over_eager {
                // Also when `from` is lazy here: it still pushes to us (its PRUNE was lost to
                // a race, or it started the link eager), so tell it to stop.
                if self.is_eager(&from) {
                    self.make_lazy(&from);
                }
                self.note_pruned(now_ms, &from);
                self.send(from, Message::Prune, out);
                self.stats.prune_sent += 1;
            } else {
                // The copy we kept came over a link we stopped pushing on: `from` is the live
                // path and becomes our parent link.
                self.make_eager(&from);
            }
            return;
        }
        // Taken before delivery: the announcements are the candidates for tree optimisation,
        // and delivery must forget them (the graft timer goes stale).
        let announcers = self.missing.remove(&gossip.id);
        let Gossip { id, round, tag, payload } = gossip;
        let delivery =
            Delivery { id, tag, payload: payload.clone(), round, from: Some(from.clone()) };
        self.deliver(now_ms, delivery, out);
        let forward_round = round.saturating_add(1);
        self.eager_push(&Gossip { id, round: forward_round, tag, payload }, Some(&from), out);
        self.lazy_push(IHave { id, round: forward_round }, Some(&from), out);
        if self.is_neighbor(&from) && !self.was_pruned_recently(now_ms, &from) {
            // The sender is our parent in this message's tree. A peer we pruned moments ago
            // is still flushing messages sent before our PRUNE arrived: those must not undo
            // the PRUNE.
            self.make_eager(&from);
        }
        if let Some(missing) = announcers {
            // The closest announcer (lowest round; the oldest among equals) is the only one
            // worth swapping to: one swap per message.
            let best = missing
                .announcers
                .iter()
                .enumerate()
                .min_by_key(|(i, (_, round))| (*round, *i))
                .map(|(_, (peer, round))| (peer.clone(), *round));
            if let Some((announcer, announced_round)) = best {
                self.optimise(now_ms, id, announcer, announced_round, out);
            }
        }
    }

    /// Paper: receive `IHAVE(mID, round, sender)`, batched.
    fn on_ihave(
        &mut self,
        now_ms: u64,
        from: P,
        batch: Vec<IHave>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        if !self.is_neighbor(&from) {
            // We could neither graft from nor swap to a non-neighbour.
            return;
        }
        let len_max = self.config.ihave_batch_len_max;
        if batch.len() > len_max {
            // A peer with our configuration never sends more; the cap bounds the outputs.
            self.stats.announcements_dropped += (batch.len() - len_max) as u64;
        }
        for IHave { id, round } in batch.into_iter().take(len_max) {
            if self.cache.contains(&id) {
                self.optimise(now_ms, id, from.clone(), round, out);
                continue;
            }
            match self.missing.record(id, from.clone(), round) {
                Recorded::NewEntry => out.push(OutEvent::ScheduleTimer {
                    // Jitter spreads the grafts of an orphaned subtree: the first one to fire
                    // re-attaches it and its eager links deliver to the rest before their own
                    // timers fire, instead of every orphan grafting (duplicates) at once.
                    after_ms: self.config.graft_timeout_1_ms
                        + self.rng.below(self.config.graft_jitter_ms + 1),
                    timer: Timer::Graft { id, attempt: 0 },
                }),
                Recorded::Added | Recorded::AlreadyKnown => {}
                Recorded::Dropped => self.stats.announcements_dropped += 1,
            }
        }
    }

    /// Paper: receive `GRAFT(mID, round, sender)`.
    fn on_graft(
        &mut self,
        from: P,
        id: Option<MessageId>,
        _round: u16,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.graft_received += 1;
        if !self.is_neighbor(&from) {
            return;
        }
        self.make_eager(&from);
        let Some(id) = id else { return };
        if let Some(cached) = self.cache.get(&id) {
            // Sent as if forwarded by us: the receiver's round is one more than ours.
            let gossip = Gossip {
                id,
                round: cached.round.saturating_add(1),
                tag: cached.tag,
                payload: cached.payload.clone(),
            };
            self.send(from, Message::Gossip(gossip), out);
            self.stats.gossip_sent += 1;
        }
    }

    /// Paper: receive `PRUNE(sender)`.
    fn on_prune(&mut self, from: P) {
        self.stats.prune_received += 1;
        if self.is_eager(&from) {
            self.make_lazy(&from);
        }
    }

    /// Paper: `NeighborUp(node)`: the new neighbour joins the eager set until this node has
    /// delivered a broadcast, the lazy set afterwards (see below); a new neighbour is told
    /// what this node received recently (see [`Self::announce_recent`]).
    fn on_neighbor_up(&mut self, now_ms: u64, peer: P, out: &mut impl Sink<OutEvent<P>>) {
        assert!(peer != self.me, "NeighborUp for this node itself: {peer:?}");
        let new_neighbor = !self.is_neighbor(&peer);
        // Deviation from the paper (docs/protocols/plumtree.md): once this node has taken
        // part in a broadcast (it sits in a tree), a new link starts lazy unless we have no
        // eager link at all. It is a backup; if it is needed, the first IHAVE over it leads to
        // a GRAFT. Starting every repair link eager closes a cycle per link, and the next
        // broadcast pays a duplicate and a PRUNE for each (measured under churn: RMR 0.066
        // eager vs 0.025 lazy at 2,000 nodes). Before any broadcast, links start eager so the
        // first broadcast builds a shortest-path tree by first arrival, as in the paper.
        if self.is_eager(&peer) {
            return; // A repeated NeighborUp changes nothing.
        }
        // A message still missing may have lost its announcers to the membership repair that
        // brought this link up (an eviction drops a link we were about to graft over). The
        // new neighbour is asked too: if it has the message it answers the GRAFT, otherwise
        // the graft chain moves on. (Measured: without this a survivor inside the sender's
        // component could miss the first broadcast after a crash.)
        self.stats.announcements_dropped += self.missing.add_announcer_to_all(&peer, u16::MAX);
        let in_tree = self.stats.delivered > 0;
        if !in_tree || self.eager_push_peers.is_empty() {
            self.make_eager(&peer);
        } else {
            insert_sorted(&mut self.lazy_push_peers, &peer);
        }
        if new_neighbor {
            self.announce_recent(now_ms, peer, out);
        }
    }

    /// Deviation from the paper (docs/protocols/plumtree.md): one IHAVE to a new neighbour
    /// with the messages this node received within `link_up_announce_ms` (newest first, at
    /// most `ihave_batch_len_max`). A broadcast that passed us before the link existed never
    /// reaches the neighbour over it otherwise, and a node whose links were all replaced by
    /// membership repair while a broadcast was under way would never hear of it (measured:
    /// after a 30 % crash of 1,000 nodes, two survivors whose every link had been replaced
    /// missed the first broadcast, though a flood over the surviving links reached them).
    /// The neighbour ignores what it has and grafts the rest.
    fn announce_recent(&mut self, now_ms: u64, peer: P, out: &mut impl Sink<OutEvent<P>>) {
        let window_ms = self.config.link_up_announce_ms;
        if window_ms == 0 {
            return;
        }
        let since_ms = now_ms.saturating_sub(window_ms);
        let batch: Vec<IHave> = self
            .cache
            .newest_since(since_ms)
            .take(self.config.ihave_batch_len_max)
            .map(|(id, cached)| IHave { id: *id, round: cached.round.saturating_add(1) })
            .collect();
        if !batch.is_empty() {
            self.send_ihave(peer, batch, out);
        }
    }

    /// Paper: `NeighborDown(node)`, plus forgetting every state that names the peer.
    fn on_neighbor_down(&mut self, peer: &P) {
        remove_sorted(&mut self.eager_push_peers, peer);
        remove_sorted(&mut self.lazy_push_peers, peer);
        self.missing.remove_peer(peer);
        self.lazy_queue.remove_peer(peer);
        self.recently_pruned.retain(|(p, _)| p != peer);
    }

    /// Sends every queued announcement, one IHAVE message per peer (a queue is always shorter
    /// than `ihave_batch_len_max`: a full one is sent at once by `lazy_push`).
    fn on_ihave_flush(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        self.ihave_flush_armed = false;
        for (peer, batch) in self.lazy_queue.take_all() {
            self.send_ihave(peer, batch, out);
        }
    }

    /// Paper: `Timer(mID)` expires: graft the message from the oldest announcer still up.
    fn on_graft_timer(&mut self, id: MessageId, attempt: u16, out: &mut impl Sink<OutEvent<P>>) {
        let Some(entry) = self.missing.get_mut(&id) else {
            // Delivered (or given up) meanwhile: a stale timer.
            return;
        };
        if entry.attempt != attempt {
            // Armed for an earlier entry of the same id (the cache expired in between).
            return;
        }
        let Some((announcer, round)) = entry.announcers.pop_front() else {
            // Every announcer was tried (or went down) and the payload never came.
            self.missing.remove(&id);
            self.stats.graft_exhausted += 1;
            return;
        };
        // Like the paper, the next timer is armed even when no other announcer is known yet:
        // it gives this GRAFT its round trip, and announcers arriving meanwhile are tried next.
        // Only when it fires with nobody left is the message given up.
        let Some(next_attempt) = attempt.checked_add(1) else {
            self.missing.remove(&id);
            self.stats.graft_exhausted += 1;
            return;
        };
        entry.attempt = next_attempt;
        debug_assert!(self.is_neighbor(&announcer), "announcers are removed when they go down");
        self.make_eager(&announcer);
        self.send(announcer, Message::Graft { id: Some(id), round }, out);
        self.stats.graft_sent += 1;
        out.push(OutEvent::ScheduleTimer {
            after_ms: self.config.graft_timeout_2_ms,
            timer: Timer::Graft { id, attempt: next_attempt },
        });
    }

    /// Expires old cache entries and re-arms the sweep while anything is left.
    fn on_cache_evict(&mut self, now_ms: u64, out: &mut impl Sink<OutEvent<P>>) {
        self.cache_evict_armed = false;
        self.cache.expire(now_ms);
        self.arm_cache_evict(out);
    }

    /// Caches and delivers a new message.
    fn deliver(&mut self, now_ms: u64, delivery: Delivery<P>, out: &mut impl Sink<OutEvent<P>>) {
        let Delivery { id, tag, ref payload, round, ref from } = delivery;
        self.missing.remove(&id);
        let cached = CachedMessage {
            tag,
            payload: payload.clone(),
            round,
            from: from.clone().unwrap_or_else(|| self.me.clone()),
            received_ms: now_ms,
        };
        self.cache.insert(id, cached);
        self.arm_cache_evict(out);
        self.stats.delivered += 1;
        out.push(OutEvent::EmitEvent(Event::Received(delivery)));
    }

    /// The neighbour a cached message came from; `None` for a local broadcast.
    fn cached_parent<'a>(&self, cached: &'a CachedMessage<P>) -> Option<&'a P> {
        (cached.from != self.me).then_some(&cached.from)
    }

    /// Tree optimisation (paper §3.8): we hold `id`, received at round `r` from eager parent
    /// `e`, and `announcer` offers it at `announced_round`. When `r >= announced_round +
    /// optimization_threshold`, the announcer's path is much shorter: graft the announcer
    /// (without asking for the message) and prune the parent.
    fn optimise(
        &mut self,
        now_ms: u64,
        id: MessageId,
        announcer: P,
        announced_round: u16,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        if self.config.optimization_threshold == u16::MAX {
            return; // Disabled (the default): see `Config::optimization_threshold`.
        }
        let Some(cached) = self.cache.get(&id) else { return };
        let Some(parent) = self.cached_parent(cached).cloned() else {
            // We are the origin; nothing is shorter than round 0.
            return;
        };
        let received_round = u32::from(cached.round);
        let threshold = u32::from(announced_round) + u32::from(self.config.optimization_threshold);
        let cooling = self
            .last_optimisation_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < self.config.optimization_cooldown_ms);
        // Only a lazy announcer can replace the parent: if we already push to it eagerly the
        // swap would just drop the parent link and shrink the tree.
        if parent == announcer
            || self.is_eager(&announcer)
            || cooling
            || received_round < threshold
            || !self.is_eager(&parent)
            || !self.is_neighbor(&announcer)
        {
            return;
        }
        self.make_eager(&announcer);
        self.send(announcer.clone(), Message::Graft { id: None, round: announced_round }, out);
        self.stats.graft_sent += 1;
        self.make_lazy(&parent);
        self.note_pruned(now_ms, &parent);
        self.send(parent, Message::Prune, out);
        self.stats.prune_sent += 1;
        self.stats.optimisations += 1;
        self.last_optimisation_ms = Some(now_ms);
        // The announcer is now this message's parent, at its round: later announcements are
        // compared with the improved path, so one message causes at most one swap per
        // `optimization_threshold` hops gained.
        let cached = self.cache.get_mut(&id).expect("checked above and not removed since");
        cached.from = announcer;
        cached.round = announced_round;
    }

    /// Sends `gossip` to every eager peer but `except`.
    fn eager_push(
        &mut self,
        gossip: &Gossip,
        except: Option<&P>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        for peer in &self.eager_push_peers {
            if Some(peer) == except {
                continue;
            }
            out.push(OutEvent::SendMessage {
                to: peer.clone(),
                message: Message::Gossip(gossip.clone()),
            });
            self.stats.gossip_sent += 1;
        }
    }

    /// Queues `ihave` for every lazy peer but `except`.
    fn lazy_push(&mut self, ihave: IHave, except: Option<&P>, out: &mut impl Sink<OutEvent<P>>) {
        let mut queued = false;
        for i in 0..self.lazy_push_peers.len() {
            let peer = &self.lazy_push_peers[i];
            if Some(peer) == except {
                continue;
            }
            let peer = peer.clone();
            match self.lazy_queue.push(peer.clone(), ihave) {
                Some(full) => self.send_ihave(peer, full, out),
                None => queued = true,
            }
        }
        if queued && !self.ihave_flush_armed {
            self.ihave_flush_armed = true;
            out.push(OutEvent::ScheduleTimer {
                after_ms: self.config.ihave_batch_interval_ms,
                timer: Timer::IHaveFlush,
            });
        }
    }

    fn send_ihave(&mut self, to: P, batch: Vec<IHave>, out: &mut impl Sink<OutEvent<P>>) {
        debug_assert!(!batch.is_empty() && batch.len() <= self.config.ihave_batch_len_max);
        self.stats.ihave_messages_sent += 1;
        self.stats.ihave_ids_sent += batch.len() as u64;
        self.send(to, Message::IHave(batch), out);
    }

    fn send(&self, to: P, message: Message, out: &mut impl Sink<OutEvent<P>>) {
        out.push(OutEvent::SendMessage { to, message });
    }

    fn arm_cache_evict(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        if !self.cache_evict_armed && !self.cache.is_empty() {
            self.cache_evict_armed = true;
            out.push(OutEvent::ScheduleTimer {
                after_ms: self.config.cache_evict_interval_ms,
                timer: Timer::CacheEvict,
            });
        }
    }

    fn is_eager(&self, peer: &P) -> bool {
        self.eager_push_peers.binary_search(peer).is_ok()
    }

    fn is_neighbor(&self, peer: &P) -> bool {
        self.is_eager(peer) || self.lazy_push_peers.binary_search(peer).is_ok()
    }

    /// Moves (or adds) `peer` to the eager set.
    fn make_eager(&mut self, peer: &P) {
        remove_sorted(&mut self.lazy_push_peers, peer);
        insert_sorted(&mut self.eager_push_peers, peer);
    }

    /// Remembers that we just pruned `peer` (bounded by the neighbour count: one entry per
    /// peer, expired entries dropped on insert).
    fn note_pruned(&mut self, now_ms: u64, peer: &P) {
        let grace_ms = self.config.prune_grace_ms;
        self.recently_pruned.retain(|(p, at)| p != peer && now_ms.saturating_sub(*at) < grace_ms);
        self.recently_pruned.push((peer.clone(), now_ms));
    }

    fn was_pruned_recently(&self, now_ms: u64, peer: &P) -> bool {
        let grace_ms = self.config.prune_grace_ms;
        self.recently_pruned
            .iter()
            .any(|(p, at)| p == peer && now_ms.saturating_sub(*at) < grace_ms)
    }

    /// Moves `peer`, a neighbour, to the lazy set.
    fn make_lazy(&mut self, peer: &P) {
        debug_assert!(self.is_neighbor(peer));
        remove_sorted(&mut self.eager_push_peers, peer);
        insert_sorted(&mut self.lazy_push_peers, peer);
    }

    fn check_invariants(&self) {
        // Sorted and duplicate-free, hence binary search and deterministic order are valid.
        assert!(self.eager_push_peers.windows(2).all(|w| w[0] < w[1]), "eager set unsorted");
        assert!(self.lazy_push_peers.windows(2).all(|w| w[0] < w[1]), "lazy set unsorted");
        // Disjoint: the neighbours are their union, so both are subsets of the neighbours.
        assert!(
            self.eager_push_peers.iter().all(|p| self.lazy_push_peers.binary_search(p).is_err()),
            "a peer is both eager and lazy"
        );
        assert!(!self.is_neighbor(&self.me), "this node is its own neighbour");
        assert!(self.cache.len() <= self.config.message_cache_len_max, "cache over its bound");
        assert!(self.missing.len() <= self.config.missing_len_max, "missing over its bound");
        assert!(self.cache_evict_armed || self.cache.is_empty(), "cache without eviction timer");
        // The scans below are linear in the missing table and the lazy queue: debug builds only.
        debug_assert!(
            self.missing.ids().all(|id| !self.cache.contains(id)),
            "a message is both cached and missing"
        );
        debug_assert!(
            self.lazy_queue
                .iter()
                .all(|(p, n)| self.is_neighbor(p) && n < self.config.ihave_batch_len_max),
            "lazy queue for a non-neighbour or over its bound"
        );
    }
}

fn insert_sorted<P: Ord + Clone>(peers: &mut Vec<P>, peer: &P) {
    if let Err(at) = peers.binary_search(peer) {
        peers.insert(at, peer.clone());
    }
}

fn remove_sorted<P: Ord>(peers: &mut Vec<P>, peer: &P) {
    if let Ok(at) = peers.binary_search(peer) {
        peers.remove(at);
    }
}
