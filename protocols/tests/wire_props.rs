//! Property tests of the wire codecs: round trips, hostile input, canonical encodings.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use shoal_protocols::hyparview;
use shoal_protocols::plumtree::{self, Gossip, IHave, MessageId, Tag};
use shoal_protocols::wire::{decode_frame, encode_frame, DecodeError, Limits, Wire, WIRE_VERSION};
use shoal_protocols::NodeName;

mod common;
use common::{hyparview_message, mutated};

/// Small bounds so generated messages sometimes exceed them.
fn small_limits() -> Limits {
    Limits { frame_size_max: 4096, payload_size_max: 256, list_len_max: 16 }
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<u128>().prop_map(MessageId)
}

fn plumtree_message(
    list_len_max: usize,
    payload_size_max: usize,
) -> impl Strategy<Value = plumtree::Message> {
    use plumtree::Message as M;
    let ihave = (message_id(), any::<u16>()).prop_map(|(id, round)| IHave { id, round });
    prop_oneof![
        (
            message_id(),
            any::<u16>(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=payload_size_max)
        )
            .prop_map(|(id, round, tag, payload)| M::Gossip(Gossip {
                id,
                round,
                tag: Tag(tag),
                payload: Bytes::from(payload),
            })),
        prop::collection::vec(ihave, 0..=list_len_max).prop_map(M::IHave),
        (prop::option::of(message_id()), any::<u16>())
            .prop_map(|(id, round)| M::Graft { id, round }),
        Just(M::Prune),
    ]
}

fn node_name() -> impl Strategy<Value = NodeName> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}@[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
        .prop_map(|s| NodeName::parse(&s).expect("the regex only produces valid names"))
}

/// Encode → decode is the identity for every message within `limits`.
fn round_trips<M: Wire + PartialEq + Debug>(msg: &M, limits: &Limits) -> Result<(), TestCaseError> {
    let bytes = encode_frame(msg);
    let decoded = decode_frame::<M>(&bytes, limits);
    prop_assert_eq!(decoded.as_ref(), Ok(msg));
    // The buffer-sizing hint is exact for every shoal message type.
    prop_assert_eq!(msg.encoded_size_hint(), bytes.len() - 1);
    Ok(())
}

/// Decoding never panics, and anything accepted re-encodes to exactly the input (the encoding
/// is canonical, so a relay forwards what it received).
fn canonical_or_error<M: Wire + Debug>(bytes: &[u8], limits: &Limits) -> Result<(), TestCaseError> {
    if let Ok(msg) = decode_frame::<M>(bytes, limits) {
        prop_assert_eq!(&encode_frame(&msg)[..], bytes, "{:?}", msg);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn hyparview_u32_round_trip(msg in hyparview_message(any::<u32>().boxed(), 16)) {
        round_trips(&msg, &small_limits())?;
    }

    #[test]
    fn hyparview_u64_round_trip(msg in hyparview_message(any::<u64>().boxed(), 16)) {
        round_trips(&msg, &small_limits())?;
    }

    #[test]
    fn hyparview_node_name_round_trip(msg in hyparview_message(node_name().boxed(), 8)) {
        round_trips(&msg, &Limits::default())?;
    }

    #[test]
    fn plumtree_round_trip(msg in plumtree_message(16, 256)) {
        round_trips(&msg, &small_limits())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        raw in any::<bool>(),
        code in prop::sample::select(vec![0x01u8, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13]),
        body in prop::collection::vec(any::<u8>(), 0..96),
    ) {
        // Half the cases are fully random; the other half carry the version byte and a valid
        // type byte, so the body reaches a message decoder (a random first byte is the version
        // only once in 256 cases).
        let bytes = if raw { body } else { [vec![WIRE_VERSION, code], body].concat() };
        let limits = small_limits();
        canonical_or_error::<hyparview::Message<u32>>(&bytes, &limits)?;
        canonical_or_error::<hyparview::Message<u64>>(&bytes, &limits)?;
        canonical_or_error::<hyparview::Message<NodeName>>(&bytes, &limits)?;
        canonical_or_error::<plumtree::Message>(&bytes, &limits)?;
    }

    /// Random bytes rarely get past the type byte; mutations of valid frames reach the bodies.
    #[test]
    fn mutated_hyparview_frames(
        msg in hyparview_message(any::<u64>().boxed(), 16),
        pos in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let bytes = mutated(encode_frame(&msg), pos, byte, how);
        canonical_or_error::<hyparview::Message<u64>>(&bytes, &small_limits())?;
        canonical_or_error::<hyparview::Message<u32>>(&bytes, &small_limits())?;
    }

    #[test]
    fn mutated_plumtree_frames(
        msg in plumtree_message(16, 256),
        pos in any::<usize>(),
        byte in any::<u8>(),
        how in any::<u8>(),
    ) {
        let bytes = mutated(encode_frame(&msg), pos, byte, how);
        canonical_or_error::<plumtree::Message>(&bytes, &small_limits())?;
    }

    /// Messages above the bounds are refused with `TooLong`, never truncated or accepted.
    #[test]
    fn over_limit_lists_are_refused(extra in 1usize..8) {
        let limits = small_limits();
        let peers: Vec<u32> = (0..(limits.list_len_max + extra) as u32).collect();
        let bytes = encode_frame(&hyparview::Message::ShuffleReply { peers });
        let refused = matches!(
            decode_frame::<hyparview::Message<u32>>(&bytes, &limits),
            Err(DecodeError::TooLong { .. })
        );
        prop_assert!(refused);
    }
}

/// A hostile count (u32::MAX) or payload length must fail at once, whatever the limits,
/// without reserving memory for the claimed size.
#[test]
fn hostile_length_prefixes_fail_fast() {
    let max = [0xFF, 0xFF, 0xFF, 0xFF];
    let wide_open = Limits {
        frame_size_max: usize::MAX,
        payload_size_max: usize::MAX,
        list_len_max: usize::MAX,
    };
    let frames: Vec<Vec<u8>> = vec![
        // ShuffleReply and Shuffle peer counts.
        [&[1, 0x07][..], &max].concat(),
        [&[1, 0x06, 0, 0, 0, 0, 0, 0, 0, 1, 5][..], &max].concat(),
        // IHave count, Gossip payload length.
        [&[1, 0x11][..], &max].concat(),
        [&[1, 0x10][..], &[0; 20], &max].concat(),
    ];

    let started = Instant::now();
    for limits in [Limits::default(), wide_open] {
        for frame in &frames {
            let results = [
                decode_frame::<hyparview::Message<u64>>(frame, &limits).map(|_| ()),
                decode_frame::<hyparview::Message<NodeName>>(frame, &limits).map(|_| ()),
                decode_frame::<plumtree::Message>(frame, &limits).map(|_| ()),
            ];
            for result in results {
                assert!(
                    matches!(
                        result,
                        Err(DecodeError::TooLong { .. }
                            | DecodeError::Truncated { .. }
                            | DecodeError::UnknownTag { .. }
                            | DecodeError::Invalid { .. })
                    ),
                    "{frame:?}: {result:?}"
                );
            }
        }
    }
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}
