//! Tagged user streams: `tag_len:u8` + tag (1..=255 bytes) preamble, then the user's bytes.
//!
//! Streams the peer opens wait in `AwaitPreamble` until their tag is complete; at most
//! `preamble_pending_max` (64) may wait per connection, and a stream beyond that is reset
//! with `PREAMBLE_OVERFLOW` and counted (`preamble_dropped`), so a peer opening streams
//! without finishing their preambles costs bounded memory. A tag without an acceptor is
//! reset with `UNKNOWN_TAG`.

use std::time::Instant;

use bytes::Bytes;
use shoal_protocols::NodeName;

use super::conn::{Conn, Phase, Tagged};
use super::event::{reset_code, Event, StreamKey};
use super::{Endpoint, SendError};
use crate::metrics::Counters;

/// Why a stream call failed. Nothing changed on the stream unless the variant says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The stream (or its connection) is gone; its handle is dead. Retrying fails.
    #[error("stream is closed")]
    Closed,
    /// The tag is empty or longer than 255 bytes. Retrying fails.
    #[error("tag must be 1..=255 bytes, got {0}")]
    BadTag(usize),
    /// No room now (flow control): wait for `StreamWritable` / `StreamReadable` and retry.
    #[error("stream would block")]
    WouldBlock,
    /// The peer reset the stream with this code; the stream is closed.
    #[error("stream reset by peer with code {0}")]
    Reset(u64),
    /// The peer has no usable connection: `open_stream` needs an established connection.
    #[error(transparent)]
    Send(#[from] SendError),
    /// quiche refused (the text says why).
    #[error("quic: {0}")]
    Quic(String),
}

impl Endpoint {
    /// Opens a tagged stream to `peer` over its established connection and writes the
    /// preamble. Bytes written next follow the preamble.
    pub fn open_stream(
        &mut self,
        now: Instant,
        peer: &NodeName,
        tag: &[u8],
    ) -> Result<StreamKey, StreamError> {
        let tag_len = u8::try_from(tag.len())
            .ok()
            .filter(|&len| len > 0)
            .ok_or(StreamError::BadTag(tag.len()))?;
        let Some(&slot) = self.by_peer.get(peer) else {
            return Err(StreamError::Send(self.not_here(peer)));
        };
        let Some(mut conn) = self.take(slot) else {
            return Err(StreamError::Closed);
        };
        if conn.phase != Phase::Ready {
            self.put(slot, conn);
            return Err(StreamError::Send(SendError::NotConnected { peer: peer.clone() }));
        }
        let stream_id = conn.next_local_bidi;
        let mut preamble = Vec::with_capacity(1 + tag.len());
        preamble.push(tag_len);
        preamble.extend_from_slice(tag);
        // A fresh stream has the peer's whole initial stream window (≥ 64 KiB, validated), so
        // the ≤ 256-byte preamble is taken whole or the stream limit refused it.
        let result = match conn.q.stream_send(stream_id, &preamble, false) {
            Ok(written) if written == preamble.len() => {
                conn.next_local_bidi += 4;
                conn.tagged.insert(
                    stream_id,
                    Tagged {
                        preamble: None,
                        tag: Bytes::copy_from_slice(tag),
                        write_blocked: false,
                        fin_received: false,
                        send_done: false,
                    },
                );
                conn.last_activity = now;
                Counters::add(&self.metrics.streams, 1);
                Ok(StreamKey {
                    conn: slot,
                    generation: self.slots[slot as usize].generation,
                    stream_id,
                })
            }
            Ok(_) | Err(quiche::Error::Done) | Err(quiche::Error::StreamLimit) => {
                Err(StreamError::WouldBlock)
            }
            Err(error) => Err(StreamError::Quic(error.to_string())),
        };
        self.after_io(slot, conn, now);
        result
    }

    fn stream_conn(&mut self, stream: StreamKey) -> Result<Box<Conn>, StreamError> {
        let entry = self.slots.get(stream.conn as usize).ok_or(StreamError::Closed)?;
        if entry.generation != stream.generation {
            return Err(StreamError::Closed);
        }
        let conn = self.take(stream.conn).ok_or(StreamError::Closed)?;
        if !conn.tagged.contains_key(&stream.stream_id) {
            self.put(stream.conn, conn);
            return Err(StreamError::Closed);
        }
        Ok(conn)
    }

    /// Writes what flow control allows of `data`; returns the bytes taken (0 is never
    /// returned: `WouldBlock` instead, followed by `StreamWritable` when room appears).
    pub fn stream_send(
        &mut self,
        now: Instant,
        stream: StreamKey,
        data: &[u8],
        fin: bool,
    ) -> Result<usize, StreamError> {
        let mut conn = self.stream_conn(stream)?;
        let result = match conn.q.stream_send(stream.stream_id, data, fin) {
            Ok(written) if written > 0 || (data.is_empty() && fin) => {
                conn.last_activity = now;
                if fin && written == data.len() {
                    self.mark_send_done(&mut conn, stream);
                }
                Ok(written)
            }
            Ok(_) | Err(quiche::Error::Done) => {
                if let Some(tagged) = conn.tagged.get_mut(&stream.stream_id) {
                    tagged.write_blocked = true;
                }
                Err(StreamError::WouldBlock)
            }
            Err(quiche::Error::StreamStopped(code)) => Err(StreamError::Reset(code)),
            Err(error) => Err(StreamError::Quic(error.to_string())),
        };
        self.after_io(stream.conn, conn, now);
        result
    }

    /// Reads into `buf`; returns `(bytes, fin)`. `WouldBlock` when nothing is buffered
    /// (a `StreamReadable` event follows new data). Read until `WouldBlock`: the event is
    /// not repeated for bytes already reported.
    pub fn stream_recv(
        &mut self,
        now: Instant,
        stream: StreamKey,
        buf: &mut [u8],
    ) -> Result<(usize, bool), StreamError> {
        let mut conn = self.stream_conn(stream)?;
        let result = match conn.q.stream_recv(stream.stream_id, buf) {
            Ok((read, fin)) => {
                conn.last_activity = now;
                if fin {
                    if let Some(tagged) = conn.tagged.get_mut(&stream.stream_id) {
                        tagged.fin_received = true;
                    }
                    self.forget_if_done(&mut conn, stream);
                }
                Ok((read, fin))
            }
            Err(quiche::Error::Done) => Err(StreamError::WouldBlock),
            Err(quiche::Error::StreamReset(code)) => {
                self.forget(&mut conn, stream, Some(code));
                Err(StreamError::Reset(code))
            }
            Err(error) => Err(StreamError::Quic(error.to_string())),
        };
        self.after_io(stream.conn, conn, now);
        result
    }

    /// Finishes this side's sending half (the peer reads the end after the bytes sent).
    pub fn stream_finish(&mut self, now: Instant, stream: StreamKey) -> Result<(), StreamError> {
        self.stream_send(now, stream, &[], true).map(|_| ())
    }

    /// Resets the stream both ways with `code`; the handle is dead afterwards.
    pub fn stream_reset(
        &mut self,
        now: Instant,
        stream: StreamKey,
        code: u64,
    ) -> Result<(), StreamError> {
        let mut conn = self.stream_conn(stream)?;
        let _ = conn.q.stream_shutdown(stream.stream_id, quiche::Shutdown::Write, code);
        let _ = conn.q.stream_shutdown(stream.stream_id, quiche::Shutdown::Read, code);
        self.forget(&mut conn, stream, Some(code));
        self.after_io(stream.conn, conn, now);
        Ok(())
    }

    fn mark_send_done(&mut self, conn: &mut Conn, stream: StreamKey) {
        if let Some(tagged) = conn.tagged.get_mut(&stream.stream_id) {
            tagged.send_done = true;
        }
        self.forget_if_done(conn, stream);
    }

    fn forget_if_done(&mut self, conn: &mut Conn, stream: StreamKey) {
        if conn
            .tagged
            .get(&stream.stream_id)
            .is_some_and(|tagged| tagged.fin_received && tagged.send_done)
        {
            self.forget(conn, stream, None);
        }
    }

    fn forget(&mut self, conn: &mut Conn, stream: StreamKey, reset_code: Option<u64>) {
        if conn.tagged.remove(&stream.stream_id).is_some() {
            let streams = self.metrics.streams.load(std::sync::atomic::Ordering::Relaxed);
            Counters::set(&self.metrics.streams, streams.saturating_sub(1));
            self.events.push_back(Event::StreamClosed { stream, reset_code });
        }
    }

    /// A bidirectional stream other than the control stream has data: a tagged stream the
    /// peer opened (preamble first), or the peer's answer on one we opened.
    pub(super) fn read_tagged(&mut self, slot: u32, conn: &mut Conn, stream_id: u64, now: Instant) {
        let key =
            StreamKey { conn: slot, generation: self.slots[slot as usize].generation, stream_id };
        if conn.phase != Phase::Ready {
            // Streams before HELLO/WELCOME have no known peer.
            self.refuse(conn, stream_id, reset_code::UNEXPECTED_STREAM);
            Counters::add(&self.metrics.decode_errors, 1);
            return;
        }
        if !conn.is_peer_bidi(stream_id) {
            if conn.tagged.contains_key(&stream_id) {
                self.events.push_back(Event::StreamReadable { stream: key });
            } else {
                // A stream of ours that we already forgot: discard what arrives.
                while conn.q.stream_discard(stream_id, usize::MAX).is_ok() {}
            }
            return;
        }
        match conn.tagged.get(&stream_id) {
            Some(tagged) if tagged.preamble.is_none() => {
                self.events.push_back(Event::StreamReadable { stream: key });
                return;
            }
            Some(_) => {}
            None => {
                if conn.preamble_pending >= self.settings.preamble_pending_max {
                    self.refuse(conn, stream_id, reset_code::PREAMBLE_OVERFLOW);
                    Counters::add(&self.metrics.preamble_dropped, 1);
                    return;
                }
                conn.preamble_pending += 1;
                conn.tagged.insert(
                    stream_id,
                    Tagged {
                        preamble: Some(Vec::new()),
                        tag: Bytes::new(),
                        write_blocked: false,
                        fin_received: false,
                        send_done: false,
                    },
                );
            }
        }
        self.read_preamble(conn, key, now);
    }

    /// Reads exactly the preamble's bytes (never the user's bytes behind it).
    fn read_preamble(&mut self, conn: &mut Conn, key: StreamKey, now: Instant) {
        let stream_id = key.stream_id;
        loop {
            let Some(progress) =
                conn.tagged.get_mut(&stream_id).and_then(|tagged| tagged.preamble.as_mut())
            else {
                return;
            };
            let want = match progress.first() {
                None => 1,
                Some(&tag_len) => 1 + usize::from(tag_len) - progress.len(),
            };
            if want == 0 {
                break;
            }
            let mut chunk = [0u8; 256];
            match conn.q.stream_recv(stream_id, &mut chunk[..want]) {
                Ok((read, fin)) => {
                    progress.extend_from_slice(&chunk[..read]);
                    if progress.first() == Some(&0) {
                        self.drop_pending(conn, stream_id);
                        self.refuse(conn, stream_id, reset_code::BAD_PREAMBLE);
                        Counters::add(&self.metrics.decode_errors, 1);
                        return;
                    }
                    let complete =
                        progress.first().is_some_and(|&len| progress.len() == 1 + usize::from(len));
                    if fin && !complete {
                        // Ended inside its preamble: nothing to hand over.
                        self.drop_pending(conn, stream_id);
                        conn.tagged.remove(&stream_id);
                        return;
                    }
                    if complete {
                        break;
                    }
                }
                Err(quiche::Error::Done) => return,
                Err(_) => {
                    self.drop_pending(conn, stream_id);
                    conn.tagged.remove(&stream_id);
                    return;
                }
            }
        }
        self.drop_pending(conn, stream_id);
        let Some(tagged) = conn.tagged.get_mut(&stream_id) else { return };
        let preamble = tagged.preamble.take().expect("checked complete above");
        let tag = Bytes::copy_from_slice(&preamble[1..]);
        if !self.acceptors.contains(&preamble[1..]) {
            conn.tagged.remove(&stream_id);
            self.refuse(conn, stream_id, reset_code::UNKNOWN_TAG);
            Counters::add(&self.metrics.unknown_tag_resets, 1);
            return;
        }
        tagged.tag = tag.clone();
        conn.last_activity = now;
        Counters::add(&self.metrics.streams, 1);
        let peer = conn.peer.clone().expect("ready connections know their peer");
        self.events.push_back(Event::StreamOpened { peer, tag, stream: key });
        if conn.q.stream_readable(stream_id) {
            self.events.push_back(Event::StreamReadable { stream: key });
        }
    }

    fn drop_pending(&mut self, conn: &mut Conn, stream_id: u64) {
        if conn.tagged.get(&stream_id).is_some_and(|tagged| tagged.preamble.is_some()) {
            conn.preamble_pending -= 1;
        }
    }

    /// Resets a stream both ways (STOP_SENDING + RESET_STREAM) with `code`.
    fn refuse(&mut self, conn: &mut Conn, stream_id: u64, code: u64) {
        conn.tagged.remove(&stream_id);
        let _ = conn.q.stream_shutdown(stream_id, quiche::Shutdown::Read, code);
        if conn.is_peer_bidi(stream_id) || stream_id & 0x2 == 0 {
            let _ = conn.q.stream_shutdown(stream_id, quiche::Shutdown::Write, code);
        }
    }

    /// Reports tagged streams that refused a write and have room again.
    pub(super) fn report_writable(&mut self, slot: u32, conn: &mut Conn) {
        let generation = self.slots[slot as usize].generation;
        for (&stream_id, tagged) in conn.tagged.iter_mut() {
            if tagged.write_blocked && conn.q.stream_capacity(stream_id).is_ok_and(|room| room > 0)
            {
                tagged.write_blocked = false;
                self.events.push_back(Event::StreamWritable {
                    stream: StreamKey { conn: slot, generation, stream_id },
                });
            }
        }
    }
}
