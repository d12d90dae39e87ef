//! Service registry at N = 1,000: convergence after a partition heals, removal of the services
//! of crashed owners, and no false removal under churn.
//!
//! Seeds 1, 2, 3 by default; `SEED=<n> cargo test --release -p shoal-tests --test
//! sim_registry` runs only seed n. A failure prints the `shoal-loadgen sim …` command that
//! replays it.
//!
//! Targets, used unchanged at N = 1,000: partition and registry converge after healing without
//! manual joins (the scenarios never join a node after the build: the overlay reconnects by
//! itself), false_removals 0, and the overlay ends connected.
//!
//! Measured at N = 1,000, seeds 1/2/3 (defaults: 50 cycles, 100 services, 6 partition
//! cycles, 0.5 %/cycle churn): partition initial convergence 900 / 900 / 1,400 ms, convergence
//! after healing 245 / 238 / 277 s of virtual time, connected; registry convergence
//! 870 / 870 / 1,360 ms, removal 7.37 / 7.35 / 7.37 s, false_removals 0, converged after churn.
//! No target bounds these times, so only convergence itself is asserted. Defaults are kept
//! (5 to 11 s per run): the partition must outlast the suspicion timeout and the passive
//! backoff, and the registry churn is already capped at 20 cycles by the scenario.

mod common;

use common::{check_seeds, NODES};
use shoal_protocols::sim::{Options, Scenario};

const SEEDS: &[u64] = &[1, 2, 3];

#[test]
fn partition_heals_and_registry_converges() {
    check_seeds(
        SEEDS,
        |seed| Options::new(Scenario::Partition, NODES, seed),
        |v| {
            let r = v.report();
            v.present("initial_convergence_ms", r.initial_convergence_ms);
            // None would mean some live node still misses a live service after the scenario's
            // 3,600 s limit.
            v.present("convergence_ms", r.convergence_ms);
            v.holds("connected", r.connected);
        },
    );
}

#[test]
fn registry_converges_removes_crashed_owners_and_never_drops_live_ones() {
    check_seeds(
        SEEDS,
        |seed| Options::new(Scenario::Registry, NODES, seed),
        |v| {
            let r = v.report();
            v.present("convergence_ms", r.convergence_ms);
            v.present("removal_ms", r.removal_ms);
            v.count_at_most("false_removals", r.false_removals, 0);
            v.holds("registry_converged_after_churn", r.registry_converged_after_churn);
            v.holds("connected", r.connected);
        },
    );
}
