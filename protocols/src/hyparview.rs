//! HyParView membership (Leitão, Pereira, Rodrigues, DSN 2007).

mod config;
mod event;
mod message;

pub use config::{Config, ConfigError};
pub use event::{DownReason, Event, InEvent, OutEvent, Timer};
pub use message::{Message, Priority};
