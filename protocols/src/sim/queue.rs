//! The simulator's event queue: a calendar queue with 1 ms buckets.
//!
//! Pop order is exactly ascending `(at_us, seq)`, the order a binary heap would give, so the
//! choice of structure never changes a replayed run. It exists for speed: nearly every event
//! lands within a minute of "now", so pushing is an append to a bucket and popping drains one
//! sorted bucket at a time, instead of O(log n) cache-missing sift steps over hundreds of
//! thousands of entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Bucket width, in µs.
const BUCKET_US: u64 = 1_000;
/// Buckets in the ring: 2^16 ms ≈ 65 s of horizon; later events wait in an overflow heap.
const BUCKET_COUNT: u64 = 1 << 16;

/// One queued event: its time, its tie-breaking sequence number, a payload slot and a hint
/// of what the event will touch (the driver's, for prefetching; `seq` is unique, so neither
/// `slot` nor `hint` ever decides the order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) at_us: u64,
    pub(crate) seq: u64,
    pub(crate) slot: u32,
    pub(crate) hint: u32,
}

/// Entries [`EventQueue::ahead`] can see: `current` is topped up from the next buckets
/// whenever it holds this many or fewer (within [`TOPUP_MS_MAX`]), so the driver's prefetch
/// distance is also covered across a millisecond boundary (otherwise the first events of
/// every bucket, about a fifth of them at 30,000 nodes, ran without their prefetch).
pub(crate) const LOOKAHEAD: usize = 8;

/// Furthest the top-up reaches past the next event, in ms. A push at or before `current_ms`
/// is a sorted insert into `current`, so `current_ms` must not run far ahead in a sparse run
/// (where a few events per millisecond fit in cache anyway and need no prefetch). Guess:
/// above the 10 ms one-way latency of the default scenarios, so dense runs are not cut short.
const TOPUP_MS_MAX: u64 = 16;

/// Buckets this close to `current_ms`, in ms, start from the recycled buffer (see
/// [`EventQueue::spare`]) when they receive their first entry. Guess: past the 10 ms one-way
/// latency of the default scenarios, where dense runs push nearly everything; far buckets
/// (timers seconds ahead) never hold a recycled buffer, so at most this many buffers are
/// parked in the ring at once.
const RECYCLE_MS_MAX: u64 = 16;

/// Room a bucket starts with, in entries (guess, checked at 10,000 and 100,000 nodes: a
/// timer's bucket seconds ahead holds one entry per node and period every millisecond, and
/// growing each from nothing by doubling cost three reallocations with copies, 3 % of a
/// simulated membership cycle's instructions).
const BUCKET_FIRST_CAPACITY: usize = 16;

/// Calendar queue. Invariant: every entry in `buckets` belongs to a millisecond after
/// `current_ms`; `current` holds the entries of `current_ms` and earlier, sorted descending
/// (so the next event is at the end); `overflow` holds entries beyond the ring's horizon.
/// `current_ms` may run up to [`TOPUP_MS_MAX`] ahead of the next event (see [`LOOKAHEAD`]).
pub(crate) struct EventQueue {
    buckets: Vec<Vec<Entry>>,
    current_ms: u64,
    current: Vec<Entry>,
    /// One empty buffer, the largest `current` left behind, handed to the next near bucket
    /// that receives its first entry. In a dense run (100,000 nodes: ~100 events per ms while
    /// shuffling, ~14,000 while broadcasting) every bucket otherwise grew from nothing by
    /// doubling and was freed after its millisecond: a malloc, a dozen reallocs with their
    /// copies and, for the large ones, fresh pages to zero, every millisecond.
    spare: Vec<Entry>,
    /// The radix sort's intermediate buffer (see [`sort_descending`]): empty between loads,
    /// its capacity that of the largest bucket sorted so far.
    scratch: Vec<Entry>,
    overflow: BinaryHeap<Reverse<Entry>>,
    len: usize,
}

impl EventQueue {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKET_COUNT).map(|_| Vec::new()).collect(),
            current_ms: 0,
            current: Vec::new(),
            spare: Vec::new(),
            scratch: Vec::new(),
            overflow: BinaryHeap::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push(&mut self, entry: Entry) {
        self.len += 1;
        let ms = entry.at_us / BUCKET_US;
        if ms <= self.current_ms {
            // Keep `current` sorted descending: insert before every greater entry.
            let index = self.current.partition_point(|e| *e > entry);
            self.current.insert(index, entry);
        } else if ms < self.current_ms + BUCKET_COUNT {
            let bucket = &mut self.buckets[(ms % BUCKET_COUNT) as usize];
            if bucket.capacity() == 0 {
                if ms <= self.current_ms + RECYCLE_MS_MAX {
                    *bucket = std::mem::take(&mut self.spare);
                }
                bucket.reserve(BUCKET_FIRST_CAPACITY);
            }
            bucket.push(entry);
        } else {
            self.overflow.push(Reverse(entry));
        }
    }

    /// The next entry without removing it.
    #[inline]
    pub(crate) fn peek(&mut self) -> Option<Entry> {
        self.ensure_loaded()?;
        self.current.last().copied()
    }

    /// The entry that [`EventQueue::pop`] will return after `n` further pops, if it is already
    /// sorted into `current` (always, for `n < LOOKAHEAD`, unless fewer are queued within
    /// [`TOPUP_MS_MAX`] of the next event). A hint for prefetching: never changes the order.
    pub(crate) fn ahead(&self, n: usize) -> Option<&Entry> {
        self.current.len().checked_sub(n + 1).map(|i| &self.current[i])
    }

    /// Removes and returns the next entry.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        self.ensure_loaded()?;
        self.len -= 1;
        self.current.pop()
    }

    /// [`EventQueue::load_next`] unless enough entries are sorted ahead already: the common
    /// case, nearly every pop of a dense run, without a call. `None` when the queue is empty.
    #[inline]
    fn ensure_loaded(&mut self) -> Option<()> {
        if self.current.len() <= LOOKAHEAD {
            self.load_next()?;
        }
        Some(())
    }

    /// Makes `current` non-empty if any entry is queued, and tops it up to more than
    /// [`LOOKAHEAD`] entries from the buckets that follow. Returns `None` when empty.
    #[inline(never)]
    fn load_next(&mut self) -> Option<()> {
        // Each pass takes the next millisecond's bucket: the loop ends when `current` is
        // long enough, reaches `TOPUP_MS_MAX` past the next event, or the ring is empty (every
        // bucket is visited once per lap of `current_ms`, so the scanning over a whole run is
        // bounded by its virtual time).
        while self.current.len() <= LOOKAHEAD {
            if let Some(next) = self.current.last() {
                if self.buckets_empty() || self.current_ms >= next.at_us / BUCKET_US + TOPUP_MS_MAX
                {
                    break;
                }
            } else if self.buckets_empty() {
                // Only far-future entries are left: jump straight to the earliest one.
                let Reverse(next) = *self.overflow.peek()?;
                self.current_ms = next.at_us / BUCKET_US - 1;
            }
            self.current_ms += 1;
            self.pull_overflow();
            let bucket = &mut self.buckets[(self.current_ms % BUCKET_COUNT) as usize];
            if !bucket.is_empty() {
                // Take, don't swap: a swap would park the drained vector's capacity in this
                // slot, and over the whole ring that capacity adds up to hundreds of MB.
                let mut later = std::mem::take(bucket);
                sort_descending(&mut later, &mut self.scratch);
                // Every entry of the new millisecond comes after every entry already in
                // `current`: descending order puts them first.
                later.extend_from_slice(&self.current);
                let mut drained = std::mem::replace(&mut self.current, later);
                if drained.capacity() > self.spare.capacity() {
                    drained.clear();
                    self.spare = drained;
                }
            }
        }
        (!self.current.is_empty()).then_some(())
    }

    /// Moves overflow entries that entered the ring's horizon into their buckets.
    fn pull_overflow(&mut self) {
        while let Some(Reverse(next)) = self.overflow.peek() {
            let ms = next.at_us / BUCKET_US;
            if ms >= self.current_ms + BUCKET_COUNT {
                break;
            }
            let Some(Reverse(entry)) = self.overflow.pop() else { break };
            if ms <= self.current_ms {
                let index = self.current.partition_point(|e| *e > entry);
                self.current.insert(index, entry);
            } else {
                self.buckets[(ms % BUCKET_COUNT) as usize].push(entry);
            }
        }
    }

    fn buckets_empty(&self) -> bool {
        self.len == self.overflow.len() + self.current.len()
    }
}

/// Buckets at least this long may be radix-sorted (guess, between the ≈ 10–20 entries per
/// millisecond of a 10,000-node run while shuffling, which insertion sort handles cheaply,
/// and the ≈ 100 of a 100,000-node run, where it did not).
const RADIX_LEN_MIN: usize = 48;

/// Buckets whose ascending runs are this long or longer on average are merged by the
/// comparison sort instead. Measured (a temporary census at 10,000 nodes): runs average ≈ 4
/// entries while shuffling and thousands while broadcasting, so any cut between separates
/// them.
const RADIX_RUN_LEN_MAX: usize = 16;

/// Radix digits: the µs within a bucket's millisecond (below [`BUCKET_US`] = 1,000 < 2^10)
/// in two 5-bit digits.
const DIGIT_BITS: u32 = 5;
const DIGITS: usize = 1 << DIGIT_BITS;
const _: () = assert!(BUCKET_US <= 1 << (2 * DIGIT_BITS));

/// Sorts `bucket` descending by `(at_us, seq)`, the order of `current`. `bucket` holds one
/// millisecond; `scratch` is left empty (its capacity kept).
///
/// A bucket interleaves several ascending runs (the one-way latency, each timer period, the
/// handshake delay). Entries of one bucket with the same `at_us` are in `seq` order already
/// (a bucket is appended to in `seq` order, after the overflow entries moved in when it
/// entered the ring, which are older and arrive sorted), so a stable sort on the µs within
/// the millisecond alone gives the exact order: two counting passes of [`DIGIT_BITS`] bits,
/// for buckets of many short runs (at 100,000 nodes, ≈ 100 entries per millisecond while
/// shuffling, runs of ≈ 4: the comparison sort took ≈ 4 % of the run).
fn sort_descending(bucket: &mut [Entry], scratch: &mut Vec<Entry>) {
    // Broadcast waves make long runs (≈ 14,000 entries per millisecond in runs of thousands
    // at 100,000 nodes), which the stable sort merges in about one pass; short buckets sort
    // fastest by insertion. Keys are unique (`seq`), so every path gives the same order.
    let long_runs = || {
        // Within one bucket, a later-pushed entry's `at_us` below its predecessor's starts a
        // run (`seq` only ever grows along the bucket).
        let runs = 1 + bucket.windows(2).filter(|w| w[0].at_us > w[1].at_us).count();
        runs * RADIX_RUN_LEN_MAX < bucket.len()
    };
    if bucket.len() < RADIX_LEN_MIN || long_runs() {
        bucket.sort_by(|a, b| b.cmp(a));
        return;
    }
    let base_us = bucket[0].at_us / BUCKET_US * BUCKET_US;
    let micros = |e: &Entry| {
        debug_assert_eq!(e.at_us / BUCKET_US * BUCKET_US, base_us, "one millisecond per bucket");
        (e.at_us - base_us) as usize
    };
    let mask = DIGITS - 1;
    let mut low = [0usize; DIGITS];
    let mut high = [0usize; DIGITS];
    for e in bucket.iter() {
        let us = micros(e);
        low[us & mask] += 1;
        high[us >> DIGIT_BITS & mask] += 1;
    }
    // Exclusive prefix sums: where each digit's entries start, ascending.
    let starts = |counts: &mut [usize; DIGITS]| {
        let mut sum = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = sum;
            sum += n;
        }
    };
    starts(&mut low);
    starts(&mut high);
    // Pass 1, stable by the low digit, into `scratch`.
    scratch.clear();
    scratch.resize(bucket.len(), bucket[0]);
    for e in bucket.iter() {
        let d = micros(e) & mask;
        scratch[low[d]] = *e;
        low[d] += 1;
    }
    // Pass 2, stable by the high digit: ascending rank r lands at `len - 1 - r`, which makes
    // the order descending (equal keys, kept ascending by `seq`, end up descending too).
    let last = bucket.len() - 1;
    for e in scratch.iter() {
        let d = micros(e) >> DIGIT_BITS & mask;
        bucket[last - high[d]] = *e;
        high[d] += 1;
    }
    scratch.clear();
    debug_assert!(bucket.is_sorted_by(|a, b| a > b), "radix order is the entries' order");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The queue under test beside a binary heap, the order it must reproduce.
    struct Checked {
        q: EventQueue,
        reference: BinaryHeap<Reverse<Entry>>,
    }

    impl Checked {
        fn new() -> Self {
            Self { q: EventQueue::new(), reference: BinaryHeap::new() }
        }

        fn push(&mut self, e: Entry) {
            self.q.push(e);
            self.reference.push(Reverse(e));
        }

        /// Pops both, asserting they agree.
        fn pop(&mut self) -> Option<Entry> {
            let got = self.q.pop();
            assert_eq!(got, self.reference.pop().map(|Reverse(e)| e));
            assert_eq!(self.q.len(), self.reference.len());
            got
        }

        /// Pops everything left, peeking first; returns how many.
        fn drain(&mut self) -> usize {
            let mut popped = 0;
            while let Some(Reverse(want)) = self.reference.peek().copied() {
                assert_eq!(self.q.peek(), Some(want));
                assert_eq!(self.pop(), Some(want));
                popped += 1;
            }
            assert_eq!(self.q.pop(), None);
            popped
        }
    }

    #[test]
    fn pops_in_exact_time_then_sequence_order() {
        let mut rng = Rng::from_seed(9);
        let mut c = Checked::new();
        let mut now = 0u64;
        for round in 0..20_000u64 {
            let seq = round + 1;
            // Mix of near, same-millisecond, far (beyond the horizon) and equal times.
            let delay = match rng.below(5) {
                0 => 0,
                1 => rng.below(1_000),
                2 => rng.below(60_000_000),
                3 => 70_000_000 + rng.below(200_000_000),
                _ => 10_000,
            };
            c.push(Entry { at_us: now + delay, seq, slot: round as u32, hint: 0 });
            if rng.chance(0.5) {
                if round % 64 == 0 {
                    // `ahead(n)` is the entry `n` pops later, whenever it is already known.
                    let mut sorted = c.reference.clone().into_sorted_vec();
                    sorted.reverse();
                    for n in 0..3 {
                        if let Some(e) = c.q.ahead(n + 1) {
                            assert_eq!(Some(e), sorted.get(n + 1).map(|Reverse(e)| e));
                        }
                    }
                }
                if let Some(e) = c.pop() {
                    now = e.at_us;
                }
            }
        }
        c.drain();
    }

    #[test]
    fn dense_buckets_pop_in_exact_order() {
        // Hundreds of entries per millisecond (the radix path), interleaving several delays,
        // many with the same µs (ties decided by `seq`), some parked in the overflow heap
        // until their millisecond enters the ring, and some pushed into the millisecond being
        // popped.
        let mut rng = Rng::from_seed(11);
        let mut c = Checked::new();
        let mut now = 0u64;
        let mut seq = 0u64;
        let mut popped = 0usize;
        for _ in 0..200 {
            for _ in 0..rng.below(600) {
                seq += 1;
                let delay = match rng.below(6) {
                    0 => 10_000 + 250 * rng.below(3),
                    1 => 30_000,
                    2 => 10_000_000,
                    3 => 65_536_000 + rng.below(3_000),
                    4 => rng.below(3_000),
                    _ => 10_000 + rng.below(1_000),
                };
                c.push(Entry { at_us: now + delay, seq, slot: 0, hint: 0 });
            }
            for _ in 0..rng.below(800) {
                let Some(e) = c.pop() else { break };
                now = e.at_us;
                popped += 1;
            }
        }
        popped += c.drain();
        assert!(popped > 50_000, "the run exercised the queue ({popped} pops)");
        assert!(c.q.scratch.capacity() >= RADIX_LEN_MIN, "some bucket was radix-sorted");
    }

    #[test]
    fn ahead_sees_past_the_current_millisecond() {
        // One event per millisecond: the prefetch distance spans several buckets.
        let mut q = EventQueue::new();
        for ms in 1..=20u64 {
            q.push(Entry { at_us: ms * BUCKET_US + 7, seq: ms, slot: 0, hint: 0 });
        }
        for popped in 1..=12u64 {
            assert_eq!(q.pop().map(|e| e.seq), Some(popped));
            let ahead = q.ahead(LOOKAHEAD - 1).map(|e| e.seq);
            let expected = popped + LOOKAHEAD as u64;
            assert_eq!(ahead, (expected <= 20).then_some(expected), "after pop {popped}");
        }
    }
}
