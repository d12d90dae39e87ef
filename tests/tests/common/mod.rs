//! Shared helpers of the simulation tests (`sim_*.rs`): seed selection, running a scenario,
//! and threshold checks whose failure message makes the run replayable.
//!
//! Every simulation test runs a fixed list of seeds; with the environment variable `SEED` set
//! it runs only that seed, e.g.
//! `SEED=2 cargo test --release -p shoal-tests --test sim_broadcast`.
//! A failure prints, for every failing seed, the violated thresholds, the
//! `shoal-loadgen sim …` command line that reproduces the run byte for byte, and the full
//! report (whose first line lists every option).

// Each test file compiles this module into its own crate and uses a different subset of it.
#![allow(dead_code)]

use std::fmt::Write as _;

use shoal_protocols::sim::scenario::{self, Options};
use shoal_protocols::sim::{Report, Senders};

/// Cluster size of every simulation test: the issue asks for N = 1,000 in CI (the targets are
/// stated at N = 10,000, which takes minutes per run).
pub(crate) const NODES: usize = 1_000;

/// The seeds to run: `SEED` if it is set, `defaults` otherwise.
///
/// Panics if `SEED` is set but is not an unsigned integer, so a typo never silently runs the
/// default list.
pub(crate) fn seeds(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("SEED") {
        Ok(text) if !text.trim().is_empty() => {
            let seed = text
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("SEED={text:?} is not an unsigned integer: {e}"));
            vec![seed]
        }
        _ => defaults.to_vec(),
    }
}

/// Runs one scenario with no progress output and prints its report (shown by
/// `cargo test -- --nocapture`, hidden otherwise).
pub(crate) fn run(options: &Options) -> Report {
    let report = scenario::run(options, &mut |_| {});
    println!("{}\n{}", replay_command(options), report.to_table());
    report
}

/// The `shoal-loadgen sim` command line that reruns `options`. Every option is passed
/// explicitly, so the replay does not depend on the defaults of the day.
///
/// Panics if `options` uses a setting that `shoal-loadgen sim` cannot express (the join
/// interval has no flag), since such a run could not be replayed from the command line.
pub(crate) fn replay_command(options: &Options) -> String {
    let defaults = Options::new(options.scenario, options.nodes, options.seed);
    assert_eq!(
        options.join_interval_us, defaults.join_interval_us,
        "shoal-loadgen sim has no flag for join_interval_us: keep the default so runs replay"
    );
    let senders = match options.senders {
        Senders::Single => "single",
        Senders::Random => "random",
    };
    let hyparview = &options.node.hyparview;
    let plumtree = &options.node.plumtree;
    let mut cmd = String::from("cargo run --release -p shoal-loadgen -- sim");
    let _ = write!(
        cmd,
        " --scenario {} --nodes {} --seed {} --cycles {} --broadcasts {} --senders {senders} \
         --broadcast-interval-ms {} --warmup-broadcasts {} --latency {} --loss {} \
         --fail-fraction {} --churn-rate {} --churn-cycles {} --crash-broadcasts {} \
         --services {} --partition-cycles {} --detect-ms {} --active-size {} \
         --passive-size {} --ihave-batch-interval-ms {} --optimization-threshold {}",
        options.scenario.name(),
        options.nodes,
        options.seed,
        options.cycles,
        options.broadcasts,
        options.broadcast_interval_ms,
        options.warmup_broadcasts,
        options.latency.describe(),
        options.loss,
        options.fail_fraction,
        options.churn_rate,
        options.churn_cycles,
        options.crash_broadcasts,
        options.services,
        options.partition_cycles,
        options.link_failure_detect_ms,
        hyparview.active_size,
        hyparview.passive_size,
        plumtree.ihave_batch_interval_ms,
        plumtree.optimization_threshold,
    );
    cmd
}

/// Threshold checks on one report. Violations are collected (not asserted one by one) so a
/// failing seed shows every metric that is off, not only the first.
pub(crate) struct Verdict<'a> {
    report: &'a Report,
    violations: Vec<String>,
}

impl<'a> Verdict<'a> {
    /// Starts checking `report`.
    pub(crate) fn new(report: &'a Report) -> Self {
        Self { report, violations: Vec::new() }
    }

    /// The report under check.
    pub(crate) fn report(&self) -> &'a Report {
        self.report
    }

    /// `metric` must be present and at least `min`.
    pub(crate) fn at_least(&mut self, metric: &str, value: Option<f64>, min: f64) {
        match value {
            Some(v) if v >= min => {}
            other => self.violations.push(format!("{metric} = {other:?}, want >= {min}")),
        }
    }

    /// `metric` must be present and at most `max`.
    pub(crate) fn at_most(&mut self, metric: &str, value: Option<f64>, max: f64) {
        match value {
            Some(v) if v <= max => {}
            other => self.violations.push(format!("{metric} = {other:?}, want <= {max}")),
        }
    }

    /// Integer `metric` must be present and at most `max`.
    pub(crate) fn count_at_most(&mut self, metric: &str, value: Option<u64>, max: u64) {
        match value {
            Some(v) if v <= max => {}
            other => self.violations.push(format!("{metric} = {other:?}, want <= {max}")),
        }
    }

    /// `metric` must be present (the scenario reached the state it waits for).
    pub(crate) fn present(&mut self, metric: &str, value: Option<f64>) {
        if value.is_none() {
            self.violations.push(format!("{metric} = None, want a value (never reached)"));
        }
    }

    /// Boolean `metric` must be `Some(true)`.
    pub(crate) fn holds(&mut self, metric: &str, value: Option<bool>) {
        if value != Some(true) {
            self.violations.push(format!("{metric} = {value:?}, want Some(true)"));
        }
    }

    /// Records an arbitrary violation when `ok` is false.
    pub(crate) fn require(&mut self, ok: bool, description: String) {
        if !ok {
            self.violations.push(description);
        }
    }
}

/// Runs `make(seed)` for every selected seed ([`seeds`]), checks each report with `check`,
/// and panics after the last seed if any threshold was violated, listing for every failing
/// seed the violations, the replay command and the full report.
pub(crate) fn check_seeds(
    default_seeds: &[u64],
    make: impl Fn(u64) -> Options,
    check: impl Fn(&mut Verdict<'_>),
) {
    let mut failures = String::new();
    for seed in seeds(default_seeds) {
        let options = make(seed);
        let report = run(&options);
        let mut verdict = Verdict::new(&report);
        check(&mut verdict);
        if !verdict.violations.is_empty() {
            let _ = writeln!(
                failures,
                "\n=== {} seed {seed}: {}\nreplay: {}\n{}",
                options.scenario.name(),
                verdict.violations.join("; "),
                replay_command(&options),
                report.to_table()
            );
        }
    }
    assert!(failures.is_empty(), "thresholds violated (rerun one seed with SEED=…):{failures}");
}
