//! The node's message, timer, input, output and event enums, and its configuration.

use std::ops::Range;
use std::sync::Arc;

use crate::plumtree::Delivery;
use crate::wire::Limits;
use crate::{hyparview, plumtree, registry};

/// Every protocol message a node exchanges with a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<P> {
    /// Membership.
    Hyparview(hyparview::Message<P>),
    /// Broadcast.
    Plumtree(plumtree::Message),
    /// Registry anti-entropy.
    Registry(registry::Message<P>),
}

/// Kinds of HyParView messages (the first of [`MESSAGE_KINDS`]).
const HYPARVIEW_KINDS: usize = hyparview::Message::<()>::KINDS.len();
/// Kinds of Plumtree messages (after HyParView's in [`MESSAGE_KINDS`]).
const PLUMTREE_KINDS: usize = plumtree::Message::KINDS.len();
/// Kinds of every layer's messages.
pub const MESSAGE_KIND_COUNT: usize =
    HYPARVIEW_KINDS + PLUMTREE_KINDS + registry::Message::<()>::KINDS.len();

/// Where HyParView's kinds sit in [`MESSAGE_KINDS`].
pub(crate) const HYPARVIEW_KIND_INDICES: Range<usize> = 0..HYPARVIEW_KINDS;
/// Where Plumtree's kinds sit in [`MESSAGE_KINDS`].
pub(crate) const PLUMTREE_KIND_INDICES: Range<usize> =
    HYPARVIEW_KINDS..HYPARVIEW_KINDS + PLUMTREE_KINDS;
/// Where the registry's kinds sit in [`MESSAGE_KINDS`].
pub(crate) const REGISTRY_KIND_INDICES: Range<usize> =
    HYPARVIEW_KINDS + PLUMTREE_KINDS..MESSAGE_KIND_COUNT;
/// The [`MESSAGE_KINDS`] index of Plumtree's GOSSIP.
pub(crate) const GOSSIP_KIND_INDEX: usize = HYPARVIEW_KINDS + plumtree::Message::GOSSIP_KIND_INDEX;

/// Every [`Message::kind`], by [`Message::kind_index`]: HyParView's, Plumtree's, then the
/// registry's, each in its layer's order.
pub const MESSAGE_KINDS: [&str; MESSAGE_KIND_COUNT] = {
    let mut all = [""; MESSAGE_KIND_COUNT];
    let mut i = 0;
    while i < MESSAGE_KIND_COUNT {
        all[i] = if i < HYPARVIEW_KINDS {
            hyparview::Message::<()>::KINDS[i]
        } else if i < HYPARVIEW_KINDS + PLUMTREE_KINDS {
            plumtree::Message::KINDS[i - HYPARVIEW_KINDS]
        } else {
            registry::Message::<()>::KINDS[i - HYPARVIEW_KINDS - PLUMTREE_KINDS]
        };
        i += 1;
    }
    all
};

impl<P> Message<P> {
    /// `protocol.kind` for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        MESSAGE_KINDS[self.kind_index()]
    }

    /// Position of [`Message::kind`] in [`MESSAGE_KINDS`]: counters kept per kind index a
    /// fixed array instead of looking the name up (the simulator counts every message).
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Hyparview(m) => m.kind_index(),
            Self::Plumtree(m) => HYPARVIEW_KINDS + m.kind_index(),
            Self::Registry(m) => HYPARVIEW_KINDS + PLUMTREE_KINDS + m.kind_index(),
        }
    }
}

/// Timers of every layer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer<P> {
    /// Membership timer.
    Hyparview(hyparview::Timer<P>),
    /// Broadcast timer.
    Plumtree(plumtree::Timer),
    /// Registry timer.
    Registry(registry::Timer<P>),
}

/// Input to [`super::Node::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InEvent<P> {
    /// A decoded message from the authenticated peer `from`.
    Message {
        /// Authenticated sender.
        from: P,
        /// The message.
        message: Message<P>,
    },
    /// The link to `peer` failed.
    PeerFailed(P),
    /// A timer fired.
    TimerExpired(Timer<P>),
    /// Join through these contacts.
    Join(Vec<P>),
    /// Leave the cluster.
    Leave,
}

/// Events for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// Membership change.
    Membership(hyparview::Event<P>),
    /// An application broadcast was delivered.
    Broadcast(Delivery<P>),
    /// A service registry change.
    Registry(registry::Event<P>),
}

/// Output of [`super::Node::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutEvent<P> {
    /// Send `message` to `to`.
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
    /// The protocols no longer need the link to this peer.
    DisconnectPeer(P),
    /// Event for the application.
    EmitEvent(Event<P>),
}

/// A local broadcast was refused. Nothing was sent; fix the argument and retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// Tags below 256 are reserved for shoal's own use.
    #[error("broadcast tag {0} is reserved (application tags start at 256)")]
    ReservedTag(u16),
    /// The payload is larger than the wire limit.
    #[error("broadcast payload of {len} bytes exceeds payload_size_max = {len_max}")]
    PayloadTooLarge {
        /// Payload size.
        len: usize,
        /// Limit.
        len_max: usize,
    },
}

/// Configuration of every protocol layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Membership.
    pub hyparview: hyparview::Config,
    /// Broadcast.
    pub plumtree: plumtree::Config,
    /// Registry.
    pub registry: registry::Config,
    /// Wire decoding bounds (also the local broadcast payload bound).
    pub limits: Limits,
}

pub use crate::config::ConfigError;

impl Config {
    /// Validates every layer.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.hyparview.validate()?;
        self.plumtree.validate()?;
        self.registry.validate()?;
        // Registry messages travel as Plumtree payloads and as frames decoded with `limits`:
        // a registry bound above the wire's would produce messages every receiver refuses.
        let r = &self.registry;
        let l = &self.limits;
        let cross = |key, value: usize, fix| Err(ConfigError::new("registry", key, &value, fix));
        if r.message_size_max > l.payload_size_max {
            return cross(
                "message_size_max",
                r.message_size_max,
                "must not exceed limits.payload_size_max",
            );
        }
        if r.sync_entries_per_message_max > l.list_len_max {
            return cross(
                "sync_entries_per_message_max",
                r.sync_entries_per_message_max,
                "must not exceed limits.list_len_max",
            );
        }
        if r.digest_owners_max > l.list_len_max {
            return cross(
                "digest_owners_max",
                r.digest_owners_max,
                "must not exceed limits.list_len_max",
            );
        }
        Ok(())
    }
}

/// A validated [`Config`] with each layer's section behind an `Arc`, so that every node
/// built from it ([`super::Node::with_shared_config`]) shares one copy instead of holding
/// its own (≈ 350 bytes per node, which a 100,000-node simulation multiplies).
#[derive(Clone, Debug)]
pub struct SharedConfig {
    pub(super) hyparview: Arc<hyparview::Config>,
    pub(super) plumtree: Arc<plumtree::Config>,
    pub(super) registry: Arc<registry::Config>,
    pub(super) limits: Limits,
}

impl SharedConfig {
    /// Validates `config` ([`Config::validate`]) and wraps its sections.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let Config { hyparview, plumtree, registry, limits } = config;
        Ok(Self {
            hyparview: Arc::new(hyparview),
            plumtree: Arc::new(plumtree),
            registry: Arc::new(registry),
            limits,
        })
    }
}
