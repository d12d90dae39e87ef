//! Frames on shoal's QUIC streams (docs/protocols/wire.md, "Transport frames").
//!
//! ```text
//! frame   = len:u32 (big-endian, counts kind + body) kind:u8 body
//! HELLO   = version:u8 incarnation:u64 name_len:u8 name target_len:u8 target auth
//!                                             the dialer's first frame on the control stream
//! WELCOME = incarnation:u64 name_len:u8 name auth      the acceptor's answer to a HELLO
//! MESSAGE = payload                                    one message of the layer above
//! auth    = mode:u8 identity_key:[32] timestamp_ms:u64 signature:[64] cookie_mac:[32]
//! ```
//!
//! `auth` carries the sender's proof (`auth::proof`: mode 1 = signed, 2 = cookie-only, whose
//! key and signature are zero). HELLO and WELCOME are at most [`HANDSHAKE_FRAME_BYTES_MAX`].
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
/// Transport frame version carried in HELLO (2: HELLO and WELCOME carry proofs).
pub const VERSION: u8 = 2;
/// Bytes of the `auth` block of HELLO and WELCOME.
pub const AUTH_BYTES: usize = 1 + 32 + 8 + 64 + 32;
/// Largest HELLO (two 255-byte names): `frame_bytes_max` may not be smaller.
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 1 + 1 + 8 + 2 * 256 + AUTH_BYTES;

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
    /// The dialer's name, the name it dialled, its incarnation and its proof.
    Hello {
        /// The name the sender claims (proven by `auth`).
        name: NodeName,
        /// The name the sender dialled (must be the receiver's).
        target: NodeName,
        /// Random per process start: a changed value means the peer restarted.
        incarnation: u64,
        /// The sender's proof.
        auth: AuthFields,
    },
    /// The acceptor keeps this connection as the one connection of the pair, and proves who
    /// it is.
    Welcome {
        /// The name the acceptor claims (must be the dialled name).
        name: NodeName,
        /// The acceptor's incarnation.
        incarnation: u64,
        /// The acceptor's proof.
        auth: AuthFields,
    },
    /// One message for the layer above.
    Message(Bytes),
}

/// The `auth` block of HELLO and WELCOME, as received (nothing in it is checked by the
/// decoder except its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthFields {
    /// 1 = signed, 2 = cookie-only (other values are refused by the authentication layer).
    pub mode: u8,
    /// The sender's Ed25519 identity key (zero in cookie-only mode).
    pub identity_key: [u8; 32],
    /// The sender's wall clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Ed25519 signature over the transcript (zero in cookie-only mode).
    pub signature: [u8; 64],
    /// HMAC-SHA256 of the transcript keyed with the cluster cookie.
    pub cookie_mac: [u8; 32],
}

impl AuthFields {
    fn put(&self, out: &mut BytesMut) {
        out.put_u8(self.mode);
        out.put_slice(&self.identity_key);
        out.put_u64(self.timestamp_ms);
        out.put_slice(&self.signature);
        out.put_slice(&self.cookie_mac);
    }

    /// Reads the block from exactly [`AUTH_BYTES`] bytes (the caller checked the length).
    fn get(body: &mut Bytes) -> Self {
        debug_assert_eq!(body.remaining(), AUTH_BYTES);
        let mode = body.get_u8();
        let mut identity_key = [0; 32];
        body.copy_to_slice(&mut identity_key);
        let timestamp_ms = body.get_u64();
        let mut signature = [0; 64];
        body.copy_to_slice(&mut signature);
        let mut cookie_mac = [0; 32];
        body.copy_to_slice(&mut cookie_mac);
        Self { mode, identity_key, timestamp_ms, signature, cookie_mac }
    }
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
pub fn encode_hello(
    name: &NodeName,
    target: &NodeName,
    incarnation: u64,
    auth: &AuthFields,
    out: &mut BytesMut,
) {
    let body = 1 + 8 + name_bytes(name) + name_bytes(target) + AUTH_BYTES;
    put_header(out, KIND_HELLO, body);
    out.put_u8(VERSION);
    out.put_u64(incarnation);
    put_name(name, out);
    put_name(target, out);
    auth.put(out);
}

/// Appends an encoded WELCOME frame to `out`.
pub fn encode_welcome(name: &NodeName, incarnation: u64, auth: &AuthFields, out: &mut BytesMut) {
    put_header(out, KIND_WELCOME, 8 + name_bytes(name) + AUTH_BYTES);
    out.put_u64(incarnation);
    put_name(name, out);
    auth.put(out);
}

/// Encoded size of a name with its length byte.
fn name_bytes(name: &NodeName) -> usize {
    1 + name.as_str().len()
}

fn put_name(name: &NodeName, out: &mut BytesMut) {
    let bytes = name.as_str().as_bytes();
    // Node names are at most 255 bytes (NodeName invariant), so the length fits a u8.
    out.put_u8(u8::try_from(bytes.len()).expect("NodeName is at most 255 bytes"));
    out.put_slice(bytes);
}

/// Reads a length-prefixed node name.
fn get_name(body: &mut Bytes, kind: &'static str) -> Result<NodeName, FrameError> {
    if body.remaining() < 1 {
        return Err(FrameError::Malformed { kind, why: "shorter than its names" });
    }
    let len = usize::from(body.get_u8());
    if body.remaining() < len {
        return Err(FrameError::Malformed { kind, why: "name length beyond the body" });
    }
    let bytes = body.split_to(len);
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| NodeName::parse(text).ok())
        .ok_or(FrameError::Malformed { kind, why: "invalid node name" })
}

/// Reads the `auth` block, which must end the body exactly.
fn get_auth(body: &mut Bytes, kind: &'static str) -> Result<AuthFields, FrameError> {
    if body.remaining() != AUTH_BYTES {
        const _: () = assert!(AUTH_BYTES == 137, "the error text below names the size");
        return Err(FrameError::Malformed { kind, why: "auth block is not 137 bytes" });
    }
    Ok(AuthFields::get(body))
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

    /// Appends at most [`Self::room`] of `bytes` (for callers without a scratch area; the
    /// bound is the same as [`Self::sink`]'s). Returns how many were taken: the caller offers
    /// the rest after [`Self::next_frame`] made room.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.room());
        self.buf.extend_from_slice(&bytes[..taken]);
        taken
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
            if body.len() < 8 {
                return Err(FrameError::Malformed {
                    kind: "WELCOME",
                    why: "shorter than its header",
                });
            }
            let incarnation = body.get_u64();
            let name = get_name(&mut body, "WELCOME")?;
            let auth = get_auth(&mut body, "WELCOME")?;
            Ok(Frame::Welcome { name, incarnation, auth })
        }
        KIND_HELLO => {
            if body.len() < 9 {
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
            let name = get_name(&mut body, "HELLO")?;
            let target = get_name(&mut body, "HELLO")?;
            let auth = get_auth(&mut body, "HELLO")?;
            Ok(Frame::Hello { name, target, incarnation, auth })
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

    fn auth() -> AuthFields {
        AuthFields {
            mode: crate::auth::Mode::Signed as u8,
            identity_key: [1; 32],
            timestamp_ms: 99,
            signature: [2; 64],
            cookie_mac: [3; 32],
        }
    }

    #[test]
    fn push_takes_no_more_than_the_room_left() {
        let mut reader = FrameReader::new(16);
        let offered = [0u8; 64];
        assert_eq!(reader.push(&offered), HEADER_BYTES + 16);
        assert_eq!(reader.buffered(), HEADER_BYTES + 16);
        assert_eq!(reader.room(), 0);
        assert_eq!(reader.push(&offered), 0);
    }

    #[test]
    fn hello_welcome_message_round_trip() {
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), &name("b@host"), 42, &auth(), &mut out);
        encode_welcome(&name("b@host"), 7, &auth(), &mut out);
        encode_message(b"payload", &mut out);
        let mut reader = FrameReader::new(1024);
        reader.push(&out);
        assert_eq!(
            reader.next_frame(),
            Ok(Some(Frame::Hello {
                name: name("a@host"),
                target: name("b@host"),
                incarnation: 42,
                auth: auth()
            }))
        );
        assert_eq!(
            reader.next_frame(),
            Ok(Some(Frame::Welcome { name: name("b@host"), incarnation: 7, auth: auth() }))
        );
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
    fn largest_hello_fits_the_declared_bound() {
        let long = name(&format!("{}@{}", "n".repeat(127), "h".repeat(127)));
        let mut out = BytesMut::new();
        encode_hello(&long, &long, 1, &auth(), &mut out);
        assert_eq!(out.len(), HEADER_BYTES - 1 + HANDSHAKE_FRAME_BYTES_MAX);
    }

    #[test]
    fn truncated_or_padded_auth_blocks_refused() {
        for delta in [-1i64, 1] {
            let mut out = BytesMut::new();
            encode_welcome(&name("b@host"), 7, &auth(), &mut out);
            let mut body = out.split_off(LEN_BYTES);
            if delta < 0 {
                body.truncate(body.len() - 1);
            } else {
                body.put_u8(0);
            }
            let mut framed = BytesMut::new();
            framed.put_u32(u32::try_from(body.len()).expect("small"));
            framed.extend_from_slice(&body);
            let mut reader = FrameReader::new(1024);
            reader.push(&framed);
            assert!(matches!(
                reader.next_frame(),
                Err(FrameError::Malformed { kind: "WELCOME", .. })
            ));
        }
    }

    #[test]
    fn malformed_hello_refused() {
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), &name("b@host"), 1, &auth(), &mut out);
        // Corrupt the name's first byte into a character names may not contain.
        let name_at = HEADER_BYTES + 10;
        out[name_at] = b'!';
        let mut reader = FrameReader::new(1024);
        reader.push(&out);
        assert!(matches!(reader.next_frame(), Err(FrameError::Malformed { kind: "HELLO", .. })));
        let mut out = BytesMut::new();
        encode_hello(&name("a@host"), &name("b@host"), 1, &auth(), &mut out);
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
                // Waiting for more bytes with no room for them would stall the stream forever
                // (the push above never exceeds room, so the bound alone cannot fail).
                prop_assert!(reader.room() > 0, "the reader waits for bytes it has no room for");
            }
        }
    }
}
