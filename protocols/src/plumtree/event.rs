//! Inputs, outputs, events and timers of the Plumtree state machine.

use bytes::Bytes;

use super::{Message, MessageId, Tag};

/// A broadcast delivered to this node for the first time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery<P> {
    /// Broadcast id.
    pub id: MessageId,
    /// Tag the broadcaster chose.
    pub tag: Tag,
    /// The bytes.
    pub payload: Bytes,
    /// Hops from the origin (0 for a local broadcast).
    pub round: u16,
    /// The neighbour it came from (`None` for a local broadcast).
    pub from: Option<P>,
}

/// Events for the layers above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// A broadcast was delivered (exactly once per id while it is cached).
    Received(Delivery<P>),
}

/// Timers Plumtree asks the driver to arm.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Flush the batched IHAVE announcements.
    IHaveFlush,
    /// The message `id` announced by IHAVE has not arrived: GRAFT it from the next announcer.
    /// `attempt` 0 uses `graft_timeout_1_ms`, later ones `graft_timeout_2_ms`.
    Graft {
        /// Missing broadcast.
        id: MessageId,
        /// How many grafts were already sent for it.
        attempt: u16,
    },
    /// Expire cached messages older than the TTL.
    CacheEvict,
}

/// Input to [`super::State::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InEvent<P> {
    /// A message from an active-view neighbour.
    Message {
        /// Authenticated sender.
        from: P,
        /// The message.
        message: Message,
    },
    /// Broadcast a new message originating here.
    Broadcast {
        /// Id minted by the caller (unique cluster-wide).
        id: MessageId,
        /// Tag.
        tag: Tag,
        /// Bytes.
        payload: Bytes,
    },
    /// HyParView `PeerUp`: the peer joins the eager set.
    NeighborUp(P),
    /// HyParView `PeerDown`: the peer leaves both sets.
    NeighborDown(P),
    /// A timer fired.
    TimerExpired(Timer),
}

/// Output of [`super::State::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutEvent<P> {
    /// Send `message` to neighbour `to`.
    SendMessage {
        /// Destination.
        to: P,
        /// The message.
        message: Message,
    },
    /// Arm `timer` after `after_ms` milliseconds.
    ScheduleTimer {
        /// Delay in ms.
        after_ms: u64,
        /// Timer.
        timer: Timer,
    },
    /// Event for the layers above.
    EmitEvent(Event<P>),
}
