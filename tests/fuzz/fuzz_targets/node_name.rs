//! Node names from arbitrary text (`NodeName::parse`) and from arbitrary bytes (the `Wire`
//! decoder). Accepted names must be valid, keep their text, and round-trip on the wire.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal_protocols::name::validate;
use shoal_protocols::wire::{Limits, Reader, Wire, Writer};
use shoal_protocols::NodeName;

fn encoded(name: &NodeName) -> Vec<u8> {
    let mut w = Writer::new();
    name.encode(&mut w);
    w.finish().to_vec()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = NodeName::parse(text) {
            assert_eq!(name.as_str(), text);
            assert!(validate(name.as_str()).is_ok());
            let bytes = encoded(&name);
            let decoded = NodeName::decode(&mut Reader::new(&bytes), &Limits::default());
            assert_eq!(decoded.as_ref(), Ok(&name));
        }
    }

    let mut r = Reader::new(data);
    if let Ok(name) = NodeName::decode(&mut r, &Limits::default()) {
        assert!(validate(name.as_str()).is_ok());
        let consumed = data.len() - r.remaining();
        assert_eq!(encoded(&name), &data[..consumed]);
    }
});
