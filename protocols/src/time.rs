//! Time as the drivers hand it in. Nothing in this crate reads a clock.

/// The two clocks a node needs, both in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Now {
    /// Monotonic time since an arbitrary origin: timers, ageing, backoff. Never goes back.
    pub mono_ms: u64,
    /// Wall-clock time since the Unix epoch: HLC stamps only. May jump.
    pub wall_ms: u64,
}
