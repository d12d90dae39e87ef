//! [`Fabric`]: everything of the simulated network outside the nodes — the virtual clock, the
//! event queue and the payloads of its entries, the links, the side of a partition each node
//! is on, and the run's counters.
//!
//! It is the sink of the nodes' outbox: a node's outputs are carried out as the node pushes
//! them (a message scheduled for delivery, a timer queued, a link closed, an event recorded),
//! instead of being queued in an outbox and moved out again after the call (≈ 150
//! instructions per event at 10,000 nodes went to that swapping, draining and moving). The
//! order is the same: one call's outputs in push order, and nothing a node does reads the
//! fabric.

use super::links::{FxMap, Links};
use super::queue::{Entry, EventQueue};
use super::tracker::Tracker;
use super::NodeIndex;
use crate::node::{
    Event, Layer, Message, OutEvent, Timer, GOSSIP_KIND_INDEX, HYPARVIEW_KIND_INDICES,
    MESSAGE_KINDS, MESSAGE_KIND_COUNT, PLUMTREE_KIND_INDICES, REGISTRY_KIND_INDICES,
};
use crate::outbox::Sink;
use crate::plumtree;
use crate::registry;
use crate::rng::Rng;

/// Time the discovery model takes to answer an isolated node, in µs (guess: one DNS or
/// orchestrator lookup).
const DISCOVERY_DELAY_US: u64 = 100_000;

/// [`Fabric::side`] of a crashed node.
pub(super) const DEAD: u8 = u8::MAX;

/// Marks an [`Entry::slot`] as an index into [`Fabric::locals`] rather than
/// [`Fabric::deliveries`].
pub(super) const LOCAL_SLOT: u32 = 1 << 31;

/// Marks an [`Entry::slot`] whose event counts as activity ([`delivery_is_activity`],
/// [`local_is_activity`]), decided when it is queued: popping it then needs no second look at
/// the event.
pub(super) const ACTIVE_SLOT: u32 = 1 << 30;

/// The slab index in an [`Entry::slot`].
pub(super) const SLOT_INDEX: u32 = ACTIVE_SLOT - 1;

/// Values by slot index, with a free list of the slots taken back. Holds at most
/// [`SLOT_INDEX`] + 1 values (the slot's top bits say which slab and whether the event
/// counts as activity).
///
/// A free slot holds [`Vacant::vacant`] rather than being an `Option`: moving a message out
/// of an `Option` copied it around its enum tag, at offsets the next move then read across
/// (a failed store-to-load forward on every event, 13 % of `Network::step`'s samples at
/// 100,000 nodes); replacing it with a vacant value moves it whole.
pub(super) struct Slab<T> {
    pub(super) slots: Vec<T>,
    free: Vec<u32>,
}

/// A value that marks a free [`Slab`] slot: owns nothing, and no queued value looks like it.
pub(super) trait Vacant {
    fn vacant() -> Self;
    fn is_vacant(&self) -> bool;
}

impl<T: Vacant> Slab<T> {
    fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new() }
    }

    fn insert(&mut self, value: T) -> u32 {
        if let Some(slot) = self.free.pop() {
            let old = std::mem::replace(&mut self.slots[slot as usize], value);
            // Invariant: a free slot is vacant (`take` left it so), and a vacant value owns
            // nothing: forgetting it skips the drop code an assignment runs on the old value,
            // which for a message is a walk through every variant that owns a buffer (a tenth
            // of queueing a message).
            debug_assert!(old.is_vacant(), "a free slot holds a value");
            std::mem::forget(old);
            return slot;
        }
        self.slots.push(value);
        let slot = u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 queued events");
        assert!(slot <= SLOT_INDEX, "fewer than 2^30 queued events of one kind");
        slot
    }

    /// Takes the value out of `slot` and frees the slot.
    pub(super) fn take(&mut self, slot: u32) -> T {
        let value = std::mem::replace(&mut self.slots[slot as usize], T::vacant());
        // Invariant: every queued slot holds its value until popped.
        assert!(!value.is_vacant(), "queued slot holds a value");
        self.free.push(slot);
        value
    }

    /// The value queued in `slot`, if any (for prefetch hints).
    pub(super) fn get(&self, slot: usize) -> Option<&T> {
        self.slots.get(slot).filter(|v| !v.is_vacant())
    }
}

/// A queued message: 72 bytes.
pub(super) struct Delivery {
    pub(super) from: NodeIndex,
    pub(super) to: NodeIndex,
    pub(super) message: Message<NodeIndex>,
}

/// The node index no node has: node indices stay below [`NODES_MAX`].
const NO_NODE: NodeIndex = NodeIndex::MAX;

impl Vacant for Delivery {
    fn vacant() -> Self {
        Self {
            from: NO_NODE,
            to: NO_NODE,
            message: Message::Hyparview(crate::hyparview::Message::Join),
        }
    }

    fn is_vacant(&self) -> bool {
        self.from == NO_NODE
    }
}

impl Vacant for Local {
    fn vacant() -> Self {
        Self::Discover { node: NO_NODE }
    }

    fn is_vacant(&self) -> bool {
        matches!(self, Self::Discover { node: NO_NODE })
    }
}

/// A queued event's payload other than a delivery: 32 bytes, against 72 for a delivery (a
/// message inside). Kept in their own slab: every node always has several timers queued, and
/// in a slot sized for a message each would take more than twice its size.
pub(super) enum Local {
    LinkFailed { node: NodeIndex, peer: NodeIndex },
    Timer { node: NodeIndex, timer: Timer<NodeIndex> },
    Discover { node: NodeIndex },
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
    pub by_kind: std::collections::BTreeMap<&'static str, u64>,
}

/// The network outside the nodes (see the module documentation).
pub(super) struct Fabric {
    /// Seed-derived RNG of everything random outside the nodes (loss, scenario decisions).
    pub(super) rng: Rng,
    pub(super) now_us: u64,
    seq: u64,
    pub(super) queue: EventQueue,
    /// Queued deliveries, by `Entry::slot`.
    pub(super) deliveries: Slab<Delivery>,
    /// Every other queued action, by `Entry::slot` (see [`LOCAL_SLOT`]).
    pub(super) locals: Slab<Local>,
    /// Events queued that count as activity (see [`ACTIVE_SLOT`]): quiescent at 0.
    pub(super) activity: u64,
    /// Partition group of each live node, [`DEAD`] for a crashed one: a message goes through
    /// when both ends hold the same value. One byte read per end instead of a liveness flag
    /// and a group from two arrays (two cache misses per message at 100,000 nodes).
    pub(super) side: Vec<u8>,
    /// Invariant: when true, every entry of `side` is 0 (no node ever crashed, no partition
    /// is in force), so every message goes through and no side needs reading: three random
    /// bytes per message that at 100,000 nodes missed the cache (≈ 5 % of the run's samples).
    /// Cleared by a crash or a partition, set again by healing a cluster without dead nodes.
    pub(super) sides_uniform: bool,
    pub(super) links: Links,
    /// Link failures already scheduled (from, to), so one failure is reported once.
    failing: FxMap<(NodeIndex, NodeIndex), ()>,
    /// Delay before a failed link is reported, in µs.
    link_failure_detect_us: u64,
    /// Broadcast bookkeeping (reliability, RMR, LDH, latency).
    pub(super) tracker: Tracker,
    /// Messages sent, by `Message::kind_index`: the one counter a message increments (a
    /// `BTreeMap` of names cost a string comparison per level for every message, a list
    /// searched by the name's address 3 % of a membership cycle's instructions); every total
    /// of [`MessageCounts`] is derived from it.
    kinds: [u64; MESSAGE_KIND_COUNT],
    /// Registry events seen: (node, event).
    pub(super) registry_events: Vec<(NodeIndex, registry::Event<NodeIndex>)>,
    /// Whether to record registry events (off for scenarios that do not need them).
    pub(super) record_registry_events: bool,
    /// The node whose call is running: the outputs pushed are its own.
    from: NodeIndex,
    /// Outputs the running call pushed, against `pushed_max`.
    pushed: usize,
    /// `Node::outputs_per_call_max` of the nodes' configuration.
    pushed_max: usize,
}

impl Fabric {
    pub(super) fn new(
        rng: Rng,
        links: Links,
        link_failure_detect_us: u64,
        pushed_max: usize,
    ) -> Self {
        Self {
            rng,
            now_us: 0,
            seq: 0,
            queue: EventQueue::new(),
            deliveries: Slab::new(),
            locals: Slab::new(),
            activity: 0,
            side: Vec::new(),
            sides_uniform: true,
            links,
            failing: FxMap::default(),
            link_failure_detect_us,
            tracker: Tracker::default(),
            kinds: [0; MESSAGE_KIND_COUNT],
            registry_events: Vec::new(),
            record_registry_events: false,
            from: 0,
            pushed: 0,
            pushed_max,
        }
    }

    /// Node `from` is about to be called: what it pushes is its own.
    pub(super) fn begin_call(&mut self, from: NodeIndex) {
        self.from = from;
        self.pushed = 0;
    }

    /// Whether `node` is alive.
    pub(super) fn is_alive(&self, node: NodeIndex) -> bool {
        self.sides_uniform || self.side[node as usize] != DEAD
    }

    /// Message counters over the whole run.
    pub(super) fn counts(&self) -> MessageCounts {
        let sum = |indices: std::ops::Range<usize>| self.kinds[indices].iter().sum::<u64>();
        let gossip = self.kinds[GOSSIP_KIND_INDEX];
        MessageCounts {
            total: self.kinds.iter().sum(),
            hyparview: sum(HYPARVIEW_KIND_INDICES),
            gossip,
            plumtree_control: sum(PLUMTREE_KIND_INDICES) - gossip,
            registry: sum(REGISTRY_KIND_INDICES),
            by_kind: MESSAGE_KINDS
                .iter()
                .zip(self.kinds)
                .filter(|(_, n)| *n > 0)
                .map(|(kind, n)| (*kind, n))
                .collect(),
        }
    }

    /// Queues the delivery of `message` to `to` at virtual time `at_us`. Deliveries and the
    /// other events take separate paths (and slabs), so a message is moved into its slot
    /// directly instead of through an enum of every action (four moves of 72 bytes were most
    /// of queueing a message).
    fn enqueue_delivery(
        &mut self,
        at_us: u64,
        from: NodeIndex,
        to: NodeIndex,
        message: Message<NodeIndex>,
    ) {
        let active = self.note_activity(delivery_is_activity(&message));
        let hint = hint(to, message_touch(&message));
        let slot = self.deliveries.insert(Delivery { from, to, message });
        self.push_entry(at_us, slot | active, hint);
    }

    /// Queues `local` (a timer, a link failure report, a discovery answer) at `at_us`.
    pub(super) fn enqueue_local(&mut self, at_us: u64, local: Local) {
        let active = self.note_activity(local_is_activity(&local));
        let hint = match &local {
            Local::Timer { node, timer: Timer::Hyparview(crate::hyparview::Timer::Shuffle) } => {
                hint(*node, Touch::ShuffleTimer)
            }
            Local::Timer { node, timer: Timer::Hyparview(_) } => {
                hint(*node, Touch::MembershipTimer)
            }
            Local::Timer { node, timer } => hint(*node, Touch::Layer(timer_layer(timer))),
            Local::LinkFailed { node, .. } | Local::Discover { node } => {
                hint(*node, Touch::Layer(Layer::Hyparview))
            }
        };
        let slot = self.locals.insert(local);
        self.push_entry(at_us, LOCAL_SLOT | slot | active, hint);
    }

    /// Counts a queued event as activity if it is one; returns its [`ACTIVE_SLOT`] bit.
    fn note_activity(&mut self, active: bool) -> u32 {
        self.activity += u64::from(active);
        if active {
            ACTIVE_SLOT
        } else {
            0
        }
    }

    fn push_entry(&mut self, at_us: u64, slot: u32, hint: u32) {
        self.seq += 1;
        self.queue.push(Entry { at_us, seq: self.seq, slot, hint });
    }

    /// Reports the link from `node` to `peer` as failed after the detection delay (once).
    pub(super) fn schedule_failure(&mut self, node: NodeIndex, peer: NodeIndex) {
        if self.failing.insert((node, peer), ()).is_none() {
            let at = self.now_us + self.link_failure_detect_us;
            self.enqueue_local(at, Local::LinkFailed { node, peer });
        }
    }

    /// A link failure was reported: it may be scheduled again.
    pub(super) fn failure_reported(&mut self, node: NodeIndex, peer: NodeIndex) {
        self.failing.remove(&(node, peer));
        self.links.close(node, peer);
    }

    fn send(&mut self, from: NodeIndex, to: NodeIndex, message: Message<NodeIndex>) {
        self.kinds[message.kind_index()] += 1;
        if !self.sides_uniform {
            // The sender is alive (only live nodes run), so equal sides mean the receiver is
            // too.
            assert!(self.side[from as usize] != DEAD, "a crashed node sent a message");
            if self.side[to as usize] != self.side[from as usize] {
                self.schedule_failure(from, to);
                return;
            }
        }
        let at = self.links.schedule(self.now_us, from, to, &mut self.rng);
        self.enqueue_delivery(at, from, to, message);
    }
}

/// The outputs of the node named by the last [`Fabric::begin_call`], carried out as pushed.
impl Sink<OutEvent<NodeIndex>> for Fabric {
    fn push(&mut self, output: OutEvent<NodeIndex>) {
        self.pushed += 1;
        assert!(
            self.pushed <= self.pushed_max,
            "node {}: more than {} outputs in one call",
            self.from,
            self.pushed_max
        );
        let from = self.from;
        match output {
            OutEvent::SendMessage { to, message } => self.send(from, to, message),
            OutEvent::ScheduleTimer { after_ms, timer } => {
                let at = self.now_us + after_ms * 1000;
                self.enqueue_local(at, Local::Timer { node: from, timer });
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
                    // Model of a discovery backend (DNS, static seed list kept current by the
                    // operator, orchestrator endpoints): after a lookup delay it hands the
                    // isolated node the address of some live member.
                    let at = self.now_us + DISCOVERY_DELAY_US;
                    self.enqueue_local(at, Local::Discover { node: from });
                }
                Event::Membership(_) => {}
            },
        }
    }

    fn count(&self) -> usize {
        self.pushed
    }
}

/// Bits of [`Entry::hint`] that hold the [`Touch`] (the rest is the node index).
const HINT_TOUCH_SHIFT: u32 = 29;

/// Most nodes a simulation holds (`Network::add_node` asserts it): every node index fits in
/// a hint, and [`NO_NODE`] is none of them.
pub(super) const NODES_MAX: usize = 1 << HINT_TOUCH_SHIFT;

/// What an event will touch of its node first, for prefetching: a layer's state, or only
/// the few fields of HyParView's that passing a shuffle walk on reads, or HyParView's state
/// and its whole passive view (the passive cleanup and the reconnection probe read every
/// entry's record), or HyParView's state and the passive view's peers (the shuffle timer
/// samples them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Touch {
    Layer(Layer),
    ShuffleHop,
    MembershipTimer,
    ShuffleTimer,
}

/// The node an event is handled by and what it touches first, packed for [`Entry::hint`]
/// (node indices stay below [`NODES_MAX`]).
fn hint(node: NodeIndex, touch: Touch) -> u32 {
    debug_assert!(node < 1 << HINT_TOUCH_SHIFT);
    let code = match touch {
        Touch::Layer(layer) => layer as u32,
        Touch::ShuffleHop => 3,
        Touch::MembershipTimer => 4,
        Touch::ShuffleTimer => 5,
    };
    node | code << HINT_TOUCH_SHIFT
}

/// What handling `message` touches first. A SHUFFLE with hops left is probably passed on
/// (a hint: a walk also ends early at a node without another active peer).
fn message_touch(message: &Message<NodeIndex>) -> Touch {
    use crate::hyparview::Message as H;
    match message {
        Message::Hyparview(H::Shuffle { ttl, .. }) if *ttl > 1 => Touch::ShuffleHop,
        Message::Hyparview(_) => Touch::Layer(Layer::Hyparview),
        Message::Plumtree(_) => Touch::Layer(Layer::Plumtree),
        Message::Registry(_) => Touch::Layer(Layer::Registry),
    }
}

fn timer_layer(timer: &Timer<NodeIndex>) -> Layer {
    match timer {
        Timer::Hyparview(_) => Layer::Hyparview,
        Timer::Plumtree(_) => Layer::Plumtree,
        Timer::Registry(_) => Layer::Registry,
    }
}

/// The node and touch packed by [`hint`].
pub(super) fn decode_hint(hint: u32) -> (NodeIndex, Touch) {
    let touch = match hint >> HINT_TOUCH_SHIFT {
        0 => Touch::Layer(Layer::Hyparview),
        1 => Touch::Layer(Layer::Plumtree),
        2 => Touch::Layer(Layer::Registry),
        3 => Touch::ShuffleHop,
        4 => Touch::MembershipTimer,
        _ => Touch::ShuffleTimer,
    };
    (hint & ((1 << HINT_TOUCH_SHIFT) - 1), touch)
}

/// If `delivery` probably ends a shuffle walk (a reply, or a shuffle on its last hop), the
/// node at the walk's other end and the peers the message carries: its receiver integrates
/// them into its passive view and closes the temporary link to that node. A prefetch hint: a
/// walk also ends early at a node without another active peer, and the link stays if the two
/// are neighbours.
pub(super) fn ends_shuffle(delivery: &Delivery) -> Option<(NodeIndex, &[NodeIndex])> {
    use crate::hyparview::Message as H;
    match &delivery.message {
        Message::Hyparview(H::ShuffleReply { peers }) => Some((delivery.from, peers)),
        Message::Hyparview(H::Shuffle { ttl, origin, peers }) if *ttl <= 1 => {
            Some((*origin, peers))
        }
        _ => None,
    }
}

/// Whether a message keeps the network from being quiescent: broadcast traffic and
/// membership repair traffic. Periodic background traffic (shuffle walks, registry
/// anti-entropy) never stops, so it does not count.
fn delivery_is_activity(message: &Message<NodeIndex>) -> bool {
    use crate::hyparview::Message as H;
    // Also background: low-priority NEIGHBOR requests and their rejections, which a node one
    // link short keeps sending every few seconds; at 100,000 nodes one of them is always in
    // flight, and counting them made every "until quiescent" run to its deadline. (Repair
    // after a crash is awaited separately, through the pending operations.)
    !matches!(
        message,
        Message::Hyparview(
            H::Shuffle { .. }
                | H::ShuffleReply { .. }
                | H::Neighbor { priority: crate::hyparview::Priority::Low }
                | H::NeighborReply { accepted: false }
        ) | Message::Registry(_)
    )
}

/// Whether a local event keeps the network from being quiescent: link failures, discovery
/// answers and broadcast timers do; periodic membership and registry timers do not.
fn local_is_activity(local: &Local) -> bool {
    match local {
        Local::LinkFailed { .. } | Local::Discover { .. } => true,
        Local::Timer { timer, .. } => {
            matches!(
                timer,
                Timer::Plumtree(plumtree::Timer::IHaveFlush | plumtree::Timer::Graft { .. })
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `hint` packs, `decode_hint` unpacks: every touch, at the node index bounds.
    #[test]
    fn hints_round_trip() {
        let touches = [
            Touch::Layer(Layer::Hyparview),
            Touch::Layer(Layer::Plumtree),
            Touch::Layer(Layer::Registry),
            Touch::ShuffleHop,
            Touch::MembershipTimer,
            Touch::ShuffleTimer,
        ];
        for touch in touches {
            for node in [0, 1, 77_777, (NODES_MAX - 1) as NodeIndex] {
                assert_eq!(decode_hint(hint(node, touch)), (node, touch));
            }
        }
    }
}
