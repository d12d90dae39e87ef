//! Strategies and helpers shared by the wire property tests.

use std::fmt::Debug;

use bytes::Bytes;
use proptest::prelude::*;
use shoal_protocols::hyparview::{self, Priority};

pub(crate) fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![Just(Priority::High), Just(Priority::Low)]
}

pub(crate) fn hyparview_message<P: Debug + Clone + 'static>(
    peer: BoxedStrategy<P>,
    list_len_max: usize,
) -> impl Strategy<Value = hyparview::Message<P>> {
    use hyparview::Message as M;
    let list = prop::collection::vec(peer.clone(), 0..=list_len_max);
    prop_oneof![
        Just(M::Join),
        (peer.clone(), any::<u8>()).prop_map(|(peer, ttl)| M::ForwardJoin { peer, ttl }),
        priority().prop_map(|priority| M::Neighbor { priority }),
        any::<bool>().prop_map(|accepted| M::NeighborReply { accepted }),
        any::<bool>().prop_map(|leaving| M::Disconnect { leaving }),
        (peer, any::<u8>(), list.clone()).prop_map(|(origin, ttl, peers)| M::Shuffle {
            origin,
            ttl,
            peers
        }),
        list.prop_map(|peers| M::ShuffleReply { peers }),
    ]
}

/// A valid frame with one byte changed, or cut short, or extended.
pub(crate) fn mutated(frame: Bytes, pos: usize, byte: u8, how: u8) -> Vec<u8> {
    let mut v = frame.to_vec();
    let pos = pos % v.len();
    match how % 3 {
        0 => v[pos] = byte,
        1 => v.truncate(pos),
        _ => v.insert(pos, byte),
    }
    v
}
