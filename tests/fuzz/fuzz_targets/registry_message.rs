//! Decodes arbitrary bytes as a registry direct message (a frame: version byte, then
//! `0x28..=0x2A`) and as a registry delta (a Plumtree payload: `0x20..=0x22`, no version byte),
//! with integer and node-name peers. Anything accepted must re-encode to exactly the input, and
//! the buffer-size hint of an accepted message must be exact.

#![no_main]

use std::fmt::Debug;

use libfuzzer_sys::fuzz_target;
use shoal_protocols::registry::{Delta, Message};
use shoal_protocols::wire::{decode_frame, encode_frame, Limits, Wire};
use shoal_protocols::NodeName;

fn check<P: Wire + Debug>(data: &[u8], limits: &Limits) {
    if let Ok(msg) = decode_frame::<Message<P>>(data, limits) {
        assert_eq!(&encode_frame(&msg)[..], data, "{msg:?}");
        assert_eq!(msg.encoded_size_hint(), data.len() - 1, "{msg:?}");
    }
    if let Ok(delta) = Delta::<P>::decode(data, limits) {
        assert_eq!(&delta.encode()[..], data, "{delta:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    check::<u32>(data, &limits);
    check::<NodeName>(data, &limits);
});
