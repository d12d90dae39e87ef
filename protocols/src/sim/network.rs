//! The discrete-event network that drives real [`Node`] state machines under virtual time.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::fabric::{
    decode_hint, ends_shuffle, Delivery, Fabric, Local, MessageCounts, Touch, ACTIVE_SLOT, DEAD,
    LOCAL_SLOT, NODES_MAX, SLOT_INDEX,
};
use super::graph;
use super::links::{Latency, Links};
use super::prefetch;
use super::tracker::Tracker;
use crate::node::{self, InEvent, Layer, Message, Node, NodeOutbox, SharedConfig, Timer};
use crate::plumtree::{self, MessageId, Tag};
use crate::rng::Rng;
use crate::time::Now;

/// Node index in the simulation (also its peer identity).
pub type NodeIndex = u32;

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

/// A simulated cluster: the nodes, and the [`Fabric`] between them (the clock, the event
/// queue, the links), which is also the nodes' outbox sink.
pub struct Network {
    options: NetworkOptions,
    /// `options.node`, validated once and shared by every node.
    node_config: SharedConfig,
    /// Every node's state, by index; a crashed node's is replaced by an empty one (see
    /// [`Network::crash`]). Not an `Option`: the simulator's prefetch would have to read the
    /// option's tag, which the compiler places wherever a field's niche happens to be.
    nodes: Vec<Node<NodeIndex>>,
    /// The live nodes, ascending (the indices whose side is not [`DEAD`]): the discovery
    /// model draws a contact from them for every isolated node, and filtering every node for
    /// each draw made the joins of a 100,000-node run quadratic.
    live: Vec<NodeIndex>,
    frozen: bool,
    background_frozen: bool,
    held_timers: Vec<(NodeIndex, Timer<NodeIndex>)>,
    /// The outbox of every node call (one for all nodes: see [`NodeOutbox`]); its sink is the
    /// fabric, which carries each output out as it is pushed.
    outbox: NodeOutbox<NodeIndex, Fabric>,
    /// Contacts handed out by the discovery model to isolated nodes.
    pub stats_discoveries: u64,
}

impl Network {
    /// Creates an empty network.
    pub fn new(options: NetworkOptions) -> Self {
        let mut rng = Rng::from_seed(options.seed);
        let links = Links::new(options.latency, options.loss, rng.next_u64());
        let node_config = SharedConfig::new(options.node.clone()).unwrap_or_else(|e| panic!("{e}"));
        let pushed_max = Node::<NodeIndex>::outputs_per_call_max(&options.node);
        let fabric = Fabric::new(rng, links, options.link_failure_detect_us, pushed_max);
        Self {
            node_config,
            nodes: Vec::new(),
            live: Vec::new(),
            frozen: false,
            background_frozen: false,
            held_timers: Vec::new(),
            outbox: NodeOutbox::with_sink(&options.node, fabric),
            stats_discoveries: 0,
            options,
        }
    }

    fn fabric(&self) -> &Fabric {
        self.outbox.sink()
    }

    fn fabric_mut(&mut self) -> &mut Fabric {
        self.outbox.sink_mut()
    }

    /// Message counters over the whole run.
    pub fn counts(&self) -> MessageCounts {
        self.fabric().counts()
    }

    /// Broadcast bookkeeping (reliability, RMR, LDH, latency).
    pub fn tracker(&self) -> &Tracker {
        &self.fabric().tracker
    }

    /// Broadcast bookkeeping, to forget measured broadcasts.
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        &mut self.fabric_mut().tracker
    }

    /// Whether to record registry events (off by default: most scenarios do not read them).
    pub fn record_registry_events(&mut self, on: bool) {
        self.fabric_mut().record_registry_events = on;
    }

    /// Registry events recorded so far: (node, event), in order.
    pub fn registry_events(&self) -> &[(NodeIndex, crate::registry::Event<NodeIndex>)] {
        &self.fabric().registry_events
    }

    /// Forgets the registry events recorded so far.
    pub fn clear_registry_events(&mut self) {
        self.fabric_mut().registry_events.clear();
    }

    /// The options in force.
    pub fn options(&self) -> &NetworkOptions {
        &self.options
    }

    /// Virtual time in µs.
    pub fn now_us(&self) -> u64 {
        self.fabric().now_us
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
        self.fabric().is_alive(i)
    }

    /// Indices of live nodes, ascending.
    pub fn alive_nodes(&self) -> Vec<NodeIndex> {
        self.live.clone()
    }

    /// Whether each node is alive, by node index.
    pub fn alive_mask(&self) -> Vec<bool> {
        self.fabric().side.iter().map(|s| *s != DEAD).collect()
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
        &mut self.fabric_mut().rng
    }

    fn now(&self) -> Now {
        let mono_ms = self.fabric().now_us / 1000;
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
        self.live.reserve_exact(more);
        let fabric = self.fabric_mut();
        fabric.side.reserve_exact(more);
        fabric.links.reserve(nodes);
    }

    /// Adds a new live node and returns its index.
    pub fn add_node(&mut self) -> NodeIndex {
        assert!(self.nodes.len() < NODES_MAX, "the simulator holds at most {NODES_MAX} nodes");
        let i = self.nodes.len() as NodeIndex;
        let seed = self.fabric_mut().rng.next_u64();
        let now = self.now();
        let node =
            Node::with_shared_config(i, u64::from(i), &self.node_config, Rng::from_seed(seed), now);
        self.nodes.push(node);
        self.fabric_mut().side.push(0);
        self.live.push(i);
        let (node, out) = self.calling(i);
        node.start(now, out);
        i
    }

    /// Node `i` and the outbox its call pushes into, the fabric told whose outputs follow:
    /// every call of a node goes through here.
    fn calling(
        &mut self,
        i: NodeIndex,
    ) -> (&mut Node<NodeIndex>, &mut NodeOutbox<NodeIndex, Fabric>) {
        self.outbox.sink_mut().begin_call(i);
        (&mut self.nodes[i as usize], &mut self.outbox)
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
        let now = self.now();
        assert!(self.is_alive(i), "broadcast from a dead node");
        // Tracked before the call: the sender's own delivery is recorded while it runs.
        let id = self.nodes[i as usize].next_broadcast_id();
        let nodes = self.nodes.len();
        let fabric = self.outbox.sink_mut();
        fabric.tracker.start(id, i, fabric.now_us, nodes);
        let (node, out) = self.calling(i);
        let sent = node
            .broadcast(now, Tag::APPLICATION_MIN, payload, out)
            .expect("simulator payloads are within limits");
        assert_eq!(sent, id, "the broadcast got the id announced for it");
        id
    }

    /// Registers a service on node `i`.
    pub fn register(&mut self, i: NodeIndex, name: &str, reg_id: u64) {
        let now = self.now();
        assert!(self.is_alive(i), "register on a dead node");
        let (node, out) = self.calling(i);
        node.register_service(now, name, reg_id, Bytes::new(), out)
            .expect("simulator registrations are valid");
    }

    fn input(&mut self, i: NodeIndex, event: InEvent<NodeIndex>) {
        if !self.is_alive(i) {
            return;
        }
        let now = self.now();
        let (node, out) = self.calling(i);
        node.handle(now, event, out);
    }

    /// Crashes nodes at once: their state is dropped, messages to them fail, and every live
    /// node with a link to one of them is told after `link_failure_detect_us`.
    pub fn crash(&mut self, victims: &[NodeIndex]) {
        let fabric = self.outbox.sink_mut();
        fabric.sides_uniform = false;
        for v in victims {
            fabric.side[*v as usize] = DEAD;
        }
        let side = &fabric.side;
        self.live.retain(|i| side[*i as usize] != DEAD);
        self.fail_cut_links(|side, _, peer| side[peer] == DEAD);
        let now = self.now();
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
    }

    /// Reports, after the detection delay, each link (active or being set up) of a live node
    /// to a peer that `cut(sides, node, peer)` says it can no longer reach.
    fn fail_cut_links(&mut self, cut: impl Fn(&[u8], usize, usize) -> bool) {
        let fabric = self.outbox.sink_mut();
        for (i, node) in self.nodes.iter().enumerate() {
            if fabric.side[i] == DEAD {
                continue;
            }
            let hv = node.hyparview();
            for peer in hv.active_view().iter().chain(hv.pending_peers()) {
                if cut(&fabric.side, i, *peer as usize) {
                    fabric.schedule_failure(i as NodeIndex, *peer);
                }
            }
        }
    }

    /// Splits the cluster: `group[i]` is node i's side. Links across sides fail after the
    /// detection delay and new messages across them fail.
    pub fn partition(&mut self, group: Vec<u8>) {
        assert_eq!(group.len(), self.nodes.len());
        let fabric = self.outbox.sink_mut();
        fabric.sides_uniform = false;
        for (side, g) in fabric.side.iter_mut().zip(&group) {
            assert!(*g != DEAD, "partition groups are below {DEAD}");
            if *side != DEAD {
                *side = *g;
            }
        }
        self.fail_cut_links(|_, node, peer| group[peer] != group[node]);
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        let all_alive = self.live.len() == self.nodes.len();
        let fabric = self.fabric_mut();
        fabric.side.iter_mut().filter(|s| **s != DEAD).for_each(|s| *s = 0);
        fabric.sides_uniform = all_alive;
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
                let fabric = self.outbox.sink_mut();
                let at = fabric.now_us + 1 + fabric.rng.below(period_us);
                fabric.enqueue_local(at, Local::Timer { node, timer });
            }
        }
    }

    /// Processes the next event. Returns false when the queue is empty.
    pub fn step(&mut self) -> bool {
        let Some(ev) = self.fabric_mut().queue.pop() else { return false };
        self.prefetch_ahead();
        let fabric = self.outbox.sink_mut();
        debug_assert!(ev.at_us >= fabric.now_us, "time went backwards");
        fabric.now_us = ev.at_us;
        if ev.slot & ACTIVE_SLOT != 0 {
            fabric.activity -= 1;
        }
        let index = ev.slot & SLOT_INDEX;
        if ev.slot & LOCAL_SLOT == 0 {
            let Delivery { from, to, message } = fabric.deliveries.take(index);
            self.deliver(from, to, message);
            return true;
        }
        match fabric.locals.take(index) {
            Local::LinkFailed { node, peer } => {
                fabric.failure_reported(node, peer);
                self.input(node, InEvent::PeerFailed(peer));
            }
            Local::Discover { node } => {
                let active_size = self.options.node.hyparview.active_size;
                let short = self.is_alive(node)
                    && self.nodes[node as usize].hyparview().active_view().len() < active_size;
                if short && self.live.len() > 1 {
                    let mut contact = node;
                    while contact == node {
                        contact = self.live[self.outbox.sink_mut().rng.index(self.live.len())];
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
        let fabric = self.outbox.sink_mut();
        if !fabric.sides_uniform {
            let from_side = fabric.side[from as usize];
            if from_side == DEAD {
                return; // The sender crashed with the message in flight: QUIC loses it.
            }
            if fabric.side[to as usize] != from_side {
                fabric.schedule_failure(from, to);
                return;
            }
        }
        if let Message::Plumtree(plumtree::Message::Gossip(g)) = &message {
            // RMR counts payload copies exchanged, i.e. received by a live node (Plumtree
            // paper §2.3); a copy pushed to a node that just crashed is lost with it.
            fabric.tracker.payload_received(g.id);
        }
        self.input(to, InEvent::Message { from, message });
    }

    /// Prefetches, in two stages, what the next events will touch: their queued slots and
    /// their nodes' hot bytes (known from the queue entry alone), then the heap buffers those
    /// nodes point to. At 100,000 nodes nearly every event's first touch of its node missed
    /// every cache, and the queue knows the next events long before they run. Hints only:
    /// results are the same with or without them.
    fn prefetch_ahead(&self) {
        let fabric = self.fabric();
        // Distances in events: far enough for DRAM latency (an event takes ≈ 0.5–0.7 µs at
        // 100,000 nodes), within what the queue keeps sorted ahead (`LOOKAHEAD`).
        const NODE_AHEAD: usize = 8;
        const HEAP_AHEAD: usize = 3;
        const { assert!(NODE_AHEAD <= super::queue::LOOKAHEAD) };
        if let Some(e) = fabric.queue.ahead(NODE_AHEAD) {
            let i = (e.slot & SLOT_INDEX) as usize;
            if e.slot & LOCAL_SLOT == 0 {
                let slot = fabric.deliveries.slots.as_ptr().wrapping_add(i);
                prefetch::range(slot, size_of::<Delivery>());
            } else {
                prefetch::line(fabric.locals.slots.as_ptr().wrapping_add(i));
            }
            let (n, touch) = decode_hint(e.hint);
            if !fabric.sides_uniform {
                // The receiver's side (read before the node runs, and by every message it
                // sends).
                prefetch::line(fabric.side.as_ptr().wrapping_add(n as usize));
            }
            let node = self.nodes.as_ptr().wrapping_add(n as usize).cast::<u8>();
            let (offset, len) = match touch {
                Touch::Layer(layer) => Node::<NodeIndex>::hot_range(layer),
                Touch::MembershipTimer | Touch::ShuffleTimer => {
                    Node::<NodeIndex>::hot_range(Layer::Hyparview)
                }
                Touch::ShuffleHop => Node::<NodeIndex>::shuffle_hop_range(),
            };
            prefetch::range(node.wrapping_add(offset), len);
            let (links, bytes) = fabric.links.list(n);
            prefetch::range(links, bytes);
        }
        if let Some(e) = fabric.queue.ahead(HEAP_AHEAD) {
            let (n, touch) = decode_hint(e.hint);
            if let Some(node) = self.nodes.get(n as usize) {
                // Only what the event reads: at 100,000 nodes the prefetches themselves
                // stalled, the core out of outstanding misses, while a shuffle hop (30 M of
                // the 51.5 M messages) read one of the four buffers prefetched for it.
                match touch {
                    Touch::ShuffleHop => prefetch::line(node.shuffle_hop_heap()),
                    Touch::MembershipTimer => {
                        prefetch::lines(node.heap(Layer::Hyparview));
                        prefetch::ranges(node.shuffle_end_ranges());
                    }
                    Touch::ShuffleTimer => {
                        prefetch::lines(node.heap(Layer::Hyparview));
                        let (peers, bytes) = node.shuffle_sample_range();
                        prefetch::range(peers, bytes);
                    }
                    Touch::Layer(layer) => prefetch::lines(node.heap(layer)),
                }
                let i = (e.slot & SLOT_INDEX) as usize;
                let delivery =
                    (e.slot & LOCAL_SLOT == 0).then(|| fabric.deliveries.get(i)).flatten();
                if let Some(d) = delivery.filter(|_| !fabric.sides_uniform) {
                    // The sender's side: a delivery checks that both ends are still up and
                    // on one side of any partition, and at 100,000 nodes that byte missed
                    // the cache (8 % of `step`'s samples).
                    prefetch::line(fabric.side.as_ptr().wrapping_add(d.from as usize));
                }
                // A message that ends a shuffle walk integrates the peers it carries (a list
                // the walk's origin wrote thousands of events ago) into the passive view,
                // evicting random entries or those of the node's own last sample, and closes
                // the temporary link to the walk's other end: all of these then, and the other
                // end's links (the slot was prefetched five events ago). At 100,000 nodes the
                // reads of the carried list and of the last sample were 40 % of `integrate`.
                if let Some((other_end, carried)) = delivery.and_then(ends_shuffle) {
                    prefetch::range(carried.as_ptr(), size_of_val(carried));
                    prefetch::ranges(node.shuffle_end_ranges());
                    let (links, bytes) = fabric.links.list(other_end);
                    prefetch::range(links, bytes);
                }
            }
        }
    }

    /// Runs events up to and including virtual time `until_us`, then sets the clock to it.
    pub fn run_until(&mut self, until_us: u64) {
        while let Some(next) = self.fabric_mut().queue.peek() {
            if next.at_us > until_us {
                break;
            }
            self.step();
        }
        let fabric = self.fabric_mut();
        fabric.now_us = fabric.now_us.max(until_us);
    }

    /// Runs until no message, link failure or Plumtree timer is outstanding (periodic
    /// membership and registry timers keep running on the way). Gives up after
    /// `deadline_us` of virtual time and returns false then.
    pub fn run_until_quiescent(&mut self, deadline_us: u64) -> bool {
        let limit = self.now_us() + deadline_us;
        while self.fabric().activity > 0 {
            match self.fabric_mut().queue.peek() {
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
        self.fabric().links.open_count()
    }

    /// Events queued.
    pub fn queued_events(&self) -> usize {
        self.fabric().queue.len()
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
