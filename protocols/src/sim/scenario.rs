//! The scenarios of `shoal-loadgen sim` (docs/SIMULATION.md): each builds a cluster, injects
//! faults and measures. Seed → options → run → report; the report of a seed is reproducible
//! byte for byte.

use bytes::Bytes;

use super::graph::{self, OverlayStats};
use super::links::Latency;
use super::network::{Network, NetworkOptions, NodeIndex};
use super::report::Report;
use crate::node;
use crate::plumtree::MessageId;

/// Which experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Stable cluster, broadcasts measured for RMR, LDH, latency and control overhead.
    Stable,
    /// HyParView paper §5: simultaneous crash of a fraction of nodes.
    Crash,
    /// Plumtree paper §4: steady churn.
    Churn,
    /// Split in two, heal, measure registry convergence.
    Partition,
    /// Registry dissemination, owner crashes and false removals under churn.
    Registry,
    /// Overlay shape after stabilisation (HyParView paper Table 1).
    Overlay,
}

impl Scenario {
    /// Every scenario, in documentation order.
    pub const ALL: [Self; 6] =
        [Self::Stable, Self::Crash, Self::Churn, Self::Partition, Self::Registry, Self::Overlay];

    /// Lower-case name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Crash => "crash",
            Self::Churn => "churn",
            Self::Partition => "partition",
            Self::Registry => "registry",
            Self::Overlay => "overlay",
        }
    }

    /// Parses a scenario name.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
            format!("unknown scenario {name:?}; choose one of: {}", names.join(", "))
        })
    }
}

/// Who sends broadcasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Senders {
    /// One fixed node sends every broadcast (Plumtree paper "s-s").
    Single,
    /// Each broadcast comes from a random live node ("m-s").
    Random,
}

/// Every option of a run. All of them are printed with the report so a run can be replayed.
#[derive(Clone, Debug)]
pub struct Options {
    /// Experiment.
    pub scenario: Scenario,
    /// Cluster size.
    pub nodes: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Membership cycles (shuffle periods) of stabilisation before measuring. Default 50
    /// (HyParView paper §5).
    pub cycles: u64,
    /// Measured broadcasts (stable). Default 100.
    pub broadcasts: u64,
    /// Broadcast sender policy (stable).
    pub senders: Senders,
    /// Gap between measured broadcasts in the stable scenario, in ms. Default 10: broadcasts
    /// overlap within one IHAVE batching interval, which is what batching amortises.
    pub broadcast_interval_ms: u64,
    /// Broadcasts sent (and not measured) after stabilisation so Plumtree builds its tree
    /// (the papers measure after 50 cycles with a broadcast each). Default 3.
    pub warmup_broadcasts: u64,
    /// Link latency model. Default const:10.
    pub latency: Latency,
    /// Retransmission probability per message. Default 0.
    pub loss: f64,
    /// Fraction of nodes crashed at once (crash). Default 0.5.
    pub fail_fraction: f64,
    /// Fraction of live nodes killed per cycle (churn, registry). Default 0.005 (Plumtree
    /// paper §4: 50 of 10,000 per cycle).
    pub churn_rate: f64,
    /// Cycles of churn. Default 100 (Plumtree paper §4).
    pub churn_cycles: u64,
    /// Broadcasts right after the crash, before the next cycle. Default 1,000 (HyParView paper).
    pub crash_broadcasts: u64,
    /// Services registered (partition, registry). Default 100.
    pub services: u64,
    /// Cycles the partition lasts. Default 6 (longer than the suspicion timeout and the
    /// passive backoff sequence, so both failure paths are exercised).
    pub partition_cycles: u64,
    /// Link failure detection delay, in ms. Default 1,000 (guess: a few QUIC PTOs).
    pub link_failure_detect_ms: u64,
    /// Gap between successive joins, in µs. Default 1,000.
    pub join_interval_us: u64,
    /// Protocol configuration.
    pub node: node::Config,
}

impl Options {
    /// Defaults for `scenario` at `nodes` with `seed`.
    pub fn new(scenario: Scenario, nodes: usize, seed: u64) -> Self {
        Self {
            scenario,
            nodes,
            seed,
            cycles: 50,
            broadcasts: 100,
            senders: Senders::Single,
            broadcast_interval_ms: 10,
            warmup_broadcasts: 3,
            latency: Latency::Const(10_000),
            loss: 0.0,
            fail_fraction: 0.5,
            churn_rate: 0.005,
            churn_cycles: 100,
            crash_broadcasts: 1000,
            services: 100,
            partition_cycles: 6,
            link_failure_detect_ms: 1000,
            join_interval_us: 1000,
            node: node::Config::default(),
        }
    }

    /// `key=value` pairs of every option, in a fixed order, for the report header.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("scenario", self.scenario.name().to_string()),
            ("nodes", self.nodes.to_string()),
            ("seed", self.seed.to_string()),
            ("cycles", self.cycles.to_string()),
            ("broadcasts", self.broadcasts.to_string()),
            ("senders", format!("{:?}", self.senders).to_lowercase()),
            ("broadcast_interval_ms", self.broadcast_interval_ms.to_string()),
            ("warmup_broadcasts", self.warmup_broadcasts.to_string()),
            ("latency", self.latency.describe()),
            ("loss", self.loss.to_string()),
            ("fail_fraction", self.fail_fraction.to_string()),
            ("churn_rate", self.churn_rate.to_string()),
            ("churn_cycles", self.churn_cycles.to_string()),
            ("crash_broadcasts", self.crash_broadcasts.to_string()),
            ("services", self.services.to_string()),
            ("partition_cycles", self.partition_cycles.to_string()),
            ("link_failure_detect_ms", self.link_failure_detect_ms.to_string()),
            ("join_interval_us", self.join_interval_us.to_string()),
            ("active_size", self.node.hyparview.active_size.to_string()),
            ("passive_size", self.node.hyparview.passive_size.to_string()),
            ("ihave_batch_interval_ms", self.node.plumtree.ihave_batch_interval_ms.to_string()),
            ("optimization_threshold", self.node.plumtree.optimization_threshold.to_string()),
        ]
    }
}

/// Progress notifications for a driver's progress bar.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Current phase.
    pub phase: &'static str,
    /// Work done in this phase.
    pub done: u64,
    /// Work in this phase.
    pub total: u64,
}

/// Quiescence deadline for one broadcast or repair burst, in µs of virtual time.
const QUIESCENCE_DEADLINE_US: u64 = 120_000_000;

/// Runs one scenario.
pub fn run(options: &Options, progress: &mut dyn FnMut(Progress)) -> Report {
    run_keeping_network(options, progress).0
}

/// [`run`], also handing back the simulated cluster. A program about to exit can skip
/// dropping it: freeing 100,000 nodes' state one allocation at a time takes a noticeable
/// fraction of a second.
pub fn run_keeping_network(
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> (Report, Network) {
    let mut report = Report::new(options);
    let mut net = Network::new(NetworkOptions {
        seed: options.seed,
        latency: options.latency,
        loss: options.loss,
        link_failure_detect_us: options.link_failure_detect_ms * 1000,
        node: options.node.clone(),
    });
    build(&mut net, options, progress);
    match options.scenario {
        Scenario::Stable => stable(&mut net, options, &mut report, progress),
        Scenario::Crash => crash(&mut net, options, &mut report, progress),
        Scenario::Churn => churn(&mut net, options, &mut report, progress),
        Scenario::Partition => partition(&mut net, options, &mut report, progress),
        Scenario::Registry => registry(&mut net, options, &mut report, progress),
        Scenario::Overlay => {}
    }
    let overlay = overlay_stats(&mut net, options);
    report.set_overlay(&overlay);
    let counts = net.counts();
    report.messages_total = counts.total;
    report.messages_by_kind = counts.by_kind.iter().map(|(k, v)| (*k, *v)).collect();
    (report, net)
}

fn cycle_us(options: &Options) -> u64 {
    options.node.hyparview.shuffle_period_ms * 1000
}

/// Joins every node through node 0, one by one (no membership cycle in between, as in the
/// papers), then runs `cycles` membership cycles.
fn build(net: &mut Network, options: &Options, progress: &mut dyn FnMut(Progress)) {
    assert!(options.nodes >= 2, "a cluster needs at least two nodes");
    net.reserve(options.nodes);
    net.set_membership_frozen(true);
    net.set_background_frozen(true);
    net.add_node();
    let total = options.nodes as u64;
    for i in 1..options.nodes {
        // One join at a time, each settled before the next (the papers' setup).
        let at = net.now_us() + options.join_interval_us;
        net.run_until(at);
        let idx = net.add_node();
        net.join(idx, vec![0]);
        net.run_until_quiescent(QUIESCENCE_DEADLINE_US);
        if i % 1000 == 0 {
            progress(Progress { phase: "join", done: i as u64, total });
        }
    }
    net.run_until_quiescent(QUIESCENCE_DEADLINE_US);
    net.set_background_frozen(false);
    net.set_membership_frozen(false);
    for c in 0..options.cycles {
        let at = net.now_us() + cycle_us(options);
        net.run_until(at);
        progress(Progress { phase: "stabilise", done: c + 1, total: options.cycles });
    }
}

/// Sends one broadcast from `sender` and runs until it (and the repairs it triggers) is
/// quiescent. Returns its id.
fn broadcast_and_settle(net: &mut Network, sender: NodeIndex) -> MessageId {
    let id = net.broadcast(sender, Bytes::from_static(b"shoal-sim"));
    net.run_until_quiescent(QUIESCENCE_DEADLINE_US);
    id
}

/// Lets the membership repair triggered by the last broadcast finish (bounded): the papers'
/// broadcasts are issued one after another with failure detection and repair running in
/// between, which in a cycle-based simulator take no time.
fn settle_repair(net: &mut Network) {
    const SETTLE_STEPS_MAX: usize = 200;
    for _ in 0..SETTLE_STEPS_MAX {
        if !net.repair_in_progress() {
            return;
        }
        let at = net.now_us() + 100_000;
        net.run_until(at);
        net.run_until_quiescent(QUIESCENCE_DEADLINE_US);
    }
}

fn random_alive(net: &mut Network) -> NodeIndex {
    let alive = net.alive_nodes();
    let i = net.rng().index(alive.len());
    alive[i]
}

#[derive(Default)]
struct Aggregate {
    reliability: Vec<f64>,
    rmr: Vec<f64>,
    ldh: Vec<f64>,
    last_delivery_ms: Vec<f64>,
    missed: u64,
}

impl Aggregate {
    fn add(&mut self, net: &mut Network, id: MessageId) -> f64 {
        let r = net.tracker().result(id, &net.alive_mask());
        net.tracker_mut().forget(id);
        self.reliability.push(r.reliability);
        if let Some(rmr) = r.rmr {
            self.rmr.push(rmr);
        }
        self.ldh.push(f64::from(r.ldh));
        self.last_delivery_ms.push(r.last_delivery_ms);
        self.missed += r.missed;
        r.reliability
    }

    fn write(&self, report: &mut Report) {
        report.reliability_mean = mean(&self.reliability);
        report.reliability_min = self.reliability.iter().copied().reduce(f64::min);
        report.rmr = mean(&self.rmr);
        report.ldh = mean(&self.ldh);
        report.ldh_max = self.ldh.iter().copied().reduce(f64::max);
        report.last_delivery_ms = mean(&self.last_delivery_ms);
        report.last_delivery_ms_max = self.last_delivery_ms.iter().copied().reduce(f64::max);
        report.missed = Some(self.missed);
        report.broadcasts_measured = Some(self.reliability.len() as u64);
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn stable(
    net: &mut Network,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(Progress),
) {
    let fixed_sender = random_alive(net);
    let pick = |net: &mut Network| match options.senders {
        Senders::Single => fixed_sender,
        Senders::Random => random_alive(net),
    };
    for _ in 0..options.warmup_broadcasts {
        let sender = pick(net);
        let id = broadcast_and_settle(net, sender);
        net.tracker_mut().forget(id);
    }
    let control_before = net.counts().plumtree_control;
    let deliveries_before = net.tracker().remote_deliveries();
    let mut ids = Vec::new();
    for b in 0..options.broadcasts {
        let sender = pick(net);
        ids.push(net.broadcast(sender, Bytes::from_static(b"shoal-sim")));
        let at = net.now_us() + options.broadcast_interval_ms * 1000;
        net.run_until(at);
        progress(Progress { phase: "broadcast", done: b + 1, total: options.broadcasts });
    }
    net.run_until_quiescent(QUIESCENCE_DEADLINE_US);
    let mut agg = Aggregate::default();
    for id in ids {
        agg.add(net, id);
    }
    agg.write(report);
    let control = net.counts().plumtree_control - control_before;
    let deliveries = net.tracker().remote_deliveries() - deliveries_before;
    report.control_per_payload = (deliveries > 0).then(|| control as f64 / deliveries as f64);
}

fn crash(
    net: &mut Network,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(Progress),
) {
    // Pre-failure level: the worst of 10 broadcasts on the stabilised overlay.
    let mut pre = Aggregate::default();
    for _ in 0..10 {
        let sender = random_alive(net);
        let id = broadcast_and_settle(net, sender);
        pre.add(net, id);
    }
    let pre_level = pre.reliability.iter().copied().fold(1.0, f64::min);
    report.pre_failure_reliability = Some(pre_level);

    net.set_membership_frozen(true);
    let mut alive = net.alive_nodes();
    net.rng().shuffle(&mut alive);
    let victims = ((options.nodes as f64) * options.fail_fraction).round() as usize;
    let victims: Vec<NodeIndex> = alive[..victims.min(alive.len() - 1)].to_vec();
    net.crash(&victims);

    let mut agg = Aggregate::default();
    let mut first = None;
    for b in 0..options.crash_broadcasts {
        let sender = random_alive(net);
        if b == 0 {
            report.first_broadcast_floor = Some(net.component_fraction(sender));
            report.static_flood_reliability = Some(net.expected_flood_reliability());
        }
        let id = broadcast_and_settle(net, sender);
        settle_repair(net);
        let r = agg.add(net, id);
        first.get_or_insert(r);
        if b % 50 == 0 {
            progress(Progress {
                phase: "after-crash",
                done: b + 1,
                total: options.crash_broadcasts,
            });
        }
    }
    agg.write(report);
    report.first_broadcast_reliability = first;
    // The burst belongs to cycle 1: if its last 10 broadcasts are back at the pre-failure
    // level, healing took one cycle.
    let tail = &agg.reliability[agg.reliability.len().saturating_sub(10)..];
    let mut healed = (!tail.is_empty() && tail.iter().all(|r| *r >= pre_level)).then_some(1);
    net.set_membership_frozen(false);
    const HEALING_CYCLES_MAX: u64 = 30;
    let mut cycle = 1;
    while healed.is_none() && cycle < HEALING_CYCLES_MAX {
        cycle += 1;
        let end = net.now_us() + cycle_us(options);
        let mut all = true;
        for _ in 0..10 {
            let sender = random_alive(net);
            let id = broadcast_and_settle(net, sender);
            let r = net.tracker().result(id, &net.alive_mask()).reliability;
            net.tracker_mut().forget(id);
            all &= r >= pre_level;
        }
        net.run_until(end.max(net.now_us()));
        if all {
            healed = Some(cycle);
        }
        progress(Progress { phase: "healing", done: cycle, total: HEALING_CYCLES_MAX });
    }
    report.healing_cycles = healed;
}

fn churn(
    net: &mut Network,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(Progress),
) {
    let mut agg = Aggregate::default();
    for c in 0..options.churn_cycles {
        let end = net.now_us() + cycle_us(options);
        kill_fraction(net, options.churn_rate, &[]);
        let sender = random_alive(net);
        let id = broadcast_and_settle(net, sender);
        agg.add(net, id);
        net.run_until(end.max(net.now_us()));
        progress(Progress { phase: "churn", done: c + 1, total: options.churn_cycles });
    }
    agg.write(report);
}

/// Kills `fraction` of the live nodes (at least one), never those in `protect`.
fn kill_fraction(net: &mut Network, fraction: f64, protect: &[NodeIndex]) -> Vec<NodeIndex> {
    let mut alive: Vec<NodeIndex> =
        net.alive_nodes().into_iter().filter(|i| !protect.contains(i)).collect();
    net.rng().shuffle(&mut alive);
    let count = ((alive.len() as f64 * fraction).round() as usize)
        .max(1)
        .min(alive.len().saturating_sub(1));
    let victims = alive[..count].to_vec();
    net.crash(&victims);
    victims
}

/// Registers `count` services on distinct random live nodes; returns (owner, name).
fn register_services(net: &mut Network, count: u64) -> Vec<(NodeIndex, String)> {
    let mut alive = net.alive_nodes();
    net.rng().shuffle(&mut alive);
    let mut services = Vec::new();
    for k in 0..count as usize {
        let owner = alive[k % alive.len()];
        let name = format!("svc-{k}");
        net.register(owner, &name, k as u64);
        services.push((owner, name));
    }
    services
}

/// Whether every live node sees every service whose owner is alive.
fn all_see_all(net: &Network, services: &[(NodeIndex, String)]) -> bool {
    net.alive_nodes().into_iter().all(|i| {
        let reg = net.node(i).expect("alive").registry();
        services
            .iter()
            .enumerate()
            .filter(|(_, (o, _))| net.is_alive(*o))
            .all(|(k, (o, name))| reg.is_visible(name, o, k as u64))
    })
}

/// Whether no live node sees any service of the `dead` owners.
fn none_see(net: &Network, services: &[(NodeIndex, String)], dead: &[NodeIndex]) -> bool {
    net.alive_nodes().into_iter().all(|i| {
        let reg = net.node(i).expect("alive").registry();
        services
            .iter()
            .enumerate()
            .filter(|(_, (o, _))| dead.contains(o))
            .all(|(k, (o, name))| !reg.is_visible(name, o, k as u64))
    })
}

/// Runs in steps of `step_us` until `done` holds; returns the elapsed virtual time in ms, or
/// `None` after `limit_us`.
fn time_until(
    net: &mut Network,
    step_us: u64,
    limit_us: u64,
    done: impl Fn(&Network) -> bool,
) -> Option<f64> {
    let start = net.now_us();
    loop {
        if done(net) {
            return Some((net.now_us() - start) as f64 / 1000.0);
        }
        if net.now_us() - start >= limit_us {
            return None;
        }
        let at = net.now_us() + step_us;
        net.run_until(at);
    }
}

fn partition(
    net: &mut Network,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(Progress),
) {
    let services = register_services(net, options.services);
    let converged = time_until(net, 100_000, 600_000_000, |n| all_see_all(n, &services));
    report.initial_convergence_ms = converged;
    // Random halves.
    let mut order: Vec<NodeIndex> = (0..net.len() as NodeIndex).collect();
    net.rng().shuffle(&mut order);
    let mut group = vec![0u8; net.len()];
    for i in &order[..order.len() / 2] {
        group[*i as usize] = 1;
    }
    net.partition(group);
    for c in 0..options.partition_cycles {
        let at = net.now_us() + cycle_us(options);
        net.run_until(at);
        progress(Progress { phase: "partitioned", done: c + 1, total: options.partition_cycles });
    }
    net.heal();
    progress(Progress { phase: "healing", done: 0, total: 1 });
    report.convergence_ms =
        time_until(net, 1_000_000, 3_600_000_000, |n| all_see_all(n, &services));
    // Overlay connectivity is measured at the end of every run (report.connected).
}

fn registry(
    net: &mut Network,
    options: &Options,
    report: &mut Report,
    progress: &mut dyn FnMut(Progress),
) {
    net.record_registry_events(true);
    let services = register_services(net, options.services);
    report.convergence_ms = time_until(net, 10_000, 600_000_000, |n| all_see_all(n, &services));
    progress(Progress { phase: "registered", done: 1, total: 3 });
    // Crash the owners of a tenth of the services.
    let dead: Vec<NodeIndex> =
        services.iter().take(services.len().div_ceil(10)).map(|(o, _)| *o).collect();
    net.crash(&dead);
    report.removal_ms = time_until(net, 10_000, 600_000_000, |n| none_see(n, &services, &dead));
    progress(Progress { phase: "owners-crashed", done: 2, total: 3 });
    // Churn among nodes that own nothing: a live owner must never be dropped anywhere.
    net.clear_registry_events();
    let owners: Vec<NodeIndex> = services.iter().map(|(o, _)| *o).collect();
    for c in 0..options.churn_cycles.min(20) {
        let end = net.now_us() + cycle_us(options);
        kill_fraction(net, options.churn_rate, &owners);
        net.run_until(end);
        progress(Progress { phase: "churn", done: c + 1, total: options.churn_cycles.min(20) });
    }
    let false_removals = net
        .registry_events()
        .iter()
        .filter(|(_, e)| match e {
            crate::registry::Event::Down { node, .. }
            | crate::registry::Event::Unregistered { node, .. } => net.is_alive(*node),
            crate::registry::Event::Registered { .. } => false,
        })
        .count();
    report.false_removals = Some(false_removals as u64);
    report.registry_converged_after_churn = Some(all_see_all(net, &services));
}

fn overlay_stats(net: &mut Network, options: &Options) -> OverlayStats {
    let views = net.active_views();
    let active_size = options.node.hyparview.active_size;
    graph::measure(&views, active_size, 50, net.rng())
}
