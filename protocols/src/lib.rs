//! shoal's cluster protocols as pure, sans-IO state machines, and the deterministic simulator
//! that drives them.
//!
//! The one rule (docs/ARCHITECTURE.md): time and randomness flow in from the driver. Nothing in
//! this crate reads a clock, touches a socket, spawns a thread, reads the environment or uses a
//! global RNG. Each state machine is driven by `handle(now, input, &mut outbox)`; its effects
//! (send a message, arm a timer, emit an event) are data pushed into a caller-owned, bounded
//! [`Outbox`]. Iteration order never depends on hash seeds, so a seed replays byte for byte.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
mod eq_mask;
pub mod hlc;
pub mod hyparview;
pub mod name;
pub mod node;
pub mod outbox;
pub mod peer;
pub mod plumtree;
pub mod registry;
pub mod rng;
pub mod sim;
pub mod time;
pub mod wire;

pub use name::{NameError, NodeName};
pub use outbox::{Outbox, Sink};
pub use peer::PeerId;
pub use rng::Rng;
pub use time::Now;
