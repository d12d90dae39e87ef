//! Framing: the version byte in front of a message, and routing by message type.
//!
//! A frame is `[WIRE_VERSION] ++ message encoding`, and every message encoding starts with its
//! message-type byte, so a frame is at least two bytes. The transport delimits frames; this
//! module never sees a length prefix.

use std::ops::RangeInclusive;

use bytes::Bytes;

use super::primitives::{DecodeError, Limits, Reader, Wire, Writer, WIRE_VERSION};

/// Message-type bytes of HyParView messages.
pub const HYPARVIEW_TYPES: RangeInclusive<u8> = 0x01..=0x0F;
/// Message-type bytes of Plumtree messages.
pub const PLUMTREE_TYPES: RangeInclusive<u8> = 0x10..=0x1F;
/// Message-type bytes reserved for the service registry (docs/protocols/registry.md).
pub const REGISTRY_TYPES: RangeInclusive<u8> = 0x20..=0x2F;

/// Encodes `msg` as a complete frame: the version byte, then the message.
pub fn encode_frame<M: Wire>(msg: &M) -> Bytes {
    let mut w = Writer::with_capacity(1 + msg.encoded_size_hint());
    w.u8(WIRE_VERSION);
    msg.encode(&mut w);
    w.finish()
}

/// Decodes one complete frame as an `M`.
///
/// Checks, in order: the frame size against [`Limits::frame_size_max`]
/// ([`DecodeError::FrameTooLarge`]), the version byte ([`DecodeError::UnsupportedVersion`]), the
/// message itself, and that nothing follows it ([`DecodeError::TrailingBytes`]).
pub fn decode_frame<M: Wire>(bytes: &[u8], limits: &Limits) -> Result<M, DecodeError> {
    let mut r = version_checked(bytes, limits)?;
    let msg = M::decode(&mut r, limits)?;
    r.finish()?;
    Ok(msg)
}

/// The message-type byte of a frame, after checking its version, so a dispatcher can route it
/// by range ([`HYPARVIEW_TYPES`], [`PLUMTREE_TYPES`], [`REGISTRY_TYPES`]) before decoding.
/// The size limit is not checked here; [`decode_frame`] checks it.
pub fn peek_message_type(bytes: &[u8]) -> Result<u8, DecodeError> {
    let mut r = Reader::new(bytes);
    check_version(&mut r)?;
    r.u8()
}

fn version_checked<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Reader<'a>, DecodeError> {
    if bytes.len() > limits.frame_size_max {
        return Err(DecodeError::FrameTooLarge {
            len: bytes.len(),
            len_max: limits.frame_size_max,
        });
    }
    let mut r = Reader::new(bytes);
    check_version(&mut r)?;
    Ok(r)
}

fn check_version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.u8()? {
        WIRE_VERSION => Ok(()),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hyparview, plumtree};

    #[test]
    fn frame_errors() {
        let limits = Limits::default();
        let join = encode_frame(&hyparview::Message::<u32>::Join);
        assert_eq!(&join[..], &[WIRE_VERSION, 0x01]);

        assert_eq!(
            decode_frame::<plumtree::Message>(&[], &limits),
            Err(DecodeError::Truncated { needed: 1, remaining: 0 })
        );
        assert_eq!(
            decode_frame::<plumtree::Message>(&[WIRE_VERSION], &limits),
            Err(DecodeError::Truncated { needed: 1, remaining: 0 })
        );
        assert_eq!(
            decode_frame::<hyparview::Message<u32>>(&[2, 0x01], &limits),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_frame::<hyparview::Message<u32>>(&[WIRE_VERSION, 0x01, 0, 0], &limits),
            Err(DecodeError::TrailingBytes(2))
        );
        let small = Limits { frame_size_max: 3, ..Limits::default() };
        let prune = [WIRE_VERSION, 0x13, 0, 0];
        assert_eq!(
            decode_frame::<plumtree::Message>(&prune, &small),
            Err(DecodeError::FrameTooLarge { len: 4, len_max: 3 })
        );
        // The size check comes first, before the (bad) version.
        assert_eq!(
            decode_frame::<plumtree::Message>(&[9, 9, 9, 9], &small),
            Err(DecodeError::FrameTooLarge { len: 4, len_max: 3 })
        );
    }

    #[test]
    fn peek_routes_by_range() {
        let hv = encode_frame(&hyparview::Message::<u64>::Disconnect { leaving: true });
        let pt = encode_frame(&plumtree::Message::Prune);
        assert!(HYPARVIEW_TYPES.contains(&peek_message_type(&hv).unwrap()));
        assert!(PLUMTREE_TYPES.contains(&peek_message_type(&pt).unwrap()));
        assert_eq!(peek_message_type(&[0, 0x10]), Err(DecodeError::UnsupportedVersion(0)));
        assert_eq!(
            peek_message_type(&[WIRE_VERSION]),
            Err(DecodeError::Truncated { needed: 1, remaining: 0 })
        );
    }
}
