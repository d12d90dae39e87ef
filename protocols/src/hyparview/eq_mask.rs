//! Which entries of a short list equal a peer, as a bitmask: the inner loop of integrating a
//! shuffle into the passive view (every peer of a walk's sample is looked up in the view, and
//! every entry of the view is tested against the peers just sent away).
//!
//! Scalar, one compare and shift per entry, that loop was about a quarter of the instructions
//! of a simulated membership cycle. For 4-byte peers (the simulator's) the comparisons run
//! four at a time on SSE2, which every x86-64 CPU has; any other peer type, or another
//! architecture, takes the scalar loop. Both give the same bits.

use std::any::Any;

use crate::PeerId;

/// Bit i set where `items[i] == *target`. `items` holds at most 64 entries.
#[allow(clippy::ptr_arg)] // A `Vec` can be tested for its element type; a slice cannot.
pub(super) fn equal_mask<P: PeerId>(items: &Vec<P>, target: &P) -> u64 {
    debug_assert!(items.len() <= 64, "equal_mask covers at most 64 entries");
    #[cfg(target_arch = "x86_64")]
    if let (Some(items), Some(target)) =
        ((items as &dyn Any).downcast_ref::<Vec<u32>>(), (target as &dyn Any).downcast_ref::<u32>())
    {
        // The type test is decided at compile time for each `P`.
        return equal_mask_u32(items, *target);
    }
    scalar(items, target)
}

fn scalar<P: PartialEq>(items: &[P], target: &P) -> u64 {
    items.iter().enumerate().fold(0, |bits, (i, p)| bits | u64::from(p == target) << i)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn equal_mask_u32(items: &[u32], target: u32) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps,
        _mm_set1_epi32,
    };
    let chunks = items.chunks_exact(4);
    let rest = chunks.remainder();
    let mut bits = 0u64;
    // SAFETY: SSE2 is part of the x86-64 baseline, so these instructions exist on every CPU
    // this code runs on; each load reads the 16 bytes of one 4-entry chunk, inside `items`
    // (unaligned loads need no alignment).
    unsafe {
        let wanted = _mm_set1_epi32(target as i32);
        for (k, chunk) in chunks.enumerate() {
            let four = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let equal = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(four, wanted)));
            bits |= (equal as u64) << (4 * k);
        }
    }
    if !rest.is_empty() {
        // Fewer than 64 entries before the rest: the shift stays in range.
        bits |= scalar(rest, &target) << (items.len() - rest.len());
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
