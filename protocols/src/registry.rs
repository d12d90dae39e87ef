//! The service registry: a CRDT of `(service name, owner, registration id) -> value`
//! replicated on every node (docs/protocols/registry.md).
//!
//! * Each owner is the single writer of its keys; values merge last-writer-wins by HLC stamp.
//! * Each owner has a SWIM-style liveness status; entries of a dead owner are kept but hidden,
//!   so a refutation brings them back.
//! * Deltas travel through Plumtree (`Tag::REGISTRY`); a periodic push-pull anti-entropy with
//!   one random neighbour heals whatever a broadcast missed, including after partitions.
//! * Failure detection costs O(failures): only a failed link starts a suspicion.

mod config;
mod crdt;
mod error;
mod events;
mod message;
mod query;
mod small_map;
mod state;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use config::{Config, ConfigError};
pub use error::{validate_service_name, RegisterError, ServiceNameError, UnregisterError};
pub use events::{DownReason, Event, InEvent, OutEvent, Timer};
pub use message::{
    Delta, EntryUpdate, Message, OwnerDigest, OwnerState, OwnerStatus, OwnerSync, UnregisterReason,
    Value, CODE_DELTA_ALIVE, CODE_DELTA_SUSPECT, CODE_DELTA_UPDATE, CODE_DIGEST, CODE_SYNC,
    CODE_SYNC_REQUEST, SERVICE_NAME_LEN_MAX,
};
pub use query::{Filter, ServiceEntry};
pub use state::{State, Stats};
