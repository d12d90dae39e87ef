//! The in-memory network: per-link latency, handshake delay, FIFO delivery, loss as delay.
//!
//! Links are modelled above QUIC: a message is never lost (QUIC retransmits), a lost packet
//! shows up as extra delay, the first message on a new link pays a handshake, and messages on
//! one link arrive in the order they were sent.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::rng::Rng;

/// Link latency model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// Every link has the same one-way latency, in µs.
    Const(u64),
    /// Each link's one-way latency is drawn once from U(low, high) µs (then fixed).
    Uniform(u64, u64),
}

impl Latency {
    /// Parses `const:MS` or `uniform:A-B` (milliseconds).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("invalid latency {text:?}: use const:MS or uniform:A-B (milliseconds)");
        if let Some(ms) = text.strip_prefix("const:") {
            let ms: f64 = ms.parse().map_err(|_| bad())?;
            if ms < 0.0 {
                return Err(bad());
            }
            return Ok(Self::Const((ms * 1000.0) as u64));
        }
        if let Some(range) = text.strip_prefix("uniform:") {
            let (a, b) = range.split_once('-').ok_or_else(bad)?;
            let a: f64 = a.parse().map_err(|_| bad())?;
            let b: f64 = b.parse().map_err(|_| bad())?;
            if a < 0.0 || b < a {
                return Err(bad());
            }
            return Ok(Self::Uniform((a * 1000.0) as u64, (b * 1000.0) as u64));
        }
        Err(bad())
    }

    /// Human-readable form (the inverse of [`Latency::parse`]).
    pub fn describe(&self) -> String {
        match self {
            Self::Const(us) => format!("const:{}", fmt_ms(*us)),
            Self::Uniform(a, b) => format!("uniform:{}-{}", fmt_ms(*a), fmt_ms(*b)),
        }
    }
}

fn fmt_ms(us: u64) -> String {
    if us.is_multiple_of(1000) {
        format!("{}", us / 1000)
    } else {
        format!("{:.3}", us as f64 / 1000.0)
    }
}

/// FxHash-style hasher: fast and, unlike the std default, unseeded. The link table is never
/// iterated, so hashing cannot leak into output order either way.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
}

pub(crate) type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Open links and their delivery horizon.
pub(crate) struct Links {
    latency: Latency,
    seed: u64,
    loss: f64,
    /// (from, to) → the latest scheduled arrival on that direction, in µs. Present = open.
    open: FxMap<(u32, u32), u64>,
}

impl Links {
    pub(crate) fn new(latency: Latency, loss: f64, seed: u64) -> Self {
        Self { latency, seed, loss, open: FxMap::default() }
    }

    /// One-way latency of the link between `a` and `b`, in µs: a pure function of the seed
    /// and the unordered pair, so no per-link state is needed and both directions agree.
    pub(crate) fn latency_us(&self, a: u32, b: u32) -> u64 {
        match self.latency {
            Latency::Const(us) => us,
            Latency::Uniform(low, high) => {
                let (x, y) = if a < b { (a, b) } else { (b, a) };
                let mut rng = Rng::from_seed(self.seed ^ (u64::from(x) << 32 | u64::from(y)));
                rng.range_inclusive(low, high)
            }
        }
    }

    /// Arrival time of a message sent now on `from → to`, opening the link if needed.
    pub(crate) fn schedule(&mut self, now_us: u64, from: u32, to: u32, rng: &mut Rng) -> u64 {
        let one_way = self.latency_us(from, to);
        let mut delay = one_way;
        let horizon = match self.open.get(&(from, to)) {
            Some(h) => *h,
            None => {
                // QUIC handshake (1-RTT with one-packet Initials) before the first stream data.
                delay += 2 * one_way;
                0
            }
        };
        if self.loss > 0.0 {
            // Each loss costs one retransmission timeout (~3 one-way delays); QUIC never gives up
            // on a live path, so loss is delay, not drop.
            let mut attempts = 0;
            while attempts < 16 && rng.chance(self.loss) {
                delay += 3 * one_way.max(1000);
                attempts += 1;
            }
        }
        let arrival = (now_us + delay).max(horizon);
        self.open.insert((from, to), arrival);
        arrival
    }

    /// Forgets the link in both directions (closed, failed or idle-reaped).
    pub(crate) fn close(&mut self, a: u32, b: u32) {
        self.open.remove(&(a, b));
        self.open.remove(&(b, a));
    }

    /// Number of open link directions.
    pub(crate) fn open_count(&self) -> usize {
        self.open.len()
    }
}
