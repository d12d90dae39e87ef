//! shoal's transport layer.
//!
//! This crate is deliberately empty today: the QUIC transport (CID-steered sockets on glommio
//! shards, quiche connections, tagged streams, idle GC, migration) and the peer authentication
//! are built by their own issues. Nothing here pretends to work yet; the protocol layer above
//! does not depend on it, and the simulator models links above QUIC instead
//! (docs/ARCHITECTURE.md, "Why QUIC cannot run under virtual time").
