//! Decodes arbitrary bytes as a HyParView frame, with integer and node-name peers.
//! Anything accepted must re-encode to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocols::hyparview::Message;
use shoal_protocols::wire::{decode_frame, encode_frame, Limits, Wire};
use shoal_protocols::NodeName;

fn check<P: Wire + std::fmt::Debug>(data: &[u8], limits: &Limits) {
    if let Ok(msg) = decode_frame::<Message<P>>(data, limits) {
        assert_eq!(&encode_frame(&msg)[..], data, "{msg:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    check::<u32>(data, &limits);
    check::<NodeName>(data, &limits);
});
