//! What the transport benchmark asks of the host: CPU time used, and CPU placement.

use std::process::{Child, Command};
use std::sync::OnceLock;

use anyhow::{anyhow, Context as _};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
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

/// The affinity mask of the thread that first called [`pin_current_thread`], as it was before.
static MASK_BEFORE_PIN: OnceLock<CpuSet> = OnceLock::new();

/// Restricts the calling thread (and every thread or process it starts afterwards, except
/// through [`spawn_unpinned`]) to `cpus`.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> anyhow::Result<()> {
    if MASK_BEFORE_PIN.get().is_none() {
        let mask = sched_getaffinity(Pid::from_raw(0))
            .context("cannot read the load generator's CPU mask")?;
        let _ = MASK_BEFORE_PIN.set(mask);
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).with_context(|| format!("CPU {cpu} is beyond the affinity mask size"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("cannot pin the load generator to CPUs {cpus:?}"))
}

/// Starts `command` with the affinity mask the load generator had before it pinned itself: a
/// child inherits the mask of the thread that forks it, so a server started after the client
/// pinned itself would otherwise share the client's CPUs (its own placement only pins its
/// shards). Forks from a short-lived thread that takes the earlier mask back.
pub(crate) fn spawn_unpinned(command: &mut Command) -> anyhow::Result<Child> {
    let Some(mask) = MASK_BEFORE_PIN.get() else {
        return Ok(command.spawn()?);
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                sched_setaffinity(Pid::from_raw(0), mask)
                    .context("cannot restore the CPU mask for a child process")?;
                Ok(command.spawn()?)
            })
            .join()
            .map_err(|_| anyhow!("the thread starting a child process panicked"))?
    })
}
