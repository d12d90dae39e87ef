//! Datagrams in, datagrams out, and the per-connection processing after either.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use shoal_protocols::NodeName;

use super::conn::{Conn, Phase, Role, CONTROL_STREAM};
use super::event::{close_code, DownReason, Event, MigrationOutcome};
use super::{DatagramOutcome, Endpoint, SendError, Transmit};
use crate::cid::{self, CID_LEN};
use crate::frame::{self, FrameError};
use crate::metrics::Counters;

/// Segments per GSO batch (the kernel's UDP_MAX_SEGMENTS is 64 on older kernels).
pub(super) const GSO_SEGMENTS_MAX: usize = 64;

/// Spare connection IDs each side keeps issued (migration consumes one per new path).
const SPARE_CIDS: usize = 4;

impl Endpoint {
    /// Feeds one received UDP datagram (after GRO splitting) addressed to `to` from `from`.
    /// quiche decrypts in place, so the buffer is scratch afterwards.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> DatagramOutcome {
        Counters::add(&self.metrics.packets_in, 1);
        Counters::add(&self.metrics.bytes_in, buf.len() as u64);
        let Ok(header) = quiche::Header::from_slice(buf, CID_LEN) else {
            Counters::add(&self.metrics.datagrams_dropped, 1);
            return DatagramOutcome::Dropped;
        };
        let Ok(dcid) = <[u8; CID_LEN]>::try_from(&header.dcid[..]) else {
            // shoal issues and dials with CID_LEN-byte IDs only.
            Counters::add(&self.metrics.datagrams_dropped, 1);
            return DatagramOutcome::Dropped;
        };
        if let Some(&slot) = self.by_cid.get(&dcid) {
            if let Some(mut conn) = self.take(slot) {
                let info = quiche::RecvInfo { from, to };
                if conn.q.recv(buf, info).is_err() {
                    // quiche counts and drops undecryptable or invalid packets itself; the
                    // connection is unharmed unless it reports closed below.
                    Counters::add(&self.metrics.datagrams_dropped, 1);
                }
                self.after_io(slot, conn, now);
            }
            return DatagramOutcome::Handled;
        }
        // Unknown CID: its first byte names the owner, exactly as the kernel program decides,
        // so every shard agrees on who accepts an Initial even if steering was bypassed.
        let owner = cid::shard_of(&dcid, self.shards).unwrap_or(self.shard);
        if owner != self.shard {
            Counters::add(&self.metrics.foreign_dcid_handoffs, 1);
            return DatagramOutcome::Foreign(owner);
        }
        if header.ty != quiche::Type::Initial || !quiche::version_is_supported(header.version) {
            // A stale connection's packet, a version shoal does not speak, or garbage.
            Counters::add(&self.metrics.datagrams_dropped, 1);
            return DatagramOutcome::Dropped;
        }
        if self.live >= self.settings.connections_max {
            Counters::add(&self.metrics.datagrams_dropped, 1);
            return DatagramOutcome::Dropped;
        }
        let scid_bytes = cid::new_cid(self.shard);
        let scid = quiche::ConnectionId::from_ref(&scid_bytes);
        let Ok(q) = quiche::accept(&scid, None, to, from, &mut self.quic_config) else {
            Counters::add(&self.metrics.datagrams_dropped, 1);
            return DatagramOutcome::Dropped;
        };
        let mut conn =
            Conn::new(q, Role::Acceptor, None, (to, from), scid_bytes, now, &self.settings);
        // Retransmitted Initials still carry the dialer's random DCID until it learns ours.
        conn.cids.push(dcid);
        conn.cids.push(scid_bytes);
        let slot = self.insert_conn(conn);
        self.by_cid.insert(dcid, slot);
        self.by_cid.insert(scid_bytes, slot);
        if let Some(mut conn) = self.take(slot) {
            if conn.q.recv(buf, quiche::RecvInfo { from, to }).is_err() {
                Counters::add(&self.metrics.datagrams_dropped, 1);
            }
            self.after_io(slot, conn, now);
        }
        DatagramOutcome::Handled
    }

    /// Dials `peer` at `addr` from this shard; returns the new slot.
    pub(super) fn dial(
        &mut self,
        now: Instant,
        peer: &NodeName,
        addr: SocketAddr,
    ) -> Result<u32, SendError> {
        if self.live >= self.settings.connections_max {
            return Err(SendError::ShardFull { max: self.settings.connections_max });
        }
        let scid_bytes = cid::new_cid(self.shard);
        let scid = quiche::ConnectionId::from_ref(&scid_bytes);
        let q = quiche::connect(None, &scid, self.local_addr, addr, &mut self.quic_config)
            .map_err(|error| SendError::Quic(error.to_string()))?;
        let mut conn = Conn::new(
            q,
            Role::Dialer,
            Some(peer.clone()),
            (self.local_addr, addr),
            scid_bytes,
            now,
            &self.settings,
        );
        conn.cids.push(scid_bytes);
        let slot = self.insert_conn(conn);
        self.by_cid.insert(scid_bytes, slot);
        self.by_peer.insert(peer.clone(), slot);
        Ok(slot)
    }

    /// Everything that follows I/O on a connection: handshake progress, reading, path
    /// events, CID upkeep, writing queued messages, close detection, timer and send queue.
    pub(super) fn after_io(&mut self, slot: u32, mut conn: Box<Conn>, now: Instant) {
        if conn.phase == Phase::Handshake && conn.q.is_established() {
            self.on_established(&mut conn, now);
        } else if let Some((code, reason)) = conn.deferred_close.take() {
            self.close_conn(&mut conn, code, reason);
        }
        if !conn.q.is_closed() {
            self.read_streams(slot, &mut conn, now);
            self.read_datagrams(&mut conn, now);
            self.path_events(&mut conn);
            self.upkeep_cids(slot, &mut conn);
            if conn.phase == Phase::Ready {
                self.flush(&mut conn, now);
                self.report_writable(slot, &mut conn);
            }
        }
        if conn.q.is_closed() {
            self.finish(slot, conn, now);
            return;
        }
        self.arm_timer(slot, &mut conn);
        self.mark_dirty(slot, &mut conn);
        self.put(slot, conn);
    }

    /// The QUIC handshake completed: bind the connection for authentication; the dialer sends
    /// HELLO with its proof, the acceptor waits for it.
    fn on_established(&mut self, conn: &mut Conn, now: Instant) {
        let binding = match self.bind_connection(conn) {
            Ok(binding) => binding,
            Err(failure) => {
                self.auth_failed(conn, &failure, now);
                return;
            }
        };
        conn.binding = Some(binding);
        match conn.role {
            Role::Dialer => {
                let target = conn.peer.clone().expect("dialled connections know their peer");
                let auth = self.auth.prove_hello(
                    &binding,
                    &self.name,
                    &target,
                    self.incarnation,
                    &mut self.auth_scratch,
                );
                let mut hello = BytesMut::new();
                frame::encode_hello(&self.name, &target, self.incarnation, &auth, &mut hello);
                // The control stream goes first. Errors mean the connection is closing,
                // which the close check after this step handles.
                let _ = conn.q.stream_priority(CONTROL_STREAM, 0, false);
                // The peer's stream window is at least 64 KiB (QuicSettings::validate) and a
                // HELLO is at most 659 bytes, so it is taken whole.
                match conn.q.stream_send(CONTROL_STREAM, &hello, false) {
                    Ok(written) if written == hello.len() => conn.phase = Phase::AwaitWelcome,
                    _ => self.close_conn(conn, close_code::PROTOCOL, DownReason::HandshakeFailed),
                }
            }
            Role::Acceptor => conn.phase = Phase::AwaitHello,
        }
    }

    fn read_datagrams(&mut self, conn: &mut Conn, now: Instant) {
        while let Ok(len) = conn.q.dgram_recv(&mut self.scratch) {
            if conn.phase != Phase::Ready {
                // DATAGRAMs before HELLO/WELCOME have no known sender: drop and count.
                Counters::add(&self.metrics.decode_errors, 1);
                continue;
            }
            conn.last_activity = now;
            Counters::add(&self.metrics.messages_in, 1);
            let peer = conn.peer.clone().expect("a ready connection knows its peer");
            self.events.push_back(Event::Datagram {
                peer,
                payload: bytes::Bytes::copy_from_slice(&self.scratch[..len]),
            });
        }
    }

    fn path_events(&mut self, conn: &mut Conn) {
        while let Some(path_event) = conn.q.path_event_next() {
            match path_event {
                quiche::PathEvent::Validated(local, peer_addr)
                    if conn.migration.is_some_and(|migration| migration.local == local) =>
                {
                    conn.migration = None;
                    if conn.q.migrate(local, peer_addr).is_ok() {
                        conn.local_addr = local;
                        conn.peer_addr = peer_addr;
                        Counters::add(&self.metrics.migrate_ok, 1);
                        self.report_migration(conn, MigrationOutcome::Ok);
                    } else {
                        Counters::add(&self.metrics.migrate_failed, 1);
                        self.report_migration(conn, MigrationOutcome::Failed);
                    }
                }
                quiche::PathEvent::FailedValidation(local, _)
                    if conn.migration.is_some_and(|migration| migration.local == local) =>
                {
                    conn.migration = None;
                    Counters::add(&self.metrics.migrate_failed, 1);
                    self.report_migration(conn, MigrationOutcome::Failed);
                }
                quiche::PathEvent::PeerMigrated(local, peer_addr) => {
                    // The dialer moved; follow it (quiche already sends on the new path).
                    conn.local_addr = local;
                    conn.peer_addr = peer_addr;
                }
                _ => {}
            }
        }
    }

    fn report_migration(&mut self, conn: &Conn, outcome: MigrationOutcome) {
        if let Some(peer) = conn.peer.clone() {
            self.events.push_back(Event::Migrated { peer, outcome });
        }
    }

    /// Issues spare CIDs (each encodes this shard) and forgets the ones the peer retired.
    fn upkeep_cids(&mut self, slot: u32, conn: &mut Conn) {
        while let Some(retired) = conn.q.retired_scid_next() {
            if let Ok(bytes) = <[u8; CID_LEN]>::try_from(&retired[..]) {
                self.by_cid.remove(&bytes);
                conn.cids.retain(|cid| *cid != bytes);
            }
        }
        if !conn.q.is_established() {
            return;
        }
        while conn.q.scids_left() > 0 && conn.cids.len() < SPARE_CIDS + 2 {
            let cid_bytes = cid::new_cid(self.shard);
            let reset_token = cid::new_reset_token();
            let cid = quiche::ConnectionId::from_ref(&cid_bytes);
            if conn.q.new_scid(&cid, reset_token, true).is_err() {
                break;
            }
            conn.cids.push(cid_bytes);
            self.by_cid.insert(cid_bytes, slot);
        }
    }

    /// Hands queued messages to QUIC: control lane first, then the data lanes.
    pub(super) fn flush(&mut self, conn: &mut Conn, now: Instant) {
        let before = conn.out.frames();
        let mut failed = false;
        failed |= write_queue(&mut conn.q, CONTROL_STREAM, &mut conn.out.control).is_err();
        for index in 0..conn.out.lanes.len() {
            let stream = conn.lane_stream(index);
            failed |= write_queue(&mut conn.q, stream, &mut conn.out.lanes[index]).is_err();
        }
        let sent = before - conn.out.frames();
        if sent > 0 {
            conn.last_activity = now;
            Counters::add(&self.metrics.messages_out, sent as u64);
        }
        if failed {
            // A stream of ours refused data for a reason other than flow control: the peer
            // reset or stopped a lane, which shoal peers never do.
            self.close_conn(
                conn,
                close_code::PROTOCOL,
                DownReason::Reset { code: close_code::PROTOCOL, by_peer: false },
            );
        }
    }

    /// Fills `buf` with the next batch of datagrams to send. Call until `None` after every
    /// input; `buf` should hold 64 maximal datagrams (64 × 1,350 B with the defaults).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((packet, info)) = self.stash.take() {
            buf[..packet.len()].copy_from_slice(&packet);
            return Some(Transmit {
                from: info.from,
                to: info.to,
                len: packet.len(),
                segment_size: packet.len(),
                segments: 1,
            });
        }
        while let Some(&slot) = self.dirty.front() {
            let Some(mut conn) = self.take(slot) else {
                self.dirty.pop_front();
                continue;
            };
            if conn.phase == Phase::Ready && !conn.out.is_empty() {
                self.flush(&mut conn, now);
            }
            let batch = self.fill_batch(&mut conn, buf);
            if batch.is_none() {
                self.dirty.pop_front();
                conn.dirty = false;
            }
            if conn.q.is_closed() {
                if batch.is_none() {
                    self.finish(slot, conn, now);
                } else {
                    self.put(slot, conn);
                }
            } else {
                self.arm_timer(slot, &mut conn);
                self.put(slot, conn);
            }
            if batch.is_some() {
                return batch;
            }
        }
        None
    }

    /// One GSO batch from one connection: equal-sized packets to one destination; a shorter
    /// packet ends the batch, a packet for another path or a larger one is stashed.
    fn fill_batch(&mut self, conn: &mut Conn, buf: &mut [u8]) -> Option<Transmit> {
        let mut len = 0;
        let mut segments = 0;
        let mut segment_size = 0;
        let mut path: Option<(SocketAddr, SocketAddr)> = None;
        let max_payload = conn.q.max_send_udp_payload_size();
        while segments < GSO_SEGMENTS_MAX && buf.len() - len >= max_payload {
            match conn.q.send(&mut buf[len..]) {
                Ok((written, info)) => {
                    let this_path = (info.from, info.to);
                    match path {
                        None => {
                            path = Some(this_path);
                            segment_size = written;
                        }
                        Some(batch_path) if batch_path != this_path || written > segment_size => {
                            self.stash = Some((buf[len..len + written].to_vec(), info));
                            break;
                        }
                        Some(_) => {}
                    }
                    len += written;
                    segments += 1;
                    if written < segment_size {
                        break;
                    }
                }
                Err(quiche::Error::Done) => break,
                Err(_) => {
                    // send() fails only when the connection is broken; quiche closes it.
                    break;
                }
            }
        }
        let (from, to) = path?;
        Some(Transmit { from, to, len, segment_size, segments })
    }

    /// A closed connection leaves: CIDs and table entries removed, its queued messages
    /// moved to the pair's other connection, parked for a redial, or reported lost.
    pub(super) fn finish(&mut self, slot: u32, mut conn: Box<Conn>, now: Instant) {
        self.auth_abandoned(&mut conn, now);
        let this = self.conn_ref(slot);
        for cid in &conn.cids {
            if self.by_cid.get(cid) == Some(&slot) {
                self.by_cid.remove(cid);
            }
        }
        let reason = down_reason(&conn);
        let lost_dial = matches!(conn.q.peer_error(), Some(error) if error.is_app && error.error_code == close_code::DUPLICATE);
        // A connection that lost the one-per-pair rule before it carried anything is not a
        // link going down: the pair's other connection is (or will be) the link.
        let superseded =
            !conn.announced && (lost_dial || conn.local_close == Some(DownReason::Replaced));
        let mut unsent = 0;
        if let Some(peer) = conn.peer.clone() {
            if self.by_peer.get(&peer) == Some(&slot) {
                self.by_peer.remove(&peer);
            }
            let owner = {
                let mut directory = self.directory.lock();
                directory.remove_if(&peer, this);
                directory.get(&peer).map(|entry| entry.conn)
            };
            let mut queues =
                std::mem::replace(&mut conn.out, super::Queues::new(self.settings.data_lanes));
            unsent += queues
                .lanes
                .iter_mut()
                .map(|lane| usize::from(lane.discard_partial_head()))
                .sum::<usize>();
            unsent += usize::from(queues.control.discard_partial_head());
            if !queues.is_empty() {
                if let Some(owner) = owner {
                    self.move_queues(peer.clone(), conn.peer_addr, queues, owner, now);
                } else if superseded || conn.local_close == Some(DownReason::Replaced) {
                    self.park(peer.clone(), conn.peer_addr, queues, now);
                } else {
                    unsent += queues.frames();
                }
            }
            for &stream_id in conn.tagged.keys() {
                self.events.push_back(Event::StreamClosed {
                    stream: super::StreamKey { conn: slot, generation: this.generation, stream_id },
                    reset_code: Some(super::event::reset_code::LINK_DOWN),
                });
            }
            let streams = self.metrics.streams.load(std::sync::atomic::Ordering::Relaxed);
            Counters::set(&self.metrics.streams, streams.saturating_sub(conn.tagged.len() as u64));
            let report = !conn.down_reported
                && (conn.announced || (conn.role == Role::Dialer && !superseded) || unsent > 0);
            if report {
                self.events.push_back(Event::LinkDown { peer, reason, unsent_messages: unsent });
            }
        }
        if superseded {
            Counters::add(&self.metrics.connections_duplicate, 1);
        } else if !conn.announced {
            Counters::add(&self.metrics.handshake_failures, 1);
        }
        Counters::add(&self.metrics.connections_closed, 1);
        self.live -= 1;
        Counters::set(&self.metrics.connections, self.live as u64);
        self.slots[slot as usize].conn = None;
        self.free_slots.push(slot);
    }
}

/// Offers a lane's pending bytes to its stream until flow control stops it.
fn write_queue(
    q: &mut quiche::Connection,
    stream: u64,
    queue: &mut super::queue::OutQueue,
) -> Result<(), quiche::Error> {
    while !queue.is_empty() {
        match q.stream_send(stream, queue.pending(), false) {
            Ok(0) | Err(quiche::Error::Done) => break,
            Ok(written) => queue.consume(written),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

fn down_reason(conn: &Conn) -> DownReason {
    if let Some(reason) = &conn.local_close {
        return reason.clone();
    }
    let peer_app_code =
        conn.q.peer_error().filter(|error| error.is_app).map(|error| error.error_code);
    if let Some(refusal) = peer_app_code.and_then(crate::auth::AuthFailure::from_peer_close) {
        return DownReason::AuthFailed { reason: refusal.label(), by_peer: true };
    }
    if !conn.announced && conn.phase != Phase::Ready {
        return DownReason::HandshakeFailed;
    }
    if conn.q.is_timed_out() {
        return DownReason::IdleTimeout;
    }
    if let Some(error) = conn.q.peer_error() {
        if error.is_app {
            return match error.error_code {
                close_code::NO_ERROR => DownReason::Closed,
                close_code::REAPED => DownReason::Reaped,
                close_code::REPLACED => DownReason::Replaced,
                close_code::SHUTDOWN => DownReason::Shutdown,
                code => DownReason::Reset { code, by_peer: true },
            };
        }
        return DownReason::Reset { code: error.error_code, by_peer: true };
    }
    if let Some(error) = conn.q.local_error() {
        return DownReason::Reset { code: error.error_code, by_peer: false };
    }
    DownReason::Closed
}

/// Counts a frame the peer got wrong and closes its connection.
pub(super) fn protocol_violation(endpoint: &mut Endpoint, conn: &mut Conn, _error: &FrameError) {
    Counters::add(&endpoint.metrics.decode_errors, 1);
    endpoint.close_conn(
        conn,
        close_code::PROTOCOL,
        DownReason::Reset { code: close_code::PROTOCOL, by_peer: false },
    );
}
