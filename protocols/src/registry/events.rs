//! Inputs, outputs, events and timers of the registry state machine.

use bytes::Bytes;

use super::Message;

/// Why a visible registration went away other than by an explicit unregister.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DownReason {
    /// The owner dropped the registration handle.
    HandleDropped,
    /// The owner was declared dead (suspicion timed out without a refutation).
    NodeDown,
}

/// Registry changes for the application. Emitted only when the visible set changes, never on
/// an idempotent re-merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// `(name, node, reg_id)` became visible (new registration, or its owner came back).
    Registered {
        /// Service name.
        name: String,
        /// Owner.
        node: P,
        /// Registration id.
        reg_id: u64,
    },
    /// The owner unregistered `(name, node, reg_id)` explicitly.
    Unregistered {
        /// Service name.
        name: String,
        /// Owner.
        node: P,
        /// Registration id.
        reg_id: u64,
    },
    /// `(name, node, reg_id)` stopped being visible because its handle was dropped or its owner
    /// was declared dead.
    Down {
        /// Service name.
        name: String,
        /// Owner.
        node: P,
        /// Registration id.
        reg_id: u64,
        /// Why.
        reason: DownReason,
    },
}

/// Timers the registry asks the driver to arm; handed back through [`InEvent::TimerExpired`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer<P> {
    /// Run one anti-entropy round and collect expired tombstones; re-armed every time.
    AntiEntropy,
    /// Declare `node` dead if it is still suspected at `incarnation`.
    Suspicion {
        /// The suspected owner.
        node: P,
        /// Incarnation the suspicion is about (a refutation makes the timer a no-op).
        incarnation: u64,
    },
}

/// Input to [`super::State::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InEvent<P> {
    /// A Plumtree delivery tagged `Tag::REGISTRY` (an encoded [`super::Delta`]).
    Delivered {
        /// The payload.
        payload: Bytes,
    },
    /// A direct anti-entropy message from a peer.
    Message {
        /// Authenticated sender.
        from: P,
        /// The message.
        message: Message<P>,
    },
    /// HyParView `PeerUp`: a new neighbour; a sync with it starts at once.
    PeerUp(P),
    /// HyParView `PeerDown`.
    PeerDown {
        /// The neighbour.
        peer: P,
        /// True when the link failed (transport error, crash); false when the peer left the
        /// active view for any other reason, which never affects its services.
        failed: bool,
    },
    /// A timer fired.
    TimerExpired(Timer<P>),
}

/// Output of the registry state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutEvent<P> {
    /// Broadcast these bytes (an encoded [`super::Delta`]) through Plumtree with
    /// `Tag::REGISTRY`.
    Broadcast(Bytes),
    /// Send `message` directly to `to`.
    SendMessage {
        /// Destination.
        to: P,
        /// The message.
        message: Message<P>,
    },
    /// Arm `timer` after `after_ms` milliseconds.
    ScheduleTimer {
        /// Delay in ms.
        after_ms: u64,
        /// Timer.
        timer: Timer<P>,
    },
    /// Event for the application.
    EmitEvent(Event<P>),
}
