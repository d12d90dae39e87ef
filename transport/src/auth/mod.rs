//! Peer authentication: the node's identity key pair on disk ([`keys`]).

pub mod keys;

pub use keys::{fingerprint, Fingerprint, Identity, KeyDir, KeyError, Rotated, DEFAULT_KEY_DIR};
