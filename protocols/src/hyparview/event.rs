//! Inputs, outputs, events and timers of the HyParView state machine.

use super::Message;

/// Why a peer left the active view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DownReason {
    /// The peer sent DISCONNECT (it evicted us, or is rebalancing).
    Disconnected,
    /// The peer sent DISCONNECT because it is leaving the cluster.
    Left,
    /// We evicted the peer to make room for another.
    Evicted,
    /// The link failed (transport error, timeout, crash).
    Failed,
    /// We left the cluster.
    LocalLeave,
}

impl DownReason {
    /// Stable lower-case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Left => "left",
            Self::Evicted => "evicted",
            Self::Failed => "failed",
            Self::LocalLeave => "local_leave",
        }
    }
}

/// Something the layers above (Plumtree, the registry, the application) learn from HyParView.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// `peer` entered the active view. The link is symmetric: `peer` emits the same for us.
    PeerUp(P),
    /// `peer` left the active view.
    PeerDown(P, DownReason),
    /// The active view went from empty to non-empty after a `join`.
    Joined,
    /// `leave` completed: DISCONNECT was sent to every active peer.
    Left,
    /// The active view is not full and nothing local can fill it: no passive candidate is
    /// eligible or coming out of backoff and no request is in flight. This is the case of an
    /// empty active view, and of a small island of survivors whose passive peers all died.
    /// The driver should find fresh contacts (discovery) and feed them back with
    /// [`InEvent::Join`], which joins again through them while the view is not full. Emitted
    /// once until the active view grows again.
    Isolated,
}

/// A timer HyParView asked the driver to arm. The driver hands it back through
/// [`InEvent::TimerExpired`] after the requested delay.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer<P> {
    /// Start a shuffle round.
    Shuffle,
    /// Sweep the passive view (age and failure limits).
    PassiveCleanup,
    /// Retry the contact nodes if the active view is still empty.
    ContactRetry,
    /// Retry promotion from the passive view (some candidates were in backoff).
    Promote,
    /// Probe one peer of the failed list (partition healing).
    Reconnect,
    /// Backstop of the pending operation `op_id` towards `peer`. A newer operation towards the
    /// same peer has a different id, so an old backstop can never clobber it.
    PendingTimeout {
        /// The peer the operation was sent to.
        peer: P,
        /// Identifier of the operation.
        op_id: u64,
    },
}

/// Input to [`super::State::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InEvent<P> {
    /// A message arrived from `from` (the identity authenticated on the link).
    Message {
        /// Authenticated sender.
        from: P,
        /// The message.
        message: Message<P>,
    },
    /// The transport reports the link to `peer` failed (dial failure, reset, idle timeout).
    PeerFailed(P),
    /// A timer fired.
    TimerExpired(Timer<P>),
    /// Join the overlay through these contacts (retried every `contact_retry_ms` while the
    /// active view is empty).
    Join(Vec<P>),
    /// Leave: DISCONNECT every active peer and stay out until the next `Join`.
    Leave,
}

/// Output of [`super::State::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutEvent<P> {
    /// Send `message` to `to` (the transport dials if there is no connection).
    SendMessage {
        /// Destination.
        to: P,
        /// The message.
        message: Message<P>,
    },
    /// Arm `timer` to fire after `after_ms` milliseconds.
    ScheduleTimer {
        /// Delay in ms.
        after_ms: u64,
        /// The timer to hand back.
        timer: Timer<P>,
    },
    /// HyParView no longer needs the link to `peer`; the transport may close it once queued
    /// messages are flushed (idle GC decides for links other layers still use).
    DisconnectPeer(P),
    /// An event for the layers above.
    EmitEvent(Event<P>),
}
