//! The on-disk format of Ed25519 private keys, kept out of the TLS code so that every key
//! shoal stores shares one implementation.
//!
//! PEM (RFC 7468) label `PRIVATE KEY` around a 48-byte DER PKCS#8 **v1** `PrivateKeyInfo`
//! (RFC 5208, RFC 8410 §7): the fixed 16-byte prefix `30 2e 02 01 00 30 05 06 03 2b 65 70 04
//! 22 04 20` followed by the 32-byte seed. Version 1 because BoringSSL refuses PKCS#8 v2
//! (`OneAsymmetricKey`, which adds the public key and is what ed25519-dalek's `to_pkcs8_der`
//! writes: measured `DECODE_ERROR`); BoringSSL, OpenSSL and ed25519-dalek all read v1. Nothing
//! else is accepted: a key in another form is refused, never converted, because a key is an
//! identity and shoal never rewrites it.
//!
//! The parser returns the raw 32 bytes or a description of what was found instead (never
//! quoting the contents); callers add the path and their error type.

use crate::fsutil::pem_body;

/// DER of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519, up to the seed: SEQUENCE (46 bytes) {
/// INTEGER 0 (v1), SEQUENCE { OID 1.3.101.112 (id-Ed25519) }, OCTET STRING (34) { OCTET STRING
/// (32) … } }.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Ed25519 seed and public key length, in bytes (RFC 8032).
const KEY_BYTES: usize = 32;
/// Length of a private key's DER.
pub(crate) const PRIVATE_KEY_DER_BYTES: usize = PKCS8_V1_ED25519_PREFIX.len() + KEY_BYTES;
/// PEM label of a private key file.
const PRIVATE_LABEL: &str = "PRIVATE KEY";
/// What a private key file must hold, for error messages.
pub(crate) const PRIVATE_KEY_EXPECTED: &str =
    "PEM \"PRIVATE KEY\" holding a 48-byte DER PKCS#8 v1 Ed25519 key (as shoal writes it)";
/// Private key files larger than this are refused (a shoal key file is 119 bytes).
pub(crate) const PRIVATE_KEY_FILE_MAX_BYTES: u64 = 4 * 1024;

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
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    use ed25519_dalek::SigningKey;

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
    fn pkcs8_v2_is_refused_by_length() {
        let v2 = SigningKey::from_bytes(&[7u8; 32]).to_pkcs8_der().expect("encode");
        let pem = crate::fsutil::pem_encode("PRIVATE KEY", v2.as_bytes());
        let found = parse_private_key_pem(pem.as_bytes()).unwrap_err();
        assert!(found.contains("PKCS#8 v2"), "{found}");
    }
}
