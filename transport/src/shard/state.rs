//! One shard's state, shared by its tasks (one thread: `Rc<RefCell<_>>`), and the flush that
//! follows every input: events to the handler, datagrams to the sockets, batches to the
//! other shards.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::Sender;
use shoal_protocols::NodeName;

use super::handler::{Item, Outbound, ShardContext, ShardHandler};
use super::signal::Signal;
use super::Shared;
use crate::endpoint::{Endpoint, Event, MigrationOutcome};
use crate::metrics::Counters;
use crate::sys;

/// A socket of this shard: the listen socket, or one bound for a migrated connection.
pub(crate) struct ShardSocket {
    pub(crate) local: SocketAddr,
    pub(crate) socket: Rc<glommio::net::UdpSocket>,
    /// The receive task of a migration socket; dropping it cancels the task (a cancelled
    /// `peek_from` consumes nothing), which closes the socket. `None` for the listen socket,
    /// whose task lives as long as the shard.
    pub(crate) _recv_task: Option<glommio::Task<()>>,
}

/// Datagrams the kernel refused (socket buffer full), sent by the writer task. At most one
/// batch waits (`ShardState::blocked` is an `Option`): `flush` polls no transmits while one
/// does (QUIC keeps the rest queued).
pub(crate) struct Blocked {
    pub(crate) data: Vec<u8>,
    pub(crate) segment_size: usize,
    pub(crate) from: SocketAddr,
    pub(crate) to: SocketAddr,
}

/// Size of the transmit buffer: 64 segments of the largest datagram shoal sends.
pub(crate) const TX_BUF_BYTES: usize = 64 * 1500;

pub(crate) struct ShardState {
    pub(crate) endpoint: Endpoint,
    pub(crate) handler: Box<dyn ShardHandler>,
    pub(crate) outbound: Outbound,
    pub(crate) sockets: Vec<ShardSocket>,
    pub(crate) gso: bool,
    pub(crate) tx_buf: Vec<u8>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) blocked: Option<Blocked>,
    /// Wakes the writer task when `blocked` gains datagrams.
    pub(crate) writer: Signal,
    /// Wakes the timer task when the next deadline moved earlier.
    pub(crate) timer: Signal,
    /// The deadline the timer task sleeps towards (`None`: no deadline).
    pub(crate) timer_armed: Option<Instant>,
    pub(crate) stopping: bool,
    pub(crate) migrations: HashMap<NodeName, Sender<Result<MigrationOutcome, String>>>,
    /// The packet-I/O task queue (receive tasks of migration sockets go there too).
    pub(crate) io_queue: Option<glommio::TaskQueueHandle>,
}

impl ShardState {
    /// Delivers everything the endpoint produced; call after every input.
    pub(crate) fn flush(&mut self) {
        let now = Instant::now();
        let mut polled = false;
        loop {
            let mut progressed = false;
            while let Some(event) = self.endpoint.poll_event() {
                progressed = true;
                if let Event::Migrated { peer, outcome } = &event {
                    if let Some(reply) = self.migrations.remove(peer) {
                        // The caller may have given up waiting; nothing to do then.
                        let _ = reply.try_send(Ok(*outcome));
                    }
                }
                let Self { endpoint, handler, outbound, .. } = self;
                let mut ctx = ShardContext { endpoint, outbound, now };
                handler.on_event(&mut ctx, event);
            }
            if !polled {
                polled = true;
                progressed = true;
                let Self { endpoint, handler, outbound, .. } = self;
                let mut ctx = ShardContext { endpoint, outbound, now };
                handler.on_poll(&mut ctx);
            }
            if self.blocked.is_none() {
                while let Some(transmit) = self.endpoint.poll_transmit(now, &mut self.tx_buf) {
                    progressed = true;
                    self.transmit(transmit);
                    if self.blocked.is_some() {
                        break;
                    }
                }
            }
            while let Some((shard, handoff)) = self.endpoint.poll_handoff() {
                if let Err(lost) = self.outbound.push(shard, Item::Handoff(handoff)) {
                    // The owner shard is stuck: its messages are lost to this link, counted.
                    if let Item::Handoff(crate::endpoint::Handoff::Queues { queues, .. }) = *lost {
                        let metrics = self.endpoint.metrics();
                        Counters::add(&metrics.send_queue_overflows, queues.frames() as u64);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.deliver_outbound();
        // Wake the timer task only when the next deadline moved earlier than the one it sleeps
        // towards (a later one is handled when the earlier sleep ends): a flood flushes every
        // few hundred datagrams, and re-arming a glommio timer for each flush is wasted work.
        let next = self.endpoint.poll_timeout();
        let earlier = match (next, self.timer_armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier || self.stopping {
            self.timer.notify();
        }
    }

    fn socket_for(&self, from: SocketAddr) -> Rc<glommio::net::UdpSocket> {
        let socket =
            self.sockets.iter().find(|socket| socket.local == from).unwrap_or(&self.sockets[0]);
        Rc::clone(&socket.socket)
    }

    fn transmit(&mut self, transmit: crate::endpoint::Transmit) {
        let socket = self.socket_for(transmit.from);
        let mut sent = 0;
        while sent < transmit.len {
            let batch = &self.tx_buf[sent..transmit.len];
            match sys::send_segments(&*socket, batch, transmit.segment_size, transmit.to, self.gso)
            {
                Ok(0) => break,
                Ok(bytes) => {
                    let metrics = self.endpoint.metrics();
                    Counters::add(
                        &metrics.packets_out,
                        bytes.div_ceil(transmit.segment_size) as u64,
                    );
                    Counters::add(&metrics.bytes_out, bytes as u64);
                    sent += bytes;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    // Invariant: `flush` transmits only while nothing waits.
                    assert!(self.blocked.is_none(), "a second blocked batch");
                    self.blocked = Some(Blocked {
                        data: self.tx_buf[sent..transmit.len].to_vec(),
                        segment_size: transmit.segment_size,
                        from: transmit.from,
                        to: transmit.to,
                    });
                    self.writer.notify();
                    return;
                }
                Err(error) if error.raw_os_error() == Some(libc::EIO) && self.gso => {
                    // The device cannot checksum GSO batches: fall back for good.
                    self.gso = false;
                }
                Err(_) => {
                    // Unreachable destination and similar: QUIC recovers or times out.
                    break;
                }
            }
        }
    }

    /// Hands this flush's cross-shard batches to their mailboxes; a full mailbox keeps its
    /// batch for the next flush (counted).
    pub(crate) fn deliver_outbound(&mut self) {
        if self.outbound.is_empty() {
            return;
        }
        for shard in 0..self.outbound.batches.len() {
            if self.outbound.batches[shard].is_empty() {
                continue;
            }
            let batch = std::mem::take(&mut self.outbound.batches[shard]);
            if let Err(batch) = self.shared.mailboxes[shard].push(batch) {
                Counters::add(&self.endpoint.metrics().mailbox_full, 1);
                self.outbound.batches[shard] = batch;
            }
        }
    }

    /// Applies one batch from another shard or an application thread.
    pub(crate) fn handle_items(&mut self, items: Vec<Item>, now: Instant) {
        for item in items {
            match item {
                Item::Datagram { mut data, from, to } => {
                    // The sender already decided this shard owns the CID, so no further hop.
                    let _ = self.endpoint.handle_datagram(now, &mut data, from, to);
                }
                Item::Handoff(handoff) => self.endpoint.handle_handoff(now, handoff),
                Item::Send { peer, addr, lane, payload } => {
                    let Self { endpoint, outbound, .. } = self;
                    let mut ctx = ShardContext { endpoint, outbound, now };
                    // Refusals are counted by the endpoint (`send_queue_overflows`); the
                    // sender is on another thread and already moved on.
                    let _ = ctx.send(&peer, addr, lane, &payload);
                }
                Item::Run(task) => {
                    let Self { endpoint, outbound, .. } = self;
                    let mut ctx = ShardContext { endpoint, outbound, now };
                    task(&mut ctx);
                }
                Item::Migrate { reply, .. } => {
                    // The shard's mailbox task handles migrations before this point (it can
                    // spawn the new socket's receive task); reaching here is a bug.
                    let _ = reply
                        .try_send(Err("migration request reached the wrong handler".to_string()));
                }
                Item::Stop => {
                    if !self.stopping {
                        self.stopping = true;
                        self.endpoint.close_all(now);
                    }
                }
            }
        }
    }
}
