//! Frames on shoal's QUIC streams (docs/protocols/wire.md, "Transport frames").
//!
//! ```text
//! frame   = len:u32 (big-endian, counts kind + body) kind:u8 body
//! HELLO   = version:u8 incarnation:u64 name_len:u8 name     first frame of each side, control stream
//! WELCOME = incarnation:u64                                   acceptor's answer to a HELLO
//! MESSAGE = payload                                           one message of the layer above
//! ```
//!
//! A reader never buffers more than one frame of at most `frame_bytes_max`; a longer
//! declared length is refused before any of its body is read, so a peer cannot make us
//! allocate more than the bound.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use shoal_protocols::NodeName;

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;
/// Bytes of the length prefix plus the kind byte: the overhead of every frame.
pub const HEADER_BYTES: usize = LEN_BYTES + 1;
/// Transport frame version carried in HELLO.
pub const VERSION: u8 = 1;

/// Bytes reserved per read from a stream (the reader grows in steps of this size). Small, so
/// that an idle connection's readers stay small (docs/PERFORMANCE.md, bytes per idle connection).
const SINK_STEP_BYTES: usize = 16 * 1024;

/// An empty reader keeps at most this much buffer capacity; more is freed.
const IDLE_CAPACITY_MAX: usize = 4 * 1024;

const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_MESSAGE: u8 = 3;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The sender's name and process incarnation (random per start).
    Hello {
        /// The name the sender claims (checked by the authentication layer).
        name: NodeName,
        /// Random per process start: a changed value means the peer restarted.
        incarnation: u64,
    },
    /// The acceptor keeps this connection as the one connection of the pair.
    Welcome {
        /// The acceptor's incarnation.
        incarnation: u64,
    },
    /// One message for the layer above.
    Message(Bytes),
}

/// Why bytes from a peer are not a frame. The connection carrying them is closed; nothing else
/// changed, and a retry by the peer fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds the configured bound.
    #[error("frame of {len} bytes exceeds frame_bytes_max = {max}")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// Configured bound.
        max: usize,
    },
    /// A length of zero leaves no room for the kind byte.
    #[error("frame with zero length")]
    Empty,
    /// Unknown kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// HELLO with a version this node does not speak.
    #[error("HELLO version {0} not supported (this node speaks {VERSION})")]
    Version(u8),
    /// A frame body shorter or longer than its kind requires, or a bad name.
    #[error("malformed {kind} frame: {why}")]
    Malformed {
        /// Frame kind.
        kind: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

/// Appends an encoded MESSAGE frame to `out`.
pub fn encode_message(payload: &[u8], out: &mut BytesMut) {
    put_header(out, KIND_MESSAGE, payload.len());
    out.put_slice(payload);
}

/// Appends an encoded HELLO frame to `out`.
pub fn encode_hello(name: &NodeName, incarnation: u64, out: &mut BytesMut) {
    let name_bytes = name.as_str().as_bytes();
    // Node names are at most 255 bytes (NodeName invariant), so the length fits a u8.
    let name_len = u8::try_from(name_bytes.len()).expect("NodeName is at most 255 bytes");
    put_header(out, KIND_HELLO, 1 + 8 + 1 + name_bytes.len());
    out.put_u8(VERSION);
    out.put_u64(incarnation);
    out.put_u8(name_len);
    out.put_slice(name_bytes);
}

/// Appends an encoded WELCOME frame to `out`.
pub fn encode_welcome(incarnation: u64, out: &mut BytesMut) {
    put_header(out, KIND_WELCOME, 8);
    out.put_u64(incarnation);
}

/// Encoded size of a MESSAGE frame with `payload_bytes` of payload.
pub const fn message_frame_bytes(payload_bytes: usize) -> usize {
    HEADER_BYTES + payload_bytes
}

fn put_header(out: &mut BytesMut, kind: u8, body_bytes: usize) {
    let len = u32::try_from(body_bytes + 1).expect("callers bound frames by frame_bytes_max (u32)");
    out.reserve(LEN_BYTES + len as usize);
    out.put_u32(len);
    out.put_u8(kind);
}

/// Incremental reader of the frames on one stream.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    frame_bytes_max: usize,
}

impl FrameReader {
    /// A reader refusing frames longer than `frame_bytes_max` (kind + body).
    pub fn new(frame_bytes_max: usize) -> Self {
        Self { buf: BytesMut::new(), frame_bytes_max }
    }

    /// How many more bytes the reader will accept before the next [`Self::next_frame`] must
    /// be called: at most one header plus one maximal frame is ever buffered.
    pub fn room(&self) -> usize {
        (HEADER_BYTES + self.frame_bytes_max).saturating_sub(self.buf.len())
    }

    /// Bytes buffered (an incomplete frame).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// A sink for stream bytes that accepts at most [`Self::room`] bytes (quiche's
    /// `stream_recv_buf` writes into spare capacity without zero-filling it).
    pub fn sink(&mut self) -> bytes::buf::Limit<&mut BytesMut> {
        let room = self.room();
        // Reserve in modest steps: a large frame grows the buffer as it arrives instead of
        // allocating frame_bytes_max up front for every stream.
        self.buf.reserve(room.min(SINK_STEP_BYTES));
        (&mut self.buf).limit(room)
    }

    /// Frees the buffer when it holds no partial frame and is larger than an idle reader needs
    /// (call when the stream has nothing more to read). Message payloads already taken keep
    /// their own share of the allocation.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > IDLE_CAPACITY_MAX {
            self.buf = BytesMut::new();
        }
    }

    /// Appends bytes (tests and callers without a scratch area).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = len as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.frame_bytes_max {
            return Err(FrameError::TooLarge { len, max: self.frame_bytes_max });
        }
        if self.buf.len() < LEN_BYTES + len {
            return Ok(None);
        }
        self.buf.advance(LEN_BYTES);
        let mut body = self.buf.split_to(len).freeze();
        let kind = body.get_u8();
        decode_body(kind, body).map(Some)
    }
}

fn decode_body(kind: u8, mut body: Bytes) -> Result<Frame, FrameError> {
    match kind {
        KIND_MESSAGE => Ok(Frame::Message(body)),
        KIND_WELCOME => {
            if body.len() != 8 {
                return Err(FrameError::Malformed { kind: "WELCOME", why: "body is not 8 bytes" });
            }
            Ok(Frame::Welcome { incarnation: body.get_u64() })
        }
        KIND_HELLO => {
            if body.len() < 10 {
                return Err(FrameError::Malformed {
                    kind: "HELLO",
                    why: "shorter than its header",
                });
            }
            let version = body.get_u8();
            if version != VERSION {
                return Err(FrameError::Version(version));
            }
            let incarnation = body.get_u64();
            let name_len = usize::from(body.get_u8());
            if body.len() != name_len {
                return Err(FrameError::Malformed {
                    kind: "HELLO",
                    why: "name length does not match the body",
                });
            }
            let name = std::str::from_utf8(&body)
                .ok()
                .and_then(|text| NodeName::parse(text).ok())
                .ok_or(FrameError::Malformed { kind: "HELLO", why: "invalid node name" })?;
            Ok(Frame::Hello { name, incarnation })
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(text: &str) -> NodeName {
        NodeName::parse(text).expect("test names are valid")
    }

    #[test]
    fn hello_welcome_message_round_trip() {
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), 42, &mut out);
        encode_welcome(7, &mut out);
        encode_message(b"payload", &mut out);
        let mut reader = FrameReader::new(1024);
        reader.push(&out);
        assert_eq!(
            reader.next_frame(),
            Ok(Some(Frame::Hello { name: name("a@host"), incarnation: 42 }))
        );
        assert_eq!(reader.next_frame(), Ok(Some(Frame::Welcome { incarnation: 7 })));
        assert_eq!(reader.next_frame(), Ok(Some(Frame::Message(Bytes::from_static(b"payload")))));
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn oversized_length_refused_before_the_body_arrives() {
        let mut reader = FrameReader::new(16);
        reader.push(&17u32.to_be_bytes());
        assert_eq!(reader.next_frame(), Err(FrameError::TooLarge { len: 17, max: 16 }));
    }

    #[test]
    fn zero_length_and_unknown_kind_refused() {
        let mut reader = FrameReader::new(16);
        reader.push(&0u32.to_be_bytes());
        assert_eq!(reader.next_frame(), Err(FrameError::Empty));
        let mut reader = FrameReader::new(16);
        reader.push(&[0, 0, 0, 1, 99]);
        assert_eq!(reader.next_frame(), Err(FrameError::UnknownKind(99)));
    }

    #[test]
    fn malformed_hello_refused() {
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), 1, &mut out);
        // Corrupt the name's first byte into a character names may not contain.
        let name_at = HEADER_BYTES + 10;
        out[name_at] = b'!';
        let mut reader = FrameReader::new(1024);
        reader.push(&out);
        assert!(matches!(reader.next_frame(), Err(FrameError::Malformed { kind: "HELLO", .. })));
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), 1, &mut out);
        out[HEADER_BYTES] = 9;
        let mut reader = FrameReader::new(1024);
        reader.push(&out);
        assert_eq!(reader.next_frame(), Err(FrameError::Version(9)));
    }

    #[test]
    fn room_bounds_the_buffer_to_one_frame() {
        let mut reader = FrameReader::new(100);
        assert_eq!(reader.room(), 105);
        let mut sink = reader.sink();
        assert_eq!(sink.remaining_mut(), 105);
        sink.put_slice(&[0, 0, 0]);
        assert_eq!(reader.buffered(), 3);
        assert_eq!(reader.room(), 102);
    }

    proptest! {
        #[test]
        fn messages_survive_any_split(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8), cut in 1usize..64) {
            let mut wire = BytesMut::new();
            for payload in &payloads {
                encode_message(payload, &mut wire);
            }
            let mut reader = FrameReader::new(512);
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                reader.push(chunk);
                while let Some(frame) = reader.next_frame().expect("valid frames") {
                    got.push(frame);
                }
            }
            let want: Vec<Frame> = payloads.iter().map(|p| Frame::Message(Bytes::copy_from_slice(p))).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_never_panics_and_never_overbuffers(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let mut reader = FrameReader::new(256);
            for chunk in bytes.chunks(37) {
                let room = reader.room();
                reader.push(&chunk[..chunk.len().min(room)]);
                loop {
                    match reader.next_frame() {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
                prop_assert!(reader.buffered() <= HEADER_BYTES + 256);
            }
        }
    }
}
