//! The proofs in HELLO and WELCOME: what is signed, and how it is checked. Pure functions.
//!
//! Each side signs a transcript with its Ed25519 identity key and MACs the same transcript
//! with the cluster cookie (HMAC-SHA256, key = the cookie):
//!
//! ```text
//! transcript = "shoal-auth-v1" 0x00
//!              role:u8 (1 = the dialer's proof, 2 = the acceptor's)   mode:u8
//!              dialer_name_len:u8 dialer_name  acceptor_name_len:u8 acceptor_name
//!              dialer_cid:[16] acceptor_cid:[16]            (each side's first source CID)
//!              dialer_tls_key:[32] acceptor_tls_key:[32]    (the keys TLS proved on this connection)
//!              signer_identity_key:[32] signer_timestamp_ms:u64 signer_incarnation:u64
//! ```
//!
//! Why this binds the proof to one connection:
//! - both TLS keys are in it, and TLS 1.3 proved on this very connection that each side holds
//!   its TLS key: a relay in the middle (two TLS sessions, its own key in each) makes the two
//!   ends sign different transcripts, so neither signature verifies at the other end;
//! - each side's first connection ID is drawn at random by that side, so a proof captured on
//!   one connection names CIDs the next connection will not have;
//! - the role byte keeps a dialer's proof from being reflected back as an acceptor's.
//!
//! Limit (docs/operations/key-management.md): quiche 0.30 exposes no TLS exporter, so the
//! binding is to the TLS keys and CIDs, not to the session secret. An attacker holding *both*
//! peers' TLS private keys could relay; the identity keys alone are not enough for that, and
//! the TLS keys sit beside the identity keys with the same 0600 protection.

use ed25519_dalek::{Signature, Signer, Verifier as _, VerifyingKey};

use shoal_protocols::NodeName;

use super::keys::Identity;
use crate::cid::CID_LEN;

/// Domain separation: no other shoal signature starts like this.
const DOMAIN: &[u8] = b"shoal-auth-v1\0";
/// Longest transcript: domain, role, mode, two names of ≤ 255 bytes with length bytes,
/// two CIDs, three keys, two u64.
pub const TRANSCRIPT_BYTES_MAX: usize = DOMAIN.len() + 2 + 2 * 256 + 2 * CID_LEN + 3 * 32 + 16;

/// Which proof a transcript is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofRole {
    /// The dialer's proof (in HELLO).
    Dialer = 1,
    /// The acceptor's proof (in WELCOME).
    Acceptor = 2,
}

/// How a side authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Identity signature and cookie MAC.
    Signed = 1,
    /// Cookie MAC only (`cookie_only_nodes`, or `auth_enabled = false`).
    CookieOnly = 2,
}

impl Mode {
    /// The mode of a wire byte.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Signed),
            2 => Some(Self::CookieOnly),
            _ => None,
        }
    }
}

/// What ties a proof to one connection: both sides' first CIDs and TLS keys, as each side
/// records them when the QUIC handshake completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The dialer's first source connection ID.
    pub dialer_cid: [u8; CID_LEN],
    /// The acceptor's first source connection ID.
    pub acceptor_cid: [u8; CID_LEN],
    /// The dialer's TLS public key.
    pub dialer_tls_key: [u8; 32],
    /// The acceptor's TLS public key.
    pub acceptor_tls_key: [u8; 32],
}

/// The signer's claims in one proof.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    /// Whose proof.
    pub role: ProofRole,
    /// Signed or cookie-only.
    pub mode: Mode,
    /// The dialer's name (claimed in HELLO).
    pub dialer: &'a NodeName,
    /// The acceptor's name (the dialled name in HELLO, the claimed name in WELCOME).
    pub acceptor: &'a NodeName,
    /// The signer's identity key (zero in cookie-only mode).
    pub identity_key: [u8; 32],
    /// The signer's wall clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The signer's incarnation (random per process start).
    pub incarnation: u64,
}

/// A proof as it travels in HELLO and WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// Ed25519 signature over the transcript (zero in cookie-only mode).
    pub signature: [u8; 64],
    /// HMAC-SHA256 of the transcript keyed with the cookie.
    pub cookie_mac: [u8; 32],
}

/// Writes the transcript of `claims` on `binding` into `out` (cleared first).
pub fn transcript(binding: &Binding, claims: &Claims<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(DOMAIN);
    out.push(claims.role as u8);
    out.push(claims.mode as u8);
    for name in [claims.dialer, claims.acceptor] {
        let bytes = name.as_str().as_bytes();
        // NodeName invariant: at most 255 bytes.
        out.push(u8::try_from(bytes.len()).expect("NodeName is at most 255 bytes"));
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&binding.dialer_cid);
    out.extend_from_slice(&binding.acceptor_cid);
    out.extend_from_slice(&binding.dialer_tls_key);
    out.extend_from_slice(&binding.acceptor_tls_key);
    out.extend_from_slice(&claims.identity_key);
    out.extend_from_slice(&claims.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&claims.incarnation.to_be_bytes());
    debug_assert!(out.len() <= TRANSCRIPT_BYTES_MAX);
}

/// The proof of `transcript`: signed with `identity` when given (signed mode), MACed with
/// `cookie` always.
pub fn prove(identity: Option<&Identity>, cookie: &[u8], transcript: &[u8]) -> Proof {
    let signature =
        identity.map_or([0; 64], |identity| identity.signing_key().sign(transcript).to_bytes());
    Proof { signature, cookie_mac: cookie_mac(cookie, transcript) }
}

/// Whether `mac` is the cookie MAC of `transcript` (constant-time comparison).
pub fn cookie_ok(cookie: &[u8], transcript: &[u8], mac: &[u8; 32]) -> bool {
    boring::memcmp::eq(&cookie_mac(cookie, transcript), mac)
}

/// Whether `signature` is `identity_key`'s signature of `transcript` (RFC 8032 verification;
/// `S` must be canonical). Small-order (weak) keys are refused: anyone could sign for them.
/// Not `verify_strict`: its one further check, a small-order `R`, only stops a key holder from
/// making several valid signatures of one message, which proves nothing less here; it costs
/// 6.5 µs per verification on the reference machine (41.2 vs 47.7 µs, measured with a loop of
/// 20,000), 16 % of the proof's cost.
pub fn signature_ok(identity_key: &[u8; 32], transcript: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(identity_key) else { return false };
    if key.is_weak() {
        return false;
    }
    key.verify(transcript, &Signature::from_bytes(signature)).is_ok()
}

fn cookie_mac(cookie: &[u8], transcript: &[u8]) -> [u8; 32] {
    // HMAC-SHA256 cannot fail for in-memory inputs; BoringSSL reports errors only for
    // allocation failure, which aborts elsewhere anyway.
    boring::hash::hmac_sha256(cookie, transcript).expect("HMAC-SHA256 over memory")
}

/// Bindings for the tests of this module and of `auth`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// One connection's binding.
    pub(crate) fn binding() -> Binding {
        Binding {
            dialer_cid: [1; CID_LEN],
            acceptor_cid: [2; CID_LEN],
            dialer_tls_key: [3; 32],
            acceptor_tls_key: [4; 32],
        }
    }

    /// [`binding`] with one element changed each: what another connection (other CIDs) or a
    /// relay terminating TLS (other keys) looks like.
    pub(crate) fn other_connections() -> [Binding; 4] {
        [
            Binding { dialer_cid: [9; CID_LEN], ..binding() },
            Binding { acceptor_cid: [9; CID_LEN], ..binding() },
            Binding { dialer_tls_key: [9; 32], ..binding() },
            Binding { acceptor_tls_key: [9; 32], ..binding() },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{binding, other_connections};
    use super::*;

    fn name(text: &str) -> NodeName {
        NodeName::parse(text).expect("valid")
    }

    fn signed(identity: &Identity, binding: &Binding) -> (Vec<u8>, Proof) {
        let (dialer, acceptor) = (name("a@h"), name("b@h"));
        let claims = Claims {
            role: ProofRole::Dialer,
            mode: Mode::Signed,
            dialer: &dialer,
            acceptor: &acceptor,
            identity_key: identity.public_key(),
            timestamp_ms: 1_700_000_000_000,
            incarnation: 7,
        };
        let mut bytes = Vec::new();
        transcript(binding, &claims, &mut bytes);
        let proof = prove(Some(identity), b"cookie", &bytes);
        (bytes, proof)
    }

    #[test]
    fn a_proof_verifies_on_its_own_transcript_only() {
        let identity = Identity::generate();
        let (bytes, proof) = signed(&identity, &binding());
        assert!(signature_ok(&identity.public_key(), &bytes, &proof.signature));
        assert!(cookie_ok(b"cookie", &bytes, &proof.cookie_mac));
        assert!(!cookie_ok(b"cookie2", &bytes, &proof.cookie_mac));

        // Every element of the binding matters: another connection's transcript differs.
        for other in other_connections() {
            let (other_bytes, _) = signed(&identity, &other);
            assert!(!signature_ok(&identity.public_key(), &other_bytes, &proof.signature));
            assert!(!cookie_ok(b"cookie", &other_bytes, &proof.cookie_mac));
        }
        // Another key does not verify it.
        assert!(!signature_ok(&Identity::generate().public_key(), &bytes, &proof.signature));
    }

    #[test]
    fn the_role_byte_keeps_a_proof_from_being_reflected() {
        let identity = Identity::generate();
        let (bytes, proof) = signed(&identity, &binding());
        let mut reflected = bytes.clone();
        reflected[DOMAIN.len()] = ProofRole::Acceptor as u8;
        assert!(!signature_ok(&identity.public_key(), &reflected, &proof.signature));
    }

    #[test]
    fn transcript_layout_is_stable() {
        let (dialer, acceptor) = (name("a@h"), name("bb@h"));
        let claims = Claims {
            role: ProofRole::Acceptor,
            mode: Mode::CookieOnly,
            dialer: &dialer,
            acceptor: &acceptor,
            identity_key: [0; 32],
            timestamp_ms: 0x0102_0304_0506_0708,
            incarnation: 1,
        };
        let mut bytes = Vec::new();
        transcript(&binding(), &claims, &mut bytes);
        assert_eq!(bytes.len(), DOMAIN.len() + 2 + 4 + 5 + 32 + 96 + 16);
        assert_eq!(&bytes[DOMAIN.len()..DOMAIN.len() + 3], &[2, 2, 3]);
        let ts_at = bytes.len() - 16;
        assert_eq!(&bytes[ts_at..ts_at + 8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        // Cookie-only proofs carry no signature.
        assert_eq!(prove(None, b"c", &bytes).signature, [0; 64]);
    }

    #[test]
    fn malformed_keys_and_signatures_are_refused_not_panicking() {
        let identity = Identity::generate();
        let (bytes, proof) = signed(&identity, &binding());
        assert!(!signature_ok(&[0xff; 32], &bytes, &proof.signature));
        assert!(!signature_ok(&identity.public_key(), &bytes, &[0xff; 64]));
        // The identity point (a small-order key) is refused: with R = the identity point and
        // s = 0, this signature verifies for every message under that key unless the weak-key
        // check refuses the key first.
        let mut small = [0u8; 32];
        small[0] = 1;
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(!signature_ok(&small, &bytes, &forged));
    }
}
