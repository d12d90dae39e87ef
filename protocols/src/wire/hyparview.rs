//! Wire encoding of [`hyparview::Message`] (message types `0x01..=0x0F`).
//!
//! Layout of each body (after the message-type byte), all integers big-endian:
//!
//! | type | message          | body                                              |
//! |------|------------------|---------------------------------------------------|
//! | 0x01 | `Join`           | empty                                             |
//! | 0x02 | `ForwardJoin`    | `peer: P`, `ttl: u8`                              |
//! | 0x03 | `Neighbor`       | `priority: u8` (0 = high, 1 = low)                |
//! | 0x04 | `NeighborReply`  | `accepted: u8` (0 or 1)                           |
//! | 0x05 | `Disconnect`     | `leaving: u8` (0 or 1)                            |
//! | 0x06 | `Shuffle`        | `origin: P`, `ttl: u8`, `peers: u32 count, P × count` |
//! | 0x07 | `ShuffleReply`   | `peers: u32 count, P × count`                     |
//!
//! [`hyparview::Message`]: crate::hyparview::Message

use super::primitives::{
    decode_list, encode_list, list_size_hint, DecodeError, Limits, Reader, Wire, Writer,
};
use crate::hyparview::{Message, Priority};

/// Message-type byte of [`Message::Join`].
pub const TYPE_JOIN: u8 = 0x01;
/// Message-type byte of [`Message::ForwardJoin`].
pub const TYPE_FORWARD_JOIN: u8 = 0x02;
/// Message-type byte of [`Message::Neighbor`].
pub const TYPE_NEIGHBOR: u8 = 0x03;
/// Message-type byte of [`Message::NeighborReply`].
pub const TYPE_NEIGHBOR_REPLY: u8 = 0x04;
/// Message-type byte of [`Message::Disconnect`].
pub const TYPE_DISCONNECT: u8 = 0x05;
/// Message-type byte of [`Message::Shuffle`].
pub const TYPE_SHUFFLE: u8 = 0x06;
/// Message-type byte of [`Message::ShuffleReply`].
pub const TYPE_SHUFFLE_REPLY: u8 = 0x07;

/// Tag byte of [`Priority::High`].
pub const PRIORITY_HIGH: u8 = 0;
/// Tag byte of [`Priority::Low`].
pub const PRIORITY_LOW: u8 = 1;

impl Wire for Priority {
    const ENCODED_SIZE_MIN: usize = 1;

    fn encode(&self, w: &mut Writer) {
        w.u8(match self {
            Self::High => PRIORITY_HIGH,
            Self::Low => PRIORITY_LOW,
        });
    }

    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        match r.u8()? {
            PRIORITY_HIGH => Ok(Self::High),
            PRIORITY_LOW => Ok(Self::Low),
            tag => Err(DecodeError::UnknownTag { what: "neighbor priority", tag }),
        }
    }
}

impl<P: Wire> Wire for Message<P> {
    /// `Join` is the type byte alone.
    const ENCODED_SIZE_MIN: usize = 1;

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Join => w.u8(TYPE_JOIN),
            Self::ForwardJoin { peer, ttl } => {
                w.u8(TYPE_FORWARD_JOIN);
                peer.encode(w);
                w.u8(*ttl);
            }
            Self::Neighbor { priority } => {
                w.u8(TYPE_NEIGHBOR);
                priority.encode(w);
            }
            Self::NeighborReply { accepted } => {
                w.u8(TYPE_NEIGHBOR_REPLY);
                w.bool(*accepted);
            }
            Self::Disconnect { leaving } => {
                w.u8(TYPE_DISCONNECT);
                w.bool(*leaving);
            }
            Self::Shuffle { origin, ttl, peers } => {
                w.u8(TYPE_SHUFFLE);
                origin.encode(w);
                w.u8(*ttl);
                encode_list(w, peers);
            }
            Self::ShuffleReply { peers } => {
                w.u8(TYPE_SHUFFLE_REPLY);
                encode_list(w, peers);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        match r.u8()? {
            TYPE_JOIN => Ok(Self::Join),
            TYPE_FORWARD_JOIN => {
                let peer = P::decode(r, limits)?;
                let ttl = r.u8()?;
                Ok(Self::ForwardJoin { peer, ttl })
            }
            TYPE_NEIGHBOR => Ok(Self::Neighbor { priority: Priority::decode(r, limits)? }),
            TYPE_NEIGHBOR_REPLY => Ok(Self::NeighborReply { accepted: r.bool()? }),
            TYPE_DISCONNECT => Ok(Self::Disconnect { leaving: r.bool()? }),
            TYPE_SHUFFLE => {
                let origin = P::decode(r, limits)?;
                let ttl = r.u8()?;
                let peers = decode_list(r, limits, "shuffle peers")?;
                Ok(Self::Shuffle { origin, ttl, peers })
            }
            TYPE_SHUFFLE_REPLY => {
                Ok(Self::ShuffleReply { peers: decode_list(r, limits, "shuffle reply peers")? })
            }
            tag => Err(DecodeError::UnknownTag { what: "hyparview message type", tag }),
        }
    }

    fn encoded_size_hint(&self) -> usize {
        1 + match self {
            Self::Join => 0,
            Self::ForwardJoin { peer, .. } => peer.encoded_size_hint() + 1,
            Self::Neighbor { .. } | Self::NeighborReply { .. } | Self::Disconnect { .. } => 1,
            Self::Shuffle { origin, peers, .. } => {
                origin.encoded_size_hint() + 1 + list_size_hint(peers)
            }
            Self::ShuffleReply { peers } => list_size_hint(peers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode_frame, encode_frame};
    use crate::NodeName;

    fn limits() -> Limits {
        Limits::default()
    }

    /// Pins the format: these vectors change only with a new wire version.
    #[test]
    fn known_vectors() {
        let cases: Vec<(Message<u32>, &[u8])> = vec![
            (Message::Join, &[0x01, 0x01]),
            (
                Message::ForwardJoin { peer: 0x0A0B_0C0D, ttl: 6 },
                &[1, 0x02, 0x0A, 0x0B, 0x0C, 0x0D, 6],
            ),
            (Message::Neighbor { priority: Priority::High }, &[1, 0x03, 0]),
            (Message::Neighbor { priority: Priority::Low }, &[1, 0x03, 1]),
            (Message::NeighborReply { accepted: true }, &[1, 0x04, 1]),
            (Message::Disconnect { leaving: false }, &[1, 0x05, 0]),
            (
                Message::Shuffle { origin: 7, ttl: 3, peers: vec![7, 0x0102_0304] },
                &[1, 0x06, 0, 0, 0, 7, 3, 0, 0, 0, 2, 0, 0, 0, 7, 1, 2, 3, 4],
            ),
            (Message::ShuffleReply { peers: vec![] }, &[1, 0x07, 0, 0, 0, 0]),
        ];
        for (msg, bytes) in cases {
            assert_eq!(&encode_frame(&msg)[..], bytes, "{msg:?}");
            assert_eq!(decode_frame::<Message<u32>>(bytes, &limits()), Ok(msg));
        }
    }

    #[test]
    fn node_name_peers() {
        let peer = NodeName::parse("a@b").unwrap();
        let msg = Message::ForwardJoin { peer, ttl: 2 };
        let bytes = encode_frame(&msg);
        assert_eq!(&bytes[..], &[1, 0x02, 3, b'a', b'@', b'b', 2]);
        assert_eq!(decode_frame::<Message<NodeName>>(&bytes, &limits()), Ok(msg));
        let bad = [1, 0x02, 3, b'a', b'b', b'c', 2];
        assert!(matches!(
            decode_frame::<Message<NodeName>>(&bad, &limits()),
            Err(DecodeError::Invalid { what: "node name", .. })
        ));
    }

    #[test]
    fn unknown_tags() {
        for (bytes, what, tag) in [
            (&[1u8, 0x00][..], "hyparview message type", 0x00),
            (&[1, 0x08], "hyparview message type", 0x08),
            (&[1, 0x10], "hyparview message type", 0x10),
            (&[1, 0x03, 2], "neighbor priority", 2),
            (&[1, 0x04, 2], "bool", 2),
            (&[1, 0x05, 0xFF], "bool", 0xFF),
        ] {
            assert_eq!(
                decode_frame::<Message<u32>>(bytes, &limits()),
                Err(DecodeError::UnknownTag { what, tag }),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn list_bounds() {
        let limits = Limits { list_len_max: 2, ..Limits::default() };
        let msg: Message<u32> = Message::ShuffleReply { peers: vec![1, 2, 3] };
        assert_eq!(
            decode_frame::<Message<u32>>(&encode_frame(&msg), &limits),
            Err(DecodeError::TooLong { what: "shuffle reply peers", len: 3, len_max: 2 })
        );
        // A hostile count above the remaining input fails before allocating.
        let hostile = [1, 0x07, 0xFF, 0xFF, 0xFF, 0xFF];
        let open = Limits { list_len_max: usize::MAX, ..Limits::default() };
        assert!(matches!(
            decode_frame::<Message<u64>>(&hostile, &open),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode_frame::<Message<u64>>(&hostile, &Limits::default()),
            Err(DecodeError::TooLong { len: 0xFFFF_FFFF, .. })
        ));
    }

    #[test]
    fn truncation_at_every_length() {
        let msg: Message<u64> = Message::Shuffle { origin: 1, ttl: 4, peers: vec![2, 3, 4] };
        let bytes = encode_frame(&msg);
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    decode_frame::<Message<u64>>(&bytes[..cut], &limits()),
                    Err(DecodeError::Truncated { .. })
                ),
                "cut at {cut}"
            );
        }
    }
}
