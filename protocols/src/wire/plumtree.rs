//! Wire encoding of [`plumtree::Message`] (message types `0x10..=0x1F`).
//!
//! Layout of each body (after the message-type byte), all integers big-endian:
//!
//! | type | message  | body                                                                   |
//! |------|----------|------------------------------------------------------------------------|
//! | 0x10 | `Gossip` | `id: u128`, `round: u16`, `tag: u16`, `payload: u32 len, len bytes`     |
//! | 0x11 | `IHave`  | `u32 count`, then per entry `id: u128`, `round: u16`                    |
//! | 0x12 | `Graft`  | `has_id: u8` (0 or 1), `id: u128` only if `has_id = 1`, `round: u16`    |
//! | 0x13 | `Prune`  | empty                                                                  |
//!
//! [`plumtree::Message`]: crate::plumtree::Message

use bytes::Bytes;

use super::primitives::{
    decode_list, decode_option, encode_list, encode_option, list_size_hint, option_size_hint,
    DecodeError, Limits, Reader, Wire, Writer,
};
use crate::plumtree::{Gossip, IHave, Message, MessageId, Tag};

/// Message-type byte of [`Message::Gossip`].
pub const TYPE_GOSSIP: u8 = 0x10;
/// Message-type byte of [`Message::IHave`].
pub const TYPE_IHAVE: u8 = 0x11;
/// Message-type byte of [`Message::Graft`].
pub const TYPE_GRAFT: u8 = 0x12;
/// Message-type byte of [`Message::Prune`].
pub const TYPE_PRUNE: u8 = 0x13;

impl Wire for MessageId {
    const ENCODED_SIZE_MIN: usize = 16;
    fn encode(&self, w: &mut Writer) {
        w.u128(self.0);
    }
    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        r.u128().map(Self)
    }
}

impl Wire for Tag {
    const ENCODED_SIZE_MIN: usize = 2;
    fn encode(&self, w: &mut Writer) {
        w.u16(self.0);
    }
    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        r.u16().map(Self)
    }
}

impl Wire for IHave {
    const ENCODED_SIZE_MIN: usize = 16 + 2;
    fn encode(&self, w: &mut Writer) {
        self.id.encode(w);
        w.u16(self.round);
    }
    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        let id = MessageId::decode(r, limits)?;
        let round = r.u16()?;
        Ok(Self { id, round })
    }
}

/// The body of a GOSSIP (without its message-type byte).
impl Wire for Gossip {
    const ENCODED_SIZE_MIN: usize = 16 + 2 + 2 + 4;
    fn encode(&self, w: &mut Writer) {
        self.id.encode(w);
        w.u16(self.round);
        self.tag.encode(w);
        w.bytes(&self.payload);
    }
    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        let id = MessageId::decode(r, limits)?;
        let round = r.u16()?;
        let tag = Tag::decode(r, limits)?;
        let payload = Bytes::copy_from_slice(r.bytes("gossip payload", limits.payload_size_max)?);
        Ok(Self { id, round, tag, payload })
    }
    fn encoded_size_hint(&self) -> usize {
        Self::ENCODED_SIZE_MIN + self.payload.len()
    }
}

impl Wire for Message {
    /// `Prune` is the type byte alone.
    const ENCODED_SIZE_MIN: usize = 1;

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Gossip(gossip) => {
                w.u8(TYPE_GOSSIP);
                gossip.encode(w);
            }
            Self::IHave(batch) => {
                w.u8(TYPE_IHAVE);
                encode_list(w, batch);
            }
            Self::Graft { id, round } => {
                w.u8(TYPE_GRAFT);
                encode_option(w, id);
                w.u16(*round);
            }
            Self::Prune => w.u8(TYPE_PRUNE),
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        match r.u8()? {
            TYPE_GOSSIP => Gossip::decode(r, limits).map(Self::Gossip),
            TYPE_IHAVE => decode_list(r, limits, "ihave batch").map(Self::IHave),
            TYPE_GRAFT => {
                let id = decode_option(r, limits, "graft id option")?;
                let round = r.u16()?;
                Ok(Self::Graft { id, round })
            }
            TYPE_PRUNE => Ok(Self::Prune),
            tag => Err(DecodeError::UnknownTag { what: "plumtree message type", tag }),
        }
    }

    fn encoded_size_hint(&self) -> usize {
        1 + match self {
            Self::Gossip(gossip) => gossip.encoded_size_hint(),
            Self::IHave(batch) => list_size_hint(batch),
            Self::Graft { id, .. } => option_size_hint(id) + 2,
            Self::Prune => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_frame, encode_frame};

    fn limits() -> Limits {
        Limits::default()
    }

    /// Pins the format: these vectors change only with a new wire version.
    #[test]
    fn known_vectors() {
        let id = MessageId(0x0001_0203_0405_0607_0809_0A0B_0C0D_0E0F);
        let id_bytes: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let mut gossip = vec![1, 0x10];
        gossip.extend_from_slice(&id_bytes);
        gossip.extend_from_slice(&[0, 3, 0x01, 0x00, 0, 0, 0, 2, b'h', b'i']);
        let mut ihave = vec![1, 0x11, 0, 0, 0, 1];
        ihave.extend_from_slice(&id_bytes);
        ihave.extend_from_slice(&[0x12, 0x34]);
        let mut graft = vec![1, 0x12, 1];
        graft.extend_from_slice(&id_bytes);
        graft.extend_from_slice(&[0, 9]);

        let cases: Vec<(Message, Vec<u8>)> = vec![
            (
                Message::Gossip(Gossip {
                    id,
                    round: 3,
                    tag: Tag::APPLICATION_MIN,
                    payload: Bytes::from_static(b"hi"),
                }),
                gossip,
            ),
            (Message::IHave(vec![IHave { id, round: 0x1234 }]), ihave),
            (Message::Graft { id: Some(id), round: 9 }, graft),
            (Message::Graft { id: None, round: 0xFFFF }, vec![1, 0x12, 0, 0xFF, 0xFF]),
            (Message::Prune, vec![1, 0x13]),
        ];
        for (msg, bytes) in cases {
            assert_eq!(&encode_frame(&msg)[..], &bytes[..], "{msg:?}");
            assert_eq!(decode_frame::<Message>(&bytes, &limits()), Ok(msg));
        }
    }

    #[test]
    fn unknown_tags() {
        for (bytes, what, tag) in [
            (&[1u8, 0x01][..], "plumtree message type", 0x01),
            (&[1, 0x14], "plumtree message type", 0x14),
            (&[1, 0x20], "plumtree message type", 0x20),
            (&[1, 0x12, 2, 0, 0], "graft id option", 2),
        ] {
            assert_eq!(
                decode_frame::<Message>(bytes, &limits()),
                Err(DecodeError::UnknownTag { what, tag }),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn payload_bound() {
        let msg = Message::Gossip(Gossip {
            id: MessageId(1),
            round: 1,
            tag: Tag::REGISTRY,
            payload: Bytes::from(vec![7u8; 100]),
        });
        let bytes = encode_frame(&msg);
        let tight = Limits { payload_size_max: 99, ..Limits::default() };
        assert_eq!(
            decode_frame::<Message>(&bytes, &tight),
            Err(DecodeError::TooLong { what: "gossip payload", len: 100, len_max: 99 })
        );
        let exact = Limits { payload_size_max: 100, ..Limits::default() };
        assert_eq!(decode_frame::<Message>(&bytes, &exact), Ok(msg));
    }

    #[test]
    fn ihave_bounds() {
        let batch: Vec<IHave> = (0..5).map(|i| IHave { id: MessageId(i), round: 1 }).collect();
        let bytes = encode_frame(&Message::IHave(batch));
        let tight = Limits { list_len_max: 4, ..Limits::default() };
        assert_eq!(
            decode_frame::<Message>(&bytes, &tight),
            Err(DecodeError::TooLong { what: "ihave batch", len: 5, len_max: 4 })
        );
        // Count says 1000 entries but only 18 bytes follow: refused before allocating.
        let mut hostile = vec![1, 0x11, 0, 0, 0x03, 0xE8];
        hostile.extend_from_slice(&[0; 18]);
        assert_eq!(
            decode_frame::<Message>(&hostile, &limits()),
            Err(DecodeError::Truncated { needed: 18_000, remaining: 18 })
        );
    }
}
