//! shoal's engine: shards on glommio, the node API, configuration, discovery and metrics.
//!
//! Today it re-exports the protocol core, and its `shoal` binary carries the operator's key
//! commands (`shoal keys …`); the node API and `shoal run` arrive with the engine issues
//! (docs/ARCHITECTURE.md lists what exists).

pub use shoal_protocols as protocols;
