//! The heap allocator of `shoal-loadgen`: mimalloc for the simulator, the system allocator
//! (glibc's malloc) for everything else.
//!
//! A 100,000-node simulation allocates and frees small blocks all the time (shuffle samples,
//! message caches growing as broadcasts arrive): on glibc's malloc, bin management
//! (`_int_malloc`, `unlink_chunk`, consolidation) and the heap trimmed and re-faulted under
//! transparent huge pages were a quarter of the broadcast phase, and at 10,000 nodes mimalloc
//! runs 6 % fewer instructions for the same, byte-identical, report (docs/PERFORMANCE.md).
//! The transport benchmarks keep the system allocator: their memory figures were measured
//! with it.
//!
//! A global allocator cannot change once memory has been handed out, so the choice is made
//! at the very first allocation, from the environment: `sim` re-executes itself with
//! [`SELECT_VAR`] set (see `sim_reexec`). Every allocation of a process goes to one allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// Set (to any value) in a process's environment at its start: that process allocates with
/// mimalloc.
pub(crate) const SELECT_VAR: &CStr = c"SHOAL_LOADGEN_MIMALLOC";

const UNDECIDED: u8 = 0;
const SYSTEM: u8 = 1;
const MIMALLOC: u8 = 2;

/// The choice, made once (see [`decide`]).
static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The process's allocator: forwards every call to the allocator chosen at the first call.
pub(crate) struct Selected;

impl Selected {
    #[inline]
    fn mimalloc() -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            SYSTEM => false,
            MIMALLOC => true,
            _ => decide(),
        }
    }
}

/// Reads [`SELECT_VAR`] and records the choice. Runs at the process's first allocation, on
/// the main thread before any other thread exists, so no call ever sees another choice.
#[cold]
#[allow(unsafe_code)]
fn decide() -> bool {
    // SAFETY: `getenv` reads the environment without allocating (`std::env::var_os` would
    // allocate, from inside the allocator). The name is a valid C string, and nothing writes
    // the environment concurrently: this runs before any thread is spawned, and the program
    // never calls `setenv` (children get their variables through `Command::env`).
    let set = unsafe { !libc::getenv(SELECT_VAR.as_ptr()).is_null() };
    let choice = if set { MIMALLOC } else { SYSTEM };
    // A second caller (there is none: see above) would read the same environment.
    let _ = CHOICE.compare_exchange(UNDECIDED, choice, Ordering::Relaxed, Ordering::Relaxed);
    CHOICE.load(Ordering::Relaxed) == MIMALLOC
}

// SAFETY: every method forwards to one of two `GlobalAlloc` implementations with the caller's
// arguments unchanged, and it is always the same one for the whole process (the choice never
// changes once made), so memory is freed and resized by the allocator that handed it out.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Selected {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe {
            if Self::mimalloc() {
                MiMalloc.alloc(layout)
            } else {
                System.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe {
            if Self::mimalloc() {
                MiMalloc.alloc_zeroed(layout)
            } else {
                System.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on; `ptr` came from the same
        // allocator (the choice is fixed).
        unsafe {
            if Self::mimalloc() {
                MiMalloc.dealloc(ptr, layout);
            } else {
                System.dealloc(ptr, layout);
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on; `ptr` came from the same
        // allocator (the choice is fixed).
        unsafe {
            if Self::mimalloc() {
                MiMalloc.realloc(ptr, layout, new_size)
            } else {
                System.realloc(ptr, layout, new_size)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test process was started without the variable: the system allocator serves it,
    /// and keeps serving it (a changed choice would free memory with the wrong allocator).
    #[test]
    fn the_choice_is_made_once_from_the_environment() {
        let v = vec![1u8; 4096];
        assert_eq!(std::env::var_os("SHOAL_LOADGEN_MIMALLOC").is_some(), Selected::mimalloc());
        let first = CHOICE.load(Ordering::Relaxed);
        assert_ne!(first, UNDECIDED);
        drop(v);
        assert_eq!(CHOICE.load(Ordering::Relaxed), first);
    }
}
