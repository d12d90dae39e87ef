//! Rotation of the TLS key and certificate on disk.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::material::{
    check_common_name, pair_files, private_key_from_seed, random_seed, self_signed,
};
use super::{TlsError, TlsMaterial};
use crate::keyformat::{private_key_pem, public_key_of};
use crate::rotation::Rotation;

/// What [`TlsMaterial::rotate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotatedCert {
    /// The directory holding the replaced key and certificate (`<dir>/backups/<timestamp>[-N]`).
    pub backup_dir: PathBuf,
    /// The raw Ed25519 public key of the replaced pair.
    pub old_public_key: [u8; 32],
    /// The raw Ed25519 public key of the new pair.
    pub new_public_key: [u8; 32],
}

impl TlsMaterial {
    /// Replaces `<dir>/node.key` and `<dir>/node.crt` with a new key and a certificate for it
    /// (subject `CN=<common_name>`), keeping the old pair in `<dir>/backups/<UTC
    /// YYYYMMDDTHHMMSSZ>/` (key 0600).
    ///
    /// The current pair is loaded first with [`Self::load_or_generate`] (so a broken pair is
    /// reported, not backed up, and a missing one is generated and then replaced). The new pair
    /// is staged as `node.key.new` + `node.crt.new` and renamed into place: an interruption at
    /// any point leaves the complete old or the complete new pair once the next
    /// [`Self::load_or_generate`] has run its recovery, never a mix (see `rotation`).
    ///
    /// Only the files change: a running node keeps using the [`TlsMaterial`] it loaded, the old
    /// certificate, until it restarts. Peers that pinned the old key refuse the new one until
    /// they re-pin it.
    pub fn rotate(dir: &Path, common_name: &str) -> Result<RotatedCert, TlsError> {
        check_common_name(common_name)?;
        let old = Self::load_or_generate(dir, common_name)?;
        let seed = random_seed()?;
        let private_key = private_key_from_seed(&seed)?;
        let certificate = self_signed(&private_key, common_name)?;
        let cert_pem = certificate.to_pem().map_err(TlsError::boring("encode certificate"))?;
        let key_pem = private_key_pem(&seed).into_bytes();
        let rotation = Rotation::begin(pair_files(dir), key_pem, cert_pem, SystemTime::now())?;
        let backup_dir = rotation.run()?;
        log::warn!(
            "{}: TLS certificate rotated from key {} to {}; old pair in {}; restart the node to \
             use it",
            dir.display(),
            crate::auth::fingerprint(&old.public_key()),
            crate::auth::fingerprint(&public_key_of(&seed)),
            backup_dir.display()
        );
        Ok(RotatedCert {
            backup_dir,
            old_public_key: old.public_key(),
            new_public_key: public_key_of(&seed),
        })
    }
}
