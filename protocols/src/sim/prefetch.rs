//! Software prefetch: the simulator knows which node the next events touch long before it
//! touches it, and at 100,000 nodes nearly every touch misses the cache.

/// Asks the CPU to bring the cache line holding `p` into L1. A hint: no effect on results.
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 never faults and never changes memory, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`line`] for every cache line that holds one of the `size_bytes` bytes from `p` (an
/// unaligned range of n lines' length touches n + 1 lines).
#[inline(always)]
pub(crate) fn range<T>(p: *const T, size_bytes: usize) {
    let p = p.cast::<u8>();
    let mut offset = 0;
    let end = (p as usize % 64) + size_bytes;
    while offset < end {
        line(p.wrapping_add(offset));
        offset += 64;
    }
}

/// [`line`] for each pointer that is not null (null: nothing to point at, an empty list).
#[inline(always)]
pub(crate) fn lines<T>(pointers: impl IntoIterator<Item = *const T>) {
    for p in pointers.into_iter().filter(|p| !p.is_null()) {
        line(p);
    }
}

/// [`range`] for each `(start, size_bytes)`.
#[inline(always)]
pub(crate) fn ranges<T>(ranges: impl IntoIterator<Item = (*const T, usize)>) {
    for (p, size_bytes) in ranges {
        range(p, size_bytes);
    }
}
