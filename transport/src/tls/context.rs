//! The BoringSSL context handed to quiche: TLS 1.3 only, Ed25519 only, mutual authentication
//! through the node's [`PeerVerifier`].

use std::sync::Arc;

use boring::ssl::{
    SslAlert, SslContextBuilder, SslMethod, SslOptions, SslRef, SslSignatureAlgorithm,
    SslVerifyError, SslVerifyMode, SslVersion,
};

use super::verify::{ed25519_public_key, PeerVerifier};
use super::{TlsError, TlsMaterial};

/// The context for `material`, verifying peers with `verifier`. Used for client and server
/// connections alike: both sides present a certificate and both verify the other's.
pub(crate) fn ssl_context_builder(
    material: &TlsMaterial,
    verifier: Arc<dyn PeerVerifier>,
) -> Result<SslContextBuilder, TlsError> {
    let mut builder = base_builder(verifier)?;
    builder
        .set_certificate(material.certificate())
        .map_err(TlsError::boring("set the certificate"))?;
    builder
        .set_private_key(material.private_key())
        .map_err(TlsError::boring("set the private key"))?;
    builder
        .check_private_key()
        .map_err(TlsError::boring("check the private key against the certificate"))?;
    Ok(builder)
}

/// Everything but the node's own certificate and key (tests build a certificate-less client
/// from it).
pub(crate) fn base_builder(verifier: Arc<dyn PeerVerifier>) -> Result<SslContextBuilder, TlsError> {
    let mut builder =
        SslContextBuilder::new(SslMethod::tls()).map_err(TlsError::boring("create a context"))?;
    // quiche also pins each connection to TLS 1.3; the context says so too, so that nothing
    // else built from it can negotiate less.
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_3))
        .map_err(TlsError::boring("set the minimum TLS version"))?;
    builder
        .set_max_proto_version(Some(SslVersion::TLS1_3))
        .map_err(TlsError::boring("set the maximum TLS version"))?;
    // BoringSSL's default list of signature algorithms it accepts lacks Ed25519: without this,
    // the handshake fails with QUIC transport error 296 (handshake_failure). Ed25519 alone
    // because every shoal key is Ed25519.
    builder
        .set_verify_algorithm_prefs(&[SslSignatureAlgorithm::ED25519])
        .map_err(TlsError::boring("set the signature algorithms"))?;
    // The default groups start with X25519MLKEM768, whose key share makes the client's first
    // flight two Initial datagrams; X25519 alone keeps it to one (measured).
    builder.set_curves_list("X25519").map_err(TlsError::boring("set the key exchange group"))?;
    // No session tickets, hence no resumption: a resumed handshake carries no certificate and
    // would skip the verifier, so a key the verifier has since rejected could reconnect.
    builder.set_options(SslOptions::NO_TICKET);
    // PEER | FAIL_IF_NO_PEER_CERT: a server requests the client's certificate and fails the
    // handshake without one. Never call `quiche::Config::verify_peer` on a config built from
    // this context: it overwrites this mode (measured with quiche 0.30: `false` means the
    // callback never runs, so any key is accepted; `true` drops FAIL_IF_NO_PEER_CERT, so a
    // server accepts clients without a certificate).
    builder.set_custom_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        move |ssl| verify_peer(ssl, &*verifier),
    );
    Ok(builder)
}

/// The custom verify callback (the [`super::verify`] module doc lists what it checks).
fn verify_peer(ssl: &mut SslRef, verifier: &dyn PeerVerifier) -> Result<(), SslVerifyError> {
    let Some(certificate) = ssl.peer_certificate() else {
        return Err(SslVerifyError::Invalid(SslAlert::CERTIFICATE_REQUIRED));
    };
    let key = ed25519_public_key(&certificate)
        .map_err(|_| SslVerifyError::Invalid(SslAlert::BAD_CERTIFICATE))?;
    verifier.verify(&key).map_err(|_| SslVerifyError::Invalid(SslAlert::BAD_CERTIFICATE))
}
