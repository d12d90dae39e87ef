//! shoal's transport layer: the data plane between nodes.
//!
//! Layers, bottom up (docs/ARCHITECTURE.md, "Shards and routing"):
//! - `sys` — the only module with `unsafe`: the socket factory (SO_REUSEPORT group, buffer sizes,
//!   the classic-BPF program that steers datagrams by the shard byte of their connection ID),
//!   GSO/GRO system calls, the RLIMIT_MEMLOCK preflight.
//! - `tls` — the node's TLS material on disk and the boring context handed to quiche.
//! - `auth` — peer authentication: the node's identity keys on disk and the pinned keys of its
//!   peers. `fsutil`, `keyformat` and `rotation` hold the file handling that `tls` and `auth`
//!   share (atomic writes, the Ed25519 PEM formats, crash-safe rotation of a key pair).
//! - `cid`, `frame`, `config`, `metrics` — pure pieces the shard core is built from.
//! - `endpoint` — one shard's QUIC endpoint as a synchronous state machine (datagrams in,
//!   datagrams and events out; no glommio), testable with in-memory pairs.
//! - `shard` — the glommio driver: sockets, the shard timer, cross-shard hand-offs.

pub mod auth;
pub mod cid;
pub mod config;
pub mod directory;
pub mod endpoint;
pub mod frame;
pub(crate) mod fsutil;
pub(crate) mod keyformat;
pub mod metrics;
pub(crate) mod rotation;
pub mod shard;
pub mod sys;
pub mod tls;

#[cfg(test)]
mod testutil;
