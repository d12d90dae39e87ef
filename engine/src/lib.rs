//! shoal's engine: shards on glommio, the node API, configuration, discovery and metrics.
//!
//! Today it only re-exports the protocol core; the shard drivers, the node API and the `shoal`
//! binary arrive with the transport issues (docs/ARCHITECTURE.md lists what exists).

pub use shoal_protocols as protocols;
