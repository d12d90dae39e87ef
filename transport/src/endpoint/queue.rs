//! Per-peer outgoing message queues: encoded frames waiting for QUIC to take them.
//!
//! Frames are encoded once into one buffer per lane; QUIC's `stream_send` copies what flow
//! control allows and the buffer advances. The frame lengths are kept beside the bytes so
//! that a connection that dies can report exactly how many messages never left.

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

use crate::frame;

/// An empty queue keeps at most this much buffer capacity; more is freed.
const IDLE_CAPACITY_MAX: usize = 4 * 1024;

/// One ordered lane's unsent frames.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: BytesMut,
    frame_lens: VecDeque<u32>,
    head_written: usize,
}

impl OutQueue {
    /// Bytes not yet handed to QUIC.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Frames not completely handed to QUIC.
    pub fn frames(&self) -> usize {
        self.frame_lens.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes to offer to QUIC next.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Queues one MESSAGE frame.
    pub fn push_message(&mut self, payload: &[u8]) {
        let before = self.buf.len();
        frame::encode_message(payload, &mut self.buf);
        self.push_encoded_len(self.buf.len() - before);
    }

    /// Records the length of a frame just encoded into [`Self::buf_mut`].
    fn push_encoded_len(&mut self, len: usize) {
        // Frames are bounded by frame_bytes_max (≤ 16 MiB) plus a 5-byte header.
        self.frame_lens.push_back(u32::try_from(len).expect("frames are at most 16 MiB"));
    }

    /// Drops `n` bytes that QUIC accepted.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.buf.len());
        self.buf.advance(n);
        self.head_written += n;
        while let Some(&front) = self.frame_lens.front() {
            let front = front as usize;
            if self.head_written < front {
                break;
            }
            self.head_written -= front;
            self.frame_lens.pop_front();
        }
        debug_assert!(self.frame_lens.is_empty() == self.buf.is_empty());
        if self.buf.is_empty() && self.buf.capacity() > IDLE_CAPACITY_MAX {
            // An idle peer's queue should not keep the capacity of its last burst.
            self.buf = BytesMut::new();
        }
    }

    /// Drops the rest of a head frame that was partly handed to a stream that is gone (the
    /// frame is lost: its remainder alone would corrupt another stream's framing). Returns
    /// whether a frame was dropped.
    pub fn discard_partial_head(&mut self) -> bool {
        if self.head_written == 0 {
            return false;
        }
        let front =
            self.frame_lens.pop_front().expect("a partly written head frame exists") as usize;
        self.buf.advance(front - self.head_written);
        self.head_written = 0;
        true
    }

    /// Moves every frame of `other` behind this queue's frames. A partly written head frame
    /// of `other` is dropped first ([`Self::discard_partial_head`]); returns how many frames
    /// were dropped (0 or 1).
    pub fn append(&mut self, other: &mut Self) -> usize {
        let dropped = usize::from(other.discard_partial_head());
        self.buf.extend_from_slice(&other.buf);
        self.frame_lens.append(&mut other.frame_lens);
        other.buf.clear();
        dropped
    }

    /// Whether the head frame was partly handed to QUIC (the rest must follow on the same
    /// stream).
    #[cfg(test)]
    pub fn head_partly_written(&self) -> bool {
        self.head_written > 0
    }
}

/// A peer's queues: the control lane and the data lanes.
#[derive(Debug)]
pub struct Queues {
    /// The control lane (written first).
    pub control: OutQueue,
    /// Data lanes, by `key % len`.
    pub lanes: Vec<OutQueue>,
}

impl Queues {
    /// Empty queues with `data_lanes` data lanes.
    pub fn new(data_lanes: usize) -> Self {
        Self {
            control: OutQueue::default(),
            lanes: (0..data_lanes).map(|_| OutQueue::default()).collect(),
        }
    }

    /// Bytes waiting over all lanes.
    pub fn bytes(&self) -> usize {
        self.control.bytes() + self.lanes.iter().map(OutQueue::bytes).sum::<usize>()
    }

    /// Messages waiting over all lanes.
    pub fn frames(&self) -> usize {
        self.control.frames() + self.lanes.iter().map(OutQueue::frames).sum::<usize>()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.lanes.iter().all(OutQueue::is_empty)
    }

    /// Moves all frames of `other` behind ours, lane by lane; returns the frames dropped
    /// because they were partly written to a stream that is gone.
    pub fn append(&mut self, other: &mut Self) -> usize {
        let mut dropped = self.control.append(&mut other.control);
        let lanes = self.lanes.len();
        for (index, lane) in other.lanes.iter_mut().enumerate() {
            dropped += self.lanes[index % lanes].append(lane);
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_counts_whole_frames_only() {
        let mut queue = OutQueue::default();
        queue.push_message(b"abc");
        queue.push_message(b"de");
        assert_eq!(queue.frames(), 2);
        assert_eq!(queue.bytes(), 8 + 7);
        queue.consume(5);
        assert_eq!(queue.frames(), 2, "header only: the first frame is not complete");
        assert!(queue.head_partly_written());
        queue.consume(3);
        assert_eq!(queue.frames(), 1);
        assert!(!queue.head_partly_written());
        queue.consume(7);
        assert!(queue.is_empty());
        assert_eq!(queue.frames(), 0);
    }

    #[test]
    fn partly_written_head_is_dropped_when_moved() {
        let mut old = OutQueue::default();
        old.push_message(b"abc");
        old.push_message(b"de");
        old.consume(4);
        let mut new = OutQueue::default();
        assert_eq!(new.append(&mut old), 1);
        assert_eq!(new.frames(), 1);
        let mut reader = frame::FrameReader::new(64);
        reader.push(new.pending());
        assert_eq!(
            reader.next_frame(),
            Ok(Some(frame::Frame::Message(bytes::Bytes::from_static(b"de"))))
        );
    }

    #[test]
    fn append_keeps_order_and_counts() {
        let mut a = Queues::new(2);
        let mut b = Queues::new(2);
        a.lanes[0].push_message(b"1");
        b.lanes[0].push_message(b"2");
        b.control.push_message(b"c");
        a.append(&mut b);
        assert_eq!(a.frames(), 3);
        assert!(b.is_empty());
        let mut reader = frame::FrameReader::new(64);
        reader.push(a.lanes[0].pending());
        assert_eq!(
            reader.next_frame(),
            Ok(Some(frame::Frame::Message(bytes::Bytes::from_static(b"1"))))
        );
        assert_eq!(
            reader.next_frame(),
            Ok(Some(frame::Frame::Message(bytes::Bytes::from_static(b"2"))))
        );
    }
}
