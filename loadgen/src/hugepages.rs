//! Transparent huge pages for the simulator's heap.
//!
//! At 100,000 nodes the simulator's state is ≈ 0.75 GiB touched at random, one node per event:
//! with 4 KiB pages nearly every event also misses the TLB. glibc's malloc backs its heap with
//! transparent huge pages when the `glibc.malloc.hugetlb=1` tunable is set, and tunables are
//! read only at process start, so `shoal-loadgen sim` re-executes itself once with it set
//! (measured: ≈ 10 % less wall time at 50,000 nodes; docs/PERFORMANCE.md). Results are
//! unaffected: only the host figures change. Opt out with `SHOAL_SIM_HUGE_PAGES=0`.
//!
//! With huge pages, glibc's habit of giving the top of the heap back to the kernel whenever
//! 128 KiB of it are free costs a fresh, zeroed 2 MiB page each time the heap grows again:
//! while 100,000 nodes fill their message caches, 355 huge-page faults in the last 6.5 s of
//! the run, a tenth of that phase zeroing pages. The re-execution also raises the trim
//! threshold to [`TRIM_THRESHOLD_BYTES`] and grows the heap [`TOP_PAD_BYTES`] at a time (108
//! faults; peak RSS unchanged, since what is not trimmed was in use at the peak anyway).

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;

const TUNABLES: &str = "GLIBC_TUNABLES";
/// Free bytes at the top of the heap before glibc gives them back (1 GiB: never, within the
/// runs the simulator is sized for).
const TRIM_THRESHOLD_BYTES: u64 = 1 << 30;
/// Extra bytes the heap grows by whenever it must grow (64 MiB: about one second of a
/// 100,000-node run's growth; untouched, it costs no resident memory).
const TOP_PAD_BYTES: u64 = 64 << 20;
const OPT_OUT: &str = "SHOAL_SIM_HUGE_PAGES";

/// Re-executes this process with the huge-page tunable set, unless it is already set (by us or
/// the user), the user opted out, or the kernel has transparent huge pages disabled. Returns
/// only if it did not re-execute (a failed exec is reported on stderr and the run goes on
/// with small pages).
pub(crate) fn reexec_for_sim() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    if std::env::var_os(OPT_OUT).is_some_and(|v| v == "0") {
        return;
    }
    let current = std::env::var_os(TUNABLES).unwrap_or_default();
    if current.to_string_lossy().contains("glibc.malloc.hugetlb") {
        return;
    }
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.is_empty() || thp.contains("[never]") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut tunables = current;
    if !tunables.is_empty() {
        tunables.push(":");
    }
    tunables.push(format!(
        "glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold={TRIM_THRESHOLD_BYTES}:\
         glibc.malloc.top_pad={TOP_PAD_BYTES}"
    ));
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // `exec` returns only on failure. The opt-out in the child's environment makes sure it
    // never re-executes itself, even if something strips the tunable on the way.
    let error =
        std::process::Command::new(exe).args(args).env(TUNABLES, tunables).env(OPT_OUT, "0").exec();
    eprintln!("shoal-loadgen: note: running without huge pages (re-exec failed: {error})");
}
