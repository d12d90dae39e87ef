//! The node's TLS material: an Ed25519 key and a self-signed X.509 certificate for it.
//!
//! # Files
//!
//! [`TlsMaterial::load_or_generate`] keeps two files in one directory:
//!
//! - `node.key`, mode 0600: PEM (RFC 7468) with label `PRIVATE KEY` around a 48-byte DER
//!   PKCS#8 **v1** `PrivateKeyInfo` (RFC 5208, RFC 8410 §7): the fixed 16-byte prefix
//!   `30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20` followed by the 32-byte Ed25519 seed,
//!   base64 on one line (the format shared with the identity key, see `keyformat`). Version 1
//!   because BoringSSL refuses PKCS#8 v2 (`OneAsymmetricKey`, which adds the public key and is
//!   what ed25519-dalek's `to_pkcs8_der` writes: measured `DECODE_ERROR`); BoringSSL, OpenSSL
//!   and ed25519-dalek all read v1. Nothing else is accepted: a key in another form is refused,
//!   never converted, because the key is the node's identity and shoal never rewrites it.
//! - `node.crt`, mode 0644: PEM with label `CERTIFICATE` around a self-signed X.509 v3
//!   certificate: subject = issuer = `CN=<common name>`, a random 64-bit serial, valid from its
//!   creation for 100 years, the node's Ed25519 key, an Ed25519 signature, no extensions (218 bytes
//!   of DER with a 6-byte common name, measured). Nobody checks anything in it but the key (see
//!   [`super::verify`]); it exists because TLS carries keys in certificates.
//!
//! The directory is created with mode 0700 when missing; an existing directory is left as it is.
//! [`TlsMaterial::rotate`] adds `backups/<UTC YYYYMMDDTHHMMSSZ>/` (0700) holding each replaced
//! pair.
//!
//! # What is generated
//!
//! First an interrupted rotation is brought to the old or the new pair (see `rotation`). Then:
//!
//! | `node.key` | `node.crt`                | result                                          |
//! |------------|---------------------------|-------------------------------------------------|
//! | missing    | any                       | new key and certificate (an orphan cert is replaced) |
//! | present    | missing                   | certificate regenerated from the key            |
//! | present    | present, same key         | both loaded, nothing written                    |
//! | present    | present, another key      | [`TlsError::CertKeyMismatch`], nothing written  |
//! | malformed  | any                       | [`TlsError::KeyFormat`], nothing written        |
//!
//! # How files are written
//!
//! Never in place (see `fsutil::publish`): a temporary file is created with `create_new` and
//! the final mode (so a secret is never readable by others, not even briefly), written, fsynced
//! and published, and the directory is fsynced. The certificate is published by `rename`
//! (replacing). The key is published by a hard link, which fails when the name exists: a key
//! that appeared meanwhile (another process starting on the same directory) is never
//! overwritten; that key is loaded instead.

use std::io;
use std::path::Path;

use boring::asn1::Asn1Time;
use boring::bn::BigNum;
use boring::error::ErrorStack;
use boring::hash::MessageDigest;
use boring::nid::Nid;
use boring::pkey::{Id, PKey, PKeyRef, Private};
use boring::x509::{X509Builder, X509NameBuilder, X509Ref, X509};

use super::verify::ed25519_public_key;
use super::TlsError;
use crate::fsutil::{self, create_dir, publish, read_bounded, Publish, Published};
use crate::keyformat::{
    parse_private_key_pem, private_key_der, private_key_pem, public_key_of, PRIVATE_KEY_EXPECTED,
    PRIVATE_KEY_FILE_MAX_BYTES,
};
use crate::rotation::{self, PairFiles};

/// Default TLS directory (`quic_cert_dir`, deployment seed).
pub const DEFAULT_CERT_DIR: &str = "data/quic";
/// Name of the key file inside the TLS directory.
pub const KEY_FILE_NAME: &str = "node.key";
/// Name of the certificate file inside the TLS directory.
pub const CERT_FILE_NAME: &str = "node.crt";
/// Longest certificate common name, in bytes (X.509 `ub-common-name`, RFC 5280 appendix A).
pub const COMMON_NAME_MAX_BYTES: usize = 64;

/// Ed25519 seed (private key) length, in bytes (RFC 8032).
const SEED_BYTES: usize = 32;
/// What a certificate file must hold, for error messages.
const CERT_EXPECTED: &str = "PEM \"CERTIFICATE\" holding an X.509 certificate with an Ed25519 key";
/// Certificate files larger than this are refused unread (a shoal certificate is ~350 bytes).
const CERT_FILE_MAX_BYTES: u64 = 64 * 1024;
/// Validity of a generated certificate, in days: 100 years. Nobody checks it (identity is the
/// key), so it only has to outlive the node.
const CERT_VALIDITY_DAYS: u32 = 36_500;

/// The node's TLS identity: an Ed25519 key pair and a self-signed certificate carrying it.
///
/// Immutable once built and `Send + Sync`: share one (in an `Arc`) between the shards, each of
/// which builds its own `quiche::Config` from it with [`super::quiche_config`].
pub struct TlsMaterial {
    private_key: PKey<Private>,
    certificate: X509,
    certificate_der: Vec<u8>,
    public_key: [u8; 32],
}

impl TlsMaterial {
    /// Loads `<dir>/node.key` and `<dir>/node.crt`, generating what is missing (module doc:
    /// formats, generation table, how files are written). `common_name` is used only for a
    /// certificate generated now: an existing certificate is kept as it is, whatever its name.
    pub fn load_or_generate(dir: &Path, common_name: &str) -> Result<Self, TlsError> {
        check_common_name(common_name)?;
        create_dir(dir)?;
        rotation::recover(&pair_files(dir))?;
        let key_path = dir.join(KEY_FILE_NAME);
        let cert_path = dir.join(CERT_FILE_NAME);

        let (seed, key_is_new) = match read_bounded(&key_path, PRIVATE_KEY_FILE_MAX_BYTES)? {
            Some(bytes) => (parse_key_pem(&key_path, &bytes)?, false),
            None => {
                let seed = random_seed()?;
                let pem = private_key_pem(&seed);
                let mode = fsutil::SECRET_MODE;
                match publish(dir, KEY_FILE_NAME, pem.as_bytes(), mode, Publish::NoClobber)? {
                    Published::Written => (seed, true),
                    // Another process created the key after our read: its key is the identity.
                    Published::AlreadyExists => {
                        let bytes = read_bounded(&key_path, PRIVATE_KEY_FILE_MAX_BYTES)?
                            .ok_or_else(|| TlsError::Read {
                                path: key_path.clone(),
                                source: io::ErrorKind::NotFound.into(),
                            })?;
                        (parse_key_pem(&key_path, &bytes)?, false)
                    }
                }
            }
        };
        let private_key = private_key_from_seed(&seed)?;
        let public_key = public_key_of(&seed);

        let existing =
            if key_is_new { None } else { read_bounded(&cert_path, CERT_FILE_MAX_BYTES)? };
        let certificate = match existing {
            Some(bytes) => {
                let certificate = parse_cert_pem(&cert_path, &bytes)?;
                let cert_key = certificate_key(&cert_path, &certificate)?;
                if cert_key != public_key {
                    return Err(TlsError::CertKeyMismatch { cert: cert_path, key: key_path });
                }
                certificate
            }
            None => {
                let certificate = self_signed(&private_key, common_name)?;
                let pem = certificate.to_pem().map_err(TlsError::boring("encode certificate"))?;
                publish(dir, CERT_FILE_NAME, &pem, fsutil::PUBLIC_MODE, Publish::Replace)?;
                certificate
            }
        };
        Self::assemble(private_key, certificate, public_key)
    }

    /// A new key and certificate in memory only, for tests and benchmarks: nothing is written.
    pub fn generate_ephemeral(common_name: &str) -> Result<Self, TlsError> {
        check_common_name(common_name)?;
        let seed = random_seed()?;
        let private_key = private_key_from_seed(&seed)?;
        let public_key = public_key_of(&seed);
        let certificate = self_signed(&private_key, common_name)?;
        Self::assemble(private_key, certificate, public_key)
    }

    /// The node's raw Ed25519 public key: its identity.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The node's certificate, DER-encoded (what peers receive in the handshake).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The private key, for the TLS context.
    pub(crate) fn private_key(&self) -> &PKeyRef<Private> {
        &self.private_key
    }

    /// The certificate, for the TLS context.
    pub(crate) fn certificate(&self) -> &X509Ref {
        &self.certificate
    }

    fn assemble(
        private_key: PKey<Private>,
        certificate: X509,
        public_key: [u8; 32],
    ) -> Result<Self, TlsError> {
        let certificate_der =
            certificate.to_der().map_err(TlsError::boring("encode certificate"))?;
        Ok(Self { private_key, certificate, certificate_der, public_key })
    }
}

/// Shows the identity, never the secret.
impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key: String = self.public_key.iter().map(|b| format!("{b:02x}")).collect();
        f.debug_struct("TlsMaterial")
            .field("public_key", &key)
            .field("certificate_der_bytes", &self.certificate_der.len())
            .finish_non_exhaustive()
    }
}

pub(super) fn check_common_name(common_name: &str) -> Result<(), TlsError> {
    if common_name.is_empty() || common_name.len() > COMMON_NAME_MAX_BYTES {
        return Err(TlsError::CommonName { common_name: common_name.to_owned() });
    }
    Ok(())
}

pub(super) fn random_seed() -> Result<[u8; SEED_BYTES], TlsError> {
    let mut seed = [0u8; SEED_BYTES];
    boring::rand::rand_bytes(&mut seed).map_err(TlsError::boring("draw a random key"))?;
    Ok(seed)
}

/// The seed in a key file, or a [`TlsError::KeyFormat`] naming `path`.
pub(crate) fn parse_key_pem(path: &Path, bytes: &[u8]) -> Result<[u8; SEED_BYTES], TlsError> {
    parse_private_key_pem(bytes).map_err(|found| TlsError::KeyFormat {
        path: path.to_owned(),
        expected: PRIVATE_KEY_EXPECTED,
        found,
    })
}

/// The Ed25519 key of the certificate in the PEM file `path` (what `shoal keys show` prints
/// the fingerprint of). Errors name the file.
pub fn read_certificate_key(path: &Path) -> Result<[u8; 32], TlsError> {
    let bytes = read_bounded(path, CERT_FILE_MAX_BYTES)?.ok_or_else(|| TlsError::Read {
        path: path.to_owned(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    certificate_key(path, &parse_cert_pem(path, &bytes)?)
}

fn certificate_key(path: &Path, certificate: &X509) -> Result<[u8; 32], TlsError> {
    ed25519_public_key(certificate).map_err(|reason| TlsError::CertFormat {
        path: path.to_owned(),
        expected: CERT_EXPECTED,
        found: format!("a certificate whose {reason}"),
    })
}

pub(super) fn parse_cert_pem(path: &Path, bytes: &[u8]) -> Result<X509, TlsError> {
    let fail = |found: String| TlsError::CertFormat {
        path: path.to_owned(),
        expected: CERT_EXPECTED,
        found,
    };
    if bytes.len() as u64 > CERT_FILE_MAX_BYTES {
        return Err(fail(format!("a file larger than {CERT_FILE_MAX_BYTES} bytes")));
    }
    X509::from_pem(bytes).map_err(|e| fail(format!("no parsable PEM certificate ({e})")))
}

pub(super) fn private_key_from_seed(seed: &[u8; SEED_BYTES]) -> Result<PKey<Private>, TlsError> {
    let key = PKey::private_key_from_der(&private_key_der(seed))
        .map_err(TlsError::boring("load the Ed25519 key"))?;
    // Invariant, not input: the prefix names Ed25519.
    debug_assert_eq!(key.id(), Id::ED25519);
    Ok(key)
}

/// A self-signed certificate for `key` (module doc: contents).
pub(super) fn self_signed(key: &PKeyRef<Private>, common_name: &str) -> Result<X509, TlsError> {
    let mut name = X509NameBuilder::new().map_err(TlsError::boring("create a name"))?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .map_err(TlsError::boring("set the certificate common name"))?;
    let name = name.build();

    let mut serial = [0u8; 8];
    boring::rand::rand_bytes(&mut serial).map_err(TlsError::boring("draw a serial number"))?;
    // Positive (RFC 5280 §4.1.2.2) and always 8 bytes long.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    let serial = BigNum::from_slice(&serial)
        .and_then(|n| n.to_asn1_integer())
        .map_err(TlsError::boring("encode the serial number"))?;

    let not_before = Asn1Time::days_from_now(0).map_err(TlsError::boring("encode a time"))?;
    let not_after =
        Asn1Time::days_from_now(CERT_VALIDITY_DAYS).map_err(TlsError::boring("encode a time"))?;

    let mut builder = X509::builder().map_err(TlsError::boring("create a certificate"))?;
    (|| {
        builder.set_version(2)?; // X.509 v3 (the field is zero-based)
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.set_pubkey(key)?;
        sign_ed25519(&mut builder, key)
    })()
    .map_err(TlsError::boring("build the certificate"))?;
    Ok(builder.build())
}

/// Signs the certificate with the Ed25519 `key`.
#[allow(unsafe_code)]
fn sign_ed25519(builder: &mut X509Builder, key: &PKeyRef<Private>) -> Result<(), ErrorStack> {
    // SAFETY: `from_ptr` only stores the pointer. A NULL `EVP_MD` is what BoringSSL's
    // `X509_sign` requires for Ed25519, which hashes internally; boring 5.4 has no safe way to
    // express it. The value lives only for this call and is never asked for its size or type
    // (which would dereference it).
    let digest = unsafe { MessageDigest::from_ptr(std::ptr::null()) };
    builder.sign(key, digest)
}

/// The key and certificate files of `dir`, as the rotation code sees them.
pub(super) fn pair_files(dir: &Path) -> PairFiles<'_> {
    PairFiles {
        dir,
        secret: KEY_FILE_NAME,
        public: CERT_FILE_NAME,
        public_mode: fsutil::PUBLIC_MODE,
        max_bytes: CERT_FILE_MAX_BYTES.max(PRIVATE_KEY_FILE_MAX_BYTES),
        is_pair: is_tls_pair,
    }
}

/// Whether the contents of a key file and a certificate file carry the same Ed25519 key.
fn is_tls_pair(key: &[u8], cert: &[u8]) -> bool {
    let Ok(seed) = parse_private_key_pem(key) else { return false };
    let Ok(cert) = X509::from_pem(cert) else { return false };
    ed25519_public_key(&cert).is_ok_and(|cert_key| cert_key == public_key_of(&seed))
}
