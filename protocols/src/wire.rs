//! The one binary encoding of every inter-node message (DESIGN §5, docs/protocols/wire.md).
//!
//! Every frame starts with a version byte and a message-type byte. Decoding treats its input
//! as hostile: every length is checked against the remaining input *and* a configured bound
//! before anything is allocated, and every failure is a typed [`DecodeError`], never a panic.

mod frame;
pub mod hyparview;
mod node;
pub mod plumtree;
mod primitives;

pub use frame::{
    decode_frame, encode_frame, peek_message_type, HYPARVIEW_TYPES, PLUMTREE_TYPES, REGISTRY_TYPES,
};
pub use primitives::{
    decode_list, decode_option, encode_list, encode_option, list_size_hint, option_size_hint,
    DecodeError, Limits, Reader, Wire, Writer, WIRE_VERSION,
};
