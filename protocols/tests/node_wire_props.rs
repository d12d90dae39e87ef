//! Property tests of the node envelope (`node::Message`, the control-stream frame type): round
//! trips of every protocol's messages through it, agreement with the per-protocol decoders, and
//! arbitrary or mutated bytes never panicking.

use std::fmt::Debug;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_protocols::hlc::Hlc;
use shoal_protocols::hyparview;
use shoal_protocols::node::Message;
use shoal_protocols::plumtree::{self, Gossip, IHave, MessageId, Tag};
use shoal_protocols::registry::{
    self, EntryUpdate, OwnerDigest, OwnerState, OwnerStatus, OwnerSync, UnregisterReason, Value,
};
use shoal_protocols::wire::{
    decode_frame, encode_frame, peek_message_type, DecodeError, Limits, Wire, HYPARVIEW_TYPES,
    PLUMTREE_TYPES, REGISTRY_TYPES,
};
use shoal_protocols::NodeName;

mod common;
use common::{hyparview_message, mutated};

/// Small bounds so generated messages sometimes exceed them.
fn small_limits() -> Limits {
    Limits { frame_size_max: 4096, payload_size_max: 64, list_len_max: 8 }
}

fn node_name() -> BoxedStrategy<NodeName> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}@[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}"
        .prop_map(|s| NodeName::parse(&s).expect("the regex only produces valid names"))
        .boxed()
}

fn plumtree_message() -> impl Strategy<Value = plumtree::Message> {
    use plumtree::Message as M;
    let id = || any::<u128>().prop_map(MessageId);
    let ihave = (id(), any::<u16>()).prop_map(|(id, round)| IHave { id, round });
    prop_oneof![
        (id(), any::<u16>(), any::<u16>(), prop::collection::vec(any::<u8>(), 0..=64)).prop_map(
            |(id, round, tag, payload)| M::Gossip(Gossip {
                id,
                round,
                tag: Tag(tag),
                payload: Bytes::from(payload),
            })
        ),
        prop::collection::vec(ihave, 0..=8).prop_map(M::IHave),
        (prop::option::of(id()), any::<u16>()).prop_map(|(id, round)| M::Graft { id, round }),
        Just(M::Prune),
    ]
}

fn hlc() -> impl Strategy<Value = Hlc> {
    (any::<u64>(), any::<u32>()).prop_map(|(wall_ms, logical)| Hlc::new(wall_ms, logical))
}

fn owner_state() -> impl Strategy<Value = OwnerState> {
    prop_oneof![Just(OwnerState::Alive), Just(OwnerState::Suspect), Just(OwnerState::Dead)]
}

fn entry() -> impl Strategy<Value = EntryUpdate> {
    let value = prop_oneof![
        (prop::collection::vec(any::<u8>(), 0..=16), hlc())
            .prop_map(|(meta, stamp)| Value::Registered { meta: Bytes::from(meta), stamp }),
        (hlc(), any::<bool>()).prop_map(|(stamp, dropped)| Value::Tombstone {
            stamp,
            reason: if dropped {
                UnregisterReason::HandleDropped
            } else {
                UnregisterReason::Unregistered
            },
        }),
    ];
    ("[a-z][a-z0-9.]{0,15}", any::<u64>(), value).prop_map(|(name, reg_id, value)| EntryUpdate {
        name,
        reg_id,
        value,
    })
}

fn registry_message<P: Debug + Clone + 'static>(
    peer: BoxedStrategy<P>,
) -> impl Strategy<Value = registry::Message<P>> {
    use registry::Message as M;
    let digest = (any::<u64>(), owner_state(), hlc(), any::<u32>(), any::<u64>()).prop_map(
        |(incarnation, state, entries_max_stamp, entries_count, entries_hash)| OwnerDigest {
            incarnation,
            state,
            entries_max_stamp,
            entries_count,
            entries_hash,
        },
    );
    let status = (any::<u64>(), owner_state())
        .prop_map(|(incarnation, state)| OwnerStatus { incarnation, state });
    let owner_sync = (peer.clone(), status, prop::collection::vec(entry(), 0..=4))
        .prop_map(|(owner, status, entries)| OwnerSync { owner, status, entries });
    prop_oneof![
        (
            prop::option::of(peer.clone()),
            prop::option::of(peer.clone()),
            prop::collection::vec((peer.clone(), digest), 0..=8)
        )
            .prop_map(|(range_start, range_end, owners)| M::Digest {
                range_start,
                range_end,
                owners
            }),
        prop::collection::vec(owner_sync, 0..=4).prop_map(|owners| M::Sync { owners }),
        prop::collection::vec(peer, 0..=8).prop_map(|owners| M::SyncRequest { owners }),
    ]
}

fn node_message<P: Debug + Clone + 'static>(
    peer: BoxedStrategy<P>,
) -> impl Strategy<Value = Message<P>> {
    prop_oneof![
        hyparview_message(peer.clone(), 8).prop_map(Message::Hyparview),
        plumtree_message().prop_map(Message::Plumtree),
        registry_message(peer).prop_map(Message::Registry),
    ]
}

/// Encode → decode through the envelope is the identity, the frame is the inner message's own
/// frame, and the size hint is exact.
fn round_trips<P: Wire + Clone + PartialEq + Debug>(
    msg: &Message<P>,
    limits: &Limits,
) -> Result<(), TestCaseError> {
    let bytes = encode_frame(msg);
    let decoded = decode_frame::<Message<P>>(&bytes, limits);
    prop_assert_eq!(decoded.as_ref(), Ok(msg));
    let inner = match msg {
        Message::Hyparview(m) => encode_frame(m),
        Message::Plumtree(m) => encode_frame(m),
        Message::Registry(m) => encode_frame(m),
    };
    prop_assert_eq!(&bytes, &inner);
    prop_assert_eq!(msg.encoded_size_hint(), bytes.len() - 1);
    Ok(())
}

/// Decoding never panics; anything accepted re-encodes to exactly the input, and the envelope
/// accepts a frame iff the decoder of the type byte's protocol does, with the same value.
fn canonical_and_consistent<P: Wire + PartialEq + Debug>(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(), TestCaseError> {
    let decoded = decode_frame::<Message<P>>(bytes, limits);
    if let Ok(msg) = &decoded {
        prop_assert_eq!(&encode_frame(msg)[..], bytes, "{:?}", msg);
    }
    let Ok(code) = peek_message_type(bytes) else {
        prop_assert!(decoded.is_err());
        return Ok(());
    };
    if HYPARVIEW_TYPES.contains(&code) {
        let inner = decode_frame::<hyparview::Message<P>>(bytes, limits);
        prop_assert_eq!(decoded.ok(), inner.ok().map(Message::Hyparview));
    } else if PLUMTREE_TYPES.contains(&code) {
        let inner = decode_frame::<plumtree::Message>(bytes, limits);
        prop_assert_eq!(decoded.ok(), inner.ok().map(Message::Plumtree));
    } else if REGISTRY_TYPES.contains(&code) {
        let inner = decode_frame::<registry::Message<P>>(bytes, limits);
        prop_assert_eq!(decoded.ok(), inner.ok().map(Message::Registry));
    } else if bytes.len() <= limits.frame_size_max {
        prop_assert_eq!(decoded, Err(DecodeError::UnknownTag { what: "message type", tag: code }));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn u32_peers_round_trip(msg in node_message(any::<u32>().boxed())) {
        round_trips(&msg, &small_limits())?;
    }

    #[test]
    fn node_name_peers_round_trip(msg in node_message(node_name())) {
        round_trips(&msg, &small_limits())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        canonical_and_consistent::<u32>(&bytes, &small_limits())?;
        canonical_and_consistent::<NodeName>(&bytes, &small_limits())?;
    }

    /// Arbitrary bytes behind a valid version byte, so every type byte gets exercised.
    #[test]
    fn arbitrary_bodies_never_panic(
        code in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let bytes = [&[1, code][..], &body].concat();
        canonical_and_consistent::<u32>(&bytes, &small_limits())?;
        canonical_and_consistent::<NodeName>(&bytes, &small_limits())?;
    }

    /// Mutations of valid frames reach deep into the bodies.
    #[test]
    fn mutated_frames_never_panic(
        msg in node_message(any::<u32>().boxed()),
        pos in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let bytes = mutated(encode_frame(&msg), pos, byte, how);
        canonical_and_consistent::<u32>(&bytes, &small_limits())?;
        canonical_and_consistent::<u64>(&bytes, &small_limits())?;
    }

    #[test]
    fn mutated_node_name_frames_never_panic(
        msg in node_message(node_name()),
        pos in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let bytes = mutated(encode_frame(&msg), pos, byte, how);
        canonical_and_consistent::<NodeName>(&bytes, &small_limits())?;
    }
}
