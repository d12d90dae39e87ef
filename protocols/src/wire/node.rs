//! Wire encoding of [`node::Message`], the envelope of every message a node exchanges with a
//! peer: the one frame type a transport connection carries on its control stream
//! (`encode_frame(&msg)` / `decode_frame::<node::Message<P>>(bytes, &limits)`).
//!
//! The envelope adds no bytes. Its encoding is the inner message's encoding, which already
//! starts with a message-type byte, and decoding routes on that byte by range:
//!
//! | type byte              | decoded as                                         |
//! |------------------------|----------------------------------------------------|
//! | [`HYPARVIEW_TYPES`](crate::wire::HYPARVIEW_TYPES)    | `Message::Hyparview` (`0x01..=0x07` assigned)       |
//! | [`PLUMTREE_TYPES`](crate::wire::PLUMTREE_TYPES)     | `Message::Plumtree` (`0x10..=0x13` assigned)        |
//! | [`REGISTRY_TYPES`](crate::wire::REGISTRY_TYPES)     | `Message::Registry` (`0x28..=0x2A` assigned)        |
//! | anything else          | `DecodeError::UnknownTag { what: "message type" }` |
//!
//! An unassigned code inside a range (e.g. `0x08`, `0x14`, `0x2B`) and the registry delta codes
//! `0x20..=0x22` (deltas travel only as Plumtree GOSSIP payloads, never as frames of their own)
//! are refused with the same `"message type"` error, so a caller counting errors per kind sees
//! one kind for "unknown message type" whichever range the byte falls in.
//!
//! [`node::Message`]: crate::node::Message

use super::hyparview as hyparview_codes;
use super::plumtree as plumtree_codes;
use super::primitives::{DecodeError, Limits, Reader, Wire, Writer};
use crate::node::Message;
use crate::{hyparview, plumtree, registry};

/// `what` of the [`DecodeError::UnknownTag`] for a type byte no protocol assigns.
const WHAT_MESSAGE_TYPE: &str = "message type";

fn unknown_type(tag: u8) -> DecodeError {
    DecodeError::UnknownTag { what: WHAT_MESSAGE_TYPE, tag }
}

impl<P: Wire> Wire for Message<P> {
    /// HyParView `Join` and Plumtree `Prune` are their type byte alone.
    const ENCODED_SIZE_MIN: usize = 1;

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Hyparview(msg) => msg.encode(w),
            Self::Plumtree(msg) => msg.encode(w),
            Self::Registry(msg) => msg.encode(w),
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        // The inner decoder reads the type byte again, so only peek at it here. Dispatch on
        // the codes each protocol assigns (not its whole reserved range), so every unassigned
        // code fails here the same way, and errors inside a message stay the protocol's own.
        let code = r.peek_u8()?;
        if (hyparview_codes::TYPE_JOIN..=hyparview_codes::TYPE_SHUFFLE_REPLY).contains(&code) {
            hyparview::Message::decode(r, limits).map(Self::Hyparview)
        } else if (plumtree_codes::TYPE_GOSSIP..=plumtree_codes::TYPE_PRUNE).contains(&code) {
            plumtree::Message::decode(r, limits).map(Self::Plumtree)
        } else if (registry::CODE_DIGEST..=registry::CODE_SYNC_REQUEST).contains(&code) {
            registry::Message::decode(r, limits).map(Self::Registry)
        } else {
            Err(unknown_type(code))
        }
    }

    fn encoded_size_hint(&self) -> usize {
        match self {
            Self::Hyparview(msg) => msg.encoded_size_hint(),
            Self::Plumtree(msg) => msg.encoded_size_hint(),
            Self::Registry(msg) => msg.encoded_size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::hlc::Hlc;
    use crate::hyparview::Priority;
    use crate::plumtree::{Gossip, IHave, MessageId, Tag};
    use crate::registry::{
        EntryUpdate, OwnerDigest, OwnerState, OwnerStatus, OwnerSync, UnregisterReason, Value,
    };
    use crate::wire::{decode_frame, encode_frame, peek_message_type, WIRE_VERSION};
    use crate::NodeName;

    fn name(text: &str) -> NodeName {
        NodeName::parse(text).unwrap()
    }

    fn entries() -> Vec<EntryUpdate> {
        vec![
            EntryUpdate {
                name: "web".to_owned(),
                reg_id: 7,
                value: Value::Registered {
                    meta: Bytes::from_static(b"port=80"),
                    stamp: Hlc::new(5, 1),
                },
            },
            EntryUpdate {
                name: "db".to_owned(),
                reg_id: 8,
                value: Value::Tombstone {
                    stamp: Hlc::new(6, 0),
                    reason: UnregisterReason::Unregistered,
                },
            },
        ]
    }

    /// One message of every type of every protocol, with peers made by `peer`.
    fn one_of_each<P: Clone>(peer: impl Fn(u8) -> P) -> Vec<Message<P>> {
        use hyparview::Message as H;
        use plumtree::Message as T;
        use registry::Message as R;
        let id = MessageId(0x0102_0304_0506_0708_090A_0B0C_0D0E_0F10);
        let digest = OwnerDigest {
            incarnation: 3,
            state: OwnerState::Suspect,
            entries_max_stamp: Hlc::new(9, 2),
            entries_count: 2,
            entries_hash: 0x0A0B,
        };
        vec![
            Message::Hyparview(H::Join),
            Message::Hyparview(H::ForwardJoin { peer: peer(1), ttl: 6 }),
            Message::Hyparview(H::Neighbor { priority: Priority::Low }),
            Message::Hyparview(H::NeighborReply { accepted: true }),
            Message::Hyparview(H::Disconnect { leaving: false }),
            Message::Hyparview(H::Shuffle {
                origin: peer(2),
                ttl: 3,
                peers: vec![peer(3), peer(4)],
            }),
            Message::Hyparview(H::ShuffleReply { peers: vec![peer(5)] }),
            Message::Plumtree(T::Gossip(Gossip {
                id,
                round: 2,
                tag: Tag::APPLICATION_MIN,
                payload: Bytes::from_static(b"hello"),
            })),
            Message::Plumtree(T::IHave(vec![IHave { id, round: 1 }])),
            Message::Plumtree(T::Graft { id: Some(id), round: 4 }),
            Message::Plumtree(T::Graft { id: None, round: 0 }),
            Message::Plumtree(T::Prune),
            Message::Registry(R::Digest {
                range_start: Some(peer(1)),
                range_end: None,
                owners: vec![(peer(1), digest), (peer(2), digest)],
            }),
            Message::Registry(R::Sync {
                owners: vec![OwnerSync {
                    owner: peer(3),
                    status: OwnerStatus { incarnation: 4, state: OwnerState::Alive },
                    entries: entries(),
                }],
            }),
            Message::Registry(R::SyncRequest { owners: vec![peer(4), peer(5)] }),
        ]
    }

    /// The envelope's frame is the inner message's frame, byte for byte; it decodes back to the
    /// same value, and its size hint is exact.
    fn check_round_trip<P: Wire + Clone + PartialEq + std::fmt::Debug>(msg: &Message<P>) {
        let bytes = encode_frame(msg);
        let inner = match msg {
            Message::Hyparview(m) => encode_frame(m),
            Message::Plumtree(m) => encode_frame(m),
            Message::Registry(m) => encode_frame(m),
        };
        assert_eq!(bytes, inner, "{msg:?}");
        assert_eq!(msg.encoded_size_hint(), bytes.len() - 1, "{msg:?}");
        assert_eq!(decode_frame::<Message<P>>(&bytes, &Limits::default()).as_ref(), Ok(msg));
        // Every strict prefix is refused cleanly.
        for cut in 0..bytes.len() {
            assert!(decode_frame::<Message<P>>(&bytes[..cut], &Limits::default()).is_err());
        }
    }

    #[test]
    fn every_protocol_round_trips_with_u32_peers() {
        for msg in one_of_each(u32::from) {
            check_round_trip(&msg);
        }
    }

    /// Every kind index is distinct, in range, and names the layer's kind: the simulator's
    /// per-kind counters index an array with it.
    #[test]
    fn kind_indices_name_each_kind_once() {
        let mut seen = [false; crate::node::MESSAGE_KIND_COUNT];
        for msg in one_of_each(u32::from) {
            let layer_kind = match &msg {
                Message::Hyparview(m) => m.kind(),
                Message::Plumtree(m) => m.kind(),
                Message::Registry(m) => m.kind(),
            };
            assert_eq!(crate::node::MESSAGE_KINDS[msg.kind_index()], layer_kind, "{msg:?}");
            assert_eq!(msg.kind(), layer_kind);
            seen[msg.kind_index()] = true;
        }
        // Two grafts share a kind: every other message is its own.
        assert!(seen.iter().all(|s| *s), "a kind without a message: {seen:?}");
        let mut names = crate::node::MESSAGE_KINDS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), crate::node::MESSAGE_KIND_COUNT, "kind names are unique");
    }

    #[test]
    fn every_protocol_round_trips_with_node_name_peers() {
        for msg in one_of_each(|i| name(&format!("node-{i}@10.0.0.{i}"))) {
            check_round_trip(&msg);
        }
    }

    /// Pins the registry's direct-message format as the envelope carries it (the HyParView and
    /// Plumtree vectors live next to their codecs): these bytes change only with a new wire
    /// version.
    #[test]
    fn known_registry_vectors() {
        let digest = Message::<u32>::Registry(registry::Message::Digest {
            range_start: Some(1),
            range_end: None,
            owners: vec![(
                2,
                OwnerDigest {
                    incarnation: 3,
                    state: OwnerState::Suspect,
                    entries_max_stamp: Hlc::new(4, 5),
                    entries_count: 6,
                    entries_hash: 0x0708_090A_0B0C_0D0E,
                },
            )],
        });
        #[rustfmt::skip]
        let digest_bytes: &[u8] = &[
            1, 0x28,
            1, 0, 0, 0, 1, // range_start: Some(1)
            0, // range_end: None
            0, 0, 0, 1, // one owner
            0, 0, 0, 2, // owner
            0, 0, 0, 0, 0, 0, 0, 3, 1, // incarnation, Suspect
            0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 5, // entries_max_stamp
            0, 0, 0, 6, // entries_count
            7, 8, 9, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, // entries_hash
        ];
        let sync = Message::<u32>::Registry(registry::Message::Sync {
            owners: vec![OwnerSync {
                owner: 7,
                status: OwnerStatus { incarnation: 1, state: OwnerState::Dead },
                entries: vec![EntryUpdate {
                    name: "a".to_owned(),
                    reg_id: 2,
                    value: Value::Registered {
                        meta: Bytes::from_static(b"m"),
                        stamp: Hlc::new(3, 4),
                    },
                }],
            }],
        });
        #[rustfmt::skip]
        let sync_bytes: &[u8] = &[
            1, 0x29,
            0, 0, 0, 1, // one owner
            0, 0, 0, 7, // owner
            0, 0, 0, 0, 0, 0, 0, 1, 2, // incarnation, Dead
            0, 0, 0, 1, // one entry
            1, b'a', // name
            0, 0, 0, 0, 0, 0, 0, 2, // reg_id
            0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 4, // Registered, stamp
            0, 0, 0, 1, b'm', // meta
        ];
        let tombstone =
            Value::Tombstone { stamp: Hlc::new(1, 2), reason: UnregisterReason::HandleDropped };
        let mut w = Writer::new();
        tombstone.encode(&mut w);
        assert_eq!(&w.finish()[..], &[2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]);
        for (msg, bytes) in [(digest, digest_bytes), (sync, sync_bytes)] {
            assert_eq!(&encode_frame(&msg)[..], bytes, "{msg:?}");
            assert_eq!(decode_frame::<Message<u32>>(bytes, &Limits::default()), Ok(msg));
        }
        let suspect = registry::Delta::Suspect { node: 7u32, incarnation: 2 };
        assert_eq!(&suspect.encode()[..], &[0x21, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn type_byte_picks_the_protocol() {
        let limits = Limits::default();
        for (frame, expected) in [
            (vec![WIRE_VERSION, 0x01], Message::<u32>::Hyparview(hyparview::Message::Join)),
            (vec![WIRE_VERSION, 0x13], Message::Plumtree(plumtree::Message::Prune)),
            (
                vec![WIRE_VERSION, 0x2A, 0, 0, 0, 1, 0, 0, 0, 9],
                Message::Registry(registry::Message::SyncRequest { owners: vec![9] }),
            ),
        ] {
            assert_eq!(decode_frame::<Message<u32>>(&frame, &limits), Ok(expected));
        }
    }

    #[test]
    fn unknown_type_bytes_are_refused() {
        let unassigned = [0x00]
            .into_iter()
            .chain(0x08..=0x0F) // HyParView's free codes
            .chain(0x14..=0x1F) // Plumtree's free codes
            .chain(0x20..=0x22) // registry deltas: Plumtree payloads, never frames
            .chain(0x23..=0x27) // registry reserved
            .chain(0x2B..=0x2F) // registry reserved
            .chain(0x30..=0xFF); // no protocol
        let mut count = 0;
        for code in unassigned {
            count += 1;
            // A bare type byte, and one followed by a plausible body.
            for frame in [vec![WIRE_VERSION, code], vec![WIRE_VERSION, code, 0, 0, 0, 0]] {
                assert_eq!(peek_message_type(&frame), Ok(code));
                let expected = DecodeError::UnknownTag { what: "message type", tag: code };
                let limits = Limits::default();
                assert_eq!(decode_frame::<Message<u32>>(&frame, &limits), Err(expected.clone()));
                assert_eq!(decode_frame::<Message<NodeName>>(&frame, &limits), Err(expected));
            }
        }
        assert_eq!(count, 256 - 7 - 4 - 3, "every code but the 14 assigned ones");
    }

    #[test]
    fn unknown_tags_inside_a_body_keep_their_own_kind() {
        let limits = Limits::default();
        for (frame, what, tag) in [
            // NEIGHBOR with priority 0x03 (the byte equals a HyParView type code).
            (&[WIRE_VERSION, 0x03, 0x03][..], "neighbor priority", 0x03),
            // GRAFT with option tag 0x12 (its own type code).
            (&[WIRE_VERSION, 0x12, 0x12, 0, 0], "graft id option", 0x12),
            // DIGEST whose range_start option byte is 0x28.
            (&[WIRE_VERSION, 0x28, 0x28], "bool", 0x28),
        ] {
            assert_eq!(
                decode_frame::<Message<u32>>(frame, &limits),
                Err(DecodeError::UnknownTag { what, tag }),
                "{frame:?}"
            );
        }
    }

    #[test]
    fn frame_level_errors_pass_through() {
        let limits = Limits::default();
        assert_eq!(
            decode_frame::<Message<u32>>(&[WIRE_VERSION], &limits),
            Err(DecodeError::Truncated { needed: 1, remaining: 0 })
        );
        assert_eq!(
            decode_frame::<Message<u32>>(&[2, 0x01], &limits),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode_frame::<Message<u32>>(&[WIRE_VERSION, 0x13, 0], &limits),
            Err(DecodeError::TrailingBytes(1))
        );
        let tight = Limits { list_len_max: 1, ..Limits::default() };
        let request = registry::Message::SyncRequest { owners: vec![1u32, 2] };
        assert_eq!(
            decode_frame::<Message<u32>>(&encode_frame(&request), &tight),
            Err(DecodeError::TooLong { what: "registry sync request", len: 2, len_max: 1 })
        );
    }
}
