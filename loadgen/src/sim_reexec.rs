//! The simulator's process environment: mimalloc as the allocator, on transparent huge pages.
//!
//! At 100,000 nodes the simulator's state is ≈ 0.75 GiB touched at random, one node per event,
//! and it allocates and frees small blocks all the time. Both settings below are read only at
//! process start (the allocator is chosen at the first allocation, mimalloc reads its options
//! when it initialises), so `shoal-loadgen sim` re-executes itself once with them set:
//! - [`crate::allocator::SELECT_VAR`]: mimalloc instead of glibc's malloc (see
//!   `allocator.rs`; 6 % fewer instructions at 10,000 nodes).
//! - `MIMALLOC_ALLOW_LARGE_OS_PAGES=1`, when the kernel has transparent huge pages: mimalloc
//!   backs its memory with 2 MiB pages, so most events' first touch of a node does not also
//!   miss the TLB (huge pages measured ≈ 10 % less wall time at 50,000 nodes, on glibc's heap
//!   then; docs/PERFORMANCE.md).
//! - `MIMALLOC_PURGE_DELAY=-1`: freed memory stays mapped instead of being handed back to the
//!   kernel 10 ms later (by default mimalloc purges it, and the next use faults it in again,
//!   zeroed: 53,018 page faults in a 100,000-node run, 590 without purging, for the same peak
//!   RSS, which a simulation run reaches anyway).
//!
//! Results are unaffected: only the host figures change. `SHOAL_SIM_HUGE_PAGES=0` keeps small
//! pages; `SHOAL_SIM_ALLOCATOR=system` runs on the system allocator with nothing changed.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;

/// Opt-out of huge pages (`0`).
const HUGE_PAGES_VAR: &str = "SHOAL_SIM_HUGE_PAGES";
/// `system`: stay on the system allocator, no re-execution (`mimalloc`, the default, or unset:
/// re-execute).
const ALLOCATOR_VAR: &str = "SHOAL_SIM_ALLOCATOR";
/// mimalloc's option for transparent huge pages.
const MIMALLOC_LARGE_PAGES_VAR: &str = "MIMALLOC_ALLOW_LARGE_OS_PAGES";
/// mimalloc's delay before freed memory is handed back to the kernel (`-1`: never).
const MIMALLOC_PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";

/// Re-executes this process with mimalloc selected (and huge pages allowed, unless opted out
/// or off in the kernel), unless it already runs on mimalloc or the user asked for the system
/// allocator. Returns only if it did not re-execute (a failed exec is reported on stderr and
/// the run goes on with the system allocator).
pub(crate) fn reexec_for_sim() {
    let select = crate::allocator::SELECT_VAR.to_str().expect("the variable name is ASCII");
    if std::env::var_os(select).is_some() {
        return;
    }
    match std::env::var_os(ALLOCATOR_VAR) {
        Some(v) if v == "system" => return,
        Some(v) if v != "mimalloc" => eprintln!(
            "shoal-loadgen: warning: {ALLOCATOR_VAR}={} is not understood (set `system` for the \
             system allocator, or leave it unset); using mimalloc",
            v.to_string_lossy()
        ),
        _ => {}
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut command = std::process::Command::new(exe);
    command.args(args).env(select, "1").env(MIMALLOC_PURGE_DELAY_VAR, "-1");
    if huge_pages_wanted() {
        command.env(MIMALLOC_LARGE_PAGES_VAR, "1");
    }
    // `exec` returns only on failure; the child finds the selection variable set and never
    // re-executes itself.
    let error = command.exec();
    eprintln!("shoal-loadgen: note: running on the system allocator (re-exec failed: {error})");
}

/// Huge pages unless opted out, or the kernel has transparent huge pages off (or none).
fn huge_pages_wanted() -> bool {
    if std::env::var_os(HUGE_PAGES_VAR).is_some_and(|v| v == "0") {
        return false;
    }
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    !thp.is_empty() && !thp.contains("[never]")
}
