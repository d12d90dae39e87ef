//! The messages, bulk and rtt workloads: one client node (a shoal `Transport`, one shard)
//! with one connection to the server process. The client's shard handler does all sending on
//! the shard thread: it refills its send queue in `on_poll` until `QueueFull` (flood), or up to
//! a rate (paced background load), and keeps one ping in flight (rtt).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use hdrhistogram::Histogram;
use shoal_protocols::NodeName;
use shoal_transport::config::TransportConfig;
use shoal_transport::endpoint::{Event, Lane, SendError};
use shoal_transport::shard::{
    HandleError, HandlerFactory, ShardContext, ShardHandler, Transport, TransportHandle,
};

use super::server::{ServerProcess, ServerStats};
use super::{wall_ns, Plan, Workload, DATA, PING, PING_BYTES, SERVER_NAME};

/// Lane of the pings: a stream of its own, so a ping never queues behind background messages
/// in one stream (it still shares the connection, its congestion window and both shards).
const PING_LANE: u64 = 3;
/// Unmeasured time after the link is up (congestion window and flow-control windows grow).
const WARMUP: Duration = Duration::from_millis(500);
/// Length of the max-rate probe that precedes the RTT phase (shorter when `--duration` is).
const PROBE: Duration = Duration::from_secs(2);
/// Bound on the wait for the server to receive everything queued by the probe.
const DRAIN_MAX: Duration = Duration::from_secs(10);
/// Bound on the wait for the link.
const LINK_UP_MAX: Duration = Duration::from_secs(10);

const MODE_IDLE: u8 = 0;
const MODE_FLOOD: u8 = 1;
const MODE_PACED: u8 = 2;

/// State shared between the client's shard handler and the main thread.
struct Shared {
    mode: AtomicU8,
    /// Paced mode: messages per second (f64 bits).
    rate_bits: AtomicU64,
    /// Keep one ping in flight.
    ping: AtomicBool,
    link_up: AtomicBool,
    /// Data messages the transport accepted.
    sent: AtomicU64,
    /// Why the link went down, if it did.
    failure: Mutex<Option<String>>,
    /// Ping samples (touched by the shard thread only while pinging). One lock for all three
    /// histograms: a ping records into each, and takes the lock once.
    samples: Mutex<Samples>,
}

/// The samples of the pings, in nanoseconds.
#[derive(Clone)]
struct Samples {
    /// Round trips (the client's monotonic clock).
    rtt: Histogram<u64>,
    /// The same round trips split at the server's handler: client → server handler, and
    /// server handler → client (from the wall clock both processes share).
    forward: Histogram<u64>,
    back: Histogram<u64>,
}

impl Samples {
    fn new() -> Self {
        Self { rtt: rtt_histogram(), forward: rtt_histogram(), back: rtt_histogram() }
    }

    fn reset(&mut self) {
        self.rtt.reset();
        self.forward.reset();
        self.back.reset();
    }
}

struct Driver {
    shared: Arc<Shared>,
    server: NodeName,
    addr: SocketAddr,
    payload: Vec<u8>,
    lanes: u64,
    next_lane: u64,
    /// Paced mode: when it started and `sent` at that time.
    paced_since: Option<(Instant, u64)>,
    /// The ping in flight: sequence number and send time.
    in_flight: Option<(u64, Instant)>,
    next_seq: u64,
}

impl Driver {
    fn send_data(&mut self, ctx: &mut ShardContext<'_>) -> bool {
        let lane = Lane::Data(self.next_lane);
        match ctx.send(&self.server, self.addr, lane, &self.payload) {
            Ok(()) => {
                self.next_lane = (self.next_lane + 1) % self.lanes;
                self.shared.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(SendError::QueueFull { .. }) => false,
            Err(error) => {
                self.fail(format!("send refused: {error}"));
                false
            }
        }
    }

    fn send_ping(&mut self, ctx: &mut ShardContext<'_>) {
        let seq = self.next_seq;
        let mut ping = [0u8; PING_BYTES];
        ping[0] = PING;
        ping[1..9].copy_from_slice(&seq.to_be_bytes());
        ping[9..].copy_from_slice(&wall_ns().to_be_bytes());
        match ctx.send(&self.server, self.addr, Lane::Data(PING_LANE), &ping) {
            Ok(()) => {
                self.next_seq += 1;
                self.in_flight = Some((seq, Instant::now()));
            }
            // Retried from the next on_poll.
            Err(SendError::QueueFull { .. }) => {}
            Err(error) => self.fail(format!("ping refused: {error}")),
        }
    }

    fn fail(&self, why: String) {
        self.shared.mode.store(MODE_IDLE, Ordering::Relaxed);
        let mut failure = self.shared.failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.get_or_insert(why);
    }
}

impl ShardHandler for Driver {
    fn on_event(&mut self, ctx: &mut ShardContext<'_>, event: Event) {
        match event {
            Event::LinkUp { .. } => self.shared.link_up.store(true, Ordering::Release),
            Event::LinkDown { reason, .. } => {
                if self.shared.mode.load(Ordering::Relaxed) != MODE_IDLE
                    || self.shared.ping.load(Ordering::Relaxed)
                {
                    self.fail(format!("the link to the server went down: {reason:?}"));
                }
                self.shared.link_up.store(false, Ordering::Release);
            }
            Event::Message { payload, .. }
                if payload.len() == PING_BYTES + 8 && payload[0] == PING =>
            {
                let now = Instant::now();
                let now_wall = wall_ns();
                // Invariant: the guard above fixed the length, so the fields are all there.
                let field = |at: usize| {
                    u64::from_be_bytes(payload[at..at + 8].try_into().expect("length checked"))
                };
                let (seq, sent_wall, served_wall) = (field(1), field(9), field(PING_BYTES));
                if let Some((expected, sent_at)) = self.in_flight {
                    if seq == expected {
                        self.in_flight = None;
                        let nanos = u64::try_from((now - sent_at).as_nanos()).unwrap_or(u64::MAX);
                        let mut samples = self.shared.samples();
                        samples.rtt.saturating_record(nanos);
                        samples.forward.saturating_record(served_wall.saturating_sub(sent_wall));
                        samples.back.saturating_record(now_wall.saturating_sub(served_wall));
                    }
                }
                if self.in_flight.is_none() && self.shared.ping.load(Ordering::Relaxed) {
                    self.send_ping(ctx);
                }
            }
            _ => {}
        }
    }

    fn on_poll(&mut self, ctx: &mut ShardContext<'_>) {
        match self.shared.mode.load(Ordering::Relaxed) {
            MODE_FLOOD => {
                self.paced_since = None;
                while self.send_data(ctx) {}
            }
            MODE_PACED => {
                let sent = self.shared.sent.load(Ordering::Relaxed);
                let (since, sent_then) = *self.paced_since.get_or_insert((Instant::now(), sent));
                let rate = f64::from_bits(self.shared.rate_bits.load(Ordering::Relaxed));
                let due = (since.elapsed().as_secs_f64() * rate) as u64;
                let mut done = sent - sent_then;
                while done < due && self.send_data(ctx) {
                    done += 1;
                }
            }
            _ => self.paced_since = None,
        }
        if self.shared.ping.load(Ordering::Relaxed) && self.in_flight.is_none() {
            self.send_ping(ctx);
        }
    }
}

/// 1 µs .. 60 s, 3 significant digits (values in ns).
fn rtt_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid bounds")
}

impl Shared {
    fn samples(&self) -> MutexGuard<'_, Samples> {
        self.samples.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The client node and its driver's shared state.
struct Client {
    transport: Transport,
    handle: TransportHandle,
    shared: Arc<Shared>,
}

impl Client {
    fn start(plan: &Plan, server: SocketAddr) -> anyhow::Result<Self> {
        let name = NodeName::parse("lg-client@loop").map_err(|e| anyhow!("client name: {e}"))?;
        let server_name = NodeName::parse(SERVER_NAME).map_err(|e| anyhow!("server name: {e}"))?;
        let mut config = TransportConfig::new(name, SocketAddr::from(([127, 0, 0, 1], 0)));
        config.shards = 1;
        config.spin_before_park_us = plan.spin_before_park_us;
        // Placement comes from the process's affinity mask (set by the caller when pinned).
        config.pin_shards = false;
        config.quic_cert_dir = None;
        config.auth.auth_key_dir = None;
        config.shutdown_timeout_ms = 500;
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(MODE_IDLE),
            rate_bits: AtomicU64::new(0f64.to_bits()),
            ping: AtomicBool::new(false),
            link_up: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            failure: Mutex::new(None),
            samples: Mutex::new(Samples::new()),
        });
        let mut payload = vec![0xA5u8; plan.size];
        payload[0] = DATA;
        let lanes = plan.lanes as u64;
        let for_shard = Arc::clone(&shared);
        let factory: HandlerFactory = Arc::new(move |_shard| {
            Box::new(Driver {
                shared: Arc::clone(&for_shard),
                server: server_name.clone(),
                addr: server,
                payload: payload.clone(),
                lanes,
                next_lane: 0,
                paced_since: None,
                in_flight: None,
                next_seq: 0,
            })
        });
        let transport =
            Transport::start(config, factory).context("cannot start the client transport")?;
        let handle = transport.handle();
        Ok(Self { transport, handle, shared })
    }

    /// Wakes the shard so that its handler's `on_poll` runs (a mode change takes effect).
    /// Only an idle shard needs the wake-up; a busy one polls its handler after every input
    /// anyway, and may take seconds to serve its mailbox while flooding (measured), so a
    /// timeout here is not an error.
    fn kick(&self) -> anyhow::Result<()> {
        match self.handle.run_on(0, Duration::from_secs(1), |_ctx| {}) {
            Ok(()) | Err(HandleError::Timeout(_)) => Ok(()),
            Err(e) => Err(anyhow!("client shard: {e}")),
        }
    }

    fn set_mode(&self, mode: u8) -> anyhow::Result<()> {
        self.shared.mode.store(mode, Ordering::Relaxed);
        self.kick()
    }

    /// Stops sending, then reads the path figures of the client's connection (loss, RTT and
    /// window diagnostics). A flooding shard can leave its mailbox unserved for seconds.
    fn stop_and_read_path(&self, report: &mut super::report::Report) -> anyhow::Result<()> {
        self.shared.ping.store(false, Ordering::Relaxed);
        self.set_mode(MODE_IDLE)?;
        let server = NodeName::parse(SERVER_NAME).map_err(|e| anyhow!("server name: {e}"))?;
        let stats = self
            .handle
            .run_on(0, Duration::from_secs(30), move |ctx| ctx.endpoint().path_stats(&server))
            .map_err(|e| anyhow!("client shard: {e}"))?;
        if let Some(stats) = stats {
            report.lost_packets = Some(stats.lost_packets);
            report.sent_packets = Some(stats.sent_packets);
            report.srtt_us = Some(stats.srtt_us);
            report.cwnd_bytes = Some(stats.cwnd_bytes);
        }
        Ok(())
    }

    fn check(&self) -> anyhow::Result<()> {
        let failure = self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match failure {
            Some(why) => bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Sends the first message (which dials) and waits for the link.
    fn connect(&self) -> anyhow::Result<()> {
        self.set_mode(MODE_FLOOD)?;
        let deadline = Instant::now() + LINK_UP_MAX;
        while !self.shared.link_up.load(Ordering::Acquire) {
            self.check()?;
            if Instant::now() > deadline {
                bail!("no link to the server within {LINK_UP_MAX:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }
}

/// A measured window: server figures and both CPU clocks at its two ends.
struct Window {
    start: Instant,
    server: ServerStats,
    client_cpu: f64,
}

impl Window {
    fn open(server: &mut ServerProcess) -> anyhow::Result<Self> {
        let client_cpu = crate::host::cpu_seconds();
        let stats = server.stats()?;
        Ok(Self { start: Instant::now(), server: stats, client_cpu })
    }

    /// (seconds, server delta, client CPU, server CPU)
    fn close(&self, server: &mut ServerProcess) -> anyhow::Result<(f64, ServerStats, f64, f64)> {
        let stats = server.stats()?;
        let seconds = self.start.elapsed().as_secs_f64();
        let client_cpu = crate::host::cpu_seconds() - self.client_cpu;
        let delta = ServerStats {
            messages_in: stats.messages_in - self.server.messages_in,
            payload_bytes_in: stats.payload_bytes_in - self.server.payload_bytes_in,
            ..stats
        };
        Ok((seconds, delta, client_cpu, stats.cpu_s - self.server.cpu_s))
    }
}

/// Runs messages, bulk or rtt against `server`; fills the workload's figures of `report`.
pub(crate) fn run(
    plan: &Plan,
    server: &mut ServerProcess,
    report: &mut super::report::Report,
) -> anyhow::Result<()> {
    let client = Client::start(plan, server.addr)?;
    let result = measure(plan, &client, server, report);
    // Stop sending before the transport goes, so the close is not queued behind a flood.
    client.shared.ping.store(false, Ordering::Relaxed);
    client.shared.mode.store(MODE_IDLE, Ordering::Relaxed);
    let stopped = client.transport.shutdown().map_err(|e| anyhow!("client shard failed: {e}"));
    result.and(stopped)
}

fn measure(
    plan: &Plan,
    client: &Client,
    server: &mut ServerProcess,
    report: &mut super::report::Report,
) -> anyhow::Result<()> {
    client.connect()?;
    std::thread::sleep(WARMUP);
    client.check()?;
    match plan.workload {
        Workload::Messages | Workload::Bulk => {
            let window = Window::open(server)?;
            std::thread::sleep(plan.duration);
            let (seconds, delta, client_cpu, server_cpu) = window.close(server)?;
            client.check()?;
            report.duration_s = seconds;
            report.msgs_per_s = Some(delta.messages_in as f64 / seconds);
            if plan.workload == Workload::Bulk {
                report.gbit_per_s = Some(delta.payload_bytes_in as f64 * 8.0 / seconds / 1e9);
            }
            report.set_cpu(client_cpu, server_cpu);
            client.stop_and_read_path(report)?;
        }
        Workload::Rtt => rtt(plan, client, server, report)?,
        Workload::Handshake => unreachable!("handshake has its own client"),
    }
    Ok(())
}

fn rtt(
    plan: &Plan,
    client: &Client,
    server: &mut ServerProcess,
    report: &mut super::report::Report,
) -> anyhow::Result<()> {
    // 1. The max rate: the messages workload for PROBE (already flooding since connect).
    let probe = Window::open(server)?;
    std::thread::sleep(PROBE.min(plan.duration));
    let (seconds, delta, _, _) = probe.close(server)?;
    client.check()?;
    let max_rate = delta.messages_in as f64 / seconds;
    report.rtt_max_msgs_per_s = Some(max_rate);
    let rate = plan.rate.unwrap_or(max_rate / 2.0);
    report.rtt_load_msgs_per_s = Some(rate);
    // 2. Let the queues the flood built drain, so that pings do not measure the backlog.
    client.set_mode(MODE_IDLE)?;
    let sent = client.shared.sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + DRAIN_MAX;
    while server.stats()?.messages_in < sent {
        if Instant::now() > deadline {
            bail!("the server did not receive the probe's messages within {DRAIN_MAX:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // 3. Background load at `rate`, one ping in flight; samples after a warm-up only.
    client.shared.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    client.shared.ping.store(true, Ordering::Relaxed);
    client.set_mode(MODE_PACED)?;
    std::thread::sleep(WARMUP);
    client.shared.samples().reset();
    let window = Window::open(server)?;
    std::thread::sleep(plan.duration);
    let (seconds, delta, client_cpu, server_cpu) = window.close(server)?;
    let Samples { rtt, forward, back } = client.shared.samples().clone();
    client.check()?;
    if rtt.is_empty() {
        bail!("no ping came back during the RTT phase");
    }
    report.duration_s = seconds;
    let us = |nanos: u64| nanos as f64 / 1_000.0;
    report.rtt_p50_us = Some(us(rtt.value_at_quantile(0.50)));
    report.rtt_p99_us = Some(us(rtt.value_at_quantile(0.99)));
    report.rtt_p999_us = Some(us(rtt.value_at_quantile(0.999)));
    report.rtt_max_us = Some(us(rtt.max()));
    report.rtt_samples = Some(rtt.len());
    report.rtt_forward_p50_us = Some(us(forward.value_at_quantile(0.50)));
    report.rtt_forward_p99_us = Some(us(forward.value_at_quantile(0.99)));
    report.rtt_back_p50_us = Some(us(back.value_at_quantile(0.50)));
    report.rtt_back_p99_us = Some(us(back.value_at_quantile(0.99)));
    // Pings are counted by the server too; the load is the rest.
    let load = delta.messages_in.saturating_sub(rtt.len());
    report.rtt_load_achieved_msgs_per_s = Some(load as f64 / seconds);
    report.set_cpu(client_cpu, server_cpu);
    client.stop_and_read_path(report)
}
