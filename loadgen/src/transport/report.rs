//! The result of one `shoal-loadgen transport` run: one JSON object (`--json`) or a table.

use std::fmt::Write as _;

use serde::Serialize;

/// Every figure of a run. Keys that a workload does not measure are `null` in JSON. The first
/// eighteen keys are the fixed schema (docs/PERFORMANCE.md, "Transport"); the rest are extras.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) workload: String,
    /// Server shards.
    pub(crate) shards: usize,
    /// Concurrent connections of the timed phase.
    pub(crate) connections: usize,
    /// Message payload size (null for handshake).
    pub(crate) size_bytes: Option<usize>,
    /// Length of the timed window, as measured.
    pub(crate) duration_s: f64,
    /// Authenticated handshakes (Ed25519 identity proofs both ways) per second.
    pub(crate) handshakes_per_s: Option<f64>,
    /// The same workload with authentication off (`auth_enabled = false`), same run.
    pub(crate) tls_only_handshakes_per_s: Option<f64>,
    /// `handshakes_per_s / tls_only_handshakes_per_s`.
    pub(crate) auth_ratio: Option<f64>,
    pub(crate) msgs_per_s: Option<f64>,
    pub(crate) gbit_per_s: Option<f64>,
    pub(crate) rtt_p50_us: Option<f64>,
    pub(crate) rtt_p99_us: Option<f64>,
    pub(crate) rtt_p999_us: Option<f64>,
    /// Client + server CPU seconds over the timed window.
    pub(crate) cpu_s: Option<f64>,
    /// The server process's peak RSS.
    pub(crate) peak_rss_bytes: Option<u64>,
    pub(crate) bytes_per_idle_connection: Option<f64>,
    pub(crate) baseline_handshakes_per_s: Option<f64>,
    pub(crate) baseline_msgs_per_s: Option<f64>,
    pub(crate) baseline_gbit_per_s: Option<f64>,
    /// RSS growth per bare quiche server connection kept established, in memory.
    pub(crate) baseline_bytes_per_idle_connection: Option<f64>,
    pub(crate) ratio_to_baseline: Option<f64>,
    // Extras.
    /// Server shards pinned to CPUs 0..K, the client to the other CPUs.
    pub(crate) pinned: bool,
    /// The kernel accepts UDP_SEGMENT, so the transport sends GSO batches.
    pub(crate) gso: bool,
    pub(crate) client_cpu_s: Option<f64>,
    pub(crate) server_cpu_s: Option<f64>,
    /// Handshakes per second of server CPU (the per-core capacity when the client limits).
    pub(crate) handshakes_per_server_cpu_s: Option<f64>,
    /// Idle connections held open for `bytes_per_idle_connection`.
    pub(crate) idle_connections: Option<usize>,
    /// Max message rate measured before the RTT phase (the flood of `messages`).
    pub(crate) rtt_max_msgs_per_s: Option<f64>,
    /// Background message rate the RTT phase asked for (half the max unless `--rate`).
    pub(crate) rtt_load_msgs_per_s: Option<f64>,
    /// Background message rate the server saw during the RTT phase.
    pub(crate) rtt_load_achieved_msgs_per_s: Option<f64>,
    pub(crate) rtt_samples: Option<u64>,
    pub(crate) rtt_max_us: Option<f64>,
    /// The round trips split where the server's handler saw the ping (wall clock of both
    /// processes): client → server handler and back, p50 and p99.
    pub(crate) rtt_forward_p50_us: Option<f64>,
    pub(crate) rtt_forward_p99_us: Option<f64>,
    pub(crate) rtt_back_p50_us: Option<f64>,
    pub(crate) rtt_back_p99_us: Option<f64>,
    /// The client connection's packets sent and declared lost by QUIC (whole run).
    pub(crate) sent_packets: Option<u64>,
    pub(crate) lost_packets: Option<u64>,
    /// The client connection's smoothed RTT and congestion window at the end of the window.
    pub(crate) srtt_us: Option<u64>,
    pub(crate) cwnd_bytes: Option<u64>,
    /// Length of the in-memory baseline run.
    pub(crate) baseline_duration_s: Option<f64>,
}

impl Report {
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serialises")
    }

    /// A readable table: each measured figure, with its target where one exists.
    pub(crate) fn to_table(&self) -> String {
        let mut rows: Vec<(&str, String, &str)> = Vec::new();
        let placement = if self.pinned { "pinned" } else { "unpinned" };
        rows.push(("workload", self.workload.clone(), ""));
        rows.push((
            "setup",
            format!(
                "{} server shard(s), {} connection(s), {}, GSO {}",
                self.shards,
                self.connections,
                placement,
                if self.gso { "on" } else { "off" }
            ),
            "",
        ));
        if let Some(size) = self.size_bytes {
            rows.push(("size", format!("{size} B"), ""));
        }
        rows.push(("duration", format!("{:.2} s", self.duration_s), ""));
        let mut figure = |name, value: Option<String>, target| {
            if let Some(value) = value {
                rows.push((name, value, target));
            }
        };
        figure("handshakes/s", self.handshakes_per_s.map(|v| format!("{v:.0}")), ">= 6,500");
        figure(
            "TLS-only handshakes/s",
            self.tls_only_handshakes_per_s.map(|v| format!("{v:.0}")),
            "",
        );
        figure("auth ratio", self.auth_ratio.map(|v| format!("{v:.3}")), ">= 0.75");
        figure(
            "handshakes/server CPU s",
            self.handshakes_per_server_cpu_s.map(|v| format!("{v:.0}")),
            "",
        );
        figure("messages/s", self.msgs_per_s.map(|v| format!("{v:.0}")), ">= 300,000 (64 B)");
        figure("Gbit/s", self.gbit_per_s.map(|v| format!("{v:.3}")), ">= 2 and >= 0.8 x baseline");
        figure("RTT p50", self.rtt_p50_us.map(|v| format!("{v:.1} us")), "");
        figure("RTT p99", self.rtt_p99_us.map(|v| format!("{v:.1} us")), "<= 1,000 us");
        figure("RTT p99.9", self.rtt_p999_us.map(|v| format!("{v:.1} us")), "");
        figure("RTT max", self.rtt_max_us.map(|v| format!("{v:.1} us")), "");
        figure("RTT samples", self.rtt_samples.map(|v| v.to_string()), "");
        figure("max messages/s (probe)", self.rtt_max_msgs_per_s.map(|v| format!("{v:.0}")), "");
        figure("load asked", self.rtt_load_msgs_per_s.map(|v| format!("{v:.0} msg/s")), "");
        figure(
            "load achieved",
            self.rtt_load_achieved_msgs_per_s.map(|v| format!("{v:.0} msg/s")),
            "",
        );
        figure(
            "client path",
            self.lost_packets.map(|lost| {
                format!(
                    "{lost} of {} packets lost, srtt {} us, cwnd {} B",
                    self.sent_packets.unwrap_or(0),
                    self.srtt_us.unwrap_or(0),
                    self.cwnd_bytes.unwrap_or(0)
                )
            }),
            "",
        );
        figure(
            "CPU (client + server)",
            self.cpu_s.map(|v| {
                format!(
                    "{v:.2} s ({} + {})",
                    fmt_opt(self.client_cpu_s, 2),
                    fmt_opt(self.server_cpu_s, 2)
                )
            }),
            "",
        );
        figure("server peak RSS", self.peak_rss_bytes.map(mib), "");
        figure(
            "bytes/idle connection",
            self.bytes_per_idle_connection
                .map(|v| format!("{v:.0} ({} connections)", self.idle_connections.unwrap_or(0))),
            "<= 16,384",
        );
        figure(
            "baseline handshakes/s",
            self.baseline_handshakes_per_s.map(|v| format!("{v:.0}")),
            "",
        );
        figure("baseline messages/s", self.baseline_msgs_per_s.map(|v| format!("{v:.0}")), "");
        figure("baseline Gbit/s", self.baseline_gbit_per_s.map(|v| format!("{v:.3}")), "");
        figure(
            "baseline bytes/idle connection",
            self.baseline_bytes_per_idle_connection.map(|v| format!("{v:.0}")),
            "",
        );
        figure("ratio to baseline", self.ratio_to_baseline.map(|v| format!("{v:.3}")), "");
        let width = rows.iter().map(|(name, _, _)| name.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|(_, value, _)| value.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (name, value, target) in rows {
            if target.is_empty() {
                let _ = writeln!(out, "{name:<width$}  {value}");
            } else {
                let _ = writeln!(out, "{name:<width$}  {value:<value_width$}  target {target}");
            }
        }
        out
    }
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
