//! What can go wrong with the identity keys and the trust store on disk.

use std::io;
use std::path::PathBuf;

use crate::fsutil::{FileError, FileOp};

/// Everything that can go wrong with the node's key files and pins. Each variant names the
/// file; none quotes the contents of a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Another process holds the key directory (a running node, or a `shoal keys` command).
    /// Nothing was read or written. Retrying helps once that process is done; for a running
    /// node use its own API (identity rotation, pins) instead of the files.
    #[error(
        "{dir} is in use by another shoal process (a running node or a key command): stop it, \
         or change keys and pins through the running node"
    )]
    Locked {
        /// The key directory.
        dir: PathBuf,
    },
    /// A directory (the key directory, its `trusted/` or `backups/`) could not be created, or a
    /// file is in the way. Nothing was written. Retrying helps once the cause (permissions, a
    /// file with the directory's name) is fixed.
    #[error(
        "cannot create directory {dir}: {source}; check the permissions of its parent and that \
         no file has its name"
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A file exists but could not be read (or a directory not listed). Nothing was written.
    /// Retrying helps once the cause (usually ownership or permissions) is fixed.
    #[error("cannot read {path}: {source}; check its owner and permissions")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A file could not be written. The file named was not created or replaced; a temporary
    /// file `.<name>.tmp-*` may remain next to it and can be deleted. During a rotation the
    /// directory holds the old or the new pair (the next load finishes or undoes the rotation).
    /// Retrying helps once the cause (disk full, permissions) is fixed.
    #[error("cannot write {path}: {source}; check free space and permissions")]
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A file could not be removed (a pin being deleted, a staged rotation file): it is still
    /// there. Retrying helps once the cause (permissions) is fixed.
    #[error("cannot remove {path}: {source}; check the permissions of its directory")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A staged rotation file could not be renamed over `path`. The directory holds the old or
    /// the new pair once the next load has recovered it. Retrying helps once the cause is fixed.
    #[error("cannot rename the staged {path}.new over {path}: {source}; check permissions")]
    Rename {
        /// The file that was to be replaced.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// `node.key` is not what shoal writes. Nothing was changed (the key is the node's identity
    /// and is never replaced automatically). Retrying fails the same way.
    #[error(
        "{path}: expected {expected}, found {found}; restore it from the newest \
         backups/<timestamp>/ directory, or delete it and node.pub to create a new identity"
    )]
    KeyFormat {
        /// The key file.
        path: PathBuf,
        /// What the file must hold.
        expected: &'static str,
        /// What it holds instead (never its contents).
        found: String,
    },
    /// `node.pub` is not a PEM Ed25519 public key. Nothing was changed. Retrying fails the same
    /// way; deleting the file fixes it (it is regenerated from `node.key`).
    #[error(
        "{path}: expected {expected}, found {found}; delete it and it is regenerated from \
         node.key"
    )]
    PublicKeyFormat {
        /// The public key file.
        path: PathBuf,
        /// What the file must hold.
        expected: &'static str,
        /// What it holds instead.
        found: String,
    },
    /// `node.pub` exists but `node.key` does not: generating a key now would silently give the
    /// node another identity than the one its peers know. Nothing was written. Retrying fails
    /// the same way until an operator decides.
    #[error(
        "{public} exists but {key} does not, and generating a key would silently change this \
         node's identity: restore {key} from the newest {backups}/<timestamp>/ directory, or \
         delete {public} to create a new identity"
    )]
    PublicWithoutKey {
        /// The missing key file.
        key: PathBuf,
        /// The public key file that exists.
        public: PathBuf,
        /// The backups directory to restore from.
        backups: PathBuf,
    },
    /// `node.pub` holds another public key than the one derived from `node.key`: the files
    /// belong to different identities. Nothing was changed. Retrying fails the same way.
    #[error(
        "keypair_mismatch: {public} is not the public key of {key}; restore both files from the \
         newest backups/<timestamp>/ directory, or delete {public} to keep the identity of \
         {key} (it is regenerated), or move both away to start a new identity (then rotate \
         peers' pins)"
    )]
    KeypairMismatch {
        /// The private key file.
        key: PathBuf,
        /// The public key file that does not match it.
        public: PathBuf,
    },
    /// The operating system gave no randomness for a new key. Nothing was written. A retry may
    /// help; persistent failure means a broken system.
    #[error("no randomness from the operating system for a new key: {reason}")]
    Randomness {
        /// The error reported.
        reason: String,
    },
}

impl From<FileError> for KeyError {
    fn from(e: FileError) -> Self {
        let FileError { op, path, source } = e;
        match op {
            FileOp::CreateDir => Self::CreateDir { dir: path, source },
            FileOp::Read => Self::Read { path, source },
            FileOp::Write => Self::Write { path, source },
            FileOp::Remove => Self::Remove { path, source },
            FileOp::Rename => Self::Rename { path, source },
        }
    }
}
