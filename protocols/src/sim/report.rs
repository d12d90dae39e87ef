//! The result of a scenario: a readable table and a JSON object (keys in docs/SIMULATION.md).

use std::fmt::Write as _;

use super::graph::OverlayStats;
use super::scenario::Options;

/// Everything a scenario measured. `None` is printed as `null` (not applicable).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Every option of the run, for replay.
    pub options: Vec<(&'static str, String)>,
    /// Scenario name.
    pub scenario: String,
    /// Cluster size.
    pub nodes: usize,
    /// Seed.
    pub seed: u64,
    /// Mean reliability over the measured broadcasts.
    pub reliability_mean: Option<f64>,
    /// Worst reliability of a measured broadcast.
    pub reliability_min: Option<f64>,
    /// Reliability of the first broadcast after the crash.
    pub first_broadcast_reliability: Option<f64>,
    /// What the first broadcast after the crash reaches on the static overlay: the size of its
    /// sender's connected component among the survivors (no repair).
    pub first_broadcast_floor: Option<f64>,
    /// Worst reliability before the crash (the level healing must regain).
    pub pre_failure_reliability: Option<f64>,
    /// Membership cycles until a cycle's broadcasts are all back at the pre-failure level.
    pub healing_cycles: Option<u64>,
    /// Mean relative message redundancy.
    pub rmr: Option<f64>,
    /// Mean last delivery hop.
    pub ldh: Option<f64>,
    /// Worst last delivery hop.
    pub ldh_max: Option<f64>,
    /// Live nodes that missed a measured broadcast, summed over broadcasts.
    pub missed: Option<u64>,
    /// Mean time from a broadcast to its last delivery, in ms.
    pub last_delivery_ms: Option<f64>,
    /// Worst time from a broadcast to its last delivery, in ms.
    pub last_delivery_ms_max: Option<f64>,
    /// Plumtree control packets (IHAVE, GRAFT, PRUNE) per payload delivery.
    pub control_per_payload: Option<f64>,
    /// Time for every live node to see every live service, in ms (after healing for
    /// `partition`, after registration for `registry`).
    pub convergence_ms: Option<f64>,
    /// Registry convergence before the partition, in ms.
    pub initial_convergence_ms: Option<f64>,
    /// Time for every live node to drop the services of crashed owners, in ms.
    pub removal_ms: Option<f64>,
    /// Services of live owners that some node dropped during churn.
    pub false_removals: Option<u64>,
    /// Whether every node sees every live service after the churn.
    pub registry_converged_after_churn: Option<bool>,
    /// Fraction of active-view edges that are symmetric.
    pub symmetric_fraction: Option<f64>,
    /// Fraction of live nodes with in-degree = active_size.
    pub in_degree_at_active_size_fraction: Option<f64>,
    /// Whether the overlay is connected.
    pub connected: Option<bool>,
    /// Mean local clustering coefficient (sampled).
    pub clustering: Option<f64>,
    /// Mean shortest path (sampled).
    pub mean_shortest_path: Option<f64>,
    /// In-degree histogram.
    pub in_degree_histogram: Vec<u64>,
    /// Measured broadcasts.
    pub broadcasts_measured: Option<u64>,
    /// Messages sent over the whole run.
    pub messages_total: u64,
    /// Messages sent over the whole run, by kind.
    pub messages_by_kind: Vec<(&'static str, u64)>,
    /// Host wall time of the run, in s (filled by the driver; host-dependent).
    pub wall_s: Option<f64>,
    /// Host peak resident memory, in bytes (filled by the driver; host-dependent).
    pub peak_rss_bytes: Option<u64>,
    /// `peak_rss_bytes / nodes` (filled by the driver; host-dependent).
    pub bytes_per_node: Option<u64>,
}

impl Report {
    /// An empty report for `options`.
    pub fn new(options: &Options) -> Self {
        Self {
            options: options.describe(),
            scenario: options.scenario.name().to_string(),
            nodes: options.nodes,
            seed: options.seed,
            ..Self::default()
        }
    }

    pub(crate) fn set_overlay(&mut self, o: &OverlayStats) {
        self.symmetric_fraction = Some(o.symmetric_fraction);
        self.in_degree_at_active_size_fraction = Some(o.in_degree_at_active_size_fraction);
        self.connected = Some(o.connected);
        self.clustering = Some(o.clustering);
        self.mean_shortest_path = Some(o.mean_shortest_path);
        self.in_degree_histogram = o.in_degree_histogram.clone();
    }

    fn fields(&self, host: bool) -> Vec<(&'static str, String)> {
        let f = |v: Option<f64>| v.map_or("null".to_string(), fmt_f64);
        let u = |v: Option<u64>| v.map_or("null".to_string(), |x| x.to_string());
        let b = |v: Option<bool>| v.map_or("null".to_string(), |x| x.to_string());
        let mut out = vec![
            ("scenario", format!("\"{}\"", self.scenario)),
            ("nodes", self.nodes.to_string()),
            ("seed", self.seed.to_string()),
            ("reliability_mean", f(self.reliability_mean)),
            ("reliability_min", f(self.reliability_min)),
            ("first_broadcast_reliability", f(self.first_broadcast_reliability)),
            ("first_broadcast_floor", f(self.first_broadcast_floor)),
            ("pre_failure_reliability", f(self.pre_failure_reliability)),
            ("healing_cycles", u(self.healing_cycles)),
            ("rmr", f(self.rmr)),
            ("ldh", f(self.ldh)),
            ("ldh_max", f(self.ldh_max)),
            ("missed", u(self.missed)),
            ("last_delivery_ms", f(self.last_delivery_ms)),
            ("last_delivery_ms_max", f(self.last_delivery_ms_max)),
            ("control_per_payload", f(self.control_per_payload)),
            ("convergence_ms", f(self.convergence_ms)),
            ("initial_convergence_ms", f(self.initial_convergence_ms)),
            ("removal_ms", f(self.removal_ms)),
            ("false_removals", u(self.false_removals)),
            ("registry_converged_after_churn", b(self.registry_converged_after_churn)),
            ("symmetric_fraction", f(self.symmetric_fraction)),
            ("in_degree_at_active_size_fraction", f(self.in_degree_at_active_size_fraction)),
            ("connected", b(self.connected)),
            ("clustering", f(self.clustering)),
            ("mean_shortest_path", f(self.mean_shortest_path)),
            ("broadcasts_measured", u(self.broadcasts_measured)),
            ("messages_total", self.messages_total.to_string()),
        ];
        if host {
            out.push(("wall_s", f(self.wall_s)));
            out.push(("peak_rss_bytes", u(self.peak_rss_bytes)));
            out.push(("bytes_per_node", u(self.bytes_per_node)));
        }
        out
    }

    /// One JSON object with every key (host measurements included).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields(true).iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "\"{k}\": {v}");
        }
        let hist: Vec<String> = self.in_degree_histogram.iter().map(|h| h.to_string()).collect();
        let _ = write!(s, ", \"in_degree_histogram\": [{}]", hist.join(", "));
        s.push_str(", \"options\": {");
        for (i, (k, v)) in self.options.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "\"{k}\": \"{v}\"");
        }
        s.push_str("}}");
        s
    }

    /// The readable report. Deterministic: host measurements are left out (the driver prints
    /// them separately), so a seed reprints this byte for byte.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let opts: Vec<String> = self.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(s, "options: {}", opts.join(" "));
        let _ = writeln!(s, "{:<36} value", "metric");
        for (k, v) in self.fields(false) {
            if v != "null" {
                let _ = writeln!(s, "{k:<36} {v}");
            }
        }
        let hist: Vec<String> = self
            .in_degree_histogram
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(d, c)| format!("{d}:{c}"))
            .collect();
        let _ = writeln!(s, "{:<36} {}", "in_degree_histogram", hist.join(" "));
        let kinds: Vec<String> =
            self.messages_by_kind.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        let _ = writeln!(s, "{:<36} {}", "messages_by_kind", kinds.join(" "));
        s
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.6}")
    } else {
        "null".to_string()
    }
}
