//! HyParView wire messages (paper §4; names as in the paper).
//!
//! No message carries its sender: the sender is the peer the transport authenticated on the
//! link the message arrived on, passed to the state machine next to the message. That keeps
//! everything learned about a peer bound to the identity proven on that connection (the
//! reference system lost this binding).

/// Priority of a NEIGHBOR request (paper §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// The requester's active view is empty: the receiver must accept, evicting if full.
    High,
    /// The receiver accepts only if its active view has a free slot.
    Low,
}

/// One HyParView message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<P> {
    /// A new node asks the contact to join the overlay.
    Join,
    /// The contact's random walk announcing `peer` (the joining node); `ttl` counts down from
    /// `arwl`.
    ForwardJoin {
        /// The node that joined.
        peer: P,
        /// Remaining walk length.
        ttl: u8,
    },
    /// Request to become a symmetric active-view neighbour of the receiver.
    Neighbor {
        /// How strongly the requester needs the link.
        priority: Priority,
    },
    /// Answer to [`Message::Join`] or [`Message::Neighbor`]. On `accepted`, both sides have the
    /// other in their active views once this is processed.
    NeighborReply {
        /// Whether the receiver added the requester to its active view.
        accepted: bool,
    },
    /// The sender removed the receiver from its active view.
    Disconnect {
        /// True when the sender is leaving the cluster: the receiver must not keep it as a
        /// passive candidate.
        leaving: bool,
    },
    /// A shuffle walk carrying a sample of the originator's views.
    Shuffle {
        /// The node that started the walk; the end of the walk replies to it directly.
        origin: P,
        /// Remaining walk length.
        ttl: u8,
        /// Sample: the origin itself plus up to `shuffle_active` active and `shuffle_passive`
        /// passive entries.
        peers: Vec<P>,
    },
    /// The walk end's answer to a [`Message::Shuffle`], sent to the origin.
    ShuffleReply {
        /// A sample of the replier's passive view, as long as the received sample.
        peers: Vec<P>,
    },
}

impl<P> Message<P> {
    /// Every [`Message::kind`], by [`Message::kind_index`].
    pub const KINDS: [&'static str; 7] = [
        "join",
        "forward_join",
        "neighbor",
        "neighbor_reply",
        "disconnect",
        "shuffle",
        "shuffle_reply",
    ];

    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Position of [`Message::kind`] in [`Message::KINDS`] (counters indexed by kind).
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Join => 0,
            Self::ForwardJoin { .. } => 1,
            Self::Neighbor { .. } => 2,
            Self::NeighborReply { .. } => 3,
            Self::Disconnect { .. } => 4,
            Self::Shuffle { .. } => 5,
            Self::ShuffleReply { .. } => 6,
        }
    }
}
