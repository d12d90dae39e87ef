//! Plumtree wire messages (Leitão, Pereira, Rodrigues, SRDS 2007; names as in the paper).

use bytes::Bytes;

/// Identifies one broadcast cluster-wide. The node composing the protocols mints it from its
/// origin hash (high 64 bits) and a per-incarnation counter that starts at a random value (low
/// 64 bits), so ids are unique without hashing payloads.
///
/// Aligned to 8 bytes rather than `u128`'s 16 (`repr(packed(8))`; in memory only, the wire
/// encoding is unchanged): an id inside a struct with a small field (an [`IHave`], a queued
/// `Graft` timer) would otherwise pad it from 24 to 32 bytes, and nodes hold many of them
/// while broadcasts overlap. Read the value by copy (`id.0`), never by reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C, packed(8))]
pub struct MessageId(pub u128);

/// Distinguishes application broadcasts from internal ones sharing the same tree.
/// Tags `0..=255` are reserved for shoal itself ([`Tag::REGISTRY`]); applications use
/// `256..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u16);

impl Tag {
    /// Registry deltas (service registrations, removals, suspicions).
    pub const REGISTRY: Self = Self(1);
    /// First tag available to applications.
    pub const APPLICATION_MIN: Self = Self(256);
}

/// The full payload, pushed eagerly along the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    /// Broadcast id.
    pub id: MessageId,
    /// Hop count: 1 at the origin's neighbours, +1 per forward (paper's "round").
    pub round: u16,
    /// Which subscribers get it.
    pub tag: Tag,
    /// Application bytes (bounded by `payload_size_max`).
    pub payload: Bytes,
}

/// One lazy-push announcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IHave {
    /// The announced broadcast.
    pub id: MessageId,
    /// The round at which the announcer received it (+1, as a GOSSIP would carry).
    pub round: u16,
}

/// One Plumtree message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Eager push of a payload.
    Gossip(Gossip),
    /// A batch of lazy-push announcements (batched per tick, DESIGN §6).
    IHave(Vec<IHave>),
    /// Ask the receiver to send `id` and to move the sender to its eager set.
    Graft {
        /// Missing broadcast, if any (`None` only re-grafts the link for tree optimisation).
        id: Option<MessageId>,
        /// Round of the announcement that triggered the graft.
        round: u16,
    },
    /// The sender moved the receiver to its lazy set.
    Prune,
}

impl Message {
    /// Every [`Message::kind`], by [`Message::kind_index`].
    pub const KINDS: [&'static str; 4] = ["gossip", "ihave", "graft", "prune"];

    /// [`Message::kind_index`] of GOSSIP, the payload message.
    pub const GOSSIP_KIND_INDEX: usize = 0;

    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Position of [`Message::kind`] in [`Message::KINDS`] (counters indexed by kind).
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Gossip(_) => Self::GOSSIP_KIND_INDEX,
            Self::IHave(_) => 1,
            Self::Graft { .. } => 2,
            Self::Prune => 3,
        }
    }
}
