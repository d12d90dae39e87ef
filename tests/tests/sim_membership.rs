//! HyParView overlay shape after stabilisation (HyParView paper Table 1) at N = 1,000.
//!
//! Seeds 1, 2, 3 by default; `SEED=<n> cargo test --release -p shoal-tests --test
//! sim_membership` runs only seed n. A failure prints the `shoal-loadgen sim …` command that
//! replays it.
//!
//! Targets (stated at N = 10,000), used unchanged at N = 1,000: at least 99 % of the nodes have
//! in-degree = active_size, every active-view edge is symmetric, the overlay is connected.
//! The fraction has a granularity of 1/1,000 here, so 99 % allows at most 10 nodes below
//! active_size.
//!
//! Measured at N = 1,000, seeds 1/2/3 (default 50 cycles): in-degree at active_size 1.000 /
//! 0.996 / 0.998, symmetric 1.0, connected. The default 50 stabilisation cycles are kept
//! (about 1 s per run): with 20 cycles the fraction was 0.992 on every seed, i.e. the overlay
//! is still converging and the check would measure the cycle count, not the protocol.

mod common;

use common::{check_seeds, NODES};
use shoal_protocols::sim::{Options, Scenario};

const SEEDS: &[u64] = &[1, 2, 3];

#[test]
fn overlay_is_regular_symmetric_and_connected() {
    check_seeds(
        SEEDS,
        |seed| Options::new(Scenario::Overlay, NODES, seed),
        |v| {
            let r = v.report();
            v.at_least(
                "in_degree_at_active_size_fraction",
                r.in_degree_at_active_size_fraction,
                0.99,
            );
            v.at_least("symmetric_fraction", r.symmetric_fraction, 1.0);
            v.holds("connected", r.connected);
        },
    );
}
