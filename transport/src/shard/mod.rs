//! The glommio driver: one executor per shard, each owning its socket of the node's
//! SO_REUSEPORT group and its [`Endpoint`], synchronised with the other shards only through
//! batched mailboxes and the node-wide [`Directory`].
//!
//! Start-up order matters and is fixed here: the memlock preflight, the TLS material, the
//! socket group (created in shard order on this thread so that fd i is the group's socket i,
//! which the steering program addresses), then one executor per shard, each adopting its fd.

mod handler;
mod mailbox;
mod signal;
mod state;
mod tasks;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::{self, Receiver};
use glommio::{Latency, LocalExecutorBuilder, Placement, Shares};
use shoal_protocols::NodeName;

pub use handler::{ChannelHandler, HandlerFactory, ShardContext, ShardHandler};
use handler::{Item, Outbound};
use mailbox::Mailbox;
use state::{ShardSocket, ShardState, TX_BUF_BYTES};

use crate::auth::{Auth, AuthSetupError};
use crate::config::TransportConfig;
use crate::directory::Directory;
use crate::endpoint::{Endpoint, EndpointParams, Event, Lane, MigrationOutcome, PathStats};
use crate::metrics::{ShardMetrics, Snapshot};
use crate::sys;
use crate::tls::{self, AcceptAnyCertificate, PeerVerifier, TlsMaterial};

/// Why the transport did not start. Nothing is left running; fix the cause and start again.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A configuration key is out of range (the error names it and the fix).
    #[error(transparent)]
    Config(#[from] shoal_protocols::config::ConfigError),
    /// RLIMIT_MEMLOCK is below what glommio needs (the error says how to raise it).
    #[error(transparent)]
    Memlock(#[from] sys::MemlockError),
    /// The listen address is taken or a socket option failed (the error names it).
    #[error(transparent)]
    Socket(#[from] sys::SocketError),
    /// TLS material could not be loaded or generated (the error names the file).
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Identity keys or the trust store could not be loaded (the error names the file and
    /// the fix, e.g. `keypair_mismatch`).
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// An executor thread could not be created.
    #[error("cannot start shard {shard}: {reason}")]
    Executor {
        /// The shard.
        shard: usize,
        /// glommio's reason.
        reason: String,
    },
}

/// Why a call through the handle failed. Nothing was done unless the variant says otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// The shard's mailbox is full (it is overloaded); retry later.
    #[error("shard {0} is busy (mailbox full); retry later")]
    Busy(usize),
    /// The transport is stopping or stopped.
    #[error("transport stopped")]
    Stopped,
    /// The shard did not answer within the deadline (it may still do the work).
    #[error("shard {0} did not answer in time")]
    Timeout(usize),
    /// The operation failed on the shard (the text says why).
    #[error("{0}")]
    Failed(String),
}

/// State every shard and handle shares.
pub(crate) struct Shared {
    pub(crate) mailboxes: Vec<Mailbox<Vec<Item>>>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) metrics: Vec<Arc<ShardMetrics>>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) stopped: AtomicBool,
    pub(crate) migration_sockets_max: usize,
    pub(crate) migrate_timeout: Duration,
    pub(crate) auth: Arc<Auth>,
}

/// Parts of a transport a caller may replace at start.
pub struct Seams {
    /// Decides at the TLS level which peer TLS keys may connect (checked again after the
    /// handshake). Default: [`AcceptAnyCertificate`] — identity is proven by `auth`.
    pub verifier: Arc<dyn PeerVerifier>,
    /// The authentication state; `None` loads it from `TransportConfig::auth`.
    pub auth: Option<Arc<Auth>>,
}

impl Default for Seams {
    fn default() -> Self {
        Self { verifier: Arc::new(AcceptAnyCertificate), auth: None }
    }
}

impl std::fmt::Debug for Seams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seams").field("auth", &self.auth).finish_non_exhaustive()
    }
}

/// A running transport: its shards and the handle to reach them.
pub struct Transport {
    handle: TransportHandle,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.handle.local_addr())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Starts the shards with one handler per shard from `handlers`.
    pub fn start(config: TransportConfig, handlers: HandlerFactory) -> Result<Self, StartError> {
        Self::start_with(config, handlers, Seams::default())
    }

    /// Starts the shards; events go to a bounded channel (capacity `events_max`) that the
    /// caller drains ([`ChannelHandler`]: overflow is dropped and counted).
    pub fn start_with_channel(
        config: TransportConfig,
        events_max: usize,
    ) -> Result<(Self, Receiver<(usize, Event)>), StartError> {
        Self::start_with_channel_and_seams(config, events_max, Seams::default())
    }

    /// [`Self::start_with_channel`] with replaced parts ([`Seams`], as in [`Self::start_with`]).
    pub fn start_with_channel_and_seams(
        config: TransportConfig,
        events_max: usize,
        seams: Seams,
    ) -> Result<(Self, Receiver<(usize, Event)>), StartError> {
        let (sender, receiver) = channel::bounded(events_max);
        let factory: HandlerFactory =
            Arc::new(move |_shard| Box::new(ChannelHandler::new(sender.clone())));
        Self::start_with(config, factory, seams).map(|transport| (transport, receiver))
    }

    /// Starts with replaced parts ([`Seams`]): a TLS-level peer verifier, or an
    /// authentication state built by the caller (a given identity, trust store or clock).
    pub fn start_with(
        config: TransportConfig,
        handlers: HandlerFactory,
        seams: Seams,
    ) -> Result<Self, StartError> {
        config.validate()?;
        sys::check_memlock(config.shards)?;
        let Seams { verifier, auth } = seams;
        let auth = match auth {
            Some(auth) => auth,
            None => Arc::new(Auth::load(&config.auth)?),
        };
        let material = match &config.quic_cert_dir {
            Some(dir) => TlsMaterial::load_or_generate(dir, config.name.as_str())?,
            None => TlsMaterial::generate_ephemeral(config.name.as_str())?,
        };
        // Build every shard's quiche Config up front so a TLS error fails start cleanly.
        let mut quic_configs = Vec::with_capacity(config.shards);
        for _ in 0..config.shards {
            quic_configs.push(tls::quiche_config(&material, &config.quic, Arc::clone(&verifier))?);
        }
        let options = sys::SocketOptions {
            rcvbuf_bytes: config.socket_rcvbuf_bytes,
            sndbuf_bytes: config.socket_sndbuf_bytes,
        };
        let group = sys::bind_shard_sockets(config.listen_addr, config.shards, &options)?;
        let local_addr = group.local_addr;
        let metrics: Vec<Arc<ShardMetrics>> =
            (0..config.shards).map(|_| Arc::new(ShardMetrics::default())).collect();
        let shared = Arc::new(Shared {
            mailboxes: (0..config.shards)
                .map(|_| Mailbox::new(config.mailbox_batches_max))
                .collect(),
            directory: Arc::new(Directory::new()),
            metrics: metrics.clone(),
            local_addr,
            stopped: AtomicBool::new(false),
            migration_sockets_max: config.migration_sockets_max,
            migrate_timeout: Duration::from_millis(config.endpoint.migrate_timeout_ms),
            auth: Arc::clone(&auth),
        });
        let incarnation = random_u64();
        let cpus = glommio::CpuSet::online().map(|set| set.len()).unwrap_or(1).max(1);
        let mut executors = Vec::with_capacity(config.shards);
        let shutdown_timeout = Duration::from_millis(config.shutdown_timeout_ms);
        for (shard, (socket, quic_config)) in
            group.sockets.into_iter().zip(quic_configs).enumerate()
        {
            let placement =
                if config.pin_shards { Placement::Fixed(shard % cpus) } else { Placement::Unbound };
            let params = EndpointParams {
                shard,
                shards: config.shards,
                name: config.name.clone(),
                incarnation,
                local_addr,
                quic_config,
                settings: config.endpoint.clone(),
                directory: Arc::clone(&shared.directory),
                metrics: Arc::clone(&metrics[shard]),
                auth: Arc::clone(&auth),
                verifier: Arc::clone(&verifier),
                tls_public_key: material.public_key(),
            };
            let shard_shared = Arc::clone(&shared);
            let handlers = Arc::clone(&handlers);
            let gso = group.gso;
            let mut builder = LocalExecutorBuilder::new(placement)
                .name(&format!("shoal-shard-{shard}"))
                // Registered buffers only help file I/O; keep glommio's pinned memory small.
                .io_memory(1 << 20);
            if config.spin_before_park_us > 0 {
                builder =
                    builder.spin_before_park(Duration::from_micros(config.spin_before_park_us));
            }
            let built = builder.spawn(move || async move {
                run_shard(shard, params, socket, gso, shard_shared, handlers, shutdown_timeout)
                    .await;
            });
            match built {
                Ok(handle) => executors.push(handle),
                Err(error) => {
                    let transport = Self {
                        handle: TransportHandle { shared: Arc::clone(&shared) },
                        executors,
                        shutdown_timeout,
                    };
                    drop(transport);
                    return Err(StartError::Executor { shard, reason: error.to_string() });
                }
            }
        }
        Ok(Self { handle: TransportHandle { shared }, executors, shutdown_timeout })
    }

    /// A handle for other threads.
    pub fn handle(&self) -> TransportHandle {
        self.handle.clone()
    }

    /// The bound listen address (the real port when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Closes every connection (flushed, bounded by `shutdown_timeout_ms`) and joins the
    /// shards. Returns the shards that panicked, if any.
    pub fn shutdown(mut self) -> Result<(), String> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), String> {
        let shared = &self.handle.shared;
        if !shared.stopped.swap(true, Ordering::SeqCst) {
            for mailbox in &shared.mailboxes {
                // A full mailbox is drained by its shard; keep offering the stop until taken.
                let deadline = Instant::now() + self.shutdown_timeout;
                let mut stop = vec![Item::Stop];
                while let Err(back) = mailbox.push(stop) {
                    stop = back;
                    if Instant::now() > deadline {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
        let mut failures = Vec::new();
        for (shard, executor) in self.executors.drain(..).enumerate() {
            if let Err(error) = executor.join() {
                failures.push(format!("shard {shard}: {error}"));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // Best effort: a dropped transport still closes its connections and joins its threads.
        let _ = self.stop_and_join();
    }
}

async fn run_shard(
    shard: usize,
    params: EndpointParams,
    socket: std::net::UdpSocket,
    gso: bool,
    shared: Arc<Shared>,
    handlers: HandlerFactory,
    shutdown_timeout: Duration,
) {
    let local = shared.local_addr;
    let socket = Rc::new(sys::into_glommio(socket));
    let endpoint = Endpoint::new(params, Instant::now());
    let state = Rc::new(RefCell::new(ShardState {
        endpoint,
        handler: handlers(shard),
        outbound: Outbound::new(shared.mailboxes.len()),
        sockets: vec![ShardSocket { local, socket: Rc::clone(&socket), _recv_task: None }],
        gso,
        tx_buf: vec![0u8; TX_BUF_BYTES],
        shared: Arc::clone(&shared),
        blocked: None,
        writer: signal::Signal::default(),
        timer: signal::Signal::default(),
        timer_armed: None,
        stopping: false,
        migrations: HashMap::new(),
        io_queue: None,
    }));
    // Packet I/O (receive, blocked sends, QUIC timers) runs in a queue with twice the shares
    // of the mailbox queue (hand-offs and application commands), so a flood of commands cannot
    // delay ACKs and retransmissions (stack-facts §1.7). Both queues are latency-sensitive:
    // with everything in one queue, a receive flood kept the mailbox from running for seconds
    // (the benchmark saw `run_on` take up to 9.7 s); `Latency::Matters` makes glommio preempt
    // the I/O queue for the mailbox within that latency.
    let executor = glommio::executor();
    let io_queue = executor.create_task_queue(
        Shares::Static(1000),
        Latency::Matters(Duration::from_millis(1)),
        "shoal-io",
    );
    let control_queue = executor.create_task_queue(
        Shares::Static(500),
        Latency::Matters(Duration::from_millis(10)),
        "shoal-control",
    );
    let spawned = [
        glommio::spawn_local_into(tasks::recv_loop(Rc::clone(&state), socket, local), io_queue),
        glommio::spawn_local_into(tasks::writer_loop(Rc::clone(&state)), io_queue),
        glommio::spawn_local_into(tasks::timer_loop(Rc::clone(&state)), io_queue),
    ];
    // Spawning into a queue created just above cannot fail.
    let background: Vec<_> =
        spawned.into_iter().map(|task| task.expect("the I/O queue exists").detach()).collect();
    state.borrow_mut().io_queue = Some(io_queue);
    // The mailbox task returns once Stop arrived; the closing connections drain next.
    match glommio::spawn_local_into(tasks::mailbox_loop(Rc::clone(&state), shard), control_queue) {
        Ok(mailbox) => mailbox.await,
        Err(_) => tasks::mailbox_loop(Rc::clone(&state), shard).await,
    }
    tasks::drain(&state, shutdown_timeout).await;
    // The background tasks loop forever and each holds the state, which holds their sockets'
    // tasks: cancel them all, or the cycle keeps the endpoint (and the node's key-directory
    // lock, its `Auth`) alive after the executor stopped (measured: it did).
    for task in background {
        task.cancel();
    }
    let sockets = std::mem::take(&mut state.borrow_mut().sockets);
    for socket in sockets {
        if let Some(task) = socket._recv_task {
            task.cancel().await;
        }
    }
    // Let the executor run (and so drop) the cancelled tasks before it stops.
    glommio::executor().yield_now().await;
}

/// A `Clone + Send` handle for threads outside the shards.
#[derive(Clone)]
pub struct TransportHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TransportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl TransportHandle {
    /// The node's authentication state: identity rotation
    /// ([`Auth::rotate_identity`]) and trust-store operations ([`Auth::trust_store`]) take
    /// effect at the next handshake, without a restart.
    pub fn auth(&self) -> &Arc<Auth> {
        &self.shared.auth
    }

    /// The bound listen address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shared.mailboxes.len()
    }

    /// The shard that owns (or would dial) `peer`: its connection's shard, else the peer's
    /// hash modulo the shards.
    pub fn shard_for(&self, peer: &NodeName) -> usize {
        self.shared.directory.owner(peer).unwrap_or_else(|| hash_shard(peer, self.shards()))
    }

    /// The shard holding `peer`'s connection, if there is one.
    pub fn owner_of(&self, peer: &NodeName) -> Option<usize> {
        self.shared.directory.owner(peer)
    }

    fn push(&self, shard: usize, items: Vec<Item>) -> Result<(), HandleError> {
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(HandleError::Stopped);
        }
        self.shared.mailboxes[shard].push(items).map_err(|_| HandleError::Busy(shard))
    }

    /// Queues `payload` for `peer` on its shard (dialling on demand). Refusals on the shard
    /// (full queue, message too large) are counted in that shard's metrics; code that must
    /// see them synchronously sends from a [`ShardHandler`].
    pub fn send(
        &self,
        peer: &NodeName,
        addr: SocketAddr,
        lane: Lane,
        payload: Bytes,
    ) -> Result<(), HandleError> {
        let shard = self.shard_for(peer);
        self.push(shard, vec![Item::Send { peer: peer.clone(), addr, lane, payload }])
    }

    /// Runs `task` on `shard` and waits (up to `wait`) for its result. Do not call from a
    /// shard thread: it blocks.
    pub fn run_on<R, F>(&self, shard: usize, wait: Duration, task: F) -> Result<R, HandleError>
    where
        R: Send + 'static,
        F: FnOnce(&mut ShardContext<'_>) -> R + Send + 'static,
    {
        let (reply, answer) = channel::bounded(1);
        let item = Item::Run(Box::new(move |ctx| {
            let _ = reply.try_send(task(ctx));
        }));
        self.push(shard, vec![item])?;
        answer.recv_timeout(wait).map_err(|_| HandleError::Timeout(shard))
    }

    /// Runs `task` on every shard, one after the other.
    pub fn run_on_all<F>(&self, wait: Duration, task: F) -> Result<(), HandleError>
    where
        F: Fn(&mut ShardContext<'_>) + Send + Sync + 'static,
    {
        let task = Arc::new(task);
        for shard in 0..self.shards() {
            let task = Arc::clone(&task);
            self.run_on(shard, wait, move |ctx| task(ctx))?;
        }
        Ok(())
    }

    /// Accepts tagged streams with `tag` on every shard.
    pub fn register_acceptor(&self, tag: &[u8]) -> Result<(), HandleError> {
        let tag = tag.to_vec();
        self.run_on_all(Duration::from_secs(5), move |ctx| ctx.endpoint().register_acceptor(&tag))
    }

    /// Sets the peers the idle GC must keep (the active view) on every shard.
    pub fn set_gc_exempt(&self, peers: Vec<NodeName>) -> Result<(), HandleError> {
        self.run_on_all(Duration::from_secs(5), move |ctx| {
            ctx.endpoint().set_gc_exempt(peers.iter().cloned())
        })
    }

    /// Moves `peer`'s connection to a new local port through path validation and waits for
    /// the validated outcome (bounded by `migrate_timeout_ms`).
    pub fn migrate(&self, peer: &NodeName) -> Result<MigrationOutcome, HandleError> {
        let shard = self
            .owner_of(peer)
            .ok_or_else(|| HandleError::Failed(format!("no connection to {peer}")))?;
        let (reply, answer) = channel::bounded(1);
        self.push(shard, vec![Item::Migrate { peer: peer.clone(), reply }])?;
        let wait = self.shared.migrate_timeout + Duration::from_secs(1);
        match answer.recv_timeout(wait) {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(reason)) => Err(HandleError::Failed(reason)),
            Err(_) => Err(HandleError::Timeout(shard)),
        }
    }

    /// Path figures of `peer`'s connection.
    pub fn path_stats(&self, peer: &NodeName) -> Result<Option<PathStats>, HandleError> {
        let Some(shard) = self.owner_of(peer) else { return Ok(None) };
        let peer = peer.clone();
        self.run_on(shard, Duration::from_secs(5), move |ctx| ctx.endpoint().path_stats(&peer))
    }

    /// Metrics of one shard (lock-free read; the shard keeps running).
    pub fn shard_metrics(&self, shard: usize) -> Snapshot {
        self.shared.metrics[shard].snapshot()
    }

    /// Metrics summed over all shards.
    pub fn metrics(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for metrics in &self.shared.metrics {
            total.add(&metrics.snapshot());
        }
        total
    }
}

/// FNV-1a of the name: the shard a peer without a connection is dialled from (stable across
/// runs and processes, unlike the standard hasher).
fn hash_shard(peer: &NodeName, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in peer.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

fn random_u64() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}
