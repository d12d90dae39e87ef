//! HyParView membership (Leitão, Pereira, Rodrigues, DSN 2007).
//!
//! Each node keeps a small *active view* of symmetric links used for broadcast and a larger
//! *passive view* of spare peers used to repair the active view when links fail. See
//! docs/protocols/hyparview.md for the mapping to the paper and the deviations.

mod config;
mod event;
mod message;
mod passive;
mod state;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use event::{DownReason, Event, InEvent, OutEvent, Timer};
pub use message::{Message, Priority};
pub use passive::PassiveEntry;
pub use state::{State, Stats};
