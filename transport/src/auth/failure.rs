//! Why an authentication failed: one reason per troubleshooting row, its label in metrics and
//! logs, and the application close code that tells the peer.

use std::fmt;

use super::keys::Fingerprint;

/// Why a connection was not authenticated. Every failure closes the connection (with the
/// reason's close code when this side detected it); nothing else changes on this node, except
/// that a TOFU pin written by the same handshake is never rolled back (pins are written only
/// after the peer's proof verified). Whether a retry helps is documented per variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The peer presented an identity key other than the one pinned for its name. A retry
    /// fails the same way until an operator removes the pin (after a legitimate rotation) —
    /// otherwise treat it as a security event.
    #[error("key_mismatch: pinned {pinned}, presented {presented}")]
    KeyMismatch {
        /// Fingerprint of the pinned key.
        pinned: Fingerprint,
        /// Fingerprint of the key the peer presented.
        presented: Fingerprint,
    },
    /// Strict trust mode and no pin for the peer. A retry fails the same way until the peer's
    /// key is provisioned in the trust store.
    #[error("untrusted_key: no pin for the peer in strict mode (presented {presented})")]
    UntrustedKey {
        /// Fingerprint of the key the peer presented.
        presented: Fingerprint,
    },
    /// The peer's signature does not verify over this connection's transcript: a wrong
    /// private key, a proof captured on another connection, or a relay in the middle. A retry
    /// fails the same way.
    #[error("signature_invalid: the identity proof does not verify for this connection")]
    SignatureInvalid,
    /// The peer's cookie MAC does not verify: the clusters' `dist_cookie` values differ. A
    /// retry fails until both sides use the same cookie.
    #[error("cookie_mismatch: the peer does not know this cluster's dist_cookie")]
    CookieMismatch,
    /// The peer's wall clock differs from ours by more than `auth_timestamp_window_ms`. A retry
    /// fails until the clocks are synchronised (NTP).
    #[error("peer_ts_skew: peer clock differs by {skew_ms} ms (window {window_ms} ms)")]
    PeerTsSkew {
        /// Absolute difference, milliseconds.
        skew_ms: u64,
        /// The configured window.
        window_ms: u64,
    },
    /// One side asked to skip the key proof (cookie-only) and the other does not list it in
    /// `cookie_only_nodes`: cookie-only must be configured on both sides. A retry fails the
    /// same way until both lists agree.
    #[error("unexpected_auth_ok: cookie-only authentication is not configured on both sides")]
    UnexpectedAuthOk,
    /// The name the peer claims is not the name that was dialled (or a HELLO addressed to
    /// another node). A retry fails the same way: fix the address book or discovery data.
    #[error("name_mismatch: expected {expected}, peer claims {claimed}")]
    NameMismatch {
        /// The name this side expected.
        expected: String,
        /// The name the peer claimed.
        claimed: String,
    },
    /// The QUIC handshake ended without a usable peer certificate key (the TLS layer must
    /// never let this happen; it is checked again here in case the QUIC configuration was
    /// changed), or the node's `PeerVerifier` refused the key. A retry fails the same way.
    #[error("tls_unverified: {0}")]
    TlsUnverified(&'static str),
    /// The whole exchange (QUIC handshake, HELLO, WELCOME) did not finish within
    /// `auth_handshake_timeout_ms`. A retry may help (slow link, overloaded peer).
    #[error("auth_stream_timeout: no authenticated HELLO/WELCOME within the deadline")]
    AuthStreamTimeout,
    /// The connection closed before the exchange finished, for a reason that is not one of the
    /// above (the peer went away, a transport error, a malformed frame). A retry may help.
    #[error("connection_closed: the connection ended before authentication finished")]
    ConnectionClosed,
}

/// Number of distinct [`AuthFailure`] reasons (metrics arrays are indexed by [`AuthFailure::index`]).
pub const REASONS: usize = 10;

/// Metric and log labels, in [`AuthFailure::index`] order.
pub const REASON_LABELS: [&str; REASONS] = [
    "key_mismatch",
    "untrusted_key",
    "signature_invalid",
    "cookie_mismatch",
    "peer_ts_skew",
    "unexpected_auth_ok",
    "name_mismatch",
    "tls_unverified",
    "auth_stream_timeout",
    "connection_closed",
];

/// Application close codes of authentication failures (docs/protocols/wire.md). The timeout
/// keeps the transport's `HELLO_TIMEOUT` code.
pub mod close_code {
    /// `key_mismatch`.
    pub const KEY_MISMATCH: u64 = 0x20;
    /// `untrusted_key`.
    pub const UNTRUSTED_KEY: u64 = 0x21;
    /// `signature_invalid`.
    pub const SIGNATURE_INVALID: u64 = 0x22;
    /// `cookie_mismatch`.
    pub const COOKIE_MISMATCH: u64 = 0x23;
    /// `peer_ts_skew`.
    pub const PEER_TS_SKEW: u64 = 0x24;
    /// `unexpected_auth_ok`.
    pub const UNEXPECTED_AUTH_OK: u64 = 0x25;
    /// `name_mismatch`.
    pub const NAME_MISMATCH: u64 = 0x26;
    /// `tls_unverified`.
    pub const TLS_UNVERIFIED: u64 = 0x27;
    /// `auth_stream_timeout` (the transport's HELLO_TIMEOUT).
    pub const AUTH_STREAM_TIMEOUT: u64 = crate::endpoint::event::close_code::HELLO_TIMEOUT;
}

/// The close code of each reason, in [`AuthFailure::index`] order (`None`: nothing is sent,
/// the connection is already gone). The one table both directions are read from.
const CLOSE_CODES: [Option<u64>; REASONS] = [
    Some(close_code::KEY_MISMATCH),
    Some(close_code::UNTRUSTED_KEY),
    Some(close_code::SIGNATURE_INVALID),
    Some(close_code::COOKIE_MISMATCH),
    Some(close_code::PEER_TS_SKEW),
    Some(close_code::UNEXPECTED_AUTH_OK),
    Some(close_code::NAME_MISMATCH),
    Some(close_code::TLS_UNVERIFIED),
    Some(close_code::AUTH_STREAM_TIMEOUT),
    None,
];

impl AuthFailure {
    /// Position in [`REASON_LABELS`] and in the metrics arrays.
    pub fn index(&self) -> usize {
        match self {
            Self::KeyMismatch { .. } => 0,
            Self::UntrustedKey { .. } => 1,
            Self::SignatureInvalid => 2,
            Self::CookieMismatch => 3,
            Self::PeerTsSkew { .. } => 4,
            Self::UnexpectedAuthOk => 5,
            Self::NameMismatch { .. } => 6,
            Self::TlsUnverified(_) => 7,
            Self::AuthStreamTimeout => 8,
            Self::ConnectionClosed => 9,
        }
    }

    /// The label operators grep for (`key_mismatch`, `untrusted_key`, …).
    pub fn label(&self) -> &'static str {
        REASON_LABELS[self.index()]
    }

    /// The close code this side sends when it detects the failure (`None`: nothing is sent,
    /// the connection is already gone).
    pub fn close_code(&self) -> Option<u64> {
        CLOSE_CODES[self.index()]
    }

    /// The reason behind a close code the peer sent, if it is an authentication code. Details
    /// (fingerprints, names, skew) stay with the side that detected the failure.
    pub fn from_peer_close(code: u64) -> Option<PeerRefusal> {
        let index = CLOSE_CODES.iter().position(|known| *known == Some(code))?;
        Some(PeerRefusal { code, index })
    }
}

/// The peer refused our authentication and said why (its close code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRefusal {
    /// The close code.
    pub code: u64,
    /// Position of the reason in [`REASON_LABELS`].
    pub index: usize,
}

impl PeerRefusal {
    /// The reason's label (the same vocabulary as [`AuthFailure::label`]).
    pub fn label(&self) -> &'static str {
        REASON_LABELS[self.index]
    }
}

impl fmt::Display for PeerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the peer refused us: {}", self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<AuthFailure> {
        let fp = super::super::keys::fingerprint(&[1; 32]);
        vec![
            AuthFailure::KeyMismatch { pinned: fp, presented: fp },
            AuthFailure::UntrustedKey { presented: fp },
            AuthFailure::SignatureInvalid,
            AuthFailure::CookieMismatch,
            AuthFailure::PeerTsSkew { skew_ms: 1, window_ms: 1 },
            AuthFailure::UnexpectedAuthOk,
            AuthFailure::NameMismatch { expected: "a@h".into(), claimed: "b@h".into() },
            AuthFailure::TlsUnverified("x"),
            AuthFailure::AuthStreamTimeout,
            AuthFailure::ConnectionClosed,
        ]
    }

    #[test]
    fn labels_indices_and_codes_agree() {
        let failures = all();
        assert_eq!(failures.len(), REASONS);
        for (index, failure) in failures.iter().enumerate() {
            assert_eq!(failure.index(), index);
            assert!(failure.to_string().starts_with(failure.label()), "{failure}");
            if let Some(code) = failure.close_code() {
                let refusal = AuthFailure::from_peer_close(code).expect("an auth code");
                assert_eq!(refusal.label(), failure.label());
                assert_eq!(refusal.index, index);
            }
        }
        assert_eq!(
            AuthFailure::from_peer_close(crate::endpoint::event::close_code::DUPLICATE),
            None
        );
    }
}
