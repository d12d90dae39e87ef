//! The node's TLS material: an Ed25519 key and a self-signed X.509 certificate for it.
//!
//! # Files
//!
//! [`TlsMaterial::load_or_generate`] keeps two files in one directory:
//!
//! - `node.key`, mode 0600: PEM (RFC 7468) with label `PRIVATE KEY` around a 48-byte DER
//!   PKCS#8 **v1** `PrivateKeyInfo` (RFC 5208, RFC 8410 §7): the fixed 16-byte prefix
//!   `30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20` followed by the 32-byte Ed25519 seed,
//!   base64 on one line. Version 1 because BoringSSL refuses PKCS#8 v2 (`OneAsymmetricKey`,
//!   which adds the public key and is what ed25519-dalek's `to_pkcs8_der` writes: measured
//!   `DECODE_ERROR`); BoringSSL, OpenSSL and ed25519-dalek all read v1. Nothing else is accepted:
//!   a key in another form is refused, never converted, because the key is the node's identity
//!   and shoal never rewrites it.
//! - `node.crt`, mode 0644: PEM with label `CERTIFICATE` around a self-signed X.509 v3
//!   certificate: subject = issuer = `CN=<common name>`, a random 64-bit serial, valid from its
//!   creation for 100 years, the node's Ed25519 key, an Ed25519 signature, no extensions (218 bytes
//!   of DER with a 6-byte common name, measured). Nobody checks anything in it but the key (see
//!   [`super::verify`]); it exists because TLS carries keys in certificates.
//!
//! The directory is created with mode 0700 when missing; an existing directory is left as it is.
//!
//! # What is generated
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
//! Never in place: a temporary file `.<name>.tmp-<pid>-<random>` is created in the same
//! directory with `create_new` and the final mode (so a secret is never readable by others, not
//! even briefly), written, fsynced and then published, and the directory is fsynced. The
//! certificate is published by `rename` (replacing). The key is published by a hard link, which
//! fails when the name exists: a key that appeared meanwhile (another process starting on the
//! same directory) is never overwritten; that key is loaded instead.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// Name of the key file inside the TLS directory.
pub const KEY_FILE_NAME: &str = "node.key";
/// Name of the certificate file inside the TLS directory.
pub const CERT_FILE_NAME: &str = "node.crt";
/// Longest certificate common name, in bytes (X.509 `ub-common-name`, RFC 5280 appendix A).
pub const COMMON_NAME_MAX_BYTES: usize = 64;

/// DER of a PKCS#8 v1 `PrivateKeyInfo` for Ed25519, up to the seed: SEQUENCE (46 bytes) {
/// INTEGER 0 (v1), SEQUENCE { OID 1.3.101.112 (id-Ed25519) }, OCTET STRING (34) { OCTET STRING
/// (32) … } }.
const PKCS8_V1_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Ed25519 seed (private key) length, in bytes (RFC 8032).
const SEED_BYTES: usize = 32;
/// Length of the key's DER: the prefix and the seed.
const KEY_DER_BYTES: usize = PKCS8_V1_ED25519_PREFIX.len() + SEED_BYTES;
/// What a key file must hold, for error messages.
const KEY_EXPECTED: &str =
    "PEM \"PRIVATE KEY\" holding a 48-byte DER PKCS#8 v1 Ed25519 key (as shoal writes it)";
/// What a certificate file must hold, for error messages.
const CERT_EXPECTED: &str = "PEM \"CERTIFICATE\" holding an X.509 certificate with an Ed25519 key";
/// Key files larger than this are refused unread (a shoal key file is 119 bytes).
const KEY_FILE_MAX_BYTES: u64 = 4 * 1024;
/// Certificate files larger than this are refused unread (a shoal certificate is ~350 bytes).
const CERT_FILE_MAX_BYTES: u64 = 64 * 1024;
/// Validity of a generated certificate, in days: 100 years. Nobody checks it (identity is the
/// key), so it only has to outlive the node.
const CERT_VALIDITY_DAYS: u32 = 36_500;
/// Mode of the key file: owner read/write only.
const KEY_MODE: u32 = 0o600;
/// Mode of the certificate file: public, like the key it carries.
const CERT_MODE: u32 = 0o644;
/// Mode of a directory created for the material: owner only.
const DIR_MODE: u32 = 0o700;

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
        let key_path = dir.join(KEY_FILE_NAME);
        let cert_path = dir.join(CERT_FILE_NAME);

        let (seed, key_is_new) = match read_bounded(&key_path, KEY_FILE_MAX_BYTES)? {
            Some(bytes) => (parse_key_pem(&key_path, &bytes)?, false),
            None => {
                let seed = random_seed()?;
                match publish(dir, KEY_FILE_NAME, key_pem(&seed).as_bytes(), KEY_MODE, NoClobber)? {
                    Published::Written => (seed, true),
                    // Another process created the key after our read: its key is the identity.
                    Published::AlreadyExists => {
                        let bytes =
                            read_bounded(&key_path, KEY_FILE_MAX_BYTES)?.ok_or_else(|| {
                                TlsError::Read {
                                    path: key_path.clone(),
                                    source: io::ErrorKind::NotFound.into(),
                                }
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
                let cert_key =
                    ed25519_public_key(&certificate).map_err(|reason| TlsError::CertFormat {
                        path: cert_path.clone(),
                        expected: CERT_EXPECTED,
                        found: format!("a certificate whose {reason}"),
                    })?;
                if cert_key != public_key {
                    return Err(TlsError::CertKeyMismatch { cert: cert_path, key: key_path });
                }
                certificate
            }
            None => {
                let certificate = self_signed(&private_key, common_name)?;
                let pem = certificate.to_pem().map_err(TlsError::boring("encode certificate"))?;
                publish(dir, CERT_FILE_NAME, &pem, CERT_MODE, Replace)?;
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

fn check_common_name(common_name: &str) -> Result<(), TlsError> {
    if common_name.is_empty() || common_name.len() > COMMON_NAME_MAX_BYTES {
        return Err(TlsError::CommonName { common_name: common_name.to_owned() });
    }
    Ok(())
}

fn random_seed() -> Result<[u8; SEED_BYTES], TlsError> {
    let mut seed = [0u8; SEED_BYTES];
    boring::rand::rand_bytes(&mut seed).map_err(TlsError::boring("draw a random key"))?;
    Ok(seed)
}

/// The key's PKCS#8 v1 DER.
fn key_der(seed: &[u8; SEED_BYTES]) -> [u8; KEY_DER_BYTES] {
    let mut der = [0u8; KEY_DER_BYTES];
    der[..PKCS8_V1_ED25519_PREFIX.len()].copy_from_slice(&PKCS8_V1_ED25519_PREFIX);
    der[PKCS8_V1_ED25519_PREFIX.len()..].copy_from_slice(seed);
    der
}

/// The key file's contents.
fn key_pem(seed: &[u8; SEED_BYTES]) -> String {
    // 48 bytes are 64 base64 characters: exactly one PEM line, no padding.
    let body = boring::base64::encode_block(&key_der(seed));
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// The seed in a key file, or a [`TlsError::KeyFormat`] naming `path`. Messages never quote the
/// file's contents beyond a PEM header line: anything else in it may be secret.
pub(crate) fn parse_key_pem(path: &Path, bytes: &[u8]) -> Result<[u8; SEED_BYTES], TlsError> {
    let fail = |found: String| TlsError::KeyFormat {
        path: path.to_owned(),
        expected: KEY_EXPECTED,
        found,
    };
    if bytes.len() as u64 > KEY_FILE_MAX_BYTES {
        return Err(fail(format!("a file larger than {KEY_FILE_MAX_BYTES} bytes")));
    }
    let text =
        std::str::from_utf8(bytes).map_err(|_| fail("a file that is not text".to_owned()))?;
    let der = pem_body(text, "PRIVATE KEY").map_err(fail)?;
    if der.len() != KEY_DER_BYTES {
        return Err(fail(format!(
            "{} bytes of DER (a PKCS#8 v2 key, another key type, or not a key)",
            der.len()
        )));
    }
    if der[..PKCS8_V1_ED25519_PREFIX.len()] != PKCS8_V1_ED25519_PREFIX {
        return Err(fail("48 bytes of DER that are not a PKCS#8 v1 Ed25519 key".to_owned()));
    }
    let mut seed = [0u8; SEED_BYTES];
    seed.copy_from_slice(&der[PKCS8_V1_ED25519_PREFIX.len()..]);
    Ok(seed)
}

/// The decoded body of the single PEM block labelled `label` that makes up `text`, or what was
/// found instead.
fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    match lines.next() {
        None => return Err("an empty file".to_owned()),
        Some(line) if line == begin => {}
        // A PEM header names the content and is not secret; anything else might be.
        Some(line) if line.starts_with("-----BEGIN ") && line.len() <= 80 => {
            return Err(format!("the PEM header {line:?}"));
        }
        Some(_) => return Err(format!("a first line that is not {begin:?}")),
    }
    let mut body = String::new();
    loop {
        match lines.next() {
            None => return Err(format!("no {end:?} line")),
            Some(line) if line == end => break,
            Some(line) => body.push_str(line),
        }
    }
    if lines.next().is_some() {
        return Err(format!("text after the {end:?} line"));
    }
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if body.is_empty() || body.len() % 4 != 0 || !body.chars().all(is_base64) {
        return Err("a PEM body that is not base64".to_owned());
    }
    boring::base64::decode_block(&body).map_err(|_| "a PEM body that is not base64".to_owned())
}

fn parse_cert_pem(path: &Path, bytes: &[u8]) -> Result<X509, TlsError> {
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

fn private_key_from_seed(seed: &[u8; SEED_BYTES]) -> Result<PKey<Private>, TlsError> {
    let key = PKey::private_key_from_der(&key_der(seed))
        .map_err(TlsError::boring("load the Ed25519 key"))?;
    // Invariant, not input: the prefix names Ed25519.
    debug_assert_eq!(key.id(), Id::ED25519);
    Ok(key)
}

/// The public key of `seed`, derived by ed25519-dalek (infallible). BoringSSL derives the same
/// key for the certificate; the tests check that the two agree.
fn public_key_of(seed: &[u8; SEED_BYTES]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes()
}

/// A self-signed certificate for `key` (module doc: contents).
fn self_signed(key: &PKeyRef<Private>, common_name: &str) -> Result<X509, TlsError> {
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

/// Creates `dir` (mode 0700) and any missing parents; an existing directory is left alone.
fn create_dir(dir: &Path) -> Result<(), TlsError> {
    let fail = |source| TlsError::CreateDir { dir: dir.to_owned(), source };
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(fail)?;
    // The new directory's own entry is durable only once its parent is synced.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent).map_err(fail)
}

/// Up to `max + 1` bytes of `path` (so the caller can tell "too large"), or `None` when it does
/// not exist.
fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, TlsError> {
    let fail = |source| TlsError::Read { path: path.to_owned(), source };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(fail)?;
    Ok(Some(bytes))
}

/// How [`publish`] puts the file in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Never overwrite: fail softly with [`Published::AlreadyExists`].
    NoClobber,
    /// Atomically replace whatever is there.
    Replace,
}
use Publish::{NoClobber, Replace};

/// What [`publish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// The file now holds `contents`.
    Written,
    /// [`Publish::NoClobber`] found the name taken; the existing file was left untouched.
    AlreadyExists,
}

/// Writes `contents` to `dir/name` with `mode`, atomically (module doc: how files are written).
pub(crate) fn publish(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
    how: Publish,
) -> Result<Published, TlsError> {
    let path = dir.join(name);
    let mut suffix = [0u8; 8];
    boring::rand::rand_bytes(&mut suffix).map_err(TlsError::boring("draw a file name"))?;
    let tmp =
        dir.join(format!(".{name}.tmp-{}-{:016x}", std::process::id(), u64::from_ne_bytes(suffix)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have cleared bits of `mode` (a certificate must stay world-readable).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        let published = match how {
            Replace => {
                fs::rename(&tmp, &path)?;
                Published::Written
            }
            NoClobber => {
                let published = match fs::hard_link(&tmp, &path) {
                    Ok(()) => Published::Written,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Published::AlreadyExists,
                    Err(e) => return Err(e),
                };
                fs::remove_file(&tmp)?;
                published
            }
        };
        sync_dir(dir)?;
        Ok(published)
    })();
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file,
        // which the error's documentation mentions.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| TlsError::Write { path, source })
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
