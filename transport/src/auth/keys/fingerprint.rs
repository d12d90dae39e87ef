//! Short, printable names for public keys.

use std::fmt;

/// The SHA-256 digest of a raw 32-byte Ed25519 public key: how logs, errors and operators name
/// an identity.
///
/// Displays like OpenSSH prints fingerprints: `SHA256:` and the digest in standard base64
/// without padding (43 characters). Unlike OpenSSH, the digest covers the raw key, not an SSH
/// key blob, so the text differs from `ssh-keygen -l` for the same key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fingerprint(pub [u8; 32]);

/// The fingerprint of `public_key`.
pub fn fingerprint(public_key: &[u8; 32]) -> Fingerprint {
    Fingerprint(boring::sha::sha256(public_key))
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let padded = boring::base64::encode_block(&self.0);
        write!(f, "SHA256:{}", padded.trim_end_matches('='))
    }
}
