//! The node's TLS identity and the QUIC configuration built from it.
//!
//! - [`TlsMaterial`] — the node's Ed25519 key and self-signed certificate, loaded from (or
//!   generated into) a directory, or generated in memory; [`TlsMaterial::rotate`] replaces
//!   them on disk, keeping a backup ([`RotatedCert`]).
//! - [`PeerVerifier`] — the seam through which the upper layers decide which peer keys to
//!   accept; [`AcceptAnyCertificate`] is the default.
//! - [`quiche_config`] — the factory of one `quiche::Config` per shard, from [`QuicSettings`].
//!
//! Identity is the raw 32-byte Ed25519 public key. Certificates are only its envelope: nobody
//! checks names, issuers, validity periods or the self-signature (see [`verify`]).

mod context;
mod material;
mod quic_config;
mod rotate;
pub mod verify;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use material::{
    read_certificate_key, TlsMaterial, CERT_FILE_NAME, COMMON_NAME_MAX_BYTES, DEFAULT_CERT_DIR,
    KEY_FILE_NAME,
};
pub use quic_config::{quiche_config, QuicSettings, ALPN};
pub use rotate::RotatedCert;
pub use verify::{peer_public_key, AcceptAnyCertificate, PeerRejected, PeerVerifier};

use shoal_protocols::config::ConfigError;

use crate::fsutil::{FileError, FileOp};

/// Everything that can go wrong with the node's TLS material or QUIC configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The TLS directory could not be created, or a path in the way is not a directory. Nothing
    /// was written. Retrying helps once the cause (permissions, a file in the way) is fixed.
    #[error("cannot create TLS directory {dir}: {source}")]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A TLS file exists but could not be read. Nothing was written. Retrying helps once the
    /// cause (usually permissions) is fixed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A TLS file could not be written, renamed into place or removed. The file named was not
    /// created or replaced; a temporary file `.<name>.tmp-*` may remain in the directory and can
    /// be deleted. During a rotation the directory holds the old or the new pair once the next
    /// load has recovered it. Retrying helps once the cause (disk full, permissions, a
    /// filesystem without hard links) is fixed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The key file is not what shoal writes. Nothing was changed (the key is never replaced
    /// automatically: it is the node's identity). Retrying fails the same way: restore the
    /// key from a backup or delete it to give the node a new identity.
    #[error("{path}: expected {expected}, found {found}")]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What the file must hold.
        expected: &'static str,
        /// What it holds instead.
        found: String,
    },
    /// The certificate file is not a PEM X.509 certificate with an Ed25519 key. Nothing was
    /// changed. Retrying fails the same way: delete the file and it is regenerated from the key.
    #[error("{path}: expected {expected}, found {found}")]
    CertFormat {
        /// The certificate file.
        path: PathBuf,
        /// What the file must hold.
        expected: &'static str,
        /// What it holds instead.
        found: String,
    },
    /// The certificate holds a different public key than the key file: the files belong to
    /// different identities. Nothing was changed. Retrying fails the same way: put the matching
    /// pair back, or delete the certificate to regenerate it from the key.
    #[error(
        "certificate {cert} does not belong to key {key}: restore the matching pair or delete \
         the certificate to regenerate it from the key"
    )]
    CertKeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The common name for a new certificate is empty or longer than X.509 allows. Nothing was
    /// written. Retrying with the same name fails the same way.
    #[error("certificate common name {common_name:?} is invalid: use 1..={max} bytes", max = COMMON_NAME_MAX_BYTES)]
    CommonName {
        /// The rejected name.
        common_name: String,
    },
    /// A peer's certificate (from `quiche::Connection::peer_cert`) is not a DER X.509
    /// certificate holding an Ed25519 key. Nothing changed; retrying with the same bytes fails
    /// the same way.
    #[error("peer certificate is invalid: {reason}")]
    PeerCertificate {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A QUIC setting is outside its documented range. Nothing was built; fix the named key.
    #[error(transparent)]
    Settings(#[from] ConfigError),
    /// A BoringSSL call failed while building a certificate or the TLS context. Nothing was
    /// written. Not expected with valid material; a retry does not help.
    #[error("boring: cannot {op}: {source}")]
    Boring {
        /// What was being done.
        op: &'static str,
        /// BoringSSL's error queue.
        source: boring::error::ErrorStack,
    },
    /// quiche refused part of the configuration. Nothing was built; a retry does not help.
    #[error("quiche: cannot {op}: {source}")]
    Quiche {
        /// What was being done.
        op: &'static str,
        /// quiche's error.
        source: quiche::Error,
    },
}

impl TlsError {
    /// A mapper for `map_err` on a BoringSSL result.
    fn boring(op: &'static str) -> impl FnOnce(boring::error::ErrorStack) -> Self {
        move |source| Self::Boring { op, source }
    }

    /// A mapper for `map_err` on a quiche result.
    fn quiche(op: &'static str) -> impl FnOnce(quiche::Error) -> Self {
        move |source| Self::Quiche { op, source }
    }
}

impl From<FileError> for TlsError {
    fn from(e: FileError) -> Self {
        let FileError { op, path, source } = e;
        match op {
            FileOp::CreateDir => Self::CreateDir { dir: path, source },
            FileOp::Read => Self::Read { path, source },
            // The TLS code reports every failed change of a file as a write of it.
            FileOp::Write | FileOp::Remove | FileOp::Rename => Self::Write { path, source },
        }
    }
}
