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

/// Open directions a node keeps inline (its active view is 5, plus the odd temporary shuffle
/// link or pending request); the ones used longest ago spill into a map.
const INLINE_LINKS: usize = 8;

/// One node's open directions: the peers and, for each, the latest scheduled arrival on that
/// direction in µs. Two cache lines at a fixed place per node, prefetched with the node.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct OutLinks {
    to: [u32; INLINE_LINKS],
    horizon_us: [u64; INLINE_LINKS],
    /// Entries of `to`/`horizon_us` in use.
    len: u8,
    /// This node's directions in [`Links::spill`].
    spilled: u32,
    /// A one-hash Bloom filter of the peers this node's spilled directions lead to
    /// ([`spill_bit`]; cleared when `spilled` drops to 0). Most lookups of a direction that is
    /// not inline are for one that does not exist at all (the far end of a shuffle reply's
    /// temporary link never sent on it), and each cost a miss in the cluster-wide map:
    /// two thirds of `Links::close` at 100,000 nodes.
    spilled_to: u64,
}

impl Default for OutLinks {
    fn default() -> Self {
        Self {
            to: [0; INLINE_LINKS],
            horizon_us: [0; INLINE_LINKS],
            len: 0,
            spilled: 0,
            spilled_to: 0,
        }
    }
}

impl OutLinks {
    /// Whether a direction to `to` may be in the spill map (false: certainly not).
    fn may_have_spilled(&self, to: u32) -> bool {
        self.spilled > 0 && self.spilled_to & spill_bit(to) != 0
    }

    /// Counts one direction fewer in the spill map.
    fn unspill(&mut self) {
        self.spilled -= 1;
        if self.spilled == 0 {
            self.spilled_to = 0;
        }
    }
}

/// The bit of [`OutLinks::spilled_to`] for a direction to `to` (Fibonacci hashing: the top 6
/// bits of the product spread consecutive indices).
fn spill_bit(to: u32) -> u64 {
    1 << (u64::from(to).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58)
}

/// Open links and their delivery horizon.
///
/// Kept per sending node rather than in one map keyed by pair: a lookup scans at most
/// [`INLINE_LINKS`] entries at a fixed place the simulator prefetches with the node, where a
/// cluster-wide hash table cost two cache misses per message at 100,000 nodes (≈ 11 % of the
/// run), and a list on the heap one more dependent miss. Each direction is in exactly one
/// place: inline, or in `spill`.
pub(crate) struct Links {
    latency: Latency,
    seed: u64,
    loss: f64,
    /// `open[from]`: the open directions from `from`, in no particular order (never iterated
    /// into output). Present = open.
    open: Vec<OutLinks>,
    /// Directions beyond a node's inline ones, by (from, to). Bound: one entry per ordered
    /// pair of nodes that ever exchanged a message and never closed the link (the simulator
    /// does not model the idle GC; docs/SIMULATION.md), freed with the run.
    spill: FxMap<(u32, u32), u64>,
}

impl Links {
    pub(crate) fn new(latency: Latency, loss: f64, seed: u64) -> Self {
        Self { latency, seed, loss, open: Vec::new(), spill: FxMap::default() }
    }

    /// Makes room for the directions of `nodes` senders (see `Network::reserve`).
    pub(crate) fn reserve(&mut self, nodes: usize) {
        self.open.reserve_exact(nodes.saturating_sub(self.open.len()));
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
        if self.open.len() <= from as usize {
            self.grow(from);
        }
        let links = &mut self.open[from as usize];
        let inline = links.to[..usize::from(links.len)].iter().position(|t| *t == to);
        let horizon_us = match inline {
            Some(i) => Some(links.horizon_us[i]),
            // Only nodes that spilled look in the map; a direction found there moves back
            // inline below (it is in use again).
            None if links.may_have_spilled(to) => {
                let spilled = self.spill.remove(&(from, to));
                if spilled.is_some() {
                    links.unspill();
                }
                spilled
            }
            None => None,
        };
        if horizon_us.is_none() {
            // QUIC handshake (1-RTT with one-packet Initials) before the first stream data.
            delay += 2 * one_way;
        }
        if self.loss > 0.0 {
            // Each loss costs one retransmission timeout (~3 one-way delays); QUIC never gives up
            // on a live path, so loss is delay, not drop.
            let mut attempts = 0;
            while attempts < 16 && rng.chance(self.loss) {
                delay += 3 * one_way.max(1000);
                attempts += 1;
            }
        }
        let arrival = (now_us + delay).max(horizon_us.unwrap_or(0));
        match inline {
            Some(i) => self.open[from as usize].horizon_us[i] = arrival,
            None => self.place(from, to, arrival),
        }
        arrival
    }

    /// Makes room for the links of node `from` (the first message a new node sends). Out of
    /// line: building the 64-byte-aligned default made every caller realign its stack frame,
    /// and `schedule` runs for every message.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, from: u32) {
        self.open.resize_with(from as usize + 1, OutLinks::default);
    }

    /// Puts `from → to` inline; when the inline places are full, the one used longest ago
    /// (the earliest horizon) moves to the spill map. The simulator never closes links a GC
    /// would reap, so a node collects stale directions (16 on average after 50 cycles at
    /// 20,000 nodes); this keeps the ones in use inline.
    fn place(&mut self, from: u32, to: u32, horizon_us: u64) {
        let links = &mut self.open[from as usize];
        let len = usize::from(links.len);
        if len < INLINE_LINKS {
            links.to[len] = to;
            links.horizon_us[len] = horizon_us;
            links.len += 1;
            return;
        }
        let mut stalest = 0;
        for i in 1..INLINE_LINKS {
            if links.horizon_us[i] < links.horizon_us[stalest] {
                stalest = i;
            }
        }
        self.spill.insert((from, links.to[stalest]), links.horizon_us[stalest]);
        links.spilled += 1;
        links.spilled_to |= spill_bit(links.to[stalest]);
        links.to[stalest] = to;
        links.horizon_us[stalest] = horizon_us;
    }

    /// Forgets the link in both directions (closed, failed or idle-reaped).
    pub(crate) fn close(&mut self, a: u32, b: u32) {
        self.forget(a, b);
        self.forget(b, a);
    }

    fn forget(&mut self, from: u32, to: u32) {
        let Some(links) = self.open.get_mut(from as usize) else { return };
        let len = usize::from(links.len);
        if let Some(i) = links.to[..len].iter().position(|t| *t == to) {
            links.to[i] = links.to[len - 1];
            links.horizon_us[i] = links.horizon_us[len - 1];
            links.len -= 1;
        } else if links.may_have_spilled(to) && self.spill.remove(&(from, to)).is_some() {
            links.unspill();
        }
    }

    /// Where `from`'s open directions are, and their size in bytes (a prefetch hint).
    pub(crate) fn list(&self, from: u32) -> (*const u8, usize) {
        (self.open.as_ptr().wrapping_add(from as usize).cast(), size_of::<OutLinks>())
    }

    /// Number of open link directions (a full pass: for accounting, not for the event loop).
    pub(crate) fn open_count(&self) -> usize {
        self.open.iter().map(|links| usize::from(links.len)).sum::<usize>() + self.spill.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::{prop, prop_assert_eq, proptest};

    use super::*;

    proptest! {
        /// Inline places, spilling and the spill filter never change an arrival: the same
        /// operations on a plain map of open directions give the same times. Few senders and
        /// many receivers, so directions spill and the filter's 64 bits fill up.
        #[test]
        fn arrivals_equal_a_plain_map_of_directions(
            ops in prop::collection::vec((0u32..3, 0u32..150, prop::bool::weighted(0.2)), 1..600),
        ) {
            const ONE_WAY_US: u64 = 1_000;
            let mut links = Links::new(Latency::Const(ONE_WAY_US), 0.0, 1);
            let mut rng = Rng::from_seed(1);
            let mut open: BTreeMap<(u32, u32), u64> = BTreeMap::new();
            for (now_us, (from, to, close)) in ops.into_iter().enumerate() {
                let now_us = now_us as u64 * 100;
                if close {
                    links.close(to, from);
                    open.remove(&(from, to));
                    open.remove(&(to, from));
                    continue;
                }
                let horizon = open.get(&(from, to)).copied();
                let handshake = if horizon.is_none() { 2 * ONE_WAY_US } else { 0 };
                let want = (now_us + ONE_WAY_US + handshake).max(horizon.unwrap_or(0));
                open.insert((from, to), want);
                prop_assert_eq!(links.schedule(now_us, from, to, &mut rng), want);
            }
            prop_assert_eq!(links.open_count(), open.len());
        }
    }

    #[test]
    fn first_message_pays_the_handshake_then_order_is_kept_per_direction() {
        let mut links = Links::new(Latency::Const(10_000), 0.0, 1);
        let mut rng = Rng::from_seed(1);
        // New link: handshake (2 one-way delays) + the message's own delay.
        assert_eq!(links.schedule(0, 1, 2, &mut rng), 30_000);
        assert_eq!(links.open_count(), 1);
        // Open link: one delay, but never before the previous arrival on the same direction.
        assert_eq!(links.schedule(1_000, 1, 2, &mut rng), 30_000);
        assert_eq!(links.schedule(25_000, 1, 2, &mut rng), 35_000);
        // The other direction is a link of its own.
        assert_eq!(links.schedule(0, 2, 1, &mut rng), 30_000);
        assert_eq!(links.open_count(), 2);
    }

    #[test]
    fn close_forgets_both_directions_and_the_next_message_pays_again() {
        let mut links = Links::new(Latency::Const(5_000), 0.0, 1);
        let mut rng = Rng::from_seed(1);
        links.schedule(0, 7, 3, &mut rng);
        links.schedule(0, 3, 7, &mut rng);
        links.schedule(0, 7, 4, &mut rng);
        links.close(3, 7);
        assert_eq!(links.open_count(), 1);
        assert_eq!(links.schedule(100_000, 7, 3, &mut rng), 115_000);
        assert_eq!(links.schedule(100_000, 7, 4, &mut rng), 105_000);
        // Closing an unknown link or node is a no-op.
        links.close(50, 60);
        assert_eq!(links.open_count(), 2);
    }

    #[test]
    fn directions_beyond_the_inline_ones_spill_and_keep_their_horizon() {
        let mut links = Links::new(Latency::Const(1_000), 0.0, 1);
        let mut rng = Rng::from_seed(1);
        let peers = 1..=(INLINE_LINKS as u32 + 4);
        for to in peers.clone() {
            assert_eq!(links.schedule(0, 0, to, &mut rng), 3_000, "new link to {to}");
        }
        assert_eq!(links.open_count(), INLINE_LINKS + 4);
        // Every direction, inline or spilled, is open and keeps its horizon.
        for to in peers.clone() {
            assert_eq!(links.schedule(500, 0, to, &mut rng), 3_000, "open link to {to}");
        }
        // Close an inline one and a spilled one; both pay the handshake again, and a new
        // direction takes the freed inline place without disturbing the spilled ones.
        links.close(0, 1);
        links.close(0, INLINE_LINKS as u32 + 2);
        assert_eq!(links.open_count(), INLINE_LINKS + 2);
        assert_eq!(links.schedule(10_000, 0, 1, &mut rng), 13_000);
        assert_eq!(links.schedule(10_000, 0, INLINE_LINKS as u32 + 2, &mut rng), 13_000);
        assert_eq!(links.schedule(10_000, 0, INLINE_LINKS as u32 + 4, &mut rng), 11_000);
        assert_eq!(links.open_count(), INLINE_LINKS + 4);
        for to in peers {
            links.close(to, 0);
        }
        assert_eq!(links.open_count(), 0);
        assert!(links.spill.is_empty());
    }
}
