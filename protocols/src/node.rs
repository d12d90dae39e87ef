//! `Node`: HyParView, Plumtree and the service registry composed into the one state machine an
//! engine shard (or the simulator) drives.
//!
//! Wiring (docs/ARCHITECTURE.md):
//! - HyParView `PeerUp`/`PeerDown` feed Plumtree's neighbour sets and the registry's neighbour
//!   list; a `PeerDown` caused by a link *failure* starts the registry's suspicion of the owner.
//! - Registry deltas ride on Plumtree with [`Tag::REGISTRY`], so application broadcasts and
//!   registry updates share one tree.
//! - Every other output is forwarded to the driver unchanged, wrapped in the node's enums.

mod outbox;
mod router;
mod types;

#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use outbox::NodeOutbox;
pub use types::{
    BroadcastError, Config, ConfigError, Event, InEvent, Message, OutEvent, SharedConfig, Timer,
    MESSAGE_KINDS, MESSAGE_KIND_COUNT,
};
pub(crate) use types::{
    GOSSIP_KIND_INDEX, HYPARVIEW_KIND_INDICES, PLUMTREE_KIND_INDICES, REGISTRY_KIND_INDICES,
};

use router::IdMinter;

use crate::hyparview;
use crate::outbox::Sink;
use crate::plumtree::{self, MessageId, Tag};
use crate::registry;
use crate::rng::Rng;
use crate::time::Now;
use crate::wire::Wire;
use crate::PeerId;

/// Bound on internal hand-offs processed in one `handle` call (HyParView → Plumtree →
/// registry → Plumtree …). The chain is acyclic except registry → Plumtree broadcast →
/// local delivery, which stops at the registry, so a few hundred steps is ample.
const INTERNAL_STEPS_MAX: usize = 4096;

/// Outputs of one HyParView call: far above its documented `3 · active_size + passive_size
/// + 8` for any valid configuration (`active_size` ≤ 64, `passive_size` ≤ 1,024).
const HYPARVIEW_OUTPUTS_MAX: usize = 4_096;

/// Outputs of one Plumtree call: above its `max(neighbours + 4, 2 · ihave_batch_len_max)`
/// (`ihave_batch_len_max` ≤ 4,096).
const PLUMTREE_OUTPUTS_MAX: usize = 65_536;

/// Outputs of one registry call. A status change of an owner emits one event per entry of that
/// owner, and one `Sync` may change the status of many owners (a healed partition with a big
/// registry), so the bound is what the store may hold: `owners_max · entries_per_owner_max`
/// events plus the messages of one sync. The outbox allocates only what is pushed.
fn registry_outputs_max(config: &registry::Config) -> usize {
    config.owners_max.saturating_mul(config.entries_per_owner_max()).saturating_add(65_536)
}

/// One cluster member's protocol state.
#[derive(Debug)]
pub struct Node<P: PeerId> {
    me: P,
    /// `config.limits.payload_size_max`: the only key the node itself reads after `new` (each
    /// layer keeps its own section; a full copy here cost 376 B per node).
    payload_size_max: usize,
    hyparview: hyparview::State<P>,
    plumtree: plumtree::State<P>,
    registry: registry::State<P>,
    ids: IdMinter,
}

/// A hand-off between layers during a call: HyParView's membership changes go to Plumtree
/// and the registry, the registry's updates and Plumtree's registry deliveries to each other.
/// Nothing is handed to HyParView.
#[derive(Debug)]
enum Internal<P: PeerId> {
    Plumtree(plumtree::InEvent<P>),
    Registry(registry::InEvent<P>),
}

/// One of the node's three layers: what an input is for (a prefetch hint for the simulator),
/// and whose outputs a [`router::Router`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    Hyparview = 0,
    Plumtree = 1,
    Registry = 2,
}

impl Layer {
    /// The layer's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Hyparview => "hyparview",
            Self::Plumtree => "plumtree",
            Self::Registry => "registry",
        }
    }
}

impl<P: PeerId> Node<P> {
    /// The byte range (offset, length) of a `Node` that handling an input for `layer`
    /// touches first: that layer's state. A prefetch hint for the simulator; the offset is a
    /// compile-time constant.
    pub(crate) fn hot_range(layer: Layer) -> (usize, usize) {
        use std::mem::offset_of;
        match layer {
            Layer::Hyparview => (offset_of!(Self, hyparview), size_of::<hyparview::State<P>>()),
            Layer::Plumtree => (offset_of!(Self, plumtree), size_of::<plumtree::State<P>>()),
            Layer::Registry => (offset_of!(Self, registry), size_of::<registry::State<P>>()),
        }
    }

    /// The byte range (offset, length) of a `Node` that passing a shuffle walk on touches: the
    /// first bytes of its HyParView state (see `hyparview::State::SHUFFLE_HOP_BYTES`). A
    /// prefetch hint for the simulator.
    pub(crate) fn shuffle_hop_range() -> (usize, usize) {
        (std::mem::offset_of!(Self, hyparview), hyparview::State::<P>::SHUFFLE_HOP_BYTES)
    }

    /// Where the heap data passing a shuffle walk on reads lives: the active view (a prefetch
    /// hint for the simulator).
    pub(crate) fn shuffle_hop_heap(&self) -> *const u8 {
        self.hyparview.active_heap()
    }

    /// Where the heap data an input for `layer` reads first lives (prefetch hints for the
    /// simulator; null for nothing): the neighbour sets, announcement queue and newest cache
    /// entry for Plumtree; the membership views for HyParView; the owner records for the
    /// registry (HyParView's views, prefetched for it before, were never read and only took
    /// outstanding misses: 100,000 nodes ≈ 3 % faster without).
    pub(crate) fn heap(&self, layer: Layer) -> [*const u8; 4] {
        use std::ptr::null;
        match layer {
            Layer::Plumtree => self.plumtree.heap(),
            Layer::Hyparview => self.hyparview.heap(),
            Layer::Registry => [self.registry.heap(), null(), null(), null()],
        }
    }

    /// What sampling the passive view for a shuffle reads from the heap: its peers (a
    /// prefetch hint for the simulator, for the shuffle timer).
    pub(crate) fn shuffle_sample_range(&self) -> (*const u8, usize) {
        self.hyparview.passive_peers_range()
    }

    /// What integrating a shuffle reads from the heap (prefetch hints for the simulator, for
    /// the messages that end a walk).
    pub(crate) fn shuffle_end_ranges(&self) -> [(*const u8, usize); 3] {
        self.hyparview.shuffle_end_ranges()
    }
}

impl<P: PeerId + Wire> Node<P> {
    /// Creates the node `me`. `origin_hash` identifies this node in broadcast ids (the engine
    /// derives it from the node name, the simulator uses the index); `rng` seeds every
    /// sub-state machine; `now` stamps the registry incarnation.
    ///
    /// # Panics
    /// If a sub-configuration is invalid ([`Config::validate`] reports which key).
    pub fn new(me: P, origin_hash: u64, config: Config, rng: Rng, now: Now) -> Self {
        let config = SharedConfig::new(config).unwrap_or_else(|e| panic!("{e}"));
        Self::with_shared_config(me, origin_hash, &config, rng, now)
    }

    /// [`Node::new`] with a configuration validated once and shared with other nodes (the
    /// simulator builds every node from one).
    pub fn with_shared_config(
        me: P,
        origin_hash: u64,
        config: &SharedConfig,
        mut rng: Rng,
        now: Now,
    ) -> Self {
        let hyparview = hyparview::State::new(me.clone(), config.hyparview.clone(), rng.fork());
        let plumtree = plumtree::State::new(me.clone(), config.plumtree.clone(), rng.fork());
        // The registry incarnation starts at the wall clock: a restarted node outranks every
        // status (including "dead") recorded about its previous life.
        let registry =
            registry::State::new(me.clone(), now.wall_ms, config.registry.clone(), rng.fork())
                .with_limits(config.limits.clone());
        // Broadcast sequence numbers start at a random point so a restarted node never reuses
        // the ids of its previous incarnation that may still sit in peers' caches.
        let next_seq = rng.next_u64() >> 1;
        Self {
            me,
            payload_size_max: config.limits.payload_size_max,
            hyparview,
            plumtree,
            registry,
            ids: IdMinter { origin_hash, next_seq },
        }
    }

    /// Most outputs one call of this node can push into the driver's outbox ([`NodeOutbox`]
    /// is sized with it; it allocates only what is pushed).
    pub fn outputs_per_call_max(config: &Config) -> usize {
        HYPARVIEW_OUTPUTS_MAX
            .saturating_add(PLUMTREE_OUTPUTS_MAX)
            .saturating_add(registry_outputs_max(&config.registry))
    }

    /// Arms the periodic timers that do not depend on joining (registry anti-entropy). Call
    /// once after `new`.
    pub fn start<O: Sink<OutEvent<P>>>(&mut self, now: Now, out: &mut NodeOutbox<P, O>) {
        out.debug_assert_idle();
        self.registry.start(now, &mut out.router(&mut self.ids, Layer::Registry));
        self.pump(now, out);
    }

    /// Feeds one input and forwards every resulting output into `out`.
    pub fn handle<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        event: InEvent<P>,
        out: &mut NodeOutbox<P, O>,
    ) {
        out.debug_assert_idle();
        // The input goes straight to its layer (what `pump` would do first with it queued
        // alone); `pump` then routes the outputs and runs the hand-offs they cause.
        match event {
            InEvent::Message { from, message } => match message {
                Message::Hyparview(message) => {
                    self.run_hyparview(now, hyparview::InEvent::Message { from, message }, out);
                }
                Message::Plumtree(message) => {
                    self.run_plumtree(now, plumtree::InEvent::Message { from, message }, out);
                }
                Message::Registry(message) => {
                    self.run_registry(now, registry::InEvent::Message { from, message }, out);
                }
            },
            InEvent::PeerFailed(peer) => {
                self.run_hyparview(now, hyparview::InEvent::PeerFailed(peer), out);
            }
            InEvent::TimerExpired(timer) => match timer {
                Timer::Hyparview(t) => {
                    self.run_hyparview(now, hyparview::InEvent::TimerExpired(t), out);
                }
                Timer::Plumtree(t) => {
                    self.run_plumtree(now, plumtree::InEvent::TimerExpired(t), out)
                }
                Timer::Registry(t) => {
                    self.run_registry(now, registry::InEvent::TimerExpired(t), out)
                }
            },
            InEvent::Join(contacts) => {
                self.run_hyparview(now, hyparview::InEvent::Join(contacts), out);
            }
            InEvent::Leave => self.run_hyparview(now, hyparview::InEvent::Leave, out),
        }
        self.pump(now, out);
    }

    /// Broadcasts `payload` to every node under `tag` (application tags are `>= 256`).
    pub fn broadcast<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        tag: Tag,
        payload: Bytes,
        out: &mut NodeOutbox<P, O>,
    ) -> Result<MessageId, BroadcastError> {
        if tag < Tag::APPLICATION_MIN {
            return Err(BroadcastError::ReservedTag(tag.0));
        }
        let size_max = self.payload_size_max;
        if payload.len() > size_max {
            return Err(BroadcastError::PayloadTooLarge { len: payload.len(), len_max: size_max });
        }
        out.debug_assert_idle();
        let id = self.ids.mint();
        self.run_plumtree(now, plumtree::InEvent::Broadcast { id, tag, payload }, out);
        self.pump(now, out);
        Ok(id)
    }

    /// Registers a service owned by this node (see [`registry::State::register`]).
    pub fn register_service<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        name: &str,
        reg_id: u64,
        meta: Bytes,
        out: &mut NodeOutbox<P, O>,
    ) -> Result<(), registry::RegisterError> {
        out.debug_assert_idle();
        let mut router = out.router(&mut self.ids, Layer::Registry);
        self.registry.register(now, name, reg_id, meta, &mut router)?;
        self.pump(now, out);
        Ok(())
    }

    /// Unregisters a service owned by this node (see [`registry::State::unregister`]).
    pub fn unregister_service<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        name: &str,
        reg_id: u64,
        reason: registry::UnregisterReason,
        out: &mut NodeOutbox<P, O>,
    ) -> Result<(), registry::UnregisterError> {
        out.debug_assert_idle();
        let mut router = out.router(&mut self.ids, Layer::Registry);
        self.registry.unregister(now, name, reg_id, reason, &mut router)?;
        self.pump(now, out);
        Ok(())
    }

    /// The id the next successful [`Node::broadcast`] gets, unless a registry update is
    /// broadcast first. A driver that carries outputs out while they are pushed (the
    /// simulator) starts tracking a broadcast before the call delivers it locally.
    pub fn next_broadcast_id(&self) -> MessageId {
        self.ids.peek()
    }

    /// This node's identity.
    pub fn me(&self) -> &P {
        &self.me
    }

    /// The membership state (views, stats).
    pub fn hyparview(&self) -> &hyparview::State<P> {
        &self.hyparview
    }

    /// The broadcast state (eager/lazy sets, stats).
    pub fn plumtree(&self) -> &plumtree::State<P> {
        &self.plumtree
    }

    /// The service registry (lookups, stats).
    pub fn registry(&self) -> &registry::State<P> {
        &self.registry
    }

    /// Runs queued hand-offs between the layers to completion. Leaves the hand-off queue of
    /// `out` empty.
    fn pump<O: Sink<OutEvent<P>>>(&mut self, now: Now, out: &mut NodeOutbox<P, O>) {
        let mut steps = 0usize;
        while let Some(next) = out.internal.pop_front() {
            steps += 1;
            assert!(steps <= INTERNAL_STEPS_MAX, "node: internal hand-off loop exceeded its bound");
            self.run(now, next, out);
        }
        out.release_burst_capacity();
    }

    /// Feeds one hand-off to its layer, whose outputs are routed as they are pushed.
    fn run<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        input: Internal<P>,
        out: &mut NodeOutbox<P, O>,
    ) {
        match input {
            Internal::Plumtree(e) => self.run_plumtree(now, e, out),
            Internal::Registry(e) => self.run_registry(now, e, out),
        }
    }

    // One function per layer, so that an input from `handle` reaches its layer without being
    // wrapped into an `Internal` and matched again (a 72-byte message moved once more).

    fn run_hyparview<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        input: hyparview::InEvent<P>,
        out: &mut NodeOutbox<P, O>,
    ) {
        let mut router = out.router(&mut self.ids, Layer::Hyparview);
        self.hyparview.handle(now.mono_ms, input, &mut router);
    }

    fn run_plumtree<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        input: plumtree::InEvent<P>,
        out: &mut NodeOutbox<P, O>,
    ) {
        let mut router = out.router(&mut self.ids, Layer::Plumtree);
        self.plumtree.handle(now.mono_ms, input, &mut router);
    }

    fn run_registry<O: Sink<OutEvent<P>>>(
        &mut self,
        now: Now,
        input: registry::InEvent<P>,
        out: &mut NodeOutbox<P, O>,
    ) {
        let mut router = out.router(&mut self.ids, Layer::Registry);
        self.registry.handle(now, input, &mut router);
    }
}
