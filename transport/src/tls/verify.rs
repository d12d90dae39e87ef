//! Which peers a node accepts: the verification seam.
//!
//! Both sides of every shoal connection present a certificate and prove, with a TLS 1.3
//! `CertificateVerify` signature, that they hold its key. BoringSSL's chain verification is
//! replaced by a callback (installed on client and server contexts alike) that:
//!
//! 1. requires a certificate: a peer without one fails the handshake (`certificate_required`);
//! 2. requires its key to be Ed25519, otherwise `bad_certificate`;
//! 3. hands the raw 32-byte key to the node's [`PeerVerifier`]; a rejection is
//!    `bad_certificate` (QUIC transport error 0x12a).
//!
//! Deliberately not checked: names (CN, SNI, SANs), issuer, validity period, extensions and the
//! certificate's self-signature. A node's identity is its key, and the handshake signature
//! already proves the peer holds it; everything else in a self-signed certificate is whatever the
//! peer chose to write. Session resumption is disabled (see `context`), so every connection runs
//! the verifier.

use boring::pkey::{HasPublic, Id, PKeyRef};
use boring::x509::{X509Ref, X509};

use super::TlsError;

/// Decides which peer keys may connect. The peer-authentication layer implements pinning and
/// trust modes through this trait; the transport's default is [`AcceptAnyCertificate`].
pub trait PeerVerifier: Send + Sync + 'static {
    /// Accepts or rejects the peer holding `peer_public_key` (its raw Ed25519 key).
    ///
    /// Called inside the handshake, on the thread driving the connection (a shard), once per
    /// connection attempt: keep it fast and non-blocking. A rejection fails the handshake; the
    /// reason stays local (the peer only sees `bad_certificate`), so a verifier that wants it
    /// recorded records it itself.
    fn verify(&self, peer_public_key: &[u8; 32]) -> Result<(), PeerRejected>;
}

/// A [`PeerVerifier`] refused a peer key. The handshake fails with a `bad_certificate` alert and
/// the connection closes; nothing else changed. Retrying with the same key fails the same way
/// until the verifier's policy changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("peer key rejected: {reason}")]
pub struct PeerRejected {
    /// Why, for the verifier's own logs and tests (static: the callback must not allocate).
    pub reason: &'static str,
}

/// Accepts every peer key: the transport's default until peer authentication lands.
///
/// It is not "no TLS verification": the peer must still present a well-formed certificate with
/// an Ed25519 key and prove it holds that key, so `quiche::Connection::peer_cert` always yields
/// a key (read it with [`peer_public_key`]). It only skips deciding *which* keys are welcome:
/// any host that reaches the port can connect. Pinning and trust modes come with the
/// peer-authentication layer, through [`PeerVerifier`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptAnyCertificate;

impl PeerVerifier for AcceptAnyCertificate {
    fn verify(&self, _peer_public_key: &[u8; 32]) -> Result<(), PeerRejected> {
        Ok(())
    }
}

/// The raw Ed25519 key in a DER certificate, such as `quiche::Connection::peer_cert()` returns
/// once a connection is established.
pub fn peer_public_key(certificate_der: &[u8]) -> Result<[u8; 32], TlsError> {
    let certificate = X509::from_der(certificate_der)
        .map_err(|_| TlsError::PeerCertificate { reason: "not a DER X.509 certificate" })?;
    ed25519_public_key(&certificate).map_err(|reason| TlsError::PeerCertificate { reason })
}

/// The raw Ed25519 key in `certificate`, or what is wrong with it.
pub(crate) fn ed25519_public_key(certificate: &X509Ref) -> Result<[u8; 32], &'static str> {
    let key = certificate.public_key().map_err(|_| "public key cannot be decoded")?;
    raw_ed25519(&key)
}

/// The raw bytes of an Ed25519 key, or what is wrong with it.
pub(crate) fn raw_ed25519<T: HasPublic>(key: &PKeyRef<T>) -> Result<[u8; 32], &'static str> {
    if key.id() != Id::ED25519 {
        return Err("public key is not Ed25519");
    }
    // Room for more than 32 bytes, so that a surprise shows as a length error below rather
    // than as "buffer too small".
    let mut buf = [0u8; 64];
    let raw = key.raw_public_key(&mut buf).map_err(|_| "Ed25519 key cannot be read")?;
    <[u8; 32]>::try_from(raw).map_err(|_| "Ed25519 key is not 32 bytes")
}
