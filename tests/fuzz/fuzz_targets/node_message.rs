//! Decodes arbitrary bytes as a node envelope frame (`node::Message`, the control-stream frame
//! type), with integer and node-name peers. Checks that:
//! - anything accepted re-encodes to exactly the input, with an exact size hint;
//! - the envelope agrees with the protocol decoders: it accepts a frame iff the decoder of the
//!   type byte's protocol accepts it, with the same value;
//! - a registry-tagged GOSSIP payload that decodes as a registry delta re-encodes identically.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use shoal_protocols::node::Message;
use shoal_protocols::plumtree::{self, Tag};
use shoal_protocols::wire::{decode_frame, encode_frame, Limits, Wire};
use shoal_protocols::{hyparview, registry, NodeName};

fn check<P: Wire + Debug + PartialEq>(data: &[u8], limits: &Limits) {
    let hyparview = decode_frame::<hyparview::Message<P>>(data, limits);
    let plumtree = decode_frame::<plumtree::Message>(data, limits);
    let registry = decode_frame::<registry::Message<P>>(data, limits);
    let Ok(msg) = decode_frame::<Message<P>>(data, limits) else {
        assert!(hyparview.is_err() && plumtree.is_err() && registry.is_err(), "{data:?}");
        return;
    };
    assert_eq!(&encode_frame(&msg)[..], data, "{msg:?}");
    assert_eq!(msg.encoded_size_hint(), data.len() - 1, "{msg:?}");
    match &msg {
        Message::Hyparview(m) => assert_eq!(hyparview.as_ref(), Ok(m)),
        Message::Plumtree(m) => {
            assert_eq!(plumtree.as_ref(), Ok(m));
            if let plumtree::Message::Gossip(gossip) = m {
                if gossip.tag == Tag::REGISTRY {
                    if let Ok(delta) = registry::Delta::<P>::decode(&gossip.payload, limits) {
                        assert_eq!(delta.encode(), gossip.payload, "{delta:?}");
                    }
                }
            }
        }
        Message::Registry(m) => assert_eq!(registry.as_ref(), Ok(m)),
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    check::<u32>(data, &limits);
    check::<NodeName>(data, &limits);
});
