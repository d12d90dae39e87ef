//! What the transport benchmark asks of the host: CPU time used, and CPU placement.

use anyhow::Context as _;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::unistd::Pid;

/// User + system CPU seconds this process has used so far (all its threads), from
/// `getrusage(RUSAGE_SELF)`.
pub(crate) fn cpu_seconds() -> f64 {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let seconds =
                |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1_000_000.0;
            seconds(usage.user_time()) + seconds(usage.system_time())
        }
        // getrusage(RUSAGE_SELF) cannot fail on Linux; report nothing used rather than abort.
        Err(_) => 0.0,
    }
}

/// CPUs the kernel may run this process on (the affinity mask at start-up).
pub(crate) fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Restricts the calling thread (and every thread it starts afterwards) to `cpus`.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).with_context(|| format!("CPU {cpu} is beyond the affinity mask size"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("cannot pin the load generator to CPUs {cpus:?}"))
}
