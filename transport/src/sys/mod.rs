//! The system-call layer of the transport: the only module allowed to use `unsafe`.
//!
//! Everything glommio and the standard library do not expose lives here, behind safe functions:
//! - [`socket`] — the per-shard UDP socket group (SO_REUSEPORT, explicit buffer sizes, UDP_GRO,
//!   detection of a port already held by another process).
//! - [`steer`](mod@steer) — the classic-BPF program that makes the kernel deliver each datagram
//!   to the shard named by the first byte of its destination connection ID, and the same
//!   decision as a pure function.
//! - [`gso`] — batched send (`sendmsg` + UDP_SEGMENT) and receive (`recvmsg` + UDP_GRO).
//! - [`rlimit`] — the RLIMIT_MEMLOCK preflight glommio needs.
//! - [`bridge`] — hands a socket built here to glommio for readiness.
//!
//! The raw pieces (`addr`, `sockopt`, `cmsg`) are private: they take raw pointers and lengths, so
//! they stay next to the callers that uphold their contracts.

// The workspace denies `unsafe_code`; this module is the single, reviewed exception. Socket
// options, ancillary data and resource limits are only reachable through libc calls that take
// raw pointers. Every `unsafe` block below carries a `// SAFETY:` comment with its argument.
#![allow(unsafe_code)]

mod addr;
pub mod bridge;
mod cmsg;
pub mod gso;
pub mod rlimit;
pub mod socket;
mod sockopt;
pub mod steer;

pub use bridge::into_glommio;
pub use gso::{recv_segments, segments, send_segments, RecvMeta, Segments};
pub use rlimit::{check_memlock, MemlockError};
pub use socket::{bind_shard_sockets, ShardSockets, SocketError, SocketOptions};
pub use steer::{steer, steering_program};

#[cfg(test)]
mod testutil;
