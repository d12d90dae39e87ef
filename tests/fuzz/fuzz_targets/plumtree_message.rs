//! Decodes arbitrary bytes as a Plumtree frame. Anything accepted must re-encode to exactly
//! the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocols::plumtree::Message;
use shoal_protocols::wire::{decode_frame, encode_frame, Limits};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode_frame::<Message>(data, &Limits::default()) {
        assert_eq!(&encode_frame(&msg)[..], data, "{msg:?}");
    }
});
