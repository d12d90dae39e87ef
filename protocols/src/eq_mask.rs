//! Which entries of a short list equal a value, as a bitmask: the inner loop of integrating a
//! shuffle into the passive view (every peer of a walk's sample is looked up in the view and
//! tested against the active view and the sample just sent away, and every entry of the view
//! is tested against that sample), and of looking up a message in a small Plumtree cache by
//! its fingerprint.
//!
//! Scalar, one compare and shift per entry, that loop was about a quarter of the instructions
//! of a simulated membership cycle. For 4-byte peers (the simulator's) the comparisons run on
//! SSE2, which every x86-64 CPU has: sixteen entries per movemask, and a list whose length is
//! not a multiple of the block size ends with one more block that overlaps the previous one
//! (a 30-entry view takes two blocks instead of seven four-entry chunks and a scalar tail).
//! Any other peer type, or another architecture, takes the scalar loop. Both give the same
//! bits.

use std::any::{Any, TypeId};

use crate::PeerId;

/// Longest list [`equal_mask`] covers: one bit per entry in a `u64`.
pub(crate) const LEN_MAX: usize = 64;

/// Bit i set where `items[i] == *target`. `items` holds at most [`LEN_MAX`] entries.
#[inline(always)]
pub(crate) fn equal_mask<P: PeerId>(items: &[P], target: &P) -> u64 {
    debug_assert!(items.len() <= LEN_MAX, "equal_mask covers at most 64 entries");
    #[cfg(target_arch = "x86_64")]
    if let Some(target) = (target as &dyn Any).downcast_ref::<u32>() {
        // The type test is decided at compile time for each `P`.
        return equal_mask_u32(as_u32s(items), *target);
    }
    scalar(items, target)
}

/// Whether `items` (any length) holds `target`.
#[inline]
pub(crate) fn contains<P: PeerId>(items: &[P], target: &P) -> bool {
    if items.len() <= LEN_MAX {
        return equal_mask(items, target) != 0;
    }
    items.iter().any(|p| p == target)
}

/// Longest list a [`ShortList`] loads into registers.
const SHORT_LEN_MAX: usize = 8;

/// A short list tested for membership against many values in a row (the active view and the
/// sample just sent, against every peer of a received shuffle sample): for 4-byte peers and
/// up to [`SHORT_LEN_MAX`] entries the list is loaded once into two SSE2 registers, so a
/// test is a broadcast, two compares and one movemask, inline. Calling [`contains`] for
/// each value instead reloaded the list, dispatched on its length and returned a mask
/// nobody needed as a number: ≈ 21 instructions per test, 15.9 M tests in a 10,000-node
/// run.
pub(crate) struct ShortList<'a, P> {
    items: &'a [P],
    #[cfg(target_arch = "x86_64")]
    blocks: Option<[std::arch::x86_64::__m128i; 2]>,
}

impl<'a, P: PeerId> ShortList<'a, P> {
    /// Prepares `items` (any length; only short lists of `u32` take the register path).
    #[inline(always)]
    pub(crate) fn new(items: &'a [P]) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            // The type test is decided at compile time for each `P`.
            let short_u32s = (1..=SHORT_LEN_MAX).contains(&items.len())
                && TypeId::of::<P>() == TypeId::of::<u32>();
            let blocks = short_u32s.then(|| load_short(as_u32s(items)));
            Self { items, blocks }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self { items }
    }

    /// Whether the list holds `target`.
    #[inline(always)]
    pub(crate) fn contains(&self, target: &P) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let (Some(blocks), Some(target)) =
            (&self.blocks, (target as &dyn Any).downcast_ref::<u32>())
        {
            return short_contains(blocks, *target);
        }
        contains(self.items, target)
    }
}

/// `items` (1 to [`SHORT_LEN_MAX`] entries) in two registers, padded with copies of its first
/// entry: a copy matches exactly when the first entry does, so padding never adds a match.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn load_short(items: &[u32]) -> [std::arch::x86_64::__m128i; 2] {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128};
    debug_assert!((1..=SHORT_LEN_MAX).contains(&items.len()));
    let mut padded = [items[0]; SHORT_LEN_MAX];
    padded[..items.len()].copy_from_slice(items);
    // SAFETY: SSE2 is part of the x86-64 baseline; each load reads 4 of `padded`'s 8 entries
    // (unaligned loads need no alignment).
    unsafe {
        [
            _mm_loadu_si128(padded.as_ptr().cast::<__m128i>()),
            _mm_loadu_si128(padded[4..].as_ptr().cast::<__m128i>()),
        ]
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn short_contains(blocks: &[std::arch::x86_64::__m128i; 2], target: u32) -> bool {
    use std::arch::x86_64::{_mm_cmpeq_epi32, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi32};
    // SAFETY: SSE2 is part of the x86-64 baseline; register operations only.
    unsafe {
        let wanted = _mm_set1_epi32(target as i32);
        let equal =
            _mm_or_si128(_mm_cmpeq_epi32(blocks[0], wanted), _mm_cmpeq_epi32(blocks[1], wanted));
        _mm_movemask_epi8(equal) != 0
    }
}

fn scalar<P: PartialEq>(items: &[P], target: &P) -> u64 {
    items.iter().enumerate().fold(0, |bits, (i, p)| bits | u64::from(p == target) << i)
}

/// `items` as the `u32`s they are.
///
/// # Panics
/// If `P` is not `u32` (callers test the type first; the test then compiles away).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn as_u32s<P: PeerId>(items: &[P]) -> &[u32] {
    assert!(TypeId::of::<P>() == TypeId::of::<u32>(), "as_u32s on a peer type that is not u32");
    // SAFETY: `P` is `u32` (asserted just above), so the slice's pointer and length describe
    // the same, initialised `u32`s for the same lifetime.
    unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u32>(), items.len()) }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn equal_mask_u32(items: &[u32], target: u32) -> u64 {
    use std::arch::x86_64::_mm_set1_epi32;
    let len = items.len();
    // SAFETY: SSE2 is part of the x86-64 baseline, so this instruction exists on every CPU
    // this code runs on.
    let wanted = unsafe { _mm_set1_epi32(target as i32) };
    if len >= 16 {
        by_blocks::<16>(items, wanted)
    } else if len >= 4 {
        by_blocks::<4>(items, wanted)
    } else {
        scalar(items, &target)
    }
}

/// Bit k set where entry i + k of `items` equals `wanted`'s lanes, k < `WIDTH` (16 or 4).
/// Inlined everywhere: written as closures handed to [`by_blocks`], the block code was left
/// out of line, a call per block.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn block<const WIDTH: usize>(items: &[u32], i: usize, wanted: std::arch::x86_64::__m128i) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_movemask_ps, _mm_packs_epi16, _mm_packs_epi32,
    };
    const { assert!(WIDTH == 16 || WIDTH == 4) };
    assert!(i + WIDTH <= items.len(), "a block lies inside the list");
    let at = |k: usize| items[i + k..].as_ptr().cast::<__m128i>();
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on every CPU
    // this code runs on; the loads read entries i..i + WIDTH, inside `items` (asserted
    // above; unaligned loads need no alignment).
    unsafe {
        if WIDTH == 4 {
            let equal = _mm_cmpeq_epi32(_mm_loadu_si128(at(0)), wanted);
            return u64::from(_mm_movemask_ps(_mm_castsi128_ps(equal)) as u8);
        }
        // The compare results (all ones or zero per lane) narrow without loss through the
        // saturating packs, in entry order.
        let a = _mm_cmpeq_epi32(_mm_loadu_si128(at(0)), wanted);
        let b = _mm_cmpeq_epi32(_mm_loadu_si128(at(4)), wanted);
        let c = _mm_cmpeq_epi32(_mm_loadu_si128(at(8)), wanted);
        let d = _mm_cmpeq_epi32(_mm_loadu_si128(at(12)), wanted);
        let bytes = _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
        u64::from(_mm_movemask_epi8(bytes) as u16)
    }
}

/// The mask of `items` (at least `WIDTH` of them) from blocks of `WIDTH` entries.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn by_blocks<const WIDTH: usize>(items: &[u32], wanted: std::arch::x86_64::__m128i) -> u64 {
    let len = items.len();
    debug_assert!(len >= WIDTH);
    let block = |i: usize| block::<WIDTH>(items, i, wanted);
    if len <= 2 * WIDTH {
        // The common case (a 30-entry passive view, an 8-peer sample, a 5-peer active view):
        // the first block and the one ending at the last entry, no loop.
        let start = len - WIDTH;
        return block(0) | block(start) << start;
    }
    let mut bits = 0;
    let mut i = 0;
    while i + WIDTH <= len {
        bits |= block(i) << i;
        i += WIDTH;
    }
    if i < len {
        // The last block ends at the last entry: it overlaps the previous one, whose bits
        // it sets again to the same values.
        let start = len - WIDTH;
        bits |= block(start) << start;
    }
    bits
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop, prop_assert_eq, proptest};

    use super::*;

    proptest! {
        /// The SSE2 path gives the scalar loop's bits, at every length up to 64 and with
        /// duplicates (values drawn from a small range).
        #[test]
        fn fast_path_equals_the_scalar_loop(
            items in prop::collection::vec(0u32..12, 0..=64),
            target in 0u32..12,
        ) {
            prop_assert_eq!(equal_mask(&items, &target), scalar(&items, &target));
        }
    }

    proptest! {
        /// `contains` is the slice's own `contains`, at every length up to 64 and past it,
        /// for the SSE2 path and the scalar one.
        #[test]
        fn contains_equals_the_slice_method(
            items in prop::collection::vec(0u32..40, 0..=150),
            target in 0u32..40,
        ) {
            prop_assert_eq!(contains(&items, &target), items.contains(&target));
            let wide: Vec<u64> = items.iter().map(|i| u64::from(*i)).collect();
            let target = u64::from(target);
            prop_assert_eq!(contains(&wide, &target), wide.contains(&target));
        }
    }

    proptest! {
        /// A prepared list answers as the slice's own `contains`, for every length around
        /// the register path's bound (the padding never matches on its own), on the `u32`
        /// path and the generic one.
        #[test]
        fn short_list_contains_equals_the_slice_method(
            items in prop::collection::vec(0u32..12, 0..=SHORT_LEN_MAX + 3),
            targets in prop::collection::vec(0u32..12, 1..20),
        ) {
            let list = ShortList::new(&items);
            let wide: Vec<u64> = items.iter().map(|i| u64::from(*i)).collect();
            let wide_list = ShortList::new(&wide);
            for target in &targets {
                prop_assert_eq!(list.contains(target), items.contains(target));
                let target = u64::from(*target);
                prop_assert_eq!(wide_list.contains(&target), wide.contains(&target));
            }
        }
    }

    #[test]
    fn other_peer_types_take_the_scalar_loop() {
        let items: Vec<u64> = vec![3, 1, 3, 7, 3];
        assert_eq!(equal_mask(&items, &3), 0b10101);
        let names: Vec<String> = ["a", "b", "a"].iter().map(|s| (*s).to_string()).collect();
        assert_eq!(equal_mask(&names, &"a".to_string()), 0b101);
    }

    #[test]
    fn bits_follow_positions() {
        let items: Vec<u32> = (0..64).map(|i| i % 5).collect();
        let bits = equal_mask(&items, &4);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(bits >> i & 1 == 1, *item == 4, "entry {i}");
        }
    }
}
