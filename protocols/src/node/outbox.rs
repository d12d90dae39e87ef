//! [`NodeOutbox`]: the caller-owned queue a [`Node`](super::Node) writes its outputs into,
//! together with the scratch queues the node routes between its layers during a call.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};

use super::{
    registry_outputs_max, Config, Internal, Node, OutEvent, HYPARVIEW_OUTPUTS_MAX,
    PLUMTREE_OUTPUTS_MAX,
};
use crate::outbox::Outbox;
use crate::wire::Wire;
use crate::{hyparview, plumtree, registry, PeerId};

/// Capacity each scratch queue keeps between calls, in items; a burst above it (a healed
/// partition's registry sync) is released when the call ends. Guess: far above what one
/// message usually causes (the end of a shuffle walk: 3 outputs; a new neighbour: 2
/// hand-offs), far below what would matter in memory (≈ 25 KB per driver).
const SCRATCH_CAPACITY_MAX: usize = 64;

/// The caller-owned outbox of a [`Node`](super::Node): every call pushes its outputs here
/// (read them through `Deref` to [`Outbox`], and drain after every call).
///
/// It also holds the queues the node uses *during* a call: each layer's outputs and the
/// hand-offs between layers. They are empty between calls, so they belong to the driver, not
/// to the node: one driver keeps one `NodeOutbox` for all the nodes it drives, and the queues
/// stay allocated and in cache. Kept per node, they were either allocated and freed on every
/// call (two allocations per simulated message) or held 1.7 KB of spare capacity per node.
///
/// Build it from the configuration of the nodes it serves: the output bounds depend on it.
#[derive(Debug)]
pub struct NodeOutbox<P: PeerId> {
    pub(super) out: Outbox<OutEvent<P>>,
    pub(super) hyparview: Outbox<hyparview::OutEvent<P>>,
    pub(super) plumtree: Outbox<plumtree::OutEvent<P>>,
    pub(super) registry: Outbox<registry::OutEvent<P>>,
    pub(super) internal: VecDeque<Internal<P>>,
}

impl<P: PeerId + Wire> NodeOutbox<P> {
    /// An empty outbox for nodes built with `config` (allocates only what is pushed).
    pub fn new(config: &Config) -> Self {
        Self {
            out: Outbox::new(Node::<P>::outputs_per_call_max(config)),
            hyparview: Outbox::new(HYPARVIEW_OUTPUTS_MAX),
            plumtree: Outbox::new(PLUMTREE_OUTPUTS_MAX),
            registry: Outbox::new(registry_outputs_max(&config.registry)),
            internal: VecDeque::new(),
        }
    }
}

impl<P: PeerId> NodeOutbox<P> {
    /// Every scratch queue is empty: true between calls, whatever the node did.
    pub(super) fn debug_assert_idle(&self) {
        debug_assert!(
            self.hyparview.is_empty()
                && self.plumtree.is_empty()
                && self.registry.is_empty()
                && self.internal.is_empty(),
            "node outbox: scratch queues not empty at the start of a call"
        );
    }

    /// Releases what a burst left above [`SCRATCH_CAPACITY_MAX`] (the queues are empty).
    pub(super) fn release_burst_capacity(&mut self) {
        self.hyparview.shrink_to(SCRATCH_CAPACITY_MAX);
        self.plumtree.shrink_to(SCRATCH_CAPACITY_MAX);
        self.registry.shrink_to(SCRATCH_CAPACITY_MAX);
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
