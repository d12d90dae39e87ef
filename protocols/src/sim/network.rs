//! The discrete-event network that drives real [`Node`] state machines under virtual time.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::graph;
use super::links::{FxMap, Latency, Links};
use super::prefetch;
use super::queue::{Entry, EventQueue};
use super::tracker::Tracker;
use crate::node::{
    self, Event, InEvent, Layer, Message, Node, NodeOutbox, OutEvent, SharedConfig, Timer,
    MESSAGE_KINDS, MESSAGE_KIND_COUNT,
};
use crate::plumtree::{self, MessageId, Tag};
use crate::rng::Rng;
use crate::time::Now;

/// Node index in the simulation (also its peer identity).
pub type NodeIndex = u32;

/// Time the discovery model takes to answer an isolated node, in µs (guess: one DNS or
/// orchestrator lookup).
const DISCOVERY_DELAY_US: u64 = 100_000;

/// Wall-clock origin of the simulation (2026-01-01T00:00:00Z), so HLC stamps look real.
const WALL_EPOCH_MS: u64 = 1_767_225_600_000;

/// Options of the network model. Every field is printed with the results for replay.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Per-link one-way latency.
    pub latency: Latency,
    /// Probability that a message needs a retransmission (each costs ~3 one-way delays).
    pub loss: f64,
    /// Delay between a peer crashing (or a partition starting) and its neighbours' transports
    /// reporting the link as failed, in µs; also the time a dial to a dead or unreachable peer
    /// takes to fail.
    pub link_failure_detect_us: u64,
    /// Protocol configuration of every node.
    pub node: node::Config,
}

/// A queued event's payload other than a delivery: 32 bytes, against 72 for a delivery (a
/// message inside). Kept in their own slab: every node always has several timers queued, and
/// in a slot sized for a message each would take more than twice its size.
enum Local {
    LinkFailed { node: NodeIndex, peer: NodeIndex },
    Timer { node: NodeIndex, timer: Timer<NodeIndex> },
    Discover { node: NodeIndex },
}

/// [`Network::side`] of a crashed node.
const DEAD: u8 = u8::MAX;

/// Marks an [`Entry::slot`] as an index into [`Network::locals`] rather than
/// [`Network::deliveries`].
const LOCAL_SLOT: u32 = 1 << 31;

/// Marks an [`Entry::slot`] whose event counts as activity ([`counts_as_activity`]), decided
/// when it is queued: popping it then needs no second look at the action.
const ACTIVE_SLOT: u32 = 1 << 30;

/// The slab index in an [`Entry::slot`].
const SLOT_INDEX: u32 = ACTIVE_SLOT - 1;

/// Values by slot index, with a free list of the slots taken back. Holds at most
/// [`SLOT_INDEX`] + 1 values (the slot's top bits say which slab and whether the event
/// counts as activity).
struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new() }
    }

    fn insert(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(value);
            return slot;
        }
        self.slots.push(Some(value));
        let slot = u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 queued events");
        assert!(slot <= SLOT_INDEX, "fewer than 2^30 queued events of one kind");
        slot
    }

    /// Takes the value out of `slot` and frees the slot.
    fn take(&mut self, slot: u32) -> T {
        // Invariant: every queued slot holds its value until popped.
        let value = self.slots[slot as usize].take().expect("queued slot holds a value");
        self.free.push(slot);
        value
    }
}

/// A queued message: 72 bytes.
struct Delivery {
    from: NodeIndex,
    to: NodeIndex,
    message: Message<NodeIndex>,
}

/// What an event does when popped. Stored split into [`Delivery`] and [`Local`] while queued.
enum Action {
    Deliver {
        from: NodeIndex,
        to: NodeIndex,
        message: Message<NodeIndex>,
    },
    LinkFailed {
        node: NodeIndex,
        peer: NodeIndex,
    },
    Timer {
        node: NodeIndex,
        timer: Timer<NodeIndex>,
    },
    /// The discovery model answers an isolated node with a live contact.
    Discover {
        node: NodeIndex,
    },
}

/// Message counters by kind over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Every message sent.
    pub total: u64,
    /// HyParView messages.
    pub hyparview: u64,
    /// Plumtree GOSSIP (payload) messages.
    pub gossip: u64,
    /// Plumtree IHAVE/GRAFT/PRUNE messages.
    pub plumtree_control: u64,
    /// Registry anti-entropy messages.
    pub registry: u64,
    /// Every message by kind (`Message::kind`).
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// A simulated cluster.
pub struct Network {
    options: NetworkOptions,
    /// `options.node`, validated once and shared by every node.
    node_config: SharedConfig,
    rng: Rng,
    now_us: u64,
    seq: u64,
    queue: EventQueue,
    /// Queued deliveries, by `Entry::slot`.
    deliveries: Slab<Delivery>,
    /// Every other queued action, by `Entry::slot` minus [`LOCAL_SLOT`].
    locals: Slab<Local>,
    /// Events queued that count as activity ([`counts_as_activity`]): quiescent at 0.
    activity: u64,
    /// Every node's state, by index; a crashed node's is replaced by an empty one (see
    /// [`Network::crash`]). Not an `Option`: the simulator's prefetch would have to read the
    /// option's tag, which the compiler places wherever a field's niche happens to be.
    nodes: Vec<Node<NodeIndex>>,
    /// Partition group of each live node, [`DEAD`] for a crashed one: a message goes through
    /// when both ends hold the same value. One byte read per end instead of a liveness flag
    /// and a group from two arrays (two cache misses per message at 100,000 nodes).
    side: Vec<u8>,
    /// The live nodes, ascending (the indices where `side` is not [`DEAD`]): the discovery
    /// model draws a contact from them for every isolated node, and filtering every node for
    /// each draw made the joins of a 100,000-node run quadratic.
    live: Vec<NodeIndex>,
    links: Links,
    /// Link failures already scheduled (from, to), so one failure is reported once.
    failing: FxMap<(NodeIndex, NodeIndex), ()>,
    frozen: bool,
    background_frozen: bool,
    held_timers: Vec<(NodeIndex, Timer<NodeIndex>)>,
    /// The outbox of every node call (one for all nodes: see [`NodeOutbox`]).
    outbox: NodeOutbox<NodeIndex>,
    /// The last call's outputs while they are processed (swapped with the outbox's queue, so
    /// neither is moved nor reallocated per event).
    outputs: Vec<OutEvent<NodeIndex>>,
    /// Broadcast bookkeeping (reliability, RMR, LDH, latency).
    pub tracker: Tracker,
    /// Message counters but `by_kind` (see [`Network::counts`]).
    counts: MessageCounts,
    /// Messages by kind while running, by `Message::kind_index` (a `BTreeMap` of names cost
    /// a string comparison per level for every message, a list searched by the name's
    /// address 3 % of a membership cycle's instructions).
    kinds: [u64; MESSAGE_KIND_COUNT],
    /// Registry events seen: (node, event).
    pub registry_events: Vec<(NodeIndex, crate::registry::Event<NodeIndex>)>,
    /// Whether to record registry events (off for scenarios that do not need them).
    pub record_registry_events: bool,
    /// Contacts handed out by the discovery model to isolated nodes.
    pub stats_discoveries: u64,
}

impl Network {
    /// Creates an empty network.
    pub fn new(options: NetworkOptions) -> Self {
        let mut rng = Rng::from_seed(options.seed);
        let links = Links::new(options.latency, options.loss, rng.next_u64());
        let node_config = SharedConfig::new(options.node.clone()).unwrap_or_else(|e| panic!("{e}"));
        Self {
            node_config,
            rng,
            now_us: 0,
            seq: 0,
            queue: EventQueue::new(),
            deliveries: Slab::new(),
            locals: Slab::new(),
            activity: 0,
            nodes: Vec::new(),
            side: Vec::new(),
            live: Vec::new(),
            links,
            failing: FxMap::default(),
            frozen: false,
            background_frozen: false,
            held_timers: Vec::new(),
            outbox: NodeOutbox::new(&options.node),
            outputs: Vec::new(),
            tracker: Tracker::default(),
            counts: MessageCounts::default(),
            kinds: [0; MESSAGE_KIND_COUNT],
            registry_events: Vec::new(),
            record_registry_events: false,
            stats_discoveries: 0,
            options,
        }
    }

    /// Message counters over the whole run.
    pub fn counts(&self) -> MessageCounts {
        let mut counts = self.counts.clone();
        for (kind, n) in MESSAGE_KINDS.iter().zip(self.kinds) {
            if n > 0 {
                counts.by_kind.insert(kind, n);
            }
        }
        counts
    }

    /// The options in force.
    pub fn options(&self) -> &NetworkOptions {
        &self.options
    }

    /// Virtual time in µs.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Node count (alive or dead).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True before any node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether node `i` is alive.
    pub fn is_alive(&self, i: NodeIndex) -> bool {
        self.side[i as usize] != DEAD
    }

    /// Indices of live nodes, ascending.
    pub fn alive_nodes(&self) -> Vec<NodeIndex> {
        self.live.clone()
    }

    /// Whether each node is alive, by node index.
    pub fn alive_mask(&self) -> Vec<bool> {
        self.side.iter().map(|s| *s != DEAD).collect()
    }

    /// Number of live nodes.
    pub fn alive_count(&self) -> usize {
        self.live.len()
    }

    /// The node state, if alive.
    pub fn node(&self, i: NodeIndex) -> Option<&Node<NodeIndex>> {
        self.is_alive(i).then(|| &self.nodes[i as usize])
    }

    /// The simulation's own RNG (scenario decisions).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn now(&self, i: NodeIndex) -> Now {
        let _ = i;
        let mono_ms = self.now_us / 1000;
        Now { mono_ms, wall_ms: WALL_EPOCH_MS + mono_ms }
    }

    /// Makes room for `nodes` nodes in every per-node table at once. A hint, for large runs:
    /// grown by doubling, the 100,000-node table of nodes (118 MB) ended up in pieces of
    /// which only a third was backed by huge pages, so most events' first touch of their
    /// node waited for a page walk (a third of `Network::step` stalled on the prefetch of the
    /// node's first line). Allocated at its final size, all but its ends are.
    pub fn reserve(&mut self, nodes: usize) {
        let more = nodes.saturating_sub(self.nodes.len());
        self.nodes.reserve_exact(more);
        self.side.reserve_exact(more);
        self.live.reserve_exact(more);
        self.links.reserve(nodes);
    }

    /// Adds a new live node and returns its index.
    pub fn add_node(&mut self) -> NodeIndex {
        let i = self.nodes.len() as NodeIndex;
        let seed = self.rng.next_u64();
        let now = self.now(i);
        let node =
            Node::with_shared_config(i, u64::from(i), &self.node_config, Rng::from_seed(seed), now);
        self.nodes.push(node);
        self.side.push(0);
        self.live.push(i);
        self.nodes[i as usize].start(now, &mut self.outbox);
        self.process_outputs(i);
        i
    }

    /// Node `i` joins through `contacts`.
    pub fn join(&mut self, i: NodeIndex, contacts: Vec<NodeIndex>) {
        self.input(i, InEvent::Join(contacts));
    }

    /// Node `i` leaves gracefully.
    pub fn leave(&mut self, i: NodeIndex) {
        self.input(i, InEvent::Leave);
    }

    /// Broadcasts from `i` and tracks the message. Returns its id.
    pub fn broadcast(&mut self, i: NodeIndex, payload: Bytes) -> MessageId {
        let now = self.now(i);
        assert!(self.is_alive(i), "broadcast from a dead node");
        let node = &mut self.nodes[i as usize];
        let id = node
            .broadcast(now, Tag::APPLICATION_MIN, payload, &mut self.outbox)
            .expect("simulator payloads are within limits");
        self.tracker.start(id, i, self.now_us, self.nodes.len());
        self.process_outputs(i);
        id
    }

    /// Registers a service on node `i`.
    pub fn register(&mut self, i: NodeIndex, name: &str, reg_id: u64) {
        let now = self.now(i);
        assert!(self.is_alive(i), "register on a dead node");
        let node = &mut self.nodes[i as usize];
        node.register_service(now, name, reg_id, Bytes::new(), &mut self.outbox)
            .expect("simulator registrations are valid");
        self.process_outputs(i);
    }

    fn input(&mut self, i: NodeIndex, event: InEvent<NodeIndex>) {
        if !self.is_alive(i) {
            return;
        }
        let now = self.now(i);
        self.nodes[i as usize].handle(now, event, &mut self.outbox);
        self.process_outputs(i);
    }

    /// Crashes nodes at once: their state is dropped, messages to them fail, and every live
    /// node with a link to one of them is told after `link_failure_detect_us`.
    pub fn crash(&mut self, victims: &[NodeIndex]) {
        for v in victims {
            self.side[*v as usize] = DEAD;
        }
        let side = &self.side;
        self.live.retain(|i| side[*i as usize] != DEAD);
        let mut notices = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if self.side[i] == DEAD {
                continue;
            }
            let hv = node.hyparview();
            for peer in hv.active_view().iter().chain(hv.pending_peers()) {
                if self.side[*peer as usize] == DEAD {
                    notices.push((i as NodeIndex, *peer));
                }
            }
        }
        let now = self.now(0);
        for v in victims {
            // The state is dropped; an empty node holds the place (it never runs again: every
            // input checks liveness first).
            self.nodes[*v as usize] = Node::with_shared_config(
                *v,
                u64::from(*v),
                &self.node_config,
                Rng::from_seed(0),
                now,
            );
        }
        for (node, peer) in notices {
            self.schedule_failure(node, peer);
        }
    }

    /// Splits the cluster: `group[i]` is node i's side. Links across sides fail after the
    /// detection delay and new messages across them fail.
    pub fn partition(&mut self, group: Vec<u8>) {
        assert_eq!(group.len(), self.nodes.len());
        for (side, g) in self.side.iter_mut().zip(&group) {
            assert!(*g != DEAD, "partition groups are below {DEAD}");
            if *side != DEAD {
                *side = *g;
            }
        }
        let mut notices = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if self.side[i] == DEAD {
                continue;
            }
            let hv = node.hyparview();
            for peer in hv.active_view().iter().chain(hv.pending_peers()) {
                if group[*peer as usize] != group[i] {
                    notices.push((i as NodeIndex, *peer));
                }
            }
        }
        for (node, peer) in notices {
            self.schedule_failure(node, peer);
        }
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.side.iter_mut().filter(|s| **s != DEAD).for_each(|s| *s = 0);
    }

    /// While frozen, periodic membership timers (shuffle, passive cleanup, reconnect) are held
    /// back: this models the papers' "before the next membership cycle". Unfreezing re-arms
    /// them at random phases within one shuffle period.
    pub fn set_membership_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
        self.release_held_timers();
    }

    /// While frozen, background retries are held too: HyParView promotion retries and
    /// registry anti-entropy. Used while nodes join one by one: in the papers no time passes
    /// between joins, and without this the background work done while N nodes join grows as
    /// N² (each join takes some virtual time, during which every node's timers run).
    /// Unfreezing re-arms them at random phases within one shuffle period.
    pub fn set_background_frozen(&mut self, frozen: bool) {
        self.background_frozen = frozen;
        self.release_held_timers();
    }

    fn is_held(&self, timer: &Timer<NodeIndex>) -> bool {
        (self.frozen && is_membership_cycle_timer(timer))
            || (self.background_frozen && is_background_timer(timer))
    }

    /// Re-arms, at random phases within one shuffle period, every held timer no freeze holds
    /// any more (in held order, so the draw sequence is deterministic).
    fn release_held_timers(&mut self) {
        let period_us = self.options.node.hyparview.shuffle_period_ms * 1000;
        let held = std::mem::take(&mut self.held_timers);
        for (node, timer) in held {
            if self.is_held(&timer) {
                self.held_timers.push((node, timer));
            } else {
                let at = self.now_us + 1 + self.rng.below(period_us);
                self.push(at, Action::Timer { node, timer });
            }
        }
    }

    fn push(&mut self, at_us: u64, action: Action) {
        let active = if counts_as_activity(&action) {
            self.activity += 1;
            ACTIVE_SLOT
        } else {
            0
        };
        self.seq += 1;
        let hint = prefetch_hint(&action);
        let slot = match action {
            Action::Deliver { from, to, message } => {
                self.deliveries.insert(Delivery { from, to, message })
            }
            Action::LinkFailed { node, peer } => {
                LOCAL_SLOT | self.locals.insert(Local::LinkFailed { node, peer })
            }
            Action::Timer { node, timer } => {
                LOCAL_SLOT | self.locals.insert(Local::Timer { node, timer })
            }
            Action::Discover { node } => LOCAL_SLOT | self.locals.insert(Local::Discover { node }),
        };
        self.queue.push(Entry { at_us, seq: self.seq, slot: slot | active, hint });
    }

    fn schedule_failure(&mut self, node: NodeIndex, peer: NodeIndex) {
        if self.failing.insert((node, peer), ()).is_none() {
            let at = self.now_us + self.options.link_failure_detect_us;
            self.push(at, Action::LinkFailed { node, peer });
        }
    }

    /// Carries out the outputs of node `from`'s last call.
    fn process_outputs(&mut self, from: NodeIndex) {
        let mut outputs = std::mem::take(&mut self.outputs);
        self.outbox.swap_out(&mut outputs);
        for o in outputs.drain(..) {
            match o {
                OutEvent::SendMessage { to, message } => self.send(from, to, message),
                OutEvent::ScheduleTimer { after_ms, timer } => {
                    let at = self.now_us + after_ms * 1000;
                    self.push(at, Action::Timer { node: from, timer });
                }
                OutEvent::DisconnectPeer(peer) => self.links.close(from, peer),
                OutEvent::EmitEvent(event) => match event {
                    Event::Broadcast(d) => {
                        self.tracker.delivered(d.id, from, d.round, self.now_us);
                    }
                    Event::Registry(e) => {
                        if self.record_registry_events {
                            self.registry_events.push((from, e));
                        }
                    }
                    Event::Membership(crate::hyparview::Event::Isolated) => {
                        // Model of a discovery backend (DNS, static seed list kept current by
                        // the operator, orchestrator endpoints): after a lookup delay it hands
                        // the isolated node the address of some live member.
                        let at = self.now_us + DISCOVERY_DELAY_US;
                        self.push(at, Action::Discover { node: from });
                    }
                    Event::Membership(_) => {}
                },
            }
        }
        self.outputs = outputs;
    }

    fn send(&mut self, from: NodeIndex, to: NodeIndex, message: Message<NodeIndex>) {
        self.counts.total += 1;
        self.kinds[message.kind_index()] += 1;
        match &message {
            Message::Hyparview(_) => self.counts.hyparview += 1,
            Message::Plumtree(plumtree::Message::Gossip(_)) => self.counts.gossip += 1,
            Message::Plumtree(_) => {
                self.counts.plumtree_control += 1;
                self.tracker.control_sent();
            }
            Message::Registry(_) => self.counts.registry += 1,
        }
        // The sender is alive (only live nodes run), so equal sides mean the receiver is too.
        assert!(self.side[from as usize] != DEAD, "a crashed node sent a message");
        if self.side[to as usize] != self.side[from as usize] {
            self.schedule_failure(from, to);
            return;
        }
        let at = self.links.schedule(self.now_us, from, to, &mut self.rng);
        self.push(at, Action::Deliver { from, to, message });
    }

    /// Processes the next event. Returns false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some(ev) = self.queue.pop() else { return false };
        self.prefetch_ahead();
        debug_assert!(ev.at_us >= self.now_us, "time went backwards");
        self.now_us = ev.at_us;
        if ev.slot & ACTIVE_SLOT != 0 {
            self.activity -= 1;
        }
        let index = ev.slot & SLOT_INDEX;
        if ev.slot & LOCAL_SLOT == 0 {
            let Delivery { from, to, message } = self.deliveries.take(index);
            self.deliver(from, to, message);
            return true;
        }
        match self.locals.take(index) {
            Local::LinkFailed { node, peer } => {
                self.failing.remove(&(node, peer));
                self.links.close(node, peer);
                self.input(node, InEvent::PeerFailed(peer));
            }
            Local::Discover { node } => {
                let active_size = self.options.node.hyparview.active_size;
                let short = self.is_alive(node)
                    && self.nodes[node as usize].hyparview().active_view().len() < active_size;
                if short && self.live.len() > 1 {
                    let mut contact = node;
                    while contact == node {
                        contact = self.live[self.rng.index(self.live.len())];
                    }
                    self.stats_discoveries += 1;
                    self.input(node, InEvent::Join(vec![contact]));
                }
            }
            Local::Timer { node, timer } => {
                if self.is_held(&timer) {
                    self.held_timers.push((node, timer));
                } else {
                    self.input(node, InEvent::TimerExpired(timer));
                }
            }
        }
        true
    }

    /// Hands a message that arrived to its receiver, unless one end crashed or the two are
    /// partitioned apart while it was in flight.
    fn deliver(&mut self, from: NodeIndex, to: NodeIndex, message: Message<NodeIndex>) {
        let from_side = self.side[from as usize];
        if from_side == DEAD {
            return; // The sender crashed with the message in flight: QUIC loses it.
        }
        if self.side[to as usize] != from_side {
            self.schedule_failure(from, to);
            return;
        }
        if let Message::Plumtree(plumtree::Message::Gossip(g)) = &message {
            // RMR counts payload copies exchanged, i.e. received by a live node (Plumtree
            // paper §2.3); a copy pushed to a node that just crashed is lost with it.
            self.tracker.payload_received(g.id);
        }
        self.input(to, InEvent::Message { from, message });
    }

    /// Prefetches, in two stages, what the next events will touch: their queued slots and
    /// their nodes' hot bytes (known from the queue entry alone), then the heap buffers those
    /// nodes point to. At 100,000 nodes nearly every event's first touch of its node missed
    /// every cache, and the queue knows the next events long before they run. Hints only:
    /// results are the same with or without them.
    fn prefetch_ahead(&self) {
        // Distances in events: far enough for DRAM latency (an event takes ≈ 0.5–0.7 µs at
        // 100,000 nodes), within what the queue keeps sorted ahead (`LOOKAHEAD`).
        const NODE_AHEAD: usize = 8;
        const HEAP_AHEAD: usize = 3;
        const { assert!(NODE_AHEAD <= super::queue::LOOKAHEAD) };
        if let Some(e) = self.queue.ahead(NODE_AHEAD) {
            let i = (e.slot & SLOT_INDEX) as usize;
            if e.slot & LOCAL_SLOT == 0 {
                let slot = self.deliveries.slots.as_ptr().wrapping_add(i);
                prefetch::range(slot, size_of::<Option<Delivery>>());
            } else {
                prefetch::line(self.locals.slots.as_ptr().wrapping_add(i));
            }
            let (n, layer) = decode_hint(e.hint);
            let node = self.nodes.as_ptr().wrapping_add(n as usize).cast::<u8>();
            let (offset, len) = Node::<NodeIndex>::hot_range(layer);
            prefetch::range(node.wrapping_add(offset), len);
            let (links, bytes) = self.links.list(n);
            prefetch::range(links, bytes);
        }
        if let Some(e) = self.queue.ahead(HEAP_AHEAD) {
            let (n, layer) = decode_hint(e.hint);
            if let Some(node) = self.nodes.get(n as usize) {
                // Null where a layer has nothing to point at (an empty message cache).
                for p in node.heap(layer).into_iter().filter(|p| !p.is_null()) {
                    prefetch::line(p);
                }
                // A message that ends a shuffle walk integrates the peers it carries (a list
                // the walk's origin wrote thousands of events ago) into the passive view,
                // evicting random entries or those of the node's own last sample, and closes
                // the temporary link to the walk's other end: all of these then, and the other
                // end's links (the slot was prefetched five events ago). At 100,000 nodes the
                // reads of the carried list and of the last sample were 40 % of `integrate`.
                let i = (e.slot & SLOT_INDEX) as usize;
                let delivery = (e.slot & LOCAL_SLOT == 0)
                    .then(|| self.deliveries.slots.get(i).and_then(Option::as_ref))
                    .flatten();
                if let Some((other_end, carried)) = delivery.and_then(ends_shuffle) {
                    prefetch::range(carried.as_ptr(), size_of_val(carried));
                    for (p, bytes) in node.shuffle_end_ranges() {
                        prefetch::range(p, bytes);
                    }
                    let (links, bytes) = self.links.list(other_end);
                    prefetch::range(links, bytes);
                }
            }
        }
    }

    /// Runs events up to and including virtual time `until_us`, then sets the clock to it.
    pub fn run_until(&mut self, until_us: u64) {
        while let Some(next) = self.queue.peek() {
            if next.at_us > until_us {
                break;
            }
            self.step();
        }
        self.now_us = self.now_us.max(until_us);
    }

    /// Runs until no message, link failure or Plumtree timer is outstanding (periodic
    /// membership and registry timers keep running on the way). Gives up after
    /// `deadline_us` of virtual time and returns false then.
    pub fn run_until_quiescent(&mut self, deadline_us: u64) -> bool {
        let limit = self.now_us + deadline_us;
        while self.activity > 0 {
            match self.queue.peek() {
                Some(next) if next.at_us <= limit => {
                    self.step();
                }
                _ => return false,
            }
        }
        true
    }

    /// Fraction of live nodes in `sender`'s connected component of the active-view overlay:
    /// what a flood from `sender` reaches with no repair at all (the static floor).
    pub fn component_fraction(&self, sender: NodeIndex) -> f64 {
        let (label, sizes) = self.components();
        let size = label.get(sender as usize).and_then(|l| sizes.get(*l as usize)).copied();
        size.unwrap_or(0) as f64 / self.alive_count().max(1) as f64
    }

    /// Expected reliability of one flood from a uniformly random live sender on the static
    /// overlay: Σ (component size / live nodes)² (perf-anchors §1.5's floor).
    pub fn expected_flood_reliability(&self) -> f64 {
        let alive = self.alive_count().max(1) as f64;
        self.components().1.iter().map(|c| (*c as f64 / alive).powi(2)).sum()
    }

    /// Components of the live active-view overlay (see [`graph::components`]).
    fn components(&self) -> (Vec<u32>, Vec<u64>) {
        let views = self.active_views();
        let nodes: Vec<NodeIndex> = views.keys().copied().collect();
        graph::components(&graph::undirected(&views), &nodes)
    }

    /// Whether some live node still waits for a JOIN or NEIGHBOR answer (membership repair in
    /// progress).
    pub fn repair_in_progress(&self) -> bool {
        self.live
            .iter()
            .any(|i| self.nodes[*i as usize].hyparview().pending_peers().next().is_some())
    }

    /// Open link directions (memory accounting).
    pub fn open_links(&self) -> usize {
        self.links.open_count()
    }

    /// Events queued.
    pub fn queued_events(&self) -> usize {
        self.queue.len()
    }

    /// Active-view adjacency of live nodes: node → its active view.
    pub fn active_views(&self) -> BTreeMap<NodeIndex, Vec<NodeIndex>> {
        let mut map = BTreeMap::new();
        for i in &self.live {
            map.insert(*i, self.nodes[*i as usize].hyparview().active_view().to_vec());
        }
        map
    }
}

/// Bits of [`Entry::hint`] that hold the layer (the rest is the node index).
const HINT_LAYER_SHIFT: u32 = 30;

/// The node an action is handled by and the layer it reaches first, packed for
/// [`Entry::hint`] (node indices stay below 2^30: the simulator's nodes are far fewer).
fn prefetch_hint(action: &Action) -> u32 {
    let (node, layer) = match action {
        Action::Deliver { to, message, .. } => (
            *to,
            match message {
                Message::Hyparview(_) => Layer::Hyparview,
                Message::Plumtree(_) => Layer::Plumtree,
                Message::Registry(_) => Layer::Registry,
            },
        ),
        Action::Timer { node, timer } => (
            *node,
            match timer {
                Timer::Hyparview(_) => Layer::Hyparview,
                Timer::Plumtree(_) => Layer::Plumtree,
                Timer::Registry(_) => Layer::Registry,
            },
        ),
        Action::LinkFailed { node, .. } | Action::Discover { node } => (*node, Layer::Hyparview),
    };
    debug_assert!(node < 1 << HINT_LAYER_SHIFT);
    node | (layer as u32) << HINT_LAYER_SHIFT
}

/// If `delivery` probably ends a shuffle walk (a reply, or a shuffle on its last hop), the
/// node at the walk's other end and the peers the message carries: its receiver integrates
/// them into its passive view and closes the temporary link to that node. A prefetch hint: a
/// walk also ends early at a node without another active peer, and the link stays if the two
/// are neighbours.
fn ends_shuffle(delivery: &Delivery) -> Option<(NodeIndex, &[NodeIndex])> {
    use crate::hyparview::Message as H;
    match &delivery.message {
        Message::Hyparview(H::ShuffleReply { peers }) => Some((delivery.from, peers)),
        Message::Hyparview(H::Shuffle { ttl, origin, peers }) if *ttl <= 1 => {
            Some((*origin, peers))
        }
        _ => None,
    }
}

fn decode_hint(hint: u32) -> (NodeIndex, Layer) {
    let layer = match hint >> HINT_LAYER_SHIFT {
        0 => Layer::Hyparview,
        1 => Layer::Plumtree,
        _ => Layer::Registry,
    };
    (hint & ((1 << HINT_LAYER_SHIFT) - 1), layer)
}

/// Whether an event keeps the network from being quiescent: broadcast traffic and its
/// timers, membership repair traffic and link failures. Periodic background traffic (shuffle
/// walks, registry anti-entropy) never stops, so it does not count.
fn counts_as_activity(action: &Action) -> bool {
    use crate::hyparview::Message as H;
    match action {
        // Also background: low-priority NEIGHBOR requests and their rejections, which a node
        // one link short keeps sending every few seconds; at 100,000 nodes one of them is
        // always in flight, and counting them made every "until quiescent" run to its deadline.
        // (Repair after a crash is awaited separately, through the pending operations.)
        Action::Deliver { message, .. } => !matches!(
            message,
            Message::Hyparview(
                H::Shuffle { .. }
                    | H::ShuffleReply { .. }
                    | H::Neighbor { priority: crate::hyparview::Priority::Low }
                    | H::NeighborReply { accepted: false }
            ) | Message::Registry(_)
        ),
        Action::LinkFailed { .. } | Action::Discover { .. } => true,
        Action::Timer { timer, .. } => {
            matches!(
                timer,
                Timer::Plumtree(plumtree::Timer::IHaveFlush | plumtree::Timer::Graft { .. })
            )
        }
    }
}

fn is_background_timer(timer: &Timer<NodeIndex>) -> bool {
    use crate::hyparview::Timer as H;
    matches!(
        timer,
        Timer::Hyparview(H::Promote) | Timer::Registry(crate::registry::Timer::AntiEntropy)
    )
}

fn is_membership_cycle_timer(timer: &Timer<NodeIndex>) -> bool {
    use crate::hyparview::Timer as H;
    matches!(timer, Timer::Hyparview(H::Shuffle | H::PassiveCleanup | H::Reconnect))
}
