//! Reader, writer, bounds and errors shared by every message codec.

use bytes::{BufMut, Bytes, BytesMut};

use crate::name::NodeName;

/// Version byte that starts every frame. A receiver refuses any other value.
pub const WIRE_VERSION: u8 = 1;

/// Decoding bounds. Each is an upper limit on what one frame may make the receiver allocate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes (default 1 MiB; guess: comfortably above one registry
    /// sync chunk, far below what a hostile peer could use to exhaust memory).
    pub frame_size_max: usize,
    /// Largest application payload (broadcast body, registry metadata blob), in bytes
    /// (default 64 KiB; guess).
    pub payload_size_max: usize,
    /// Longest list (peer samples, IHAVE id batches, registry entries) in items (default 4096).
    pub list_len_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { frame_size_max: 1 << 20, payload_size_max: 64 << 10, list_len_max: 4096 }
    }
}

/// Why a frame could not be decoded. Decoding has no side effects: nothing changed, and
/// retrying the same bytes fails the same way. The peer that sent them is misbehaving (or runs
/// an incompatible version) and the caller counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended before a field was complete.
    #[error("truncated frame: needed {needed} more bytes, {remaining} left")]
    Truncated {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// The frame is larger than [`Limits::frame_size_max`].
    #[error("frame of {len} bytes exceeds the limit of {len_max}")]
    FrameTooLarge {
        /// Size of the frame.
        len: usize,
        /// Configured bound.
        len_max: usize,
    },
    /// The version byte is not [`WIRE_VERSION`].
    #[error("unsupported wire version {0} (this node speaks {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    /// An unknown message-type or variant tag.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which enumeration the tag belongs to.
        what: &'static str,
        /// The tag value received.
        tag: u8,
    },
    /// A length prefix above its bound.
    #[error("{what} length {len} exceeds the limit of {len_max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Length received.
        len: usize,
        /// Bound.
        len_max: usize,
    },
    /// A string that is not UTF-8 or not a valid node name.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// Bytes left over after a complete message.
    #[error("{0} trailing bytes after a complete message")]
    TrailingBytes(usize),
}

/// Appends encoded fields to a growable buffer.
#[derive(Debug, Default)]
pub struct Writer {
    buf: BytesMut,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `capacity` bytes, so encoding does not reallocate.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: BytesMut::with_capacity(capacity) }
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    /// Writes a big-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    /// Writes a big-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }
    /// Writes a big-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }
    /// Writes a big-endian u128.
    pub fn u128(&mut self, v: u128) {
        self.buf.put_u128(v);
    }
    /// Writes a boolean as one byte (0 or 1).
    pub fn bool(&mut self, v: bool) {
        self.buf.put_u8(u8::from(v));
    }
    /// Writes a list length as a big-endian u32 (the decoder bounds it by
    /// [`Limits::list_len_max`]).
    pub fn len_u32(&mut self, len: usize) {
        let len = u32::try_from(len).expect("lists are bounded far below u32::MAX");
        self.buf.put_u32(len);
    }
    /// Writes a byte string with a u32 length prefix.
    pub fn bytes(&mut self, v: &[u8]) {
        self.len_u32(v.len());
        self.buf.put_slice(v);
    }
    /// Writes a short string (at most 255 bytes) with a u8 length prefix.
    ///
    /// # Panics
    /// If `v` is longer than 255 bytes: callers only pass validated, bounded strings.
    pub fn short_str(&mut self, v: &str) {
        let len = u8::try_from(v.len()).expect("short strings are validated to <= 255 bytes");
        self.buf.put_u8(len);
        self.buf.put_slice(v.as_bytes());
    }
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// Finishes and returns the encoded bytes.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads fields from untrusted input, checking every length first.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::Truncated { needed: n, remaining });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let slice = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// The next byte, without consuming it (a dispatcher routes on a type byte this way and
    /// leaves it for the decoder it picks).
    pub fn peek_u8(&self) -> Result<u8, DecodeError> {
        self.buf.get(self.pos).copied().ok_or(DecodeError::Truncated { needed: 1, remaining: 0 })
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// Reads a big-endian u128.
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_be_bytes(self.array()?))
    }
    /// Reads a boolean; any byte other than 0 or 1 is an error.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(DecodeError::UnknownTag { what: "bool", tag }),
        }
    }
    /// Reads a list length and checks it against `len_max` and against the remaining input
    /// (each item needs at least `item_size_min` bytes), so a hostile length cannot make the
    /// caller pre-allocate.
    pub fn list_len(
        &mut self,
        what: &'static str,
        len_max: usize,
        item_size_min: usize,
    ) -> Result<usize, DecodeError> {
        let len = self.u32()? as usize;
        if len > len_max {
            return Err(DecodeError::TooLong { what, len, len_max });
        }
        let needed = len.saturating_mul(item_size_min.max(1));
        if needed > self.remaining() {
            return Err(DecodeError::Truncated { needed, remaining: self.remaining() });
        }
        Ok(len)
    }
    /// Reads a u32-prefixed byte string of at most `len_max` bytes without copying.
    pub fn bytes(&mut self, what: &'static str, len_max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > len_max {
            return Err(DecodeError::TooLong { what, len, len_max });
        }
        self.take(len)
    }
    /// Reads a u8-prefixed UTF-8 string.
    pub fn short_str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let len = usize::from(self.u8()?);
        let raw = self.take(len)?;
        std::str::from_utf8(raw).map_err(|e| DecodeError::Invalid { what, reason: e.to_string() })
    }
    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

/// A type with a wire encoding. Peer identities used on the wire implement it too.
pub trait Wire: Sized {
    /// Smallest encoded size in bytes (used to bound list lengths before allocating).
    const ENCODED_SIZE_MIN: usize;
    /// Appends the encoding of `self`.
    fn encode(&self, w: &mut Writer);
    /// Decodes one value, checking every bound in `limits`.
    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError>;
    /// Expected size of the encoding of `self` in bytes, used only to size the output buffer
    /// up front (never trusted when decoding). Defaults to [`Self::ENCODED_SIZE_MIN`], exact
    /// for fixed-size types; variable-size types override it.
    fn encoded_size_hint(&self) -> usize {
        Self::ENCODED_SIZE_MIN
    }
}

impl Wire for u32 {
    const ENCODED_SIZE_MIN: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.u32(*self);
    }
    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        r.u32()
    }
}

impl Wire for u64 {
    const ENCODED_SIZE_MIN: usize = 8;
    fn encode(&self, w: &mut Writer) {
        w.u64(*self);
    }
    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        r.u64()
    }
}

impl Wire for NodeName {
    const ENCODED_SIZE_MIN: usize = 4; // length byte + "a@b"
    fn encode(&self, w: &mut Writer) {
        w.short_str(self.as_str());
    }
    fn encoded_size_hint(&self) -> usize {
        1 + self.as_str().len()
    }
    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        let text = r.short_str("node name")?;
        Self::parse(text)
            .map_err(|e| DecodeError::Invalid { what: "node name", reason: e.to_string() })
    }
}

/// Encodes an optional value: a presence byte (0 or 1), then the value if present.
pub fn encode_option<T: Wire>(w: &mut Writer, value: &Option<T>) {
    match value {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            v.encode(w);
        }
    }
}

/// Exact size of [`encode_option`]'s output when `T`'s hint is exact.
pub fn option_size_hint<T: Wire>(value: &Option<T>) -> usize {
    1 + value.as_ref().map_or(0, Wire::encoded_size_hint)
}

/// Decodes [`encode_option`]'s output; a presence byte other than 0 or 1 is
/// `UnknownTag { what, .. }`.
pub fn decode_option<T: Wire>(
    r: &mut Reader<'_>,
    limits: &Limits,
    what: &'static str,
) -> Result<Option<T>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => T::decode(r, limits).map(Some),
        tag => Err(DecodeError::UnknownTag { what, tag }),
    }
}

/// Encodes a list with a u32 length prefix.
pub fn encode_list<T: Wire>(w: &mut Writer, items: &[T]) {
    w.len_u32(items.len());
    for item in items {
        item.encode(w);
    }
}

/// Size of [`encode_list`]'s output for `items` (the u32 prefix plus each item's
/// [`Wire::encoded_size_hint`]).
pub fn list_size_hint<T: Wire>(items: &[T]) -> usize {
    4 + items.iter().map(Wire::encoded_size_hint).sum::<usize>()
}

/// Decodes a u32-prefixed list of at most `limits.list_len_max` items.
pub fn decode_list<T: Wire>(
    r: &mut Reader<'_>,
    limits: &Limits,
    what: &'static str,
) -> Result<Vec<T>, DecodeError> {
    let len = r.list_len(what, limits.list_len_max, T::ENCODED_SIZE_MIN)?;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(T::decode(r, limits)?);
    }
    Ok(out)
}
