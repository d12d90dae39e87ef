//! The handshake workload's client: one thread driving many sans-IO shoal `Endpoint`s, each a
//! node of its own (name `lg-<i>@loop`, its own UDP socket on 127.0.0.1), because a node keeps
//! one connection per peer: C concurrent handshakes need C client names.
//!
//! Each endpoint loops: dial (the first send dials) → `LinkUp` (QUIC handshake with Ed25519
//! certificates both ways, then HELLO/WELCOME) → close → dial again. A `poll(2)` loop waits
//! for the sockets with the earliest endpoint deadline as its timeout.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::poll::{poll, PollFd, PollFlags};
use shoal_protocols::NodeName;
use shoal_transport::auth::{Auth, AuthConfig};
use shoal_transport::directory::Directory;
use shoal_transport::endpoint::{Endpoint, EndpointParams, EndpointSettings, Event, Lane};
use shoal_transport::metrics::ShardMetrics;
use shoal_transport::tls::{
    quiche_config, AcceptAnyCertificate, PeerVerifier, QuicSettings, TlsMaterial,
};

use super::server::ServerProcess;
use super::{Plan, SERVER_NAME};

/// Unmeasured time at the start of the timed phase.
const WARMUP: Duration = Duration::from_millis(500);
/// Handshakes in flight at once while the idle connections are opened.
const IDLE_DIAL_WINDOW: usize = 128;
/// Bound on opening the idle connections.
const IDLE_OPEN_MAX: Duration = Duration::from_secs(60);
/// Time for the idle connections' last ACKs and CID updates before the server's RSS is read.
const IDLE_SETTLE: Duration = Duration::from_millis(1_000);
/// Transmit buffer: one GSO batch of 64 datagrams.
const TX_BUF_BYTES: usize = 64 * 1500;

/// One client node.
struct Node {
    endpoint: Endpoint,
    socket: UdpSocket,
    local: SocketAddr,
    /// Cached `poll_timeout` (refreshed after every call into the endpoint).
    deadline: Option<Instant>,
    /// Keep dialling after each close (timed phase) or hold the link open (idle phase).
    redial: bool,
    up: bool,
    link_ups: u64,
}

/// The client: its nodes and the server they dial.
struct Fleet {
    nodes: Vec<Node>,
    server: NodeName,
    server_addr: SocketAddr,
    material: TlsMaterial,
    /// One authentication state (identity, pins) for all client nodes.
    auth: Arc<Auth>,
    /// One TLS-level verifier for all client nodes (identity is proven by `auth`).
    verifier: Arc<dyn PeerVerifier>,
    gso: bool,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Handshakes seen by the client (LinkUp events).
    link_ups: u64,
    failures: u64,
    last_failure: Option<String>,
}

impl Fleet {
    fn new(server_addr: SocketAddr, gso: bool, auth_enabled: bool) -> anyhow::Result<Self> {
        let server = NodeName::parse(SERVER_NAME).map_err(|e| anyhow!("server name: {e}"))?;
        let material = TlsMaterial::generate_ephemeral("lg-client")
            .context("cannot generate the client certificate")?;
        let config = AuthConfig { auth_enabled, auth_key_dir: None, ..AuthConfig::default() };
        let auth = Arc::new(Auth::load(&config).context("cannot set up client authentication")?);
        Ok(Self {
            nodes: Vec::new(),
            server,
            server_addr,
            material,
            auth,
            verifier: Arc::new(AcceptAnyCertificate),
            gso,
            rx: vec![0; 65_536],
            tx: vec![0; TX_BUF_BYTES],
            link_ups: 0,
            failures: 0,
            last_failure: None,
        })
    }

    fn add(&mut self, name: &str, redial: bool) -> anyhow::Result<usize> {
        let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .context("cannot bind a client socket")?;
        socket.set_nonblocking(true).context("cannot make a client socket non-blocking")?;
        let local = socket.local_addr().context("client socket address")?;
        // Each node owns its quiche config (not Clone; a connection borrows it mutably).
        let quic_config =
            quiche_config(&self.material, &QuicSettings::default(), Arc::clone(&self.verifier))
                .context("cannot build the client's QUIC configuration")?;
        let index = self.nodes.len();
        let params = EndpointParams {
            shard: 0,
            shards: 1,
            name: NodeName::parse(name).map_err(|e| anyhow!("client name {name}: {e}"))?,
            incarnation: 0x6c67_0000_0000_0000 | index as u64,
            local_addr: local,
            quic_config,
            settings: EndpointSettings::default(),
            directory: Arc::new(Directory::new()),
            metrics: Arc::new(ShardMetrics::default()),
            auth: Arc::clone(&self.auth),
            verifier: Arc::clone(&self.verifier),
            tls_public_key: self.material.public_key(),
        };
        let endpoint = Endpoint::new(params, Instant::now());
        self.nodes.push(Node {
            endpoint,
            socket,
            local,
            deadline: None,
            redial,
            up: false,
            link_ups: 0,
        });
        Ok(index)
    }

    /// Dials from node `index` (its first message dials; it is dropped at the close).
    fn dial(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        node.endpoint
            .send(Instant::now(), &self.server, self.server_addr, Lane::Control, b"x")
            .map_err(|e| anyhow!("dial refused: {e}"))?;
        self.service(index)
    }

    /// Runs the node's timers, reacts to its events and sends what it has to send.
    fn service(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        let now = Instant::now();
        if node.deadline.is_some_and(|at| at <= now) {
            node.endpoint.handle_timeout(now);
        }
        loop {
            let mut progressed = false;
            while let Some(event) = node.endpoint.poll_event() {
                progressed = true;
                match event {
                    Event::LinkUp { .. } => {
                        node.up = true;
                        node.link_ups += 1;
                        self.link_ups += 1;
                        if node.redial {
                            node.endpoint.close_peer(now, &self.server);
                        }
                    }
                    Event::LinkDown { reason, .. } => {
                        if !node.up {
                            // A handshake that failed (not our own close after LinkUp).
                            self.failures += 1;
                            self.last_failure = Some(format!("{reason:?}"));
                        }
                        node.up = false;
                        if node.redial {
                            node.endpoint
                                .send(now, &self.server, self.server_addr, Lane::Control, b"x")
                                .map_err(|e| anyhow!("redial refused: {e}"))?;
                        }
                    }
                    _ => {}
                }
            }
            while let Some(transmit) = node.endpoint.poll_transmit(now, &mut self.tx) {
                progressed = true;
                let mut sent = 0;
                while sent < transmit.len {
                    match shoal_transport::sys::send_segments(
                        &node.socket,
                        &self.tx[sent..transmit.len],
                        transmit.segment_size,
                        transmit.to,
                        self.gso,
                    ) {
                        Ok(0) => break,
                        Ok(bytes) => sent += bytes,
                        // A full socket buffer or a transient error: QUIC retransmits.
                        Err(_) => break,
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        node.deadline = node.endpoint.poll_timeout();
        Ok(())
    }

    /// Receives what waits on node `index`'s socket.
    fn receive(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        while let Ok((len, from)) = node.socket.recv_from(&mut self.rx) {
            let now = Instant::now();
            let _ = node.endpoint.handle_datagram(now, &mut self.rx[..len], from, node.local);
        }
    }

    /// One round: wait for input or the earliest deadline (at most `max_wait`), then serve
    /// every node that has input or a due timer.
    fn turn(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        let now = Instant::now();
        let earliest = self.nodes.iter().filter_map(|node| node.deadline).min();
        let wait = earliest.map_or(max_wait, |at| at.saturating_duration_since(now).min(max_wait));
        // Round up so that a deadline 0.3 ms away does not spin.
        let timeout_ms = i32::try_from(wait.as_micros().div_ceil(1_000)).unwrap_or(i32::MAX);
        let mut ready = vec![false; self.nodes.len()];
        {
            let mut fds: Vec<PollFd<'_>> = self
                .nodes
                .iter()
                .map(|node| PollFd::new(&node.socket, PollFlags::POLLIN))
                .collect();
            match poll(&mut fds, timeout_ms) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(error) => bail!("poll failed: {error}"),
            }
            for (index, fd) in fds.iter().enumerate() {
                ready[index] = fd.revents().is_some_and(|events| !events.is_empty());
            }
        }
        let now = Instant::now();
        for (index, readable) in ready.into_iter().enumerate() {
            let due = self.nodes[index].deadline.is_some_and(|at| at <= now);
            if readable {
                self.receive(index);
            }
            if readable || due {
                self.service(index)?;
            }
        }
        Ok(())
    }
}

/// Figures of the handshake workload (summed over rounds by [`HandshakeFigures::add`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct HandshakeFigures {
    pub(crate) seconds: f64,
    pub(crate) handshakes: u64,
    pub(crate) client_handshakes: u64,
    pub(crate) failures: u64,
    pub(crate) client_cpu_s: f64,
    pub(crate) server_cpu_s: f64,
}

impl HandshakeFigures {
    /// Adds another round's figures.
    pub(crate) fn add(&mut self, other: &Self) {
        self.seconds += other.seconds;
        self.handshakes += other.handshakes;
        self.client_handshakes += other.client_handshakes;
        self.failures += other.failures;
        self.client_cpu_s += other.client_cpu_s;
        self.server_cpu_s += other.server_cpu_s;
    }
}

/// The timed phase: `plan.connections` dial/close loops for `duration` after a warm-up, with
/// authentication on or off (the server must match).
pub(crate) fn run_loops(
    plan: &Plan,
    duration: Duration,
    server: &mut ServerProcess,
    auth_enabled: bool,
) -> anyhow::Result<HandshakeFigures> {
    let mut fleet = Fleet::new(server.addr, server.gso, auth_enabled)?;
    for i in 0..plan.connections {
        let index = fleet.add(&format!("lg-{i}@loop"), true)?;
        fleet.dial(index)?;
    }
    let warm_until = Instant::now() + WARMUP;
    while Instant::now() < warm_until {
        fleet.turn(Duration::from_millis(10))?;
    }
    if fleet.link_ups == 0 {
        bail!("no handshake completed during the warm-up ({WARMUP:?})");
    }
    let client_cpu = crate::host::cpu_seconds();
    let before = server.stats()?;
    let client_before = fleet.link_ups;
    let failures_before = fleet.failures;
    let start = Instant::now();
    let end = start + duration;
    while Instant::now() < end {
        fleet.turn(end.saturating_duration_since(Instant::now()))?;
    }
    let after = server.stats()?;
    let seconds = start.elapsed().as_secs_f64();
    let client_cpu_s = crate::host::cpu_seconds() - client_cpu;
    Ok(HandshakeFigures {
        seconds,
        handshakes: after.link_ups - before.link_ups,
        client_handshakes: fleet.link_ups - client_before,
        failures: fleet.failures - failures_before,
        client_cpu_s,
        server_cpu_s: after.cpu_s - before.cpu_s,
    })
}

/// The idle phase, against a fresh server: opens `count` connections (at most
/// [`IDLE_DIAL_WINDOW`] handshakes at once), keeps them open, and returns the server's RSS
/// growth per connection.
pub(crate) fn idle_bytes_per_connection(
    server: &mut ServerProcess,
    count: usize,
) -> anyhow::Result<f64> {
    let mut fleet = Fleet::new(server.addr, server.gso, true)?;
    for i in 0..count {
        fleet.add(&format!("lg-idle-{i}@loop"), false)?;
    }
    // The client's own set-up is done; the server has been idle since it started.
    let before = server.stats()?;
    let deadline = Instant::now() + IDLE_OPEN_MAX;
    let mut dialled = 0;
    while fleet.nodes.iter().filter(|node| node.up).count() < count {
        let up = fleet.nodes.iter().filter(|node| node.up).count();
        while dialled < count && dialled - up.min(dialled) < IDLE_DIAL_WINDOW {
            fleet.dial(dialled)?;
            dialled += 1;
        }
        if Instant::now() > deadline {
            bail!(
                "only {up} of {count} idle connections came up within {IDLE_OPEN_MAX:?} \
                 ({} failed handshakes, last: {})",
                fleet.failures,
                fleet.last_failure.as_deref().unwrap_or("none")
            );
        }
        fleet.turn(Duration::from_millis(10))?;
    }
    let settle = Instant::now() + IDLE_SETTLE;
    while Instant::now() < settle {
        fleet.turn(Duration::from_millis(10))?;
    }
    let after = server.stats()?;
    if after.connections < count as u64 {
        bail!("the server holds {} connections, expected {count} idle ones", after.connections);
    }
    let grown = after.rss_bytes.saturating_sub(before.rss_bytes);
    Ok(grown as f64 / count as f64)
}
