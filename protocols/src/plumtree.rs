//! Plumtree epidemic broadcast trees (Leitão, Pereira, Rodrigues, SRDS 2007).

mod event;
mod message;

pub use event::{Delivery, Event, InEvent, OutEvent, Timer};
pub use message::{Gossip, IHave, Message, MessageId, Tag};
