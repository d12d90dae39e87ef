//! `shoal-loadgen transport`: the transport's throughput, handshake rate, latency and
//! per-connection memory, measured between two processes on loopback.
//!
//! The server is this binary re-executed with the hidden `transport-server` subcommand
//! ([`server`]); the client runs here. Figures are taken at the server over a timed window
//! that follows a warm-up; docs/PERFORMANCE.md ("Transport") has the method and the figures.

mod baseline;
mod handshake;
mod report;
pub(crate) mod server;
mod stream;

use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use shoal_transport::config::SPIN_BEFORE_PARK_US_MAX;

use report::Report;
use server::ServerProcess;

/// Name of the server node.
const SERVER_NAME: &str = "lg-server@loop";
/// First payload byte of a ping (the server echoes these). A ping is `PING`, its sequence
/// number (u64 BE) and the client's send time; the server's echo adds the time it handled it
/// (both [`wall_ns`]), which splits the round trip into its two directions.
const PING: u8 = 0x50;
/// Bytes of a ping as sent; the echo has 8 more.
const PING_BYTES: usize = 17;

/// Wall-clock time in ns since the Unix epoch: the one clock both processes read alike
/// (an NTP slew over a run's seconds is far below the microseconds measured).
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
/// First payload byte of every other message.
const DATA: u8 = 0x44;
/// Largest payload: the transport's default `frame_bytes_max` (1 MiB) less the kind byte.
const SIZE_MAX: usize = (1 << 20) - 1;
/// Bounds of `--duration`, in seconds.
const DURATION_MAX_S: f64 = 3_600.0;
/// Rounds of each kind (authenticated, TLS-only) in the handshake workload.
const HANDSHAKE_ROUNDS: u32 = 2;
/// Bound of `--connections` for the handshake workload (one socket and endpoint each).
const CONNECTIONS_MAX: usize = 4_096;
/// Bound of `--idle-connections` (one client socket each; the fd limit is the real bound).
const IDLE_CONNECTIONS_MAX: usize = 10_000;

/// The long help of `shoal-loadgen transport` (the method, in brief).
pub(crate) const LONG_ABOUT: &str = "\
Benchmarks the shoal transport between two processes on loopback: this binary re-executes
itself as the server (a shoal Transport on 127.0.0.1, --shards executors); the client runs
here. Figures are measured at the server over --duration seconds after a 0.5 s warm-up.

Workloads:
  handshake  --connections C loops (default 32), each: dial, LinkUp (QUIC handshake with
             Ed25519 certificates both ways + HELLO/WELCOME with identity proofs both ways),
             close, dial again. The client is one thread driving C sans-IO endpoints (names
             lg-<i>@loop, one UDP socket each). handshakes_per_s = LinkUps at the server /
             duration. The same loops also run against servers with authentication off
             (cookie-only HELLO/WELCOME): tls_only_handshakes_per_s, and auth_ratio =
             handshakes_per_s / tls_only_handshakes_per_s. The two kinds alternate, two
             rounds each of duration/2, each round against a fresh server. Then, against a
             fresh server, --idle-connections connections (default 1000, 0 = skip) are opened
             and held; bytes_per_idle_connection = server RSS growth / that count.
  messages   one connection; the client's shard handler refills its send queue on a data
             lane in on_poll until QueueFull; msgs_per_s = messages the server received /
             duration. --size default 64.
  bulk       the same with --size default 65536; gbit_per_s = payload bits the server
             received / duration.
  rtt        one connection: 2 s (or --duration if shorter) of the messages flood to
             measure the max rate, a drain, then a background stream at half that rate (or
             --rate) on lane 0 while one ping at a time (17 bytes, lane 3) is echoed by the
             server; RTT percentiles from an HDR histogram of the client-side round trips
             (after a 0.5 s warm-up), and the same round trips split where the server's
             handler saw them (rtt_forward_*, rtt_back_*; wall clock of both processes).

Placement: pinned by default: server shard i on CPU i, the client on the remaining CPUs
(all CPUs if none remain); --no-pin lets the kernel place both. --spin-before-park-us sets
the transport's spin_before_park_us in both processes (default 0: shards park at once).
cpu_s is client + server CPU time over the timed window; peak_rss_bytes is the server's.
--baseline also measures the same work on two bare quiche connections in memory, in this
thread (no sockets, no shoal layers): ratio_to_baseline = the workload's main figure / its
baseline (rtt: none); for handshake with idle connections, baseline_bytes_per_idle_connection
is the RSS growth of a fresh child process per bare quiche server connection it keeps
established (client sides dropped).

Server control channel: the child's stdin/stdout, one line each way (see the source,
loadgen/src/transport/server.rs).";

/// Options of `shoal-loadgen transport`.
#[derive(Args, Debug)]
pub(crate) struct TransportArgs {
    /// handshake, messages, rtt or bulk.
    #[arg(long)]
    workload: String,
    /// Server shards (glommio executors, one per core when pinned).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Concurrent connections: dial/close loops for handshake (default 32); 1 for the others.
    #[arg(long)]
    connections: Option<usize>,
    /// Message payload in bytes (messages and rtt: 64, bulk: 65536).
    #[arg(long)]
    size: Option<usize>,
    /// Length of the timed window, in seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also measure the in-memory quiche ceiling for the same work.
    #[arg(long)]
    baseline: bool,
    /// handshake: connections held open to measure memory per idle connection (0 = skip).
    #[arg(long)]
    idle_connections: Option<usize>,
    /// rtt: background messages per second (default: half the measured max).
    #[arg(long)]
    rate: Option<f64>,
    /// messages and bulk: spread messages round-robin over this many data lanes (streams).
    #[arg(long, default_value_t = 1)]
    lanes: usize,
    /// Let the kernel place server and client threads (default: pinned, see --help).
    #[arg(long)]
    no_pin: bool,
    /// The transport's `spin_before_park_us` for the server's shards and the client's shard
    /// (default 0: park at once, the transport's default).
    #[arg(long, default_value_t = 0)]
    spin_before_park_us: u64,
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    Handshake,
    Messages,
    Rtt,
    Bulk,
}

impl Workload {
    fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text {
            "handshake" => Self::Handshake,
            "messages" => Self::Messages,
            "rtt" => Self::Rtt,
            "bulk" => Self::Bulk,
            other => bail!("--workload must be handshake, messages, rtt or bulk (got {other:?})"),
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Messages => "messages",
            Self::Rtt => "rtt",
            Self::Bulk => "bulk",
        }
    }
}

/// Validated options.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) workload: Workload,
    pub(crate) shards: usize,
    pub(crate) connections: usize,
    pub(crate) size: usize,
    pub(crate) duration: Duration,
    pub(crate) idle_connections: usize,
    pub(crate) rate: Option<f64>,
    pub(crate) lanes: usize,
    pub(crate) pin: bool,
    pub(crate) spin_before_park_us: u64,
    pub(crate) baseline: bool,
}

impl Plan {
    pub(crate) fn from_args(args: &TransportArgs) -> anyhow::Result<Self> {
        let workload = Workload::parse(&args.workload)?;
        let name = workload.name();
        if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= DURATION_MAX_S) {
            bail!("--duration must be in (0, {DURATION_MAX_S}] seconds (got {})", args.duration);
        }
        if !(1..=64).contains(&args.shards) {
            bail!("--shards must be 1..=64 (got {})", args.shards);
        }
        let connections = match (workload, args.connections) {
            (Workload::Handshake, None) => 32,
            (Workload::Handshake, Some(c)) if (1..=CONNECTIONS_MAX).contains(&c) => c,
            (Workload::Handshake, Some(c)) => {
                bail!("--connections must be 1..={CONNECTIONS_MAX} (got {c})")
            }
            (_, None | Some(1)) => 1,
            (_, Some(c)) => {
                bail!("--connections must be 1 for {name} (one connection; got {c})")
            }
        };
        let size = match (workload, args.size) {
            (Workload::Handshake, Some(_)) => bail!("--size does not apply to handshake"),
            (Workload::Handshake, None) => 0,
            (Workload::Bulk, None) => 65_536,
            (_, None) => 64,
            // Background messages are at least as long as a ping (kind, sequence, send time).
            (Workload::Rtt, Some(s)) if !(PING_BYTES..=SIZE_MAX).contains(&s) => {
                bail!("--size must be {PING_BYTES}..={SIZE_MAX} for rtt (got {s})")
            }
            (_, Some(s)) if !(1..=SIZE_MAX).contains(&s) => {
                bail!("--size must be 1..={SIZE_MAX} (got {s})")
            }
            (_, Some(s)) => s,
        };
        let idle_connections = match (workload, args.idle_connections) {
            (Workload::Handshake, None) => 1_000,
            (Workload::Handshake, Some(n)) if n <= IDLE_CONNECTIONS_MAX => n,
            (Workload::Handshake, Some(n)) => {
                bail!("--idle-connections must be 0..={IDLE_CONNECTIONS_MAX} (got {n})")
            }
            (_, Some(_)) => bail!("--idle-connections applies to handshake only"),
            (_, None) => 0,
        };
        let rate = match (workload, args.rate) {
            (_, None) => None,
            (Workload::Rtt, Some(r)) if r.is_finite() && r > 0.0 => Some(r),
            (Workload::Rtt, Some(r)) => bail!("--rate must be a positive number (got {r})"),
            (_, Some(_)) => bail!("--rate applies to rtt only"),
        };
        if args.spin_before_park_us > SPIN_BEFORE_PARK_US_MAX {
            bail!(
                "--spin-before-park-us must be 0..={SPIN_BEFORE_PARK_US_MAX} (got {})",
                args.spin_before_park_us
            );
        }
        if !(1..=4).contains(&args.lanes) {
            bail!("--lanes must be 1..=4 (the transport's data lanes; got {})", args.lanes);
        }
        if args.lanes > 1 && !matches!(workload, Workload::Messages | Workload::Bulk) {
            bail!("--lanes applies to messages and bulk only");
        }
        Ok(Self {
            workload,
            shards: args.shards,
            connections,
            size,
            duration: Duration::from_secs_f64(args.duration),
            idle_connections,
            rate,
            lanes: args.lanes,
            spin_before_park_us: args.spin_before_park_us,
            pin: !args.no_pin,
            baseline: args.baseline,
        })
    }
}

/// Whether the kernel accepts UDP_SEGMENT on this machine (as the transport's socket factory
/// probes it).
pub(crate) fn gso_available() -> bool {
    let options =
        shoal_transport::sys::SocketOptions { rcvbuf_bytes: 1 << 16, sndbuf_bytes: 1 << 16 };
    shoal_transport::sys::bind_shard_sockets(([127, 0, 0, 1], 0).into(), 1, &options)
        .is_ok_and(|group| group.gso)
}

/// CPUs of the server's shards and of the client when pinned.
fn placement(shards: usize) -> Vec<usize> {
    let cpus = crate::host::online_cpus();
    let client: Vec<usize> = (shards..cpus).collect();
    if client.is_empty() {
        (0..cpus).collect()
    } else {
        client
    }
}

pub(crate) fn run(args: TransportArgs) -> anyhow::Result<()> {
    let plan = Plan::from_args(&args)?;
    let report = measure(&plan)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Runs the plan; the report of the run.
pub(crate) fn measure(plan: &Plan) -> anyhow::Result<Report> {
    let mut report = Report {
        workload: plan.workload.name().to_string(),
        shards: plan.shards,
        connections: plan.connections,
        size_bytes: (plan.workload != Workload::Handshake).then_some(plan.size),
        pinned: plan.pin,
        ..Report::default()
    };
    let echo = plan.workload == Workload::Rtt;
    let mut server = ServerProcess::spawn(plan, echo)?;
    report.gso = server.gso;
    if plan.pin {
        // Servers started from now on get the mask from before this (host::spawn_unpinned).
        crate::host::pin_current_thread(&placement(plan.shards))?;
    }
    match plan.workload {
        Workload::Handshake => {
            let (authenticated, tls_only, peak_rss) = handshake_rounds(plan, server)?;
            report.peak_rss_bytes = Some(peak_rss);
            report.duration_s = authenticated.seconds;
            report.handshakes_per_s = Some(authenticated.handshakes as f64 / authenticated.seconds);
            report.handshakes_per_server_cpu_s =
                Some(authenticated.handshakes as f64 / authenticated.server_cpu_s.max(1e-9));
            report.set_cpu(authenticated.client_cpu_s, authenticated.server_cpu_s);
            for (figures, what) in [(&authenticated, "authenticated"), (&tls_only, "TLS-only")] {
                if figures.handshakes == 0 {
                    bail!(
                        "no {what} handshake completed in the timed window (client saw {}, {} \
                         failed)",
                        figures.client_handshakes,
                        figures.failures
                    );
                }
            }
            let tls_only_per_s = tls_only.handshakes as f64 / tls_only.seconds;
            report.tls_only_handshakes_per_s = Some(tls_only_per_s);
            report.auth_ratio = report.handshakes_per_s.map(|rate| rate / tls_only_per_s);
        }
        _ => {
            stream::run(plan, &mut server, &mut report)?;
            let last = server.stop()?;
            report.peak_rss_bytes = Some(last.peak_rss_bytes);
        }
    }
    if plan.workload == Workload::Handshake && plan.idle_connections > 0 {
        let mut fresh = ServerProcess::spawn(plan, false).context("idle-connection phase")?;
        let per_connection =
            handshake::idle_bytes_per_connection(&mut fresh, plan.idle_connections)
                .context("idle-connection phase")?;
        fresh.stop().context("idle-connection phase")?;
        report.bytes_per_idle_connection = Some(per_connection);
        report.idle_connections = Some(plan.idle_connections);
    }
    if plan.baseline {
        run_baseline(plan, &mut report)?;
    }
    Ok(report)
}

/// Rounds of the handshake workload: authenticated and TLS-only (authentication off) loops
/// alternate, [`HANDSHAKE_ROUNDS`] of each, each against a fresh server and for an equal share
/// of `--duration`, so that a drift of the machine (frequency, other load) weighs on both
/// figures alike. `server` (already running, authentication on) serves the first round.
/// Returns the summed figures of each kind and the authenticated servers' peak RSS.
fn handshake_rounds(
    plan: &Plan,
    server: ServerProcess,
) -> anyhow::Result<(handshake::HandshakeFigures, handshake::HandshakeFigures, u64)> {
    let share = plan.duration / HANDSHAKE_ROUNDS;
    let mut first = Some(server);
    let mut authenticated = handshake::HandshakeFigures::default();
    let mut tls_only = handshake::HandshakeFigures::default();
    let mut peak_rss = 0;
    for round in 0..HANDSHAKE_ROUNDS {
        for auth in [true, false] {
            let what = if auth { "authenticated" } else { "TLS-only" };
            let mut server = match first.take() {
                Some(server) => server,
                None => ServerProcess::spawn_with(plan, false, auth)
                    .with_context(|| format!("{what} round {round}"))?,
            };
            let figures = handshake::run_loops(plan, share, &mut server, auth)
                .with_context(|| format!("{what} round {round}"))?;
            let last = server.stop().with_context(|| format!("{what} round {round}"))?;
            if auth {
                authenticated.add(&figures);
                peak_rss = peak_rss.max(last.peak_rss_bytes);
            } else {
                tls_only.add(&figures);
            }
        }
    }
    Ok((authenticated, tls_only, peak_rss))
}

/// Options of the hidden `transport-baseline-idle` subcommand (set by `transport`).
#[derive(clap::Args, Debug)]
pub(crate) struct BaselineIdleArgs {
    /// Bare quiche connections to establish and hold.
    #[arg(long)]
    count: usize,
}

/// Body of `transport-baseline-idle`: prints the RSS growth per connection on stdout.
pub(crate) fn run_baseline_idle(args: &BaselineIdleArgs) -> anyhow::Result<()> {
    if !(1..=IDLE_CONNECTIONS_MAX).contains(&args.count) {
        bail!("--count must be 1..={IDLE_CONNECTIONS_MAX} (got {})", args.count);
    }
    println!("{}", baseline::idle_bytes_per_connection(args.count)?);
    Ok(())
}

/// Runs [`baseline::idle_bytes_per_connection`] in a fresh child process: in this one, the
/// heap that earlier phases grew and freed would absorb the connections without any RSS
/// growth (measured: 0–172 B per connection in-process, against the figure below).
fn baseline_idle_in_child(count: usize) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("cannot find this executable to re-run it")?;
    let output = std::process::Command::new(exe)
        .args(["transport-baseline-idle", "--count", &count.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot start the idle-connection baseline process")?;
    if !output.status.success() {
        bail!("the idle-connection baseline process failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().with_context(|| format!("unexpected baseline output {:?}", text.trim()))
}

fn run_baseline(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let duration = plan.duration;
    match plan.workload {
        Workload::Handshake => {
            let base = baseline::handshakes_per_s(duration)?;
            report.baseline_handshakes_per_s = Some(base);
            report.ratio_to_baseline = report.handshakes_per_s.map(|v| v / base);
            if plan.idle_connections > 0 {
                report.baseline_bytes_per_idle_connection =
                    Some(baseline_idle_in_child(plan.idle_connections)?);
            }
        }
        Workload::Messages => {
            let base = baseline::stream_bytes_per_s(plan.size, duration)? / plan.size as f64;
            report.baseline_msgs_per_s = Some(base);
            report.ratio_to_baseline = report.msgs_per_s.map(|v| v / base);
        }
        Workload::Bulk => {
            let base = baseline::stream_bytes_per_s(plan.size, duration)? * 8.0 / 1e9;
            report.baseline_gbit_per_s = Some(base);
            report.ratio_to_baseline = report.gbit_per_s.map(|v| v / base);
        }
        // No in-memory counterpart of a latency under load.
        Workload::Rtt => return Ok(()),
    }
    report.baseline_duration_s = Some(duration.as_secs_f64());
    Ok(())
}

impl Report {
    fn set_cpu(&mut self, client: f64, server: f64) {
        self.client_cpu_s = Some(client);
        self.server_cpu_s = Some(server);
        self.cpu_s = Some(client + server);
    }
}
