//! The tasks of one shard: a receive task per socket, the timer task, the mailbox task and
//! the writer task for datagrams the kernel refused. Each input is followed by one flush.
//!
//! Receive tasks never race a receive against a timer: a cancelled glommio receive drops its
//! datagram (stack-facts §1.3). They wait with `peek_from` (which consumes nothing) and drain
//! the socket with `recvmsg` + GRO until it would block, yielding to the executor every
//! `DRAIN_YIELD_EVERY` datagrams so timers and hand-offs keep running under load.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::handler::Item;
use super::state::{ShardSocket, ShardState};
use crate::endpoint::DatagramOutcome;
use crate::metrics::Counters;
use crate::sys;

/// Receive buffer: one GRO batch is at most 64 KiB.
const RX_BUF_BYTES: usize = 65_536;
/// Datagrams handled between two `yield_if_needed` calls and flushes.
const DRAIN_YIELD_EVERY: usize = 256;

pub(crate) async fn recv_loop(
    state: Rc<RefCell<ShardState>>,
    socket: Rc<glommio::net::UdpSocket>,
    local: SocketAddr,
) {
    let mut buf = vec![0u8; RX_BUF_BYTES];
    let mut peek = [0u8; 1];
    loop {
        if state.borrow().stopping && state.borrow().endpoint.connections() == 0 {
            return;
        }
        // Readiness only; the datagram stays queued in the kernel.
        if socket.peek_from(&mut peek).await.is_err() {
            // A pending socket error (e.g. ICMP unreachable) is reported once; go on.
            let _ = sys::recv_segments(&*socket, &mut buf);
            continue;
        }
        let mut handled = 0;
        loop {
            let meta = match sys::recv_segments(&*socket, &mut buf) {
                Ok(meta) => meta,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // Truncated or otherwise unusable datagram: consumed, counted, next.
                    Counters::add(&state.borrow().endpoint.metrics().datagrams_dropped, 1);
                    continue;
                }
            };
            let yield_now = {
                let mut guard = state.borrow_mut();
                let now = Instant::now();
                let segment_size = meta.segment_size.max(1);
                for segment in buf[..meta.len].chunks_mut(segment_size) {
                    handled += 1;
                    if let DatagramOutcome::Foreign(owner) =
                        guard.endpoint.handle_datagram(now, segment, meta.from, local)
                    {
                        let item =
                            Item::Datagram { data: segment.to_vec(), from: meta.from, to: local };
                        if guard.outbound.push(owner, item).is_err() {
                            // Owner shard stuck: drop like a full socket buffer would.
                            Counters::add(&guard.endpoint.metrics().datagrams_dropped, 1);
                        }
                    }
                }
                if handled >= DRAIN_YIELD_EVERY {
                    handled = 0;
                    guard.flush();
                    true
                } else {
                    false
                }
            };
            if yield_now {
                let (shard, waiting) = {
                    let guard = state.borrow();
                    let shard = guard.endpoint.shard();
                    (shard, guard.shared.mailboxes[shard].try_pop())
                };
                if let Some(first) = waiting {
                    if serve_mailbox(&state, shard, first) {
                        // Stop arrived here: wake the mailbox task so the shard's root future
                        // moves on to draining (a full mailbox wakes it anyway).
                        let shared = std::sync::Arc::clone(&state.borrow().shared);
                        let _ = shared.mailboxes[shard].push(Vec::new());
                    }
                }
                glommio::yield_if_needed().await;
            }
        }
        state.borrow_mut().flush();
    }
}

pub(crate) async fn timer_loop(state: Rc<RefCell<ShardState>>) {
    let signal = state.borrow().timer.clone();
    loop {
        let next = {
            let mut guard = state.borrow_mut();
            let next = guard.endpoint.poll_timeout();
            guard.timer_armed = next;
            next
        };
        let sleep = async {
            match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    glommio::timer::sleep(wait).await;
                }
                None => future::pending::<()>().await,
            }
        };
        // Cancelling a sleep loses nothing (unlike a receive).
        future::or(sleep, signal.wait()).await;
        let mut guard = state.borrow_mut();
        let now = Instant::now();
        if next.is_some_and(|at| at <= now) {
            guard.endpoint.handle_timeout(now);
            guard.flush();
        }
        if guard.stopping && guard.endpoint.connections() == 0 {
            return;
        }
    }
}

pub(crate) async fn writer_loop(state: Rc<RefCell<ShardState>>) {
    let signal = state.borrow().writer.clone();
    loop {
        signal.wait().await;
        loop {
            let next = state.borrow_mut().blocked.take();
            let Some(blocked) = next else { break };
            let socket = {
                let guard = state.borrow();
                let found = guard
                    .sockets
                    .iter()
                    .find(|socket| socket.local == blocked.from)
                    .unwrap_or(&guard.sockets[0]);
                Rc::clone(&found.socket)
            };
            for datagram in blocked.data.chunks(blocked.segment_size) {
                // Waits for room in the socket buffer (io_uring); errors mean the path is
                // gone, which QUIC's loss recovery and idle timeout handle.
                if socket.send_to(datagram, blocked.to).await.is_ok() {
                    let guard = state.borrow();
                    Counters::add(&guard.endpoint.metrics().packets_out, 1);
                    Counters::add(&guard.endpoint.metrics().bytes_out, datagram.len() as u64);
                }
            }
        }
        state.borrow_mut().flush();
    }
}

pub(crate) async fn mailbox_loop(state: Rc<RefCell<ShardState>>, shard: usize) {
    let shared = std::sync::Arc::clone(&state.borrow().shared);
    loop {
        let first = shared.mailboxes[shard].pop().await;
        if serve_mailbox(&state, shard, first) {
            // The shard's root future drains the closing connections (bounded) next.
            return;
        }
    }
}

/// Applies `first` and whatever else waits in the mailbox (up to 64 more batches), then
/// flushes once. Returns whether the shard is stopping. Called by the mailbox task and, under
/// a receive flood, by the receive task itself: glommio notices a wake from another thread
/// only between task-queue slices, so a shard busy with packets would otherwise leave its
/// mailbox unread for up to seconds (measured: `run_on` took 0.6–9.7 s during a bulk flood).
pub(crate) fn serve_mailbox(
    state: &Rc<RefCell<ShardState>>,
    shard: usize,
    first: Vec<Item>,
) -> bool {
    let shared = std::sync::Arc::clone(&state.borrow().shared);
    let mut batch = first;
    for _ in 0..64 {
        match shared.mailboxes[shard].try_pop() {
            Some(more) => batch.extend(more),
            None => break,
        }
    }
    let mut items = Vec::with_capacity(batch.len());
    for item in batch {
        match item {
            Item::Migrate { peer, reply } => migrate(state, peer, reply),
            other => items.push(other),
        }
    }
    let mut guard = state.borrow_mut();
    guard.handle_items(items, Instant::now());
    guard.flush();
    guard.stopping
}

/// Binds a fresh port on the listen IP, gives it a receive task, and starts the migration;
/// the outcome is answered when the endpoint reports it.
fn migrate(
    state: &Rc<RefCell<ShardState>>,
    peer: shoal_protocols::NodeName,
    reply: crossbeam::channel::Sender<Result<crate::endpoint::MigrationOutcome, String>>,
) {
    let mut guard = state.borrow_mut();
    // Drop migration sockets no connection uses any more (their receive tasks end with them).
    let in_use = guard.endpoint.local_addrs_in_use();
    let listen = guard.endpoint.local_addr();
    guard.sockets.retain(|socket| socket.local == listen || in_use.contains(&socket.local));
    if guard.sockets.len() > guard.shared.migration_sockets_max {
        let _ = reply.try_send(Err(format!(
            "this shard already holds migration_sockets_max = {} migration sockets",
            guard.shared.migration_sockets_max
        )));
        return;
    }
    let ip = guard.endpoint.local_addr().ip();
    let socket = match std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).and_then(|socket| {
        socket.set_nonblocking(true)?;
        Ok(socket)
    }) {
        Ok(socket) => socket,
        Err(error) => {
            let _ = reply.try_send(Err(format!("cannot bind a migration socket on {ip}: {error}")));
            return;
        }
    };
    let Ok(local) = socket.local_addr() else {
        let _ = reply.try_send(Err("migration socket has no local address".to_string()));
        return;
    };
    let now = Instant::now();
    if let Err(error) = guard.endpoint.migrate(now, &peer, local) {
        let _ = reply.try_send(Err(error.to_string()));
        return;
    }
    let socket = Rc::new(sys::into_glommio(socket));
    let task = recv_loop(Rc::clone(state), Rc::clone(&socket), local);
    let recv_task = match guard.io_queue {
        // The I/O queue is created at shard start and never removed, so spawning into it
        // cannot fail.
        Some(queue) => glommio::spawn_local_into(task, queue)
            .expect("the I/O queue lives as long as the shard"),
        None => glommio::spawn_local(task),
    };
    guard.sockets.push(ShardSocket { local, socket, _recv_task: Some(recv_task) });
    guard.migrations.insert(peer, reply);
    guard.flush();
}

/// Waits until every connection drained or `bound` passed.
pub(crate) async fn drain(state: &Rc<RefCell<ShardState>>, bound: Duration) {
    let deadline = Instant::now() + bound;
    while state.borrow().endpoint.connections() > 0 && Instant::now() < deadline {
        {
            let mut guard = state.borrow_mut();
            guard.endpoint.handle_timeout(Instant::now());
            guard.flush();
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}
