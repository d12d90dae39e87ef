//! Simultaneous crash of a fraction of the nodes (HyParView paper §5) at N = 1,000: reliability
//! of the broadcasts right after the crash, the first broadcast against its static floor, and
//! the membership cycles until broadcasts are back at the pre-failure level.
//!
//! Seeds 1, 2, 3 by default; `SEED=<n> cargo test --release -p shoal-tests --test sim_crash`
//! runs only seed n. A failure prints the `shoal-loadgen sim …` command that replays it.
//!
//! Targets (stated at N = 10,000): reliability_mean >= 0.999 at fail 0.8 and >= 0.995 at 0.9;
//! healing_cycles <= 1 up to 0.7 and <= 2 at 0.8 and 0.9; first_broadcast_reliability >=
//! first_broadcast_floor. All are used unchanged at N = 1,000.
//!
//! Measured at N = 1,000, seeds 1/2/3 (defaults, 1,000 crash broadcasts):
//! fail 0.8: reliability_mean 0.999005 / 0.999010 / 0.999020, healing 1 / 1 / 1, first
//! broadcast = floor = 0.005 / 0.01 / 0.02; fail 0.9: 0.999010 / 0.999010 / 0.999990, healing
//! 1 / 1 / 1. With 200 crash broadcasts, fail 0.3 / 0.5 / 0.7 heal in 1 cycle on every seed.

mod common;

use common::{check_seeds, NODES};
use shoal_protocols::sim::{Options, Scenario};

const SEEDS: &[u64] = &[1, 2, 3];

/// Crash options at N = 1,000. Only `crash_broadcasts` may differ from the defaults.
fn crash_options(seed: u64, fail_fraction: f64, crash_broadcasts: u64) -> Options {
    let mut options = Options::new(Scenario::Crash, NODES, seed);
    options.fail_fraction = fail_fraction;
    options.crash_broadcasts = crash_broadcasts;
    options
}

/// The reliability target is a mean over the paper's 1,000 broadcasts after the crash, so the
/// tests that check it keep all 1,000 (about 7 to 13 s per seed). The first of them can only
/// reach its sender's component of the static overlay (measured floor 0.005 to 0.04 at fail
/// 0.8/0.9: with 5 active neighbours a sender keeps none with probability 0.8^5 = 0.33 at 0.8),
/// so it alone costs (1 - floor) / crash_broadcasts of the mean: 0.001 with 1,000 broadcasts,
/// 0.005 with 200, where no repair could reach 0.999. Fewer broadcasts would change what the
/// target means, not only the runtime.
const PAPER_CRASH_BROADCASTS: u64 = 1_000;

/// The healing-only tests (fail 0.3 to 0.7) need no reliability mean: `healing_cycles` is 1
/// when the last 10 broadcasts of the burst are back at the pre-failure level. 200 broadcasts
/// (instead of 1,000) leave repair less time inside cycle 1, so the check is, if anything,
/// stricter; it saves about 80 % of the runtime.
const HEALING_CRASH_BROADCASTS: u64 = 200;

/// Checks shared by every fail fraction: the first broadcast reaches at least its static floor
/// (the repair may only add to it) and healing takes at most `healing_cycles_max` cycles.
fn check_crash(fail_fraction: f64, crash_broadcasts: u64, healing_cycles_max: u64, min_mean: f64) {
    check_seeds(
        SEEDS,
        |seed| crash_options(seed, fail_fraction, crash_broadcasts),
        |v| {
            let r = v.report();
            // Both are (live nodes reached) / (live nodes), computed with the same division,
            // so equal counts compare equal exactly.
            match (r.first_broadcast_reliability, r.first_broadcast_floor) {
                (Some(first), Some(floor)) => v.require(
                    first >= floor,
                    format!("first_broadcast_reliability {first} < first_broadcast_floor {floor}"),
                ),
                (first, floor) => v.require(
                    false,
                    format!("first_broadcast_reliability {first:?}, floor {floor:?}: missing"),
                ),
            }
            v.count_at_most("healing_cycles", r.healing_cycles, healing_cycles_max);
            v.at_least("reliability_mean", r.reliability_mean, min_mean);
        },
    );
}

#[test]
fn crash_30_percent_heals_within_one_cycle() {
    // No reliability target below 0.8: 0.0 only requires the metric to be present.
    check_crash(0.3, HEALING_CRASH_BROADCASTS, 1, 0.0);
}

#[test]
fn crash_50_percent_heals_within_one_cycle() {
    check_crash(0.5, HEALING_CRASH_BROADCASTS, 1, 0.0);
}

#[test]
fn crash_70_percent_heals_within_one_cycle() {
    check_crash(0.7, HEALING_CRASH_BROADCASTS, 1, 0.0);
}

#[test]
fn crash_80_percent_keeps_reliability_and_heals_within_two_cycles() {
    check_crash(0.8, PAPER_CRASH_BROADCASTS, 2, 0.999);
}

#[test]
fn crash_90_percent_keeps_reliability_and_heals_within_two_cycles() {
    // 100 survivors: one missed node costs 0.01 of a broadcast, 0.00001 of the mean.
    check_crash(0.9, PAPER_CRASH_BROADCASTS, 2, 0.995);
}
