//! The system-call layer of the transport: the only module allowed to use `unsafe`.
//!
//! Everything glommio and the standard library do not expose lives here, behind safe functions:
//! - [`steer`] — the classic-BPF program that makes the kernel deliver each datagram to the shard
//!   named by the first byte of its destination connection ID, and the same decision as a pure
//!   function.
//! - [`rlimit`] — the RLIMIT_MEMLOCK preflight glommio needs.

// The workspace denies `unsafe_code`; this module is the single, reviewed exception. Socket
// options, ancillary data and resource limits are only reachable through libc calls that take
// raw pointers. Every `unsafe` block below carries a `// SAFETY:` comment with its argument.
#![allow(unsafe_code)]

pub mod rlimit;
pub mod steer;

pub use rlimit::{check_memlock, MemlockError};
pub use steer::{steer, steering_program};
