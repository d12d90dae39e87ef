//! The node's identity key pair on disk, and its rotation.
//!
//! # Files
//!
//! A [`KeyDir`] (configuration key `auth_key_dir`, default [`DEFAULT_KEY_DIR`]) holds:
//!
//! - `node.key`, mode 0600: the Ed25519 seed as PEM `PRIVATE KEY`, PKCS#8 **v1** (48 bytes of
//!   DER), exactly the format of the TLS key (see [`crate::tls`]; BoringSSL, OpenSSL and
//!   ed25519-dalek read it).
//! - `node.pub`, mode 0644: the public key as PEM `PUBLIC KEY` (44 bytes of SPKI DER), what
//!   `openssl pkey -pubout` writes. Operators copy it to peers' `trusted/` directories.
//! - `trusted/` (0700): the pinned peer keys, see [`super::trust`].
//! - `backups/<UTC YYYYMMDDTHHMMSSZ>/` (0700): the pair replaced by each [`KeyDir::rotate`].
//!
//! The directory is created with mode 0700 when missing; an existing directory is left as it
//! is. Files are written atomically, secrets with their final mode from the first byte (see
//! `fsutil`).
//!
//! # What [`KeyDir::load_or_generate`] does
//!
//! First an interrupted rotation is brought to the old or the new pair (see
//! `rotation`). Then:
//!
//! | `node.key` | `node.pub`           | result                                                   |
//! |------------|----------------------|----------------------------------------------------------|
//! | missing    | missing              | new identity: `node.key` published (never over another), then `node.pub` |
//! | present    | missing              | `node.pub` derived from the key and written; identity unchanged |
//! | present    | present, same key    | loaded, nothing written                                  |
//! | present    | present, another key | [`KeyError::KeypairMismatch`], nothing written           |
//! | missing    | present              | [`KeyError::PublicWithoutKey`], nothing written: a new key would silently change the identity |
//! | malformed  | any                  | [`KeyError::KeyFormat`], nothing written                 |
//! | present    | malformed            | [`KeyError::PublicKeyFormat`], nothing written           |
//!
//! # Rotation
//!
//! [`KeyDir::rotate`] backs the current pair up into `backups/<timestamp>/`, stages the new
//! pair as `node.key.new` + `node.pub.new` and renames them into place. An interruption at any
//! point leaves the complete old or the complete new pair (after the recovery that every load
//! runs first), never a mix, and no secret readable by others.

mod error;
mod fingerprint;
#[cfg(test)]
mod tests;

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};

pub use error::KeyError;
pub use fingerprint::{fingerprint, Fingerprint};

use crate::fsutil::{self, publish, read_bounded, FileError, FileOp, Publish, Published};
use crate::keyformat::{
    parse_private_key_pem, parse_public_key_pem, private_key_pem, public_key_of, public_key_pem,
    PRIVATE_KEY_EXPECTED, PRIVATE_KEY_FILE_MAX_BYTES, PUBLIC_KEY_EXPECTED,
    PUBLIC_KEY_FILE_MAX_BYTES,
};
use crate::rotation::{self, PairFiles, Rotation, BACKUPS_DIR_NAME};

/// Default key directory (configuration key `auth_key_dir`), relative to the working directory.
pub const DEFAULT_KEY_DIR: &str = "data/keys";
/// Name of the private key file in the key directory.
pub const KEY_FILE_NAME: &str = "node.key";
/// Name of the public key file in the key directory.
pub const PUBLIC_KEY_FILE_NAME: &str = "node.pub";
/// Name of the trust store directory in the key directory.
pub const TRUSTED_DIR_NAME: &str = "trusted";

/// The node's identity: an Ed25519 signing key.
///
/// `Send + Sync` and immutable: share it in an `Arc`. `Debug` shows the fingerprint, never the
/// secret; the secret is wiped from memory on drop (ed25519-dalek's `zeroize`).
pub struct Identity {
    signing_key: SigningKey,
}

impl Identity {
    /// A new identity in memory only (tests, benchmarks), from the operating system's
    /// randomness. Nothing is written.
    ///
    /// # Panics
    ///
    /// If the operating system has no randomness to give (as ed25519-dalek's `generate` does);
    /// [`KeyDir::load_or_generate`] reports that as an error instead.
    pub fn generate() -> Self {
        Self { signing_key: SigningKey::generate(&mut OsRng) }
    }

    /// The identity whose Ed25519 seed (private key) is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { signing_key: SigningKey::from_bytes(&seed) }
    }

    /// The raw 32-byte Ed25519 public key: what peers pin.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// The signing key, for the handshake's proofs.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The fingerprint of the public key, for logs and operators.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.public_key())
    }

    /// A new identity from the operating system's randomness, or an error instead of a panic.
    fn try_generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| KeyError::Randomness { reason: e.to_string() })?;
        Ok(Self::from_seed(seed))
    }
}

/// Shows the fingerprint, never the secret.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("fingerprint", &self.fingerprint().to_string()).finish()
    }
}

/// What [`KeyDir::rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The new identity, now on disk. The running node keeps using the old one until it
    /// restarts (or loads this one).
    pub identity: Identity,
    /// The directory holding the replaced pair (`<dir>/backups/<timestamp>[-N]`).
    pub backup_dir: PathBuf,
    /// Fingerprint of the replaced identity.
    pub old_fingerprint: Fingerprint,
    /// Fingerprint of the new identity.
    pub new_fingerprint: Fingerprint,
}

/// The Ed25519 public key in a `node.pub`-style file (PEM `PUBLIC KEY`, SPKI): what an
/// operator pins for a peer. Errors name the file.
pub fn read_public_key(path: &Path) -> Result<[u8; 32], KeyError> {
    read_public_key_if_present(path)?.ok_or_else(|| KeyError::Read {
        path: path.to_owned(),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

/// [`read_public_key`], with `None` for a missing file.
fn read_public_key_if_present(path: &Path) -> Result<Option<[u8; 32]>, KeyError> {
    let Some(bytes) = read_bounded(path, PUBLIC_KEY_FILE_MAX_BYTES)? else { return Ok(None) };
    let public = parse_public_key_pem(&bytes).map_err(|found| KeyError::PublicKeyFormat {
        path: path.to_owned(),
        expected: PUBLIC_KEY_EXPECTED,
        found,
    })?;
    Ok(Some(public))
}

/// Name of the lock file inside the key directory (empty; the lock is the point).
pub const LOCK_FILE_NAME: &str = ".lock";

/// The key directory's lock ([`KeyDir::lock`]); released on drop (or when the process ends).
#[derive(Debug)]
pub struct KeyDirLock {
    _file: std::fs::File,
}

/// The directory holding the node's identity key pair, its trust store and its backups
/// (module doc: layout and rules). Only paths: nothing is touched until a method is called.
#[derive(Clone, Debug)]
pub struct KeyDir {
    dir: PathBuf,
}

impl KeyDir {
    /// The key directory at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/trusted`: the trust store's directory (see [`super::trust::TrustStore::open`]).
    pub fn trusted_dir(&self) -> PathBuf {
        self.dir.join(TRUSTED_DIR_NAME)
    }

    /// `<dir>/backups`: one subdirectory per rotation.
    pub fn backups_dir(&self) -> PathBuf {
        self.dir.join(BACKUPS_DIR_NAME)
    }

    /// Takes the directory for this process: an exclusive advisory lock (`flock`) on
    /// `<dir>/.lock`, held until the guard drops. A running node holds it for its lifetime, so
    /// that a second node cannot share the identity and a key command cannot change files
    /// under a running node (whose pins and identity live in memory). Fails with
    /// [`KeyError::Locked`] at once, without waiting.
    pub fn lock(&self) -> Result<KeyDirLock, KeyError> {
        fsutil::create_dir(&self.dir)?;
        let path = self.dir.join(LOCK_FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .mode(fsutil::SECRET_MODE)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(FileError::on(FileOp::Write, &path))?;
        match file.try_lock() {
            Ok(()) => Ok(KeyDirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(KeyError::Locked { dir: self.dir.clone() })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(KeyError::Write { path, source }),
        }
    }

    /// Loads the identity, generating what is missing (module doc: the table of rules). Run
    /// by one process at a time per directory; two processes starting together on an empty
    /// directory still end with one identity (the key is published without overwriting).
    pub fn load_or_generate(&self) -> Result<Identity, KeyError> {
        fsutil::create_dir(&self.dir)?;
        rotation::recover(&self.pair_files())?;
        let key_path = self.dir.join(KEY_FILE_NAME);
        let public_path = self.dir.join(PUBLIC_KEY_FILE_NAME);

        // Looked at before the key: another process generating concurrently publishes the key
        // before its `node.pub`, so "no key" read after "a public key" is never its half-done
        // work but a key that is really missing.
        let public_existed =
            public_path.try_exists().map_err(FileError::on(FileOp::Read, &public_path))?;
        let identity = match self.read_key()? {
            Some(identity) => identity,
            None if public_existed => {
                return Err(KeyError::PublicWithoutKey {
                    key: key_path,
                    public: public_path,
                    backups: self.backups_dir(),
                });
            }
            None => {
                let identity = Identity::try_generate()?;
                let pem = private_key_pem(identity.signing_key.as_bytes());
                let how = Publish::NoClobber;
                match publish(&self.dir, KEY_FILE_NAME, pem.as_bytes(), fsutil::SECRET_MODE, how)? {
                    Published::Written => identity,
                    // Another process created the key after our read: its key is the identity.
                    Published::AlreadyExists => self.read_key()?.ok_or_else(|| KeyError::Read {
                        path: key_path.clone(),
                        source: std::io::ErrorKind::NotFound.into(),
                    })?,
                }
            }
        };

        match read_public_key_if_present(&public_path)? {
            Some(public) => {
                if public != identity.public_key() {
                    return Err(KeyError::KeypairMismatch { key: key_path, public: public_path });
                }
            }
            None => {
                // Derived from the key on disk, so a concurrent writer writes the same bytes.
                let pem = public_key_pem(&identity.public_key());
                let how = Publish::Replace;
                publish(&self.dir, PUBLIC_KEY_FILE_NAME, pem.as_bytes(), fsutil::PUBLIC_MODE, how)?;
            }
        }
        Ok(identity)
    }

    /// Replaces the identity with a new one, keeping the old pair in
    /// `<dir>/backups/<UTC timestamp>/` (module doc: rotation). The current pair is loaded (and
    /// generated if missing) first, so a broken pair is reported, not backed up. The running
    /// node keeps its old identity until restarted; peers that pinned the old key refuse the new
    /// one until their operators re-pin it.
    pub fn rotate(&self) -> Result<Rotated, KeyError> {
        let old = self.load_or_generate()?;
        let new = Identity::try_generate()?;
        let secret = private_key_pem(new.signing_key.as_bytes()).into_bytes();
        let public = public_key_pem(&new.public_key()).into_bytes();
        let rotation = Rotation::begin(self.pair_files(), secret, public, SystemTime::now())?;
        let backup_dir = rotation.run()?;
        log::info!(
            "{}: identity rotated from {} to {}; old pair in {}",
            self.dir.display(),
            old.fingerprint(),
            new.fingerprint(),
            backup_dir.display()
        );
        Ok(Rotated {
            old_fingerprint: old.fingerprint(),
            new_fingerprint: new.fingerprint(),
            identity: new,
            backup_dir,
        })
    }

    /// The identity in `node.key`, or `None` when the file does not exist.
    fn read_key(&self) -> Result<Option<Identity>, KeyError> {
        let path = self.dir.join(KEY_FILE_NAME);
        let Some(bytes) = read_bounded(&path, PRIVATE_KEY_FILE_MAX_BYTES)? else {
            return Ok(None);
        };
        let seed = parse_private_key_pem(&bytes).map_err(|found| KeyError::KeyFormat {
            path,
            expected: PRIVATE_KEY_EXPECTED,
            found,
        })?;
        Ok(Some(Identity::from_seed(seed)))
    }

    /// The pair as the rotation code sees it.
    fn pair_files(&self) -> PairFiles<'_> {
        PairFiles {
            dir: &self.dir,
            secret: KEY_FILE_NAME,
            public: PUBLIC_KEY_FILE_NAME,
            public_mode: fsutil::PUBLIC_MODE,
            max_bytes: PRIVATE_KEY_FILE_MAX_BYTES.max(PUBLIC_KEY_FILE_MAX_BYTES),
            is_pair: is_identity_pair,
        }
    }
}

/// Whether the contents of a `node.key` and a `node.pub` are one valid identity.
fn is_identity_pair(secret: &[u8], public: &[u8]) -> bool {
    match (parse_private_key_pem(secret), parse_public_key_pem(public)) {
        (Ok(seed), Ok(public)) => public_key_of(&seed) == public,
        _ => false,
    }
}
