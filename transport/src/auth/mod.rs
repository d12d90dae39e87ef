//! Peer authentication: who may join a shoal cluster.
//!
//! Every connection is mutually authenticated inside the transport's HELLO/WELCOME exchange,
//! so authentication costs no round trip beyond the one HELLO/WELCOME already takes (the
//! dialer waits one round trip after its QUIC handshake; the acceptor none):
//!
//! 1. TLS 1.3 (quiche + boring) proves that each side holds its *TLS* key (`tls`).
//! 2. The dialer's HELLO carries its claimed name, the name it dialled, and a proof: an
//!    Ed25519 signature by its *identity* key and an HMAC keyed with the cluster cookie, both
//!    over a transcript bound to this connection ([`proof`]).
//! 3. The acceptor checks, in order: the dialled name is its own (`name_mismatch`), the clock
//!    (`peer_ts_skew`), that both sides agree on cookie-only (`unexpected_auth_ok`), the pin
//!    (`key_mismatch`, or `untrusted_key` in strict mode), the signature
//!    (`signature_invalid`), the cookie MAC (`cookie_mismatch`); then pins the key on first
//!    contact (TOFU) and answers with WELCOME carrying its own proof — or closes the
//!    connection with the reason's close code ([`failure::close_code`]).
//! 4. The dialer runs the same checks on WELCOME (the claimed name must be the dialled one).
//!
//! One deadline, `auth_handshake_timeout_ms` (endpoint settings), covers the QUIC handshake
//! and both frames (`auth_stream_timeout`). Only an authenticated connection carries messages,
//! and every layer above learns the peer's name from the connection that proved it.
//!
//! Files: [`keys`] (identity key pair, rotation with backups), [`trust`] (pins).

pub mod config;
pub mod failure;
mod handshake;
pub mod keys;
pub mod pattern;
pub mod proof;
pub mod trust;

#[cfg(test)]
mod tests;

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use shoal_protocols::config::ConfigError;

pub use config::{AuthConfig, Cookie, TrustMode, DEFAULT_COOKIE};
pub use failure::{AuthFailure, PeerRefusal};
pub use handshake::PeerIdentity;
pub use keys::{
    fingerprint, read_public_key, Fingerprint, Identity, KeyDir, KeyError, Rotated, DEFAULT_KEY_DIR,
};
pub use pattern::NodePattern;
pub use proof::{Binding, Mode};
pub use trust::{PinConflict, PinInfo, PinOutcome, SkippedPin, TrustStore};

/// The wall clock the timestamp check reads: milliseconds since the Unix epoch. Replaceable
/// so that tests can give a node a skewed clock.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`WallClock`] (a clock before 1970 reads as 0).
pub fn system_clock() -> WallClock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    })
}

/// Why authentication could not be set up at start. Nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A setting is invalid; fix the named key. A retry fails the same way.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The key material or the trust store could not be loaded (the error names the file and
    /// the fix, e.g. `keypair_mismatch`). A retry fails the same way until the files are fixed.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// What [`Auth::rotate_identity`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRotation {
    /// Fingerprint of the replaced key.
    pub old_fingerprint: Fingerprint,
    /// Fingerprint of the new key (record it: peers must re-pin it).
    pub new_fingerprint: Fingerprint,
    /// Where the old pair was backed up (`None` without a key directory).
    pub backup_dir: Option<std::path::PathBuf>,
}

/// The node's authentication state, shared by all its shards (`Send + Sync`, in an `Arc`).
pub struct Auth {
    enabled: bool,
    trust_mode: TrustMode,
    cookie: Cookie,
    cookie_only: Vec<NodePattern>,
    window_ms: u64,
    identity: RwLock<Arc<Identity>>,
    key_dir: Option<KeyDir>,
    trust: TrustStore,
    clock: WallClock,
    /// Held while this `Auth` lives: no other process changes the key directory meanwhile.
    _lock: Option<keys::KeyDirLock>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("enabled", &self.enabled)
            .field("trust_mode", &self.trust_mode)
            .field("identity", &self.identity().fingerprint().to_string())
            .field("pins", &self.trust.len())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Validates `config`, then loads (or generates) the identity and opens the trust store
    /// under `auth_key_dir`; with no directory, an identity and pins in memory for this run.
    /// Logs a loud warning when authentication is disabled and one warning per skipped pin.
    pub fn load(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        // Before any file is touched: a bad setting must not generate keys.
        let cookie_only = config.validate()?;
        let (identity, key_dir, trust, lock) = match &config.auth_key_dir {
            Some(dir) => {
                let key_dir = KeyDir::new(dir.clone());
                let lock = key_dir.lock()?;
                let identity = key_dir.load_or_generate()?;
                let (trust, _skipped) = TrustStore::open(key_dir.trusted_dir())?;
                (identity, Some(key_dir), trust, Some(lock))
            }
            None => (Identity::generate(), None, TrustStore::in_memory(), None),
        };
        Ok(Self::assemble(config, cookie_only, (identity, key_dir, trust), system_clock(), lock))
    }

    /// An `Auth` from parts (tests and benchmarks: a given identity, trust store or clock).
    pub fn with_parts(
        config: &AuthConfig,
        identity: Identity,
        key_dir: Option<KeyDir>,
        trust: TrustStore,
        clock: WallClock,
    ) -> Result<Self, AuthSetupError> {
        let cookie_only = config.validate()?;
        Ok(Self::assemble(config, cookie_only, (identity, key_dir, trust), clock, None))
    }

    /// The state from a validated `config` (its parsed `cookie_only_nodes`) and its parts.
    fn assemble(
        config: &AuthConfig,
        cookie_only: Vec<NodePattern>,
        (identity, key_dir, trust): (Identity, Option<KeyDir>, TrustStore),
        clock: WallClock,
        lock: Option<keys::KeyDirLock>,
    ) -> Self {
        if !config.auth_enabled {
            log::warn!(
                "AUTHENTICATION DISABLED (auth_enabled = false): peers are not asked to prove \
                 an identity key; anyone who knows dist_cookie can join under any name. Peers \
                 with authentication on refuse this node (unexpected_auth_ok) unless they list \
                 it in cookie_only_nodes."
            );
        }
        log::info!("Node identity fingerprint {}", identity.fingerprint());
        Self {
            enabled: config.auth_enabled,
            trust_mode: config.auth_trust_mode,
            cookie: config.dist_cookie.clone(),
            cookie_only,
            window_ms: config.auth_timestamp_window_ms,
            identity: RwLock::new(Arc::new(identity)),
            key_dir,
            trust,
            clock,
            _lock: lock,
        }
    }

    /// The current identity (a rotation swaps it for the next handshakes).
    pub fn identity(&self) -> Arc<Identity> {
        Arc::clone(&self.identity.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether identity proofs are on (`auth_enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The trust store (pins): store, delete and list are operator operations.
    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// Replaces the identity key: backs up the old pair under `auth_key_dir/backups/<UTC
    /// timestamp>/`, writes the new one, and uses it from the next handshake on (connections
    /// already authenticated stay up). Logs the new fingerprint. Without a key directory the
    /// new identity lives in memory only.
    pub fn rotate_identity(&self) -> Result<IdentityRotation, KeyError> {
        let old_fingerprint = self.identity().fingerprint();
        let (identity, backup_dir) = match &self.key_dir {
            Some(dir) => {
                let Rotated { identity, backup_dir, .. } = dir.rotate()?;
                (identity, Some(backup_dir))
            }
            None => (Identity::generate(), None),
        };
        let new_fingerprint = identity.fingerprint();
        *self.identity.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(identity);
        // `KeyDir::rotate` logged the rotation with both fingerprints and the backup.
        if backup_dir.is_none() {
            log::warn!(
                "Identity rotated in memory: new fingerprint {new_fingerprint} (old \
                 {old_fingerprint})"
            );
        }
        Ok(IdentityRotation { old_fingerprint, new_fingerprint, backup_dir })
    }

    /// The wall clock, milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        (self.clock)()
    }
}
