//! The on-disk formats of Ed25519 keys, shared by the TLS material and the identity keys.
//!
//! - Private key: PEM (RFC 7468) label `PRIVATE KEY` around a 48-byte DER PKCS#8 **v1**
//!   `PrivateKeyInfo` (RFC 5208, RFC 8410 §7): the fixed 16-byte prefix
//!   `30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20` followed by the 32-byte seed. Version 1
//!   because BoringSSL refuses PKCS#8 v2 (`OneAsymmetricKey`, which adds the public key and is
//!   what ed25519-dalek's `to_pkcs8_der` writes: measured `DECODE_ERROR`); BoringSSL, OpenSSL
//!   and ed25519-dalek all read v1. Nothing else is accepted: a key in another form is refused,
//!   never converted, because a key is an identity and shoal never rewrites it.
//! - Public key: PEM label `PUBLIC KEY` around a 44-byte DER `SubjectPublicKeyInfo` (RFC 5280,
//!   RFC 8410 §4): the fixed 12-byte prefix `30 2a 30 05 06 03 2b 65 70 03 21 00` followed by
//!   the raw 32-byte key. What `openssl pkey -pubout` prints for an Ed25519 key.
//!
//! Parsers return the raw 32 bytes or a description of what was found instead (never quoting
//! the contents); callers add the path and their error type.

use crate::fsutil::pem_body;

/// DER of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519, up to the seed: SEQUENCE (46 bytes) {
/// INTEGER 0 (v1), SEQUENCE { OID 1.3.101.112 (id-Ed25519) }, OCTET STRING (34) { OCTET STRING
/// (32) … } }.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// DER of an Ed25519 `SubjectPublicKeyInfo`, up to the key: SEQUENCE (42 bytes) { SEQUENCE {
/// OID 1.3.101.112 }, BIT STRING (33 bytes, 0 unused bits) … }.
const SPKI_ED25519_PREFIX: [u8; 12] =
    [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
/// Ed25519 seed and public key length, in bytes (RFC 8032).
const KEY_BYTES: usize = 32;
/// Length of a private key's DER.
pub(crate) const PRIVATE_KEY_DER_BYTES: usize = PKCS8_V1_ED25519_PREFIX.len() + KEY_BYTES;
/// PEM label of a private key file.
const PRIVATE_LABEL: &str = "PRIVATE KEY";
/// PEM label of a public key file.
const PUBLIC_LABEL: &str = "PUBLIC KEY";
/// What a private key file must hold, for error messages.
pub(crate) const PRIVATE_KEY_EXPECTED: &str =
    "PEM \"PRIVATE KEY\" holding a 48-byte DER PKCS#8 v1 Ed25519 key (as shoal writes it)";
/// What a public key file must hold, for error messages.
pub(crate) const PUBLIC_KEY_EXPECTED: &str =
    "PEM \"PUBLIC KEY\" holding a 44-byte DER Ed25519 SubjectPublicKeyInfo (as node.pub)";
/// Private key files larger than this are refused (a shoal key file is 119 bytes).
pub(crate) const PRIVATE_KEY_FILE_MAX_BYTES: u64 = 4 * 1024;
/// Public key files larger than this are refused (a shoal public key file is 113 bytes).
pub(crate) const PUBLIC_KEY_FILE_MAX_BYTES: u64 = 4 * 1024;

/// The private key's PKCS#8 v1 DER.
pub(crate) fn private_key_der(seed: &[u8; KEY_BYTES]) -> [u8; PRIVATE_KEY_DER_BYTES] {
    let mut der = [0u8; PRIVATE_KEY_DER_BYTES];
    der[..PKCS8_V1_ED25519_PREFIX.len()].copy_from_slice(&PKCS8_V1_ED25519_PREFIX);
    der[PKCS8_V1_ED25519_PREFIX.len()..].copy_from_slice(seed);
    der
}

/// A private key file's contents.
pub(crate) fn private_key_pem(seed: &[u8; KEY_BYTES]) -> String {
    crate::fsutil::pem_encode(PRIVATE_LABEL, &private_key_der(seed))
}

/// A public key file's contents.
pub(crate) fn public_key_pem(key: &[u8; KEY_BYTES]) -> String {
    let mut der = Vec::with_capacity(SPKI_ED25519_PREFIX.len() + KEY_BYTES);
    der.extend_from_slice(&SPKI_ED25519_PREFIX);
    der.extend_from_slice(key);
    crate::fsutil::pem_encode(PUBLIC_LABEL, &der)
}

/// The seed in a private key file, or what the file holds instead.
pub(crate) fn parse_private_key_pem(bytes: &[u8]) -> Result<[u8; KEY_BYTES], String> {
    let format = Format {
        label: PRIVATE_LABEL,
        prefix: &PKCS8_V1_ED25519_PREFIX,
        max_bytes: PRIVATE_KEY_FILE_MAX_BYTES,
        other_lengths: "a PKCS#8 v2 key, another key type, or not a key",
        wrong_prefix: "DER that is not a PKCS#8 v1 Ed25519 key",
    };
    format.parse(bytes)
}

/// The raw key in a public key file, or what the file holds instead. The key must be a valid
/// Ed25519 point (anything else could never authenticate anybody).
pub(crate) fn parse_public_key_pem(bytes: &[u8]) -> Result<[u8; KEY_BYTES], String> {
    let format = Format {
        label: PUBLIC_LABEL,
        prefix: &SPKI_ED25519_PREFIX,
        max_bytes: PUBLIC_KEY_FILE_MAX_BYTES,
        other_lengths: "another key type or not a key",
        wrong_prefix: "DER that is not an Ed25519 public key",
    };
    let key = format.parse(bytes)?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| {
        "32 bytes that are not an Ed25519 public key (not a curve point)".to_owned()
    })?;
    Ok(key)
}

/// The public key of `seed`, derived by ed25519-dalek.
pub(crate) fn public_key_of(seed: &[u8; KEY_BYTES]) -> [u8; KEY_BYTES] {
    ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// A PEM file holding a fixed DER prefix and 32 key bytes.
struct Format {
    label: &'static str,
    prefix: &'static [u8],
    max_bytes: u64,
    /// What a DER body of another length probably is.
    other_lengths: &'static str,
    /// What a DER body of the right length but another prefix is.
    wrong_prefix: &'static str,
}

impl Format {
    fn parse(&self, bytes: &[u8]) -> Result<[u8; KEY_BYTES], String> {
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!("a file larger than {} bytes", self.max_bytes));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "a file that is not text".to_owned())?;
        let der = pem_body(text, self.label)?;
        let expected_len = self.prefix.len() + KEY_BYTES;
        if der.len() != expected_len {
            return Err(format!("{} bytes of DER ({})", der.len(), self.other_lengths));
        }
        let (prefix, key) = der.split_at(self.prefix.len());
        if prefix != self.prefix {
            return Err(format!("{expected_len} bytes of {}", self.wrong_prefix));
        }
        let mut out = [0u8; KEY_BYTES];
        out.copy_from_slice(key);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
    use ed25519_dalek::{SigningKey, VerifyingKey};

    use super::*;

    #[test]
    fn private_key_round_trips_and_dalek_reads_it() {
        let seed = [7u8; 32];
        let pem = private_key_pem(&seed);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        assert_eq!(pem.len(), 119);
        assert_eq!(parse_private_key_pem(pem.as_bytes()).unwrap(), seed);
        let dalek = SigningKey::from_pkcs8_der(&private_key_der(&seed)).expect("PKCS#8 v1");
        assert_eq!(dalek.to_bytes(), seed);
    }

    #[test]
    fn public_key_round_trips_and_dalek_reads_it() {
        let key = public_key_of(&[7u8; 32]);
        let pem = public_key_pem(&key);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        assert_eq!(pem.len(), 113);
        assert_eq!(parse_public_key_pem(pem.as_bytes()).unwrap(), key);
        let der = pem_body(&pem, PUBLIC_LABEL).expect("PEM");
        let dalek = VerifyingKey::from_public_key_der(&der).expect("SPKI");
        assert_eq!(dalek.to_bytes(), key);
    }

    #[test]
    fn pkcs8_v2_is_refused_by_length() {
        let v2 = SigningKey::from_bytes(&[7u8; 32]).to_pkcs8_der().expect("encode");
        let pem = crate::fsutil::pem_encode("PRIVATE KEY", v2.as_bytes());
        let found = parse_private_key_pem(pem.as_bytes()).unwrap_err();
        assert!(found.contains("PKCS#8 v2"), "{found}");
    }

    #[test]
    fn labels_prefixes_and_points_are_checked() {
        let key = public_key_of(&[7u8; 32]);
        // A public key where a private key is expected, and the reverse.
        let found = parse_private_key_pem(public_key_pem(&key).as_bytes()).unwrap_err();
        assert!(found.contains("PUBLIC KEY"), "{found}");
        let found = parse_public_key_pem(private_key_pem(&[7u8; 32]).as_bytes()).unwrap_err();
        assert!(found.contains("PRIVATE KEY"), "{found}");
        // Right length, wrong algorithm (the OID of X25519 is 1.3.101.110).
        let mut der = SPKI_ED25519_PREFIX.to_vec();
        der[8] = 0x6e;
        der.extend_from_slice(&key);
        let pem = crate::fsutil::pem_encode("PUBLIC KEY", &der);
        assert!(parse_public_key_pem(pem.as_bytes()).unwrap_err().contains("not an Ed25519"));
        // Right format, not a point on the curve (y = 2 has no x).
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        let found = parse_public_key_pem(public_key_pem(&not_a_point).as_bytes()).unwrap_err();
        assert!(found.contains("curve point"), "{found}");
        let big = vec![b'A'; 5000];
        assert!(parse_public_key_pem(&big).unwrap_err().contains("larger than"));
    }
}
