//! The system-call layer of the transport: the only module allowed to use `unsafe`.
//!
//! Everything glommio and the standard library do not expose lives here, behind safe functions:
//! - [`rlimit`] — the RLIMIT_MEMLOCK preflight glommio needs.

// The workspace denies `unsafe_code`; this module is the single, reviewed exception. Socket
// options, ancillary data and resource limits are only reachable through libc calls that take
// raw pointers. Every `unsafe` block below carries a `// SAFETY:` comment with its argument.
#![allow(unsafe_code)]

pub mod rlimit;

pub use rlimit::{check_memlock, MemlockError};
