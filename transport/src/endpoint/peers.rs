//! Peers: sending, the HELLO/WELCOME exchange and the one-connection-per-pair rule,
//! hand-offs between shards, redials, the idle GC and migration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use shoal_protocols::NodeName;

use super::conn::{Conn, Migration, Phase, Role, CONTROL_STREAM};
use super::event::{close_code, DownReason, Event, Lane};
use super::io::protocol_violation;
use super::{Endpoint, Handoff, MigrateError, Parked, Queues, SendError};
use crate::directory::{decide_hello, ConnRef, Entry, HelloDecision};
use crate::frame::{self, AuthFields, Frame, FrameError, FrameReader};
use crate::metrics::Counters;

impl Endpoint {
    /// Queues `payload` for `peer` (at `addr`) on `lane`, dialling if the node has no
    /// connection to it. Messages queue until the connection is ready, then flow in order
    /// per lane. Refused (nothing queued) when the queue is full, the message too large, or
    /// another shard owns the peer ([`SendError::OtherShard`]: send there).
    pub fn send(
        &mut self,
        now: Instant,
        peer: &NodeName,
        addr: SocketAddr,
        lane: Lane,
        payload: &[u8],
    ) -> Result<(), SendError> {
        if payload.len() + 1 > self.settings.frame_bytes_max {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max: self.settings.frame_bytes_max - 1,
            });
        }
        let slot = match self.by_peer.get(peer) {
            Some(&slot) => slot,
            None => {
                if let Some(parked) = self.parked.get_mut(peer) {
                    let queued = parked.queues.bytes();
                    check_room(
                        peer,
                        queued,
                        payload.len(),
                        self.settings.peer_queue_bytes_max,
                        &self.metrics,
                    )?;
                    push(&mut parked.queues, lane, payload);
                    return Ok(());
                }
                let slot = self.claim_and_dial(now, peer, addr)?;
                if let Some(conn) = self.take(slot) {
                    self.after_io(slot, conn, now);
                }
                slot
            }
        };
        let Some(mut conn) = self.take(slot) else {
            return Err(SendError::NotConnected { peer: peer.clone() });
        };
        let queued = conn.out.bytes();
        if let Err(error) = check_room(
            peer,
            queued,
            payload.len(),
            self.settings.peer_queue_bytes_max,
            &self.metrics,
        ) {
            self.put(slot, conn);
            return Err(error);
        }
        push(&mut conn.out, lane, payload);
        // Handed to QUIC in `poll_transmit`: one `stream_send` per lane for all the messages
        // queued since the last flush, not one per message.
        self.mark_dirty(slot, &mut conn);
        self.put(slot, conn);
        Ok(())
    }

    /// Claims `peer` for this shard in the directory and dials it, both under the directory
    /// lock, so two shards never dial one peer. `OtherShard` when another shard holds it.
    fn claim_and_dial(
        &mut self,
        now: Instant,
        peer: &NodeName,
        addr: SocketAddr,
    ) -> Result<u32, SendError> {
        let table = std::sync::Arc::clone(&self.directory);
        let mut directory = table.lock();
        if let Some(entry) = directory.get(peer) {
            if entry.conn.shard != self.shard {
                return Err(SendError::OtherShard { peer: peer.clone(), shard: entry.conn.shard });
            }
        }
        let slot = self.dial(now, peer, addr)?;
        let entry = Entry { conn: self.conn_ref(slot), dialled_by_us: true, incarnation: None };
        directory.insert(peer.clone(), entry);
        Ok(slot)
    }

    /// Sends a DATAGRAM (unordered, unreliable, at most one path MTU) on an established
    /// connection. `QueueFull` when quiche's DATAGRAM queue is full.
    pub fn send_datagram(
        &mut self,
        now: Instant,
        peer: &NodeName,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let Some(&slot) = self.by_peer.get(peer) else {
            return Err(self.not_here(peer));
        };
        let Some(mut conn) = self.take(slot) else {
            return Err(SendError::NotConnected { peer: peer.clone() });
        };
        let result = if conn.phase != Phase::Ready {
            Err(SendError::NotConnected { peer: peer.clone() })
        } else {
            match conn.q.dgram_send(payload) {
                Ok(()) => {
                    conn.last_activity = now;
                    Counters::add(&self.metrics.messages_out, 1);
                    Ok(())
                }
                Err(quiche::Error::Done) => {
                    Counters::add(&self.metrics.send_queue_overflows, 1);
                    Err(SendError::QueueFull {
                        peer: peer.clone(),
                        queued_bytes: conn.q.dgram_send_queue_byte_size(),
                        max_bytes: 0,
                    })
                }
                Err(quiche::Error::BufferTooShort) => {
                    let max = conn.q.dgram_max_writable_len().unwrap_or(0);
                    Err(SendError::TooLarge { len: payload.len(), max })
                }
                Err(error) => Err(SendError::Quic(error.to_string())),
            }
        };
        self.mark_dirty(slot, &mut conn);
        self.arm_timer(slot, &mut conn);
        self.put(slot, conn);
        result
    }

    pub(super) fn not_here(&self, peer: &NodeName) -> SendError {
        match self.directory.owner(peer) {
            Some(shard) if shard != self.shard => {
                SendError::OtherShard { peer: peer.clone(), shard }
            }
            _ => SendError::NotConnected { peer: peer.clone() },
        }
    }

    /// Reads the control stream and the peer's data lanes (tagged streams: `streams.rs`).
    pub(super) fn read_streams(&mut self, slot: u32, conn: &mut Conn, now: Instant) {
        while let Some(stream_id) = conn.q.stream_readable_next() {
            if conn.phase == Phase::Closing {
                break;
            }
            if stream_id == CONTROL_STREAM {
                let mut reader = std::mem::replace(&mut conn.control_in, FrameReader::new(0));
                self.read_frames(conn, stream_id, &mut reader, Lane::Control, now);
                conn.control_in = reader;
            } else if conn.is_peer_lane(stream_id) {
                let index = (stream_id - 2) / 4;
                let mut reader = conn
                    .lanes_in
                    .remove(&stream_id)
                    .unwrap_or_else(|| FrameReader::new(self.settings.frame_bytes_max));
                let finished =
                    self.read_frames(conn, stream_id, &mut reader, Lane::Data(index), now);
                if !finished {
                    conn.lanes_in.insert(stream_id, reader);
                }
            } else {
                self.read_tagged(slot, conn, stream_id, now);
            }
        }
    }

    /// Reads one framed stream until quiche has nothing more; returns whether it ended.
    fn read_frames(
        &mut self,
        conn: &mut Conn,
        stream_id: u64,
        reader: &mut FrameReader,
        lane: Lane,
        now: Instant,
    ) -> bool {
        loop {
            let result = conn.q.stream_recv_buf(stream_id, reader.sink());
            let fin = match result {
                Ok((_, fin)) => fin,
                Err(quiche::Error::Done) => {
                    reader.release_idle();
                    return false;
                }
                // Reset by the peer, or gone: nothing more to read from it.
                Err(_) => return true,
            };
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        if let Err(error) = self.on_frame(conn, lane, frame, now) {
                            protocol_violation(self, conn, &error);
                            return true;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => {
                        protocol_violation(self, conn, &error);
                        return true;
                    }
                }
            }
            if fin {
                return true;
            }
        }
    }

    fn on_frame(
        &mut self,
        conn: &mut Conn,
        lane: Lane,
        frame: Frame,
        now: Instant,
    ) -> Result<(), FrameError> {
        match (frame, lane, conn.phase) {
            (Frame::Message(payload), _, Phase::Ready) => {
                conn.last_activity = now;
                Counters::add(&self.metrics.messages_in, 1);
                let peer = conn.peer.clone().expect("a ready connection knows its peer");
                self.events.push_back(Event::Message { peer, lane, payload });
                Ok(())
            }
            (
                Frame::Hello { name, target, incarnation, auth },
                Lane::Control,
                Phase::AwaitHello,
            ) => {
                self.on_hello(conn, &name, &target, incarnation, &auth, now);
                Ok(())
            }
            (Frame::Welcome { name, incarnation, auth }, Lane::Control, Phase::AwaitWelcome) => {
                self.on_welcome(conn, &name, incarnation, &auth, now);
                Ok(())
            }
            (Frame::Message(_), _, _) => {
                Err(FrameError::Malformed { kind: "MESSAGE", why: "before HELLO/WELCOME" })
            }
            (Frame::Hello { .. }, _, _) => {
                Err(FrameError::Malformed { kind: "HELLO", why: "unexpected here" })
            }
            (Frame::Welcome { .. }, _, _) => {
                Err(FrameError::Malformed { kind: "WELCOME", why: "unexpected here" })
            }
        }
    }

    /// The acceptor checks the dialer's proof (`auth`), then applies the
    /// one-connection-per-pair rule. Only a proven name reaches the directory and the events.
    fn on_hello(
        &mut self,
        conn: &mut Conn,
        claimed: &NodeName,
        target: &NodeName,
        incarnation: u64,
        fields: &AuthFields,
        now: Instant,
    ) {
        // AwaitHello is entered only once the connection is bound; a frame without a binding
        // cannot be checked, so it is ignored (the deadline closes such a connection).
        let Some(binding) = conn.binding else { return };
        conn.peer = Some(claimed.clone());
        let checked = self.auth.check_hello(
            &binding,
            &self.name,
            claimed,
            target,
            incarnation,
            fields,
            &mut self.auth_scratch,
        );
        let mode = match checked {
            Ok(peer) => peer.mode,
            Err(failure) => {
                self.auth_failed(conn, &failure, now);
                return;
            }
        };
        self.auth_succeeded(conn, now);
        let peer = claimed.clone();
        let slot = conn.slot;
        let this = self.conn_ref(slot);
        let decision = {
            let mut directory = self.directory.lock();
            let decision = decide_hello(directory.get(&peer), &self.name, &peer, incarnation);
            if let HelloDecision::Accept { .. } = decision {
                let entry =
                    Entry { conn: this, dialled_by_us: false, incarnation: Some(incarnation) };
                directory.insert(peer.clone(), entry);
            }
            decision
        };
        conn.peer = Some(peer.clone());
        match decision {
            HelloDecision::Reject => {
                self.close_conn(conn, close_code::DUPLICATE, DownReason::Replaced);
            }
            HelloDecision::Accept { replaces } => {
                let auth = self.auth.prove_welcome(
                    &binding,
                    &peer,
                    &self.name,
                    self.incarnation,
                    mode,
                    &mut self.auth_scratch,
                );
                let mut welcome = BytesMut::new();
                frame::encode_welcome(&self.name, self.incarnation, &auth, &mut welcome);
                match conn.q.stream_send(CONTROL_STREAM, &welcome, false) {
                    Ok(written) if written == welcome.len() => {}
                    _ => {
                        self.close_conn(conn, close_code::PROTOCOL, DownReason::HandshakeFailed);
                        return;
                    }
                }
                let _ = conn.q.stream_priority(CONTROL_STREAM, 0, false);
                if let Some(old) = replaces {
                    self.retire(peer.clone(), old, Some(conn), now);
                }
                self.by_peer.insert(peer.clone(), slot);
                self.become_ready(conn, now);
            }
        }
    }

    /// The dialer checks the acceptor's proof; the connection is then confirmed (or
    /// superseded while it waited).
    fn on_welcome(
        &mut self,
        conn: &mut Conn,
        claimed: &NodeName,
        incarnation: u64,
        fields: &AuthFields,
        now: Instant,
    ) {
        let this = self.conn_ref(conn.slot);
        let peer = conn.peer.clone().expect("dialled connections know their peer");
        // Without a binding this side already refused the peer (`deferred_close`): a WELCOME
        // cannot be checked and is ignored.
        let Some(binding) = conn.binding else { return };
        let checked = self.auth.check_welcome(
            &binding,
            &self.name,
            &peer,
            claimed,
            incarnation,
            fields,
            &mut self.auth_scratch,
        );
        if let Err(failure) = checked {
            self.auth_failed(conn, &failure, now);
            return;
        }
        self.auth_succeeded(conn, now);
        let owner = {
            let mut directory = self.directory.lock();
            match directory.get(&peer).copied() {
                Some(entry) if entry.conn == this => {
                    directory
                        .insert(peer.clone(), Entry { incarnation: Some(incarnation), ..entry });
                    None
                }
                Some(entry) => Some(entry.conn),
                None => {
                    let entry =
                        Entry { conn: this, dialled_by_us: true, incarnation: Some(incarnation) };
                    directory.insert(peer.clone(), entry);
                    None
                }
            }
        };
        match owner {
            None => self.become_ready(conn, now),
            Some(other) => {
                // We accepted the peer's own dial meanwhile and it won; this one goes.
                let queues =
                    std::mem::replace(&mut conn.out, Queues::new(self.settings.data_lanes));
                self.close_conn(conn, close_code::DUPLICATE, DownReason::Replaced);
                self.move_queues(peer, conn.peer_addr, queues, other, now);
            }
        }
    }

    fn become_ready(&mut self, conn: &mut Conn, now: Instant) {
        conn.phase = Phase::Ready;
        conn.announced = true;
        conn.last_activity = now;
        let peer = conn.peer.clone().expect("ready connections know their peer");
        if let Some(mut parked) = self.parked.remove(&peer) {
            // Parked messages were queued before anything queued on this connection.
            std::mem::swap(&mut conn.out, &mut parked.queues);
            conn.out.append(&mut parked.queues);
        }
        Counters::add(&self.metrics.connections_established, 1);
        self.events.push_back(Event::LinkUp { peer, addr: conn.peer_addr, shard: self.shard });
    }

    /// Closes `old` (replaced by a newer connection of the pair) and moves its queued
    /// messages to `new` when given, else to the peer's current owner; asks the owning shard
    /// to do it when `old` lives elsewhere.
    fn retire(&mut self, peer: NodeName, old: ConnRef, new: Option<&mut Conn>, now: Instant) {
        if old.shard != self.shard {
            self.handoffs.push_back((old.shard, Handoff::CloseReplaced { peer, conn: old }));
            return;
        }
        if self.slots.get(old.slot as usize).map(|entry| entry.generation) != Some(old.generation) {
            return;
        }
        let Some(mut old_conn) = self.take(old.slot) else { return };
        let mut queues =
            std::mem::replace(&mut old_conn.out, Queues::new(self.settings.data_lanes));
        if old_conn.role == Role::Dialer
            && matches!(old_conn.phase, Phase::Handshake | Phase::AwaitWelcome)
        {
            // Our own dial, not yet welcomed, lost to the peer's dial. The peer rejects it
            // with DUPLICATE as soon as its HELLO arrives (the peer sees its own dial), and
            // that close travels in 1-RTT packets the peer can send. Closing it from here
            // could stall: a client that just completed its handshake has not sent its
            // Finished yet, and quiche only sends an application close in 1-RTT packets.
            if self.by_peer.get(&peer) == Some(&old.slot) {
                self.by_peer.remove(&peer);
            }
        } else {
            self.close_conn(&mut old_conn, close_code::REPLACED, DownReason::Replaced);
        }
        match new {
            Some(new) => {
                new.out.append(&mut queues);
            }
            None => {
                let owner = self.directory.lock().get(&peer).map(|entry| entry.conn);
                if let Some(owner) = owner {
                    self.move_queues(peer, old_conn.peer_addr, queues, owner, now);
                } else {
                    self.park(peer, old_conn.peer_addr, queues, now);
                }
            }
        }
        // Its LinkDown (if it was up) precedes the new connection's LinkUp.
        self.after_io(old.slot, old_conn, now);
    }

    /// Another shard's work for this one.
    pub fn handle_handoff(&mut self, now: Instant, handoff: Handoff) {
        match handoff {
            Handoff::Queues { peer, addr, queues } => self.adopt_queues(now, peer, addr, queues),
            Handoff::CloseReplaced { peer, conn } => {
                if conn.shard == self.shard {
                    self.retire(peer, conn, None, now);
                }
            }
        }
    }

    /// Messages for `peer` arrive from another shard or from a closed connection here: they
    /// join the peer's connection on this shard, or wait parked. Parked, not re-sent at once:
    /// the redial after `redial_delay_ms` finds the peer's owner or dials, and two shards whose
    /// views of the directory briefly disagree must not bounce a batch back and forth. (The
    /// owner may also be the connection being processed right now, out of its slot.)
    fn adopt_queues(&mut self, now: Instant, peer: NodeName, addr: SocketAddr, mut queues: Queues) {
        if let Some(&slot) = self.by_peer.get(&peer) {
            if let Some(mut conn) = self.take(slot) {
                conn.out.append(&mut queues);
                self.mark_dirty(slot, &mut conn);
                self.put(slot, conn);
                return;
            }
        }
        self.park(peer, addr, queues, now);
    }

    /// Sends `peer`'s messages to the shard of its connection `owner`.
    pub(super) fn move_queues(
        &mut self,
        peer: NodeName,
        addr: SocketAddr,
        queues: Queues,
        owner: ConnRef,
        now: Instant,
    ) {
        if owner.shard == self.shard {
            self.adopt_queues(now, peer, addr, queues);
        } else {
            self.handoffs.push_back((owner.shard, Handoff::Queues { peer, addr, queues }));
        }
    }

    /// Holds messages for `peer` until a connection appears or the redial delay passes.
    pub(super) fn park(
        &mut self,
        peer: NodeName,
        addr: SocketAddr,
        mut queues: Queues,
        now: Instant,
    ) {
        let retry_at = now + Duration::from_millis(self.settings.redial_delay_ms);
        match self.parked.get_mut(&peer) {
            Some(parked) => {
                parked.queues.append(&mut queues);
            }
            None => {
                self.parked.insert(peer, Parked { queues, addr, retry_at });
            }
        }
    }

    /// Parked messages whose redial delay passed go to the peer's connection wherever it
    /// is, or trigger a new dial from here.
    pub(super) fn retry_parked(&mut self, now: Instant) {
        let mut due: Vec<NodeName> = self
            .parked
            .iter()
            .filter(|(_, parked)| parked.retry_at <= now)
            .map(|(peer, _)| peer.clone())
            .collect();
        // HashMap order is arbitrary; dial in name order so runs are comparable.
        due.sort();
        for peer in due {
            let Some(mut parked) = self.parked.remove(&peer) else { continue };
            let owner = self.directory.lock().get(&peer).map(|entry| entry.conn);
            if let Some(owner) = owner {
                if owner.shard != self.shard || self.by_peer.contains_key(&peer) {
                    self.move_queues(peer, parked.addr, parked.queues, owner, now);
                    continue;
                }
            }
            // Nobody holds a connection to the peer: dial it from here (or hand the messages to
            // the shard that claimed it in the meantime).
            let dialled = match self.claim_and_dial(now, &peer, parked.addr) {
                Ok(slot) => Some(slot),
                Err(SendError::OtherShard { shard, .. }) => {
                    self.handoffs.push_back((
                        shard,
                        Handoff::Queues { peer, addr: parked.addr, queues: parked.queues },
                    ));
                    continue;
                }
                Err(_) => None,
            };
            match dialled.and_then(|slot| self.take(slot).map(|conn| (slot, conn))) {
                Some((slot, mut conn)) => {
                    conn.out.append(&mut parked.queues);
                    self.after_io(slot, conn, now);
                }
                None => {
                    let unsent = parked.queues.frames();
                    self.events.push_back(Event::LinkDown {
                        peer,
                        reason: DownReason::HandshakeFailed,
                        unsent_messages: unsent,
                    });
                }
            }
        }
    }

    /// Closes connections idle for `dist_gc_min_age_ms` that are not exempt (the active
    /// view), carry no user stream and have nothing queued. Busy connections are never reaped.
    pub(super) fn gc_sweep(&mut self, now: Instant) {
        let min_idle = Duration::from_millis(self.settings.dist_gc_min_age_ms);
        for slot in 0..self.slots.len() {
            let slot = u32::try_from(slot).expect("slot count fits u32");
            let Some(conn) = self.slots[slot as usize].conn.as_deref() else { continue };
            let idle = now.saturating_duration_since(conn.last_activity) >= min_idle;
            let exempt = conn.peer.as_ref().is_some_and(|peer| self.gc_exempt.contains(peer));
            if conn.phase != Phase::Ready
                || !idle
                || exempt
                || conn.has_live_user_stream()
                || !conn.out.is_empty()
            {
                continue;
            }
            let Some(mut conn) = self.take(slot) else { continue };
            Counters::add(&self.metrics.dist_gc_reap, 1);
            self.close_conn(&mut conn, close_code::REAPED, DownReason::Reaped);
            self.after_io(slot, conn, now);
        }
    }

    /// Closes the connection to `peer` without error (`LinkDown { reason: Closed }` follows,
    /// with the messages still queued). Returns whether there was one.
    pub fn close_peer(&mut self, now: Instant, peer: &NodeName) -> bool {
        let Some(&slot) = self.by_peer.get(peer) else { return false };
        let Some(mut conn) = self.take(slot) else { return false };
        self.close_conn(&mut conn, close_code::NO_ERROR, DownReason::Closed);
        self.after_io(slot, conn, now);
        true
    }

    /// Moves the connection to `peer` onto `new_local` (a socket the driver bound on this
    /// shard) through QUIC path validation; the outcome arrives as [`Event::Migrated`].
    pub fn migrate(
        &mut self,
        now: Instant,
        peer: &NodeName,
        new_local: SocketAddr,
    ) -> Result<(), MigrateError> {
        let Some(&slot) = self.by_peer.get(peer) else {
            return Err(MigrateError::NotConnected(peer.clone()));
        };
        let Some(mut conn) = self.take(slot) else {
            return Err(MigrateError::NotConnected(peer.clone()));
        };
        let result = if conn.phase != Phase::Ready {
            Err(MigrateError::NotConnected(peer.clone()))
        } else if conn.role != Role::Dialer {
            Err(MigrateError::NotDialer(peer.clone()))
        } else if conn.migration.is_some() {
            Err(MigrateError::InProgress(peer.clone()))
        } else {
            // Probe first: quiche's migrate() switches paths without validating them. The
            // switch happens when the probe validates (io.rs, path events), so the outcome
            // reported is the validated one and a dead path never carries traffic.
            match conn.q.probe_path(new_local, conn.peer_addr) {
                Ok(_) => {
                    let deadline = now + Duration::from_millis(self.settings.migrate_timeout_ms);
                    conn.migration = Some(Migration { local: new_local, deadline });
                    Ok(())
                }
                Err(error) => {
                    Counters::add(&self.metrics.migrate_failed, 1);
                    Err(MigrateError::Quic(error.to_string()))
                }
            }
        };
        self.after_io(slot, conn, now);
        result
    }
}

fn check_room(
    peer: &NodeName,
    queued: usize,
    payload: usize,
    max_bytes: usize,
    metrics: &crate::metrics::ShardMetrics,
) -> Result<(), SendError> {
    if queued + frame::message_frame_bytes(payload) > max_bytes {
        Counters::add(&metrics.send_queue_overflows, 1);
        return Err(SendError::QueueFull { peer: peer.clone(), queued_bytes: queued, max_bytes });
    }
    Ok(())
}

fn push(queues: &mut Queues, lane: Lane, payload: &[u8]) {
    match lane {
        Lane::Control => queues.control.push_message(payload),
        Lane::Data(key) => {
            let lanes = queues.lanes.len() as u64;
            // `key % lanes` is below `lanes` (≤ 16), so it fits usize.
            let index = usize::try_from(key % lanes).expect("lane index below 16");
            queues.lanes[index].push_message(payload);
        }
    }
}
