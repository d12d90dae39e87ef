//! Plumtree epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007).
//!
//! [`State`] is the sans-IO state machine; docs/protocols/plumtree.md maps it to the paper.

mod cache;
mod config;
mod event;
mod lazy_queue;
mod message;
mod missing;
mod state;
mod stats;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use event::{Delivery, Event, InEvent, OutEvent, Timer};
pub use message::{Gossip, IHave, Message, MessageId, Tag};
pub use state::State;
pub use stats::Stats;
