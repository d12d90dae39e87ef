//! The RLIMIT_MEMLOCK preflight. Every glommio executor locks memory for its io_uring rings and
//! refuses to start below 512 KiB with an error that does not say which limit to raise; shoal
//! checks first and says exactly what to change.

use std::io;

/// Locked memory one glommio executor needs (glommio's own minimum), in bytes.
pub const MEMLOCK_BYTES_PER_EXECUTOR: u64 = 512 * 1024;

/// Why [`check_memlock`] refused. Nothing changed; retrying fails again until the limit of the
/// process is raised, which takes a restart with a new limit.
#[derive(Debug, thiserror::Error)]
pub enum MemlockError {
    /// The soft limit is below what the executors need.
    #[error(
        "RLIMIT_MEMLOCK is {current_kib} KiB (hard limit {hard}) but {executors} glommio \
         executors need {needed_kib} KiB (512 KiB each); raise it with `ulimit -l {needed_kib}` \
         in the launching shell, `LimitMEMLOCK={needed_kib}K` in the systemd unit, or \
         `docker run --ulimit memlock={needed_bytes}:{needed_bytes}`",
        current_kib = .current_bytes / 1024,
        needed_kib = .needed_bytes / 1024,
        hard = display_limit(*.hard_bytes),
    )]
    TooLow {
        /// Current soft limit, in bytes.
        current_bytes: u64,
        /// Current hard limit, in bytes (`None`: unlimited).
        hard_bytes: Option<u64>,
        /// Limit needed, in bytes.
        needed_bytes: u64,
        /// Executors the check was made for.
        executors: usize,
    },
    /// getrlimit(2) failed, which it does not on Linux for a valid resource.
    #[error("cannot read RLIMIT_MEMLOCK: {source}")]
    Query {
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

fn display_limit(bytes: Option<u64>) -> String {
    match bytes {
        Some(bytes) => format!("{} KiB", bytes / 1024),
        None => "unlimited".to_owned(),
    }
}

/// Checks that the soft RLIMIT_MEMLOCK lets `executors` glommio executors start.
pub fn check_memlock(executors: usize) -> Result<(), MemlockError> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a live rlimit the kernel fills in; no other memory is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &raw mut limit) };
    if rc != 0 {
        return Err(MemlockError::Query { source: io::Error::last_os_error() });
    }
    memlock_verdict(bytes(limit.rlim_cur), bytes(limit.rlim_max), executors)
}

/// A limit in bytes, `None` for unlimited.
fn bytes(limit: libc::rlim_t) -> Option<u64> {
    (limit != libc::RLIM_INFINITY).then_some(limit)
}

/// The decision, apart from the system call. `None` limits are unlimited.
fn memlock_verdict(
    current_bytes: Option<u64>,
    hard_bytes: Option<u64>,
    executors: usize,
) -> Result<(), MemlockError> {
    let needed_bytes =
        MEMLOCK_BYTES_PER_EXECUTOR.saturating_mul(u64::try_from(executors).unwrap_or(u64::MAX));
    match current_bytes {
        Some(current_bytes) if current_bytes < needed_bytes => {
            Err(MemlockError::TooLow { current_bytes, hard_bytes, needed_bytes, executors })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn enough_or_unlimited_passes() {
        assert!(memlock_verdict(Some(512 * KIB), Some(512 * KIB), 1).is_ok());
        assert!(memlock_verdict(Some(8192 * KIB), None, 16).is_ok());
        assert!(memlock_verdict(None, None, 1_000_000).is_ok());
        assert!(memlock_verdict(Some(0), Some(0), 0).is_ok());
    }

    #[test]
    fn too_low_names_both_limits_and_the_fixes() {
        let err = memlock_verdict(Some(64 * KIB), None, 2).expect_err("64 KiB < 2 x 512 KiB");
        let MemlockError::TooLow { current_bytes, needed_bytes, executors, .. } = err else {
            panic!("wrong variant: {err:?}");
        };
        assert_eq!((current_bytes, needed_bytes, executors), (64 * KIB, 1024 * KIB, 2));
        let text = err.to_string();
        for needle in [
            "64 KiB",
            "hard limit unlimited",
            "1024 KiB",
            "ulimit -l 1024",
            "LimitMEMLOCK=1024K",
            "--ulimit memlock=1048576:1048576",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text:?}");
        }
    }

    #[test]
    fn one_byte_short_fails() {
        assert!(memlock_verdict(Some(3 * 512 * KIB - 1), Some(4096 * KIB), 3).is_err());
        assert!(memlock_verdict(Some(3 * 512 * KIB), Some(4096 * KIB), 3).is_ok());
    }

    #[test]
    fn huge_executor_counts_saturate_instead_of_wrapping() {
        assert!(memlock_verdict(Some(u64::MAX - 1), None, usize::MAX).is_err());
    }

    #[test]
    fn this_process_can_run_one_executor() {
        // The test suite itself starts glommio executors, so this must hold wherever it runs.
        check_memlock(1).expect("RLIMIT_MEMLOCK allows one glommio executor");
    }
}
