//! The node's side of the HELLO/WELCOME proofs: what to send, and the checks (in order) on
//! what the peer sent. Called by the endpoint when the QUIC handshake completes (dialer) and
//! when HELLO or WELCOME arrives; no I/O except a TOFU pin written to disk on first contact.

use std::sync::Arc;

use shoal_protocols::NodeName;

use super::failure::AuthFailure;
use super::keys::{fingerprint, Identity};
use super::proof::{self, Binding, Claims, Mode, ProofRole};
use super::trust::PinOutcome;
use super::{Auth, TrustMode};
use crate::frame::AuthFields;

/// Who the peer proved to be on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerIdentity {
    /// How it authenticated.
    pub mode: Mode,
    /// Its identity key (`None` for a cookie-only peer).
    pub identity_key: Option<[u8; 32]>,
}

/// One side's part in a proof: who speaks and what it claims.
struct Speaker<'a> {
    role: ProofRole,
    dialer: &'a NodeName,
    acceptor: &'a NodeName,
    incarnation: u64,
}

impl Auth {
    /// The mode this node uses with `peer`: cookie-only when authentication is off or the peer
    /// matches `cookie_only_nodes`, signed otherwise.
    pub fn mode_for(&self, peer: &NodeName) -> Mode {
        if !self.enabled || self.cookie_only.iter().any(|pattern| pattern.matches(peer)) {
            Mode::CookieOnly
        } else {
            Mode::Signed
        }
    }

    /// The dialer's `auth` block for HELLO.
    pub fn prove_hello(
        &self,
        binding: &Binding,
        me: &NodeName,
        target: &NodeName,
        incarnation: u64,
        scratch: &mut Vec<u8>,
    ) -> AuthFields {
        let speaker =
            Speaker { role: ProofRole::Dialer, dialer: me, acceptor: target, incarnation };
        self.prove(binding, &speaker, self.mode_for(target), scratch)
    }

    /// The acceptor's `auth` block for WELCOME (`mode` is the one both sides agreed on).
    pub fn prove_welcome(
        &self,
        binding: &Binding,
        dialer: &NodeName,
        me: &NodeName,
        incarnation: u64,
        mode: Mode,
        scratch: &mut Vec<u8>,
    ) -> AuthFields {
        let speaker = Speaker { role: ProofRole::Acceptor, dialer, acceptor: me, incarnation };
        self.prove(binding, &speaker, mode, scratch)
    }

    /// Checks a HELLO addressed to `me` (module doc of `auth`: the order of the checks).
    #[allow(clippy::too_many_arguments)]
    pub fn check_hello(
        &self,
        binding: &Binding,
        me: &NodeName,
        dialer: &NodeName,
        target: &NodeName,
        incarnation: u64,
        fields: &AuthFields,
        scratch: &mut Vec<u8>,
    ) -> Result<PeerIdentity, AuthFailure> {
        if target != me {
            return Err(AuthFailure::NameMismatch {
                expected: me.to_string(),
                claimed: target.to_string(),
            });
        }
        let speaker = Speaker { role: ProofRole::Dialer, dialer, acceptor: me, incarnation };
        self.check(binding, &speaker, dialer, fields, scratch)
    }

    /// Checks the WELCOME of the node this side dialled as `dialled`.
    #[allow(clippy::too_many_arguments)]
    pub fn check_welcome(
        &self,
        binding: &Binding,
        me: &NodeName,
        dialled: &NodeName,
        claimed: &NodeName,
        incarnation: u64,
        fields: &AuthFields,
        scratch: &mut Vec<u8>,
    ) -> Result<PeerIdentity, AuthFailure> {
        if claimed != dialled {
            return Err(AuthFailure::NameMismatch {
                expected: dialled.to_string(),
                claimed: claimed.to_string(),
            });
        }
        let speaker =
            Speaker { role: ProofRole::Acceptor, dialer: me, acceptor: dialled, incarnation };
        self.check(binding, &speaker, dialled, fields, scratch)
    }

    fn prove(
        &self,
        binding: &Binding,
        speaker: &Speaker<'_>,
        mode: Mode,
        scratch: &mut Vec<u8>,
    ) -> AuthFields {
        let identity: Option<Arc<Identity>> = (mode == Mode::Signed).then(|| self.identity());
        let claims = Claims {
            role: speaker.role,
            mode,
            dialer: speaker.dialer,
            acceptor: speaker.acceptor,
            identity_key: identity.as_ref().map_or([0; 32], |identity| identity.public_key()),
            timestamp_ms: self.now_ms(),
            incarnation: speaker.incarnation,
        };
        proof::transcript(binding, &claims, scratch);
        let proof = proof::prove(identity.as_deref(), self.cookie.bytes(), scratch);
        AuthFields {
            mode: mode as u8,
            identity_key: claims.identity_key,
            timestamp_ms: claims.timestamp_ms,
            signature: proof.signature,
            cookie_mac: proof.cookie_mac,
        }
    }

    /// The checks shared by HELLO and WELCOME, in this order: clock, mode agreement, pin,
    /// signature, cookie, then the TOFU pin. The signature comes before the cookie so that a
    /// proof replayed from another connection reads `signature_invalid`, while a correctly
    /// signed proof from another cluster reads `cookie_mismatch`.
    fn check(
        &self,
        binding: &Binding,
        speaker: &Speaker<'_>,
        peer: &NodeName,
        fields: &AuthFields,
        scratch: &mut Vec<u8>,
    ) -> Result<PeerIdentity, AuthFailure> {
        // An unknown mode byte is a peer that does not follow the protocol, reported as a mode
        // disagreement.
        let mode = Mode::from_byte(fields.mode).ok_or(AuthFailure::UnexpectedAuthOk)?;
        let skew_ms = self.now_ms().abs_diff(fields.timestamp_ms);
        if skew_ms > self.window_ms {
            return Err(AuthFailure::PeerTsSkew { skew_ms, window_ms: self.window_ms });
        }
        if mode != self.mode_for(peer) {
            return Err(AuthFailure::UnexpectedAuthOk);
        }
        let claims = Claims {
            role: speaker.role,
            mode,
            dialer: speaker.dialer,
            acceptor: speaker.acceptor,
            identity_key: fields.identity_key,
            timestamp_ms: fields.timestamp_ms,
            incarnation: speaker.incarnation,
        };
        proof::transcript(binding, &claims, scratch);
        let presented = fields.identity_key;
        // Looked up once: a known key needs no pin below, an unknown one a TOFU pin.
        let unpinned = mode == Mode::Signed && {
            match self.trust.get(peer) {
                Some(pinned) if pinned != presented => {
                    return Err(AuthFailure::KeyMismatch {
                        pinned: fingerprint(&pinned),
                        presented: fingerprint(&presented),
                    });
                }
                Some(_) => false,
                None if self.trust_mode == TrustMode::Strict => {
                    return Err(AuthFailure::UntrustedKey { presented: fingerprint(&presented) });
                }
                None => true,
            }
        };
        if mode == Mode::Signed && !proof::signature_ok(&presented, scratch, &fields.signature) {
            return Err(AuthFailure::SignatureInvalid);
        }
        if !proof::cookie_ok(self.cookie.bytes(), scratch, &fields.cookie_mac) {
            return Err(AuthFailure::CookieMismatch);
        }
        if mode == Mode::CookieOnly {
            return Ok(PeerIdentity { mode, identity_key: None });
        }
        if unpinned {
            // TOFU (strict returned above). The trust store logs a pin it cannot write.
            match self.trust.pin_if_new_deferred(peer, &presented) {
                Ok(PinOutcome::Known) => {}
                Ok(PinOutcome::Pinned { .. }) => log::info!(
                    "Pinned key for node {peer} on first contact: {}",
                    fingerprint(&presented)
                ),
                // Another connection pinned a different key for the same name meanwhile.
                Err(conflict) => {
                    return Err(AuthFailure::KeyMismatch {
                        pinned: fingerprint(&conflict.pinned),
                        presented: fingerprint(&presented),
                    });
                }
            }
        }
        Ok(PeerIdentity { mode, identity_key: Some(presented) })
    }
}
