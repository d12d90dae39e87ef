//! The server side of `shoal-loadgen transport`: a separate process (the load generator
//! re-executes itself with the hidden `transport-server` subcommand) running a shoal
//! `Transport` on 127.0.0.1, and the client's handle on that process.
//!
//! Control channel: the child's stdin and stdout, one line each way.
//! - The server starts and prints `{"listen":"127.0.0.1:PORT","gso":BOOL}`.
//! - The client writes `stats`; the server answers with one [`ServerStats`] JSON line (its
//!   counters, CPU seconds and RSS at that instant).
//! - The client writes `quit` (or closes stdin); the server shuts its transport down, prints a
//!   last [`ServerStats`] line and exits 0.
//!
//! Errors before the address line go to stderr (one line) with exit code 2; the client
//! reports that line.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use serde::{Deserialize, Serialize};
use shoal_protocols::NodeName;
use shoal_transport::config::TransportConfig;
use shoal_transport::endpoint::Event;
use shoal_transport::shard::{HandlerFactory, ShardContext, ShardHandler, Transport};

use super::{wall_ns, Plan, PING, PING_BYTES, SERVER_NAME};

/// Options of the hidden `transport-server` subcommand (set by the client, not by people).
#[derive(Args, Debug)]
pub(crate) struct ServerArgs {
    /// Shards (glommio executors) of the server's transport.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Pin shard i to CPU i.
    #[arg(long)]
    pin: bool,
    /// Echo messages whose first byte marks them as pings (the rtt workload).
    #[arg(long)]
    echo: bool,
    /// Run with authentication off (`auth_enabled = false`: cookie-only HELLO/WELCOME),
    /// for the handshake workload's `tls_only_handshakes_per_s`.
    #[arg(long)]
    no_auth: bool,
    /// The transport's `spin_before_park_us`.
    #[arg(long, default_value_t = 0)]
    spin_before_park_us: u64,
}

/// What the server reports on request and at exit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ServerStats {
    /// Messages received (pings included).
    pub(crate) messages_in: u64,
    /// Payload bytes of those messages.
    pub(crate) payload_bytes_in: u64,
    /// Connections whose handshake and HELLO completed (LinkUp events).
    pub(crate) link_ups: u64,
    /// Connections the shards hold now (handshaking and draining ones included).
    pub(crate) connections: u64,
    /// CPU seconds of the server process so far.
    pub(crate) cpu_s: f64,
    /// Current RSS (VmRSS).
    pub(crate) rss_bytes: u64,
    /// Peak RSS (VmHWM).
    pub(crate) peak_rss_bytes: u64,
}

/// Counters of one shard's handler (single writer: its shard).
#[derive(Debug, Default)]
struct Counters {
    messages_in: AtomicU64,
    payload_bytes_in: AtomicU64,
    link_ups: AtomicU64,
}

struct Handler {
    counters: Arc<Counters>,
    echo: bool,
    /// Peer addresses from LinkUp (a send needs one, to dial if the link went away).
    peers: HashMap<NodeName, SocketAddr>,
}

impl ShardHandler for Handler {
    fn on_event(&mut self, ctx: &mut ShardContext<'_>, event: Event) {
        match event {
            Event::LinkUp { peer, addr, .. } => {
                self.counters.link_ups.fetch_add(1, Ordering::Relaxed);
                if self.echo {
                    self.peers.insert(peer, addr);
                }
            }
            Event::Message { peer, lane, payload } => {
                self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
                self.counters.payload_bytes_in.fetch_add(payload.len() as u64, Ordering::Relaxed);
                if self.echo && payload.len() == PING_BYTES && payload[0] == PING {
                    if let Some(&addr) = self.peers.get(&peer) {
                        let mut echo = [0u8; PING_BYTES + 8];
                        echo[..PING_BYTES].copy_from_slice(&payload);
                        echo[PING_BYTES..].copy_from_slice(&wall_ns().to_be_bytes());
                        // A refused echo (full queue) is a lost sample, seen by the client.
                        let _ = ctx.send(&peer, addr, lane, &echo);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Runs the server until `quit` or end of input (the body of `transport-server`).
pub(crate) fn run(args: ServerArgs) -> anyhow::Result<()> {
    let name = NodeName::parse(SERVER_NAME).map_err(|e| anyhow!("server name: {e}"))?;
    let mut config = TransportConfig::new(name, SocketAddr::from(([127, 0, 0, 1], 0)));
    config.shards = args.shards;
    config.pin_shards = args.pin;
    config.spin_before_park_us = args.spin_before_park_us;
    config.quic_cert_dir = None;
    // An identity and pins in memory: every run starts as a first contact (TOFU pins).
    config.auth.auth_key_dir = None;
    config.auth.auth_enabled = !args.no_auth;
    config.shutdown_timeout_ms = 500;
    let counters: Vec<Arc<Counters>> =
        (0..args.shards).map(|_| Arc::new(Counters::default())).collect();
    let for_shards = counters.clone();
    let echo = args.echo;
    let factory: HandlerFactory = Arc::new(move |shard| {
        Box::new(Handler { counters: Arc::clone(&for_shards[shard]), echo, peers: HashMap::new() })
    });
    let gso = super::gso_available();
    let transport =
        Transport::start(config, factory).context("cannot start the server transport")?;
    let handle = transport.handle();
    let stats = || {
        let mut stats = ServerStats::default();
        for shard in &counters {
            stats.messages_in += shard.messages_in.load(Ordering::Relaxed);
            stats.payload_bytes_in += shard.payload_bytes_in.load(Ordering::Relaxed);
            stats.link_ups += shard.link_ups.load(Ordering::Relaxed);
        }
        stats.connections = handle.metrics().connections;
        stats.cpu_s = crate::host::cpu_seconds();
        stats.rss_bytes = crate::rss::rss_bytes().unwrap_or(0);
        stats.peak_rss_bytes = crate::rss::peak_rss_bytes().unwrap_or(0);
        stats
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "listen": transport.local_addr(), "gso": gso }))?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "stats" => {
                writeln!(out, "{}", serde_json::to_string(&stats())?)?;
                out.flush()?;
            }
            "quit" => break,
            other => bail!("unknown control command {other:?} (stats, quit)"),
        }
    }
    let shutdown = transport.shutdown().map_err(|e| anyhow!("server shards failed: {e}"));
    writeln!(out, "{}", serde_json::to_string(&stats())?)?;
    out.flush()?;
    shutdown
}

/// The client's handle on a running server process. Dropping it kills the process.
pub(crate) struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The server's listen address.
    pub(crate) addr: SocketAddr,
    /// GSO as the server's sockets see it.
    pub(crate) gso: bool,
}

#[derive(Deserialize)]
struct Hello {
    listen: SocketAddr,
    gso: bool,
}

impl ServerProcess {
    /// Starts `shoal-loadgen transport-server` for `plan` and waits for its address.
    pub(crate) fn spawn(plan: &Plan, echo: bool) -> anyhow::Result<Self> {
        Self::spawn_with(plan, echo, true)
    }

    /// [`Self::spawn`] with authentication on or off.
    pub(crate) fn spawn_with(plan: &Plan, echo: bool, auth: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the load generator's own binary")?;
        let mut command = Command::new(exe);
        command.arg("transport-server").arg("--shards").arg(plan.shards.to_string());
        command.arg("--spin-before-park-us").arg(plan.spin_before_park_us.to_string());
        if plan.pin {
            command.arg("--pin");
        }
        if echo {
            command.arg("--echo");
        }
        if !auth {
            command.arg("--no-auth");
        }
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Later handshake rounds start their servers after the client pinned itself.
        let mut child =
            crate::host::spawn_unpinned(&mut command).context("cannot start the server process")?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut server =
            Self { child, stdin, stdout, addr: ([127, 0, 0, 1], 0).into(), gso: false };
        let line = server.read_line()?;
        let hello: Hello = serde_json::from_str(&line)
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?;
        server.addr = hello.listen;
        server.gso = hello.gso;
        Ok(server)
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).context("cannot read from the server")?;
        if read == 0 {
            return Err(self.died());
        }
        Ok(line)
    }

    /// The error for a server that closed its output: its own last words, if any.
    fn died(&mut self) -> anyhow::Error {
        // Give it a moment to exit so that its status and stderr are complete.
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let last = last.strip_prefix("shoal-loadgen: error: ").unwrap_or(last);
        if last.is_empty() {
            anyhow!("the server process exited unexpectedly")
        } else {
            anyhow!("server: {last}")
        }
    }

    /// Asks for the server's figures now.
    pub(crate) fn stats(&mut self) -> anyhow::Result<ServerStats> {
        let stdin = self.stdin.as_mut().ok_or_else(|| anyhow!("server already stopped"))?;
        if writeln!(stdin, "stats").and_then(|()| stdin.flush()).is_err() {
            return Err(self.died());
        }
        let line = self.read_line()?;
        serde_json::from_str(&line).with_context(|| format!("unexpected stats line {line:?}"))
    }

    /// Stops the server; returns its last figures.
    pub(crate) fn stop(mut self) -> anyhow::Result<ServerStats> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit").and_then(|()| stdin.flush());
        }
        let line = self.read_line()?;
        let stats = serde_json::from_str(&line)
            .with_context(|| format!("unexpected final stats line {line:?}"))?;
        let status = self.child.wait().context("cannot wait for the server process")?;
        if !status.success() {
            return Err(self.died());
        }
        Ok(stats)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Only still running after an error on the client side: do not leave it behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
