//! The deterministic discrete-event simulator (docs/SIMULATION.md).
//!
//! One thread, a virtual clock, an in-memory network with injected faults, and the real
//! [`crate::node::Node`] state machines. QUIC cannot run under virtual time (quiche reads the
//! system clock), so links are modelled above it: handshake delay, ordered reliable delivery,
//! loss as retransmission delay, and link failure after a detection delay.

mod fabric;
mod graph;
mod links;
mod network;
mod prefetch;
mod queue;
mod report;
pub mod scenario;
mod tracker;

pub use fabric::MessageCounts;
pub use graph::OverlayStats;
pub use links::Latency;
pub use network::{Network, NetworkOptions, NodeIndex};
pub use report::Report;
pub use scenario::{Options, Progress, Scenario, Senders};
pub use tracker::{BroadcastResult, Tracker};
