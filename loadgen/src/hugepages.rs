//! Transparent huge pages for the simulator's heap.
//!
//! At 100,000 nodes the simulator's state is ≈ 0.75 GiB touched at random, one node per event:
//! with 4 KiB pages nearly every event also misses the TLB. glibc's malloc backs its heap with
//! transparent huge pages when the `glibc.malloc.hugetlb=1` tunable is set, and tunables are
//! read only at process start, so `shoal-loadgen sim` re-executes itself once with it set
//! (measured: ≈ 10 % less wall time at 50,000 nodes; docs/PERFORMANCE.md). Results are
//! unaffected: only the host figures change. Opt out with `SHOAL_SIM_HUGE_PAGES=0`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;

const TUNABLES: &str = "GLIBC_TUNABLES";
const TUNABLE: &str = "glibc.malloc.hugetlb=1";
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
    tunables.push(TUNABLE);
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // `exec` returns only on failure. The opt-out in the child's environment makes sure it
    // never re-executes itself, even if something strips the tunable on the way.
    let error =
        std::process::Command::new(exe).args(args).env(TUNABLES, tunables).env(OPT_OUT, "0").exec();
    eprintln!("shoal-loadgen: note: running without huge pages (re-exec failed: {error})");
}
