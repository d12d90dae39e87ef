//! [`Router`]: the sink each layer of a [`Node`](super::Node) pushes its outputs into. Every
//! output is carried on as it is pushed: wrapped into the node's enums and appended to the
//! driver's outbox, or queued as a hand-off to another layer.
//!
//! The layers used to push into scratch queues of their own, which the node drained and
//! re-pushed after each call: every output was moved twice more and every call paid for the
//! emptiness checks and drains of three queues (≈ 15 % of a simulated membership cycle's
//! instructions). The order of the outputs is the same: one call runs one layer, whose
//! outputs were drained in push order.

use std::collections::VecDeque;

use super::{Event, Internal, Layer, Message, OutEvent, Timer};
use crate::outbox::Sink;
use crate::plumtree::{self, MessageId, Tag};
use crate::{hyparview, registry, PeerId};

/// Where one layer call's outputs go, with that call's output bound.
pub(super) struct Router<'a, P: PeerId, O> {
    pub(super) out: &'a mut O,
    pub(super) internal: &'a mut VecDeque<Internal<P>>,
    /// The node's broadcast id minter (registry updates become broadcasts).
    pub(super) ids: &'a mut IdMinter,
    /// Outputs pushed by this call.
    pub(super) pushed: usize,
    /// The layer's documented maximum per call.
    pub(super) pushed_max: usize,
    /// The layer whose outputs these are.
    pub(super) layer: Layer,
}

impl<P: PeerId, O> Router<'_, P, O> {
    fn count_one(&mut self) {
        self.pushed += 1;
        assert!(
            self.pushed <= self.pushed_max,
            "{}: more than {} outputs in one call",
            self.layer.name(),
            self.pushed_max
        );
    }
}

/// Broadcast ids of one node: origin hash in the high 64 bits, sequence in the low ones.
#[derive(Debug)]
pub(super) struct IdMinter {
    pub(super) origin_hash: u64,
    pub(super) next_seq: u64,
}

impl IdMinter {
    pub(super) fn mint(&mut self) -> MessageId {
        let id = self.peek();
        self.next_seq = self.next_seq.wrapping_add(1);
        id
    }

    /// The id [`IdMinter::mint`] returns next.
    pub(super) fn peek(&self) -> MessageId {
        MessageId((u128::from(self.origin_hash) << 64) | u128::from(self.next_seq))
    }
}

impl<P: PeerId, O: Sink<OutEvent<P>>> Sink<hyparview::OutEvent<P>> for Router<'_, P, O> {
    fn push(&mut self, output: hyparview::OutEvent<P>) {
        self.count_one();
        match output {
            hyparview::OutEvent::SendMessage { to, message } => {
                self.out.push(OutEvent::SendMessage { to, message: Message::Hyparview(message) });
            }
            hyparview::OutEvent::ScheduleTimer { after_ms, timer } => {
                self.out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Hyparview(timer) });
            }
            hyparview::OutEvent::DisconnectPeer(peer) => {
                self.out.push(OutEvent::DisconnectPeer(peer));
            }
            hyparview::OutEvent::EmitEvent(event) => {
                match &event {
                    hyparview::Event::PeerUp(peer) => {
                        self.internal.push_back(Internal::Plumtree(plumtree::InEvent::NeighborUp(
                            peer.clone(),
                        )));
                        self.internal
                            .push_back(Internal::Registry(registry::InEvent::PeerUp(peer.clone())));
                    }
                    hyparview::Event::PeerDown(peer, reason) => {
                        self.internal.push_back(Internal::Plumtree(
                            plumtree::InEvent::NeighborDown(peer.clone()),
                        ));
                        let failed = *reason == hyparview::DownReason::Failed;
                        self.internal.push_back(Internal::Registry(registry::InEvent::PeerDown {
                            peer: peer.clone(),
                            failed,
                        }));
                    }
                    hyparview::Event::Joined
                    | hyparview::Event::Left
                    | hyparview::Event::Isolated => {}
                }
                self.out.push(OutEvent::EmitEvent(Event::Membership(event)));
            }
        }
    }

    fn count(&self) -> usize {
        self.pushed
    }
}

impl<P: PeerId, O: Sink<OutEvent<P>>> Sink<plumtree::OutEvent<P>> for Router<'_, P, O> {
    fn push(&mut self, output: plumtree::OutEvent<P>) {
        self.count_one();
        match output {
            plumtree::OutEvent::SendMessage { to, message } => {
                self.out.push(OutEvent::SendMessage { to, message: Message::Plumtree(message) });
            }
            plumtree::OutEvent::ScheduleTimer { after_ms, timer } => {
                self.out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Plumtree(timer) });
            }
            plumtree::OutEvent::EmitEvent(plumtree::Event::Received(delivery)) => {
                if delivery.tag == Tag::REGISTRY {
                    self.internal.push_back(Internal::Registry(registry::InEvent::Delivered {
                        payload: delivery.payload,
                    }));
                } else {
                    self.out.push(OutEvent::EmitEvent(Event::Broadcast(delivery)));
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.pushed
    }
}

impl<P: PeerId, O: Sink<OutEvent<P>>> Sink<registry::OutEvent<P>> for Router<'_, P, O> {
    fn push(&mut self, output: registry::OutEvent<P>) {
        self.count_one();
        match output {
            registry::OutEvent::Broadcast(payload) => {
                let id = self.ids.mint();
                self.internal.push_back(Internal::Plumtree(plumtree::InEvent::Broadcast {
                    id,
                    tag: Tag::REGISTRY,
                    payload,
                }));
            }
            registry::OutEvent::SendMessage { to, message } => {
                self.out.push(OutEvent::SendMessage { to, message: Message::Registry(message) });
            }
            registry::OutEvent::ScheduleTimer { after_ms, timer } => {
                self.out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::Registry(timer) });
            }
            registry::OutEvent::EmitEvent(event) => {
                self.out.push(OutEvent::EmitEvent(Event::Registry(event)));
            }
        }
    }

    fn count(&self) -> usize {
        self.pushed
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, NodeOutbox};
    use super::*;

    fn outbox() -> (NodeOutbox<u32>, IdMinter) {
        (NodeOutbox::new(&Config::default()), IdMinter { origin_hash: 7, next_seq: 1 })
    }

    #[test]
    fn outputs_are_wrapped_in_push_order_and_membership_changes_handed_off() {
        let (mut outbox, mut ids) = outbox();
        let mut router = outbox.router(&mut ids, Layer::Hyparview);
        router.push(hyparview::OutEvent::DisconnectPeer(3));
        router.push(hyparview::OutEvent::EmitEvent(hyparview::Event::PeerUp(4)));
        assert_eq!(Sink::<hyparview::OutEvent<u32>>::count(&router), 2);
        let out = outbox.out.take();
        assert_eq!(out.len(), 2);
        assert!(matches!(out[0], OutEvent::DisconnectPeer(3)));
        assert!(matches!(
            out[1],
            OutEvent::EmitEvent(Event::Membership(hyparview::Event::PeerUp(4)))
        ));
        let internal = &outbox.internal;
        assert!(matches!(internal[0], Internal::Plumtree(plumtree::InEvent::NeighborUp(4))));
        assert!(matches!(internal[1], Internal::Registry(registry::InEvent::PeerUp(4))));
    }

    #[test]
    fn registry_broadcasts_get_fresh_ids() {
        let (mut outbox, mut ids) = outbox();
        let mut router = outbox.router(&mut ids, Layer::Registry);
        router.push(registry::OutEvent::Broadcast(bytes::Bytes::from_static(b"a")));
        router.push(registry::OutEvent::Broadcast(bytes::Bytes::from_static(b"b")));
        let minted: Vec<MessageId> = outbox
            .internal
            .iter()
            .map(|i| match i {
                Internal::Plumtree(plumtree::InEvent::Broadcast { id, tag, .. }) => {
                    assert_eq!(*tag, Tag::REGISTRY);
                    *id
                }
                other => panic!("unexpected hand-off {other:?}"),
            })
            .collect();
        assert_eq!(minted, vec![MessageId(7 << 64 | 1), MessageId(7 << 64 | 2)]);
        assert_eq!(ids.next_seq, 3);
    }

    /// A layer gets its documented bound per call, whatever room the driver's outbox has.
    #[test]
    fn a_layer_past_its_bound_panics() {
        let timer = || plumtree::OutEvent::ScheduleTimer {
            after_ms: 1,
            timer: plumtree::Timer::IHaveFlush,
        };
        let (mut outbox, mut ids) = outbox();
        let mut router = outbox.router(&mut ids, Layer::Plumtree);
        for _ in 0..super::super::PLUMTREE_OUTPUTS_MAX {
            router.push(timer());
        }
        let overflow =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| router.push(timer())));
        let message = overflow.expect_err("one output past the bound");
        let message = message.downcast_ref::<String>().expect("a formatted panic message");
        assert_eq!(message, "plumtree: more than 65536 outputs in one call");
    }
}
