//! [`NodeOutbox`]: the caller-owned queue a [`Node`](super::Node) writes its outputs into,
//! together with the hand-off queue the node uses between its layers during a call.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use super::router::{IdMinter, Router};
use super::{
    registry_outputs_max, Config, Internal, Layer, Node, OutEvent, HYPARVIEW_OUTPUTS_MAX,
    PLUMTREE_OUTPUTS_MAX,
};
use crate::outbox::{Outbox, Sink};
use crate::wire::Wire;
use crate::PeerId;

/// Capacity the hand-off queue keeps between calls, in items; a burst above it (a healed
/// partition's registry sync) is released when the call ends. Guess: far above what one
/// message usually causes (a new neighbour: 2 hand-offs), far below what would matter in
/// memory (≈ 10 KB per driver).
const SCRATCH_CAPACITY_MAX: usize = 64;

/// The caller-owned outbox of a [`Node`](super::Node): every call pushes its outputs here
/// (read them through `Deref` to [`Outbox`], and drain after every call).
///
/// It also holds the queue of hand-offs between the node's layers *during* a call (a new
/// neighbour is news for Plumtree and the registry). It is empty between calls, so it belongs
/// to the driver, not to the node: one driver keeps one `NodeOutbox` for all the nodes it
/// drives, and the queue stays allocated and in cache.
///
/// Build it from the configuration of the nodes it serves: the output bounds depend on it.
#[derive(Debug)]
pub struct NodeOutbox<P: PeerId, O = Outbox<OutEvent<P>>> {
    /// Where the node's outputs go: an [`Outbox`] the driver drains after each call, or a
    /// driver's own sink that carries them out as they are pushed (the simulator's).
    pub(super) out: O,
    pub(super) internal: VecDeque<Internal<P>>,
    /// Outputs one registry call may push (see `registry_outputs_max`).
    pub(super) registry_outputs_max: usize,
}

impl<P: PeerId + Wire> NodeOutbox<P> {
    /// An empty outbox for nodes built with `config` (allocates only what is pushed).
    pub fn new(config: &Config) -> Self {
        Self::with_sink(config, Outbox::new(Node::<P>::outputs_per_call_max(config)))
    }
}

impl<P: PeerId, O: Sink<OutEvent<P>>> NodeOutbox<P, O> {
    /// An outbox whose outputs go to `sink` as they are pushed, for nodes built with
    /// `config`. The sink must take [`Node::outputs_per_call_max`] outputs per call.
    pub fn with_sink(config: &Config, sink: O) -> Self {
        Self {
            out: sink,
            internal: VecDeque::new(),
            registry_outputs_max: registry_outputs_max(&config.registry),
        }
    }

    /// The sink the outputs go to.
    pub fn sink(&self) -> &O {
        &self.out
    }

    /// The sink the outputs go to (to drain or prepare it between calls).
    pub fn sink_mut(&mut self) -> &mut O {
        &mut self.out
    }
}

impl<P: PeerId, O> NodeOutbox<P, O> {
    /// The hand-off queue is empty: true between calls, whatever the node did.
    pub(super) fn debug_assert_idle(&self) {
        debug_assert!(
            self.internal.is_empty(),
            "node outbox: hand-off queue not empty at the start of a call"
        );
    }

    /// The sink for one call of `layer`, held to that layer's documented output bound.
    pub(super) fn router<'a>(
        &'a mut self,
        ids: &'a mut IdMinter,
        layer: Layer,
    ) -> Router<'a, P, O> {
        let pushed_max = match layer {
            Layer::Hyparview => HYPARVIEW_OUTPUTS_MAX,
            Layer::Plumtree => PLUMTREE_OUTPUTS_MAX,
            Layer::Registry => self.registry_outputs_max,
        };
        Router {
            out: &mut self.out,
            internal: &mut self.internal,
            ids,
            pushed: 0,
            pushed_max,
            layer,
        }
    }

    /// Releases what a burst left above [`SCRATCH_CAPACITY_MAX`] (the queue is empty).
    #[inline]
    pub(super) fn release_burst_capacity(&mut self) {
        if self.internal.capacity() > SCRATCH_CAPACITY_MAX {
            self.internal.shrink_to(SCRATCH_CAPACITY_MAX);
        }
    }
}

impl<P: PeerId> Deref for NodeOutbox<P> {
    type Target = Outbox<OutEvent<P>>;

    fn deref(&self) -> &Self::Target {
        &self.out
    }
}

impl<P: PeerId> DerefMut for NodeOutbox<P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.out
    }
}
