//! Peer authentication: the node's identity key pair on disk ([`keys`]) and the keys pinned for
//! its peers ([`trust`]).

pub mod keys;
pub mod trust;

pub use keys::{fingerprint, Fingerprint, Identity, KeyDir, KeyError, Rotated, DEFAULT_KEY_DIR};
pub use trust::{PinConflict, PinInfo, PinOutcome, SkippedPin, TrustStore};
